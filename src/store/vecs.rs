//! The vector cache as an open library holds it: the committed range of the
//! vector log mapped read-only, an index from content key to where the
//! vector sits in it, and the vectors this process added since.
//!
//! Nothing is copied at open: a 1M-paper cache is 1.5 GB, and copying it
//! into fresh memory cost an `add` at 1M more than its own work (the kernel
//! zeroing the pages alone took 12 s of a 40 s open). The mapped bytes are
//! the committed part of an append-only log, which no writer rewrites or
//! cuts (they append past it and cut only what no manifest counts), so
//! they never change under a reader. A vector whose floats do not sit at a
//! 4-byte boundary (a frame a damaged stretch shifted), or any vector on a
//! big-endian machine, is copied instead.

use std::collections::HashMap;
use std::path::Path;

use super::VecKey;
use crate::error::{IoContext, Result};

/// Where a vector is: a byte offset into the map, or (top bit set) a row of
/// `added`.
type Slot = u64;
const ADDED: Slot = 1 << 63;

impl std::fmt::Debug for VecCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VecCache")
            .field("dim", &self.dim)
            .field("vectors", &self.at.len())
            .field("mapped_bytes", &self.map.as_ref().map_or(0, |m| m.len()))
            .finish()
    }
}

pub(crate) struct VecCache {
    dim: usize,
    map: Option<memmap2::Mmap>,
    at: HashMap<VecKey, Slot, foldhash::fast::RandomState>,
    added: Vec<f32>,
}

impl VecCache {
    pub(crate) fn new(dim: usize) -> Self {
        VecCache {
            dim,
            map: None,
            at: HashMap::default(),
            added: Vec::new(),
        }
    }

    /// The library was bound to a model of `dim` (vectors of another size
    /// were never read into the cache, so it holds none of another size).
    pub(crate) fn set_dim(&mut self, dim: usize) {
        if self.dim != dim {
            debug_assert!(self.at.is_empty());
            *self = VecCache::new(dim);
        }
    }

    /// Maps the first `committed` bytes of the log at `path`; `reserve`
    /// keys are expected.
    pub(crate) fn map(&mut self, path: &Path, committed: u64, reserve: usize) -> Result<()> {
        self.at.reserve(reserve);
        if committed == 0 || self.dim == 0 {
            return Ok(());
        }
        // A log that cannot be opened is left to the scan, whose error
        // says so (and tells a log a writer just replaced from damage).
        let Ok(file) = std::fs::File::open(path) else {
            return Ok(());
        };
        let len = committed.min(file.metadata().at(path)?.len()) as usize;
        // SAFETY: see the module header: the committed range of a log never
        // changes while it is mapped.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&file) }.at(path)?;
        self.map = Some(map);
        Ok(())
    }

    /// Records the vector whose payload (key, then floats) starts at byte
    /// `payload_at` of the mapped log; `floats` are its bytes, as read.
    pub(crate) fn insert_mapped(&mut self, key: VecKey, payload_at: u64, floats: &[u8]) {
        let at = payload_at + 16;
        let in_map = self
            .map
            .as_ref()
            .and_then(|m| m.get(at as usize..(at as usize).checked_add(floats.len())?));
        debug_assert!(in_map.is_none_or(|b| b == floats));
        let mapped = cfg!(target_endian = "little")
            && at.is_multiple_of(4)
            && floats.len() == 4 * self.dim
            && in_map.is_some();
        if mapped {
            self.at.insert(key, at);
        } else {
            let v: Vec<f32> = floats
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect();
            self.insert(key, &v);
        }
    }

    /// Adds a vector held in memory (a new one, or one that cannot be mapped).
    pub(crate) fn insert(&mut self, key: VecKey, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        let row = (self.added.len() / self.dim.max(1)) as u64;
        self.added.extend_from_slice(v);
        self.at.insert(key, ADDED | row);
    }

    pub(crate) fn contains(&self, key: &VecKey) -> bool {
        self.at.contains_key(key)
    }

    pub(crate) fn get(&self, key: &VecKey) -> Option<&[f32]> {
        let slot = *self.at.get(key)?;
        Some(self.slot(slot))
    }

    fn slot(&self, slot: Slot) -> &[f32] {
        let d = self.dim;
        if slot & ADDED != 0 {
            let r = (slot & !ADDED) as usize;
            return &self.added[r * d..(r + 1) * d];
        }
        let map = self.map.as_ref().expect("a mapped slot has a map");
        let bytes = &map[slot as usize..slot as usize + 4 * d];
        assert!(bytes.as_ptr().cast::<f32>().is_aligned());
        // SAFETY: the bytes are in the map (sliced above), aligned for f32
        // (checked above), little-endian (`insert_mapped`), and any bit
        // pattern is an f32; the map lives as long as `self`.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), d) }
    }

    pub(crate) fn len(&self) -> usize {
        self.at.len()
    }

    /// Every (key, vector): the mapped ones in log order, then the ones held
    /// in memory in the order they came (how a rewrite of the log keeps
    /// them).
    pub(crate) fn in_log_order(&self) -> Vec<(VecKey, &[f32])> {
        let mut slots: Vec<(Slot, VecKey)> = self.at.iter().map(|(k, s)| (*s, *k)).collect();
        slots.sort_unstable_by_key(|(s, _)| (*s & ADDED != 0, *s & !ADDED));
        slots.into_iter().map(|(s, k)| (k, self.slot(s))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_added_vectors_read_back_and_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        // A header of 8 bytes, then a payload at 8 (aligned floats at 24)
        // and one at 27 (floats at 43: not aligned, copied).
        let mut bytes = vec![0u8; 8];
        let a = [1.0f32, -2.0];
        let b = [0.5f32, 3.25];
        let push = |bytes: &mut Vec<u8>, key: u8, v: &[f32]| -> (u64, Vec<u8>) {
            let at = bytes.len() as u64;
            bytes.extend_from_slice(&[key; 16]);
            let f: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            bytes.extend_from_slice(&f);
            (at, f)
        };
        let (at_a, fa) = push(&mut bytes, 1, &a);
        bytes.extend_from_slice(&[9, 9, 9]);
        let (at_b, fb) = push(&mut bytes, 2, &b);
        std::fs::write(&path, &bytes).unwrap();
        let mut c = VecCache::new(2);
        c.map(&path, bytes.len() as u64, 2).unwrap();
        c.insert_mapped([1; 16], at_a, &fa);
        c.insert_mapped([2; 16], at_b, &fb);
        c.insert([3; 16], &[7.0, 8.0]);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&[1; 16]), Some(&a[..]));
        assert_eq!(c.get(&[2; 16]), Some(&b[..]));
        assert_eq!(c.get(&[3; 16]), Some(&[7.0f32, 8.0][..]));
        assert_eq!(c.get(&[4; 16]), None);
        assert!(c.contains(&[2; 16]));
        // Mapped first (by offset), then the ones held in memory, by row:
        // b was copied (unaligned) before the new one was added.
        let order: Vec<u8> = c.in_log_order().iter().map(|(k, _)| k[0]).collect();
        assert_eq!(order, vec![1, 2, 3]);
    }
}
