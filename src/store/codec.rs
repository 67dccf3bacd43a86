//! Little-endian encoding helpers for the binary derived files (HNSW graph,
//! BM25 index): writers append to a `Vec<u8>`, and a bounds-checked reader
//! returns `None` instead of panicking on a short or damaged file.

pub fn put_u32(b: &mut Vec<u8>, x: u32) {
    b.extend_from_slice(&x.to_le_bytes());
}

pub fn put_u32s(b: &mut Vec<u8>, xs: &[u32]) {
    b.reserve(xs.len() * 4);
    for x in xs {
        b.extend_from_slice(&x.to_le_bytes());
    }
}

/// Length-prefixed (u32) bytes.
pub fn put_bytes(b: &mut Vec<u8>, s: &[u8]) {
    put_u32(b, s.len() as u32);
    b.extend_from_slice(s);
}

/// Appends the CRC32 of everything in `b` so far.
pub fn seal(b: &mut Vec<u8>) {
    let crc = crc32fast::hash(b);
    put_u32(b, crc);
}

/// The body of a sealed buffer when its CRC32 trailer matches.
pub fn unseal(b: &[u8]) -> Option<&[u8]> {
    let split = b.len().checked_sub(4)?;
    let (body, tail) = b.split_at(split);
    (crc32fast::hash(body) == u32::from_le_bytes(tail.try_into().ok()?)).then_some(body)
}

/// Bounds-checked little-endian reader: every method returns None past the end.
pub struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, at: 0 }
    }

    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.at
    }

    /// True when every byte was read.
    pub fn done(&self) -> bool {
        self.at == self.b.len()
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// Length-prefixed bytes, as `put_bytes` wrote them.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// `n` items of `size` bytes each, decoded by `f`.
    pub fn array<T>(&mut self, n: usize, size: usize, f: impl Fn(&[u8]) -> T) -> Option<Vec<T>> {
        Some(
            self.take(n.checked_mul(size)?)?
                .chunks_exact(size)
                .map(f)
                .collect(),
        )
    }

    pub fn u32s(&mut self, n: usize) -> Option<Vec<u32>> {
        self.array(n, 4, |c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
    }
}

/// The first `n` bytes of the file at `path` (fewer if it is shorter): for
/// reading a derived file's header without reading or checking the rest.
pub fn head(path: &std::path::Path, n: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut b = Vec::with_capacity(n);
    std::fs::File::open(path)
        .ok()?
        .take(n as u64)
        .read_to_end(&mut b)
        .ok()?;
    Some(b)
}
