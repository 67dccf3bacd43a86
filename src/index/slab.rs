//! An array of plain numbers that is either owned or a range of a
//! memory-mapped derived file (the HNSW graph's neighbour lists and row
//! codes are searched in place, not copied out of the file).

use std::sync::Arc;

/// Numbers valid for any bit pattern, so a mapped byte range can be viewed
/// as a slice of them.
///
/// # Safety
/// Implementors must be plain data: no padding, no invalid bit patterns.
pub unsafe trait Plain: Copy + 'static {}
// SAFETY: integers have no padding and no invalid bit patterns.
unsafe impl Plain for u32 {}
// SAFETY: as above.
unsafe impl Plain for i8 {}

#[derive(Clone)]
pub enum Slab<T: Plain> {
    Owned(Vec<T>),
    Mapped {
        map: Arc<memmap2::Mmap>,
        at: usize,
        len: usize,
    },
}

impl<T: Plain> Slab<T> {
    /// `len` items at byte offset `at` of `map`; `None` when out of bounds
    /// or misaligned for `T`.
    pub fn mapped(map: &Arc<memmap2::Mmap>, at: usize, len: usize) -> Option<Slab<T>> {
        let end = at.checked_add(len.checked_mul(std::mem::size_of::<T>())?)?;
        let aligned = (map.as_ptr() as usize + at).is_multiple_of(std::mem::align_of::<T>());
        (end <= map.len() && aligned).then(|| Slab::Mapped {
            map: Arc::clone(map),
            at,
            len,
        })
    }

    /// The items as an owned vector (a mapped range is copied out).
    pub fn into_vec(self) -> Vec<T> {
        match self {
            Slab::Owned(v) => v,
            mapped => mapped.as_slice().to_vec(),
        }
    }

    pub fn as_slice(&self) -> &[T] {
        match self {
            Slab::Owned(v) => v,
            // SAFETY: `mapped` checked bounds and alignment; `T: Plain` is
            // valid for any bytes; derived files are only ever replaced by
            // rename, never written in place, so the bytes do not change.
            Slab::Mapped { map, at, len } => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(*at) as *const T, *len)
            },
        }
    }
}

impl<T: Plain + PartialEq> PartialEq for Slab<T> {
    fn eq(&self, o: &Self) -> bool {
        self.as_slice() == o.as_slice()
    }
}

impl<T: Plain> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Slab::Owned(_) => "owned",
            Slab::Mapped { .. } => "mapped",
        };
        write!(f, "Slab({kind}, {} items)", self.as_slice().len())
    }
}
