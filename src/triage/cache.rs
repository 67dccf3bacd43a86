//! Vectors of incoming papers `match` has embedded, kept beside the library
//! (`derived/match-vectors.bin`) but apart from its vector log: a paper that
//! is only looked at must not grow the library's own cache, yet the same
//! arXiv day matched again (a window of the last N days overlaps yesterday's)
//! should not be embedded again. A cache in the derived sense: checksummed,
//! bounded to the most recent [`MAX_CACHED`] vectors, ignored when damaged,
//! for another model or another dimension.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::store::VecKey;
use crate::store::codec::{Reader, put_bytes, put_u32, seal, unseal};
use crate::store::manifest::write_atomic;

const MAGIC: &[u8; 8] = b"PMMATCH\0";
const VERSION: u32 = 1;
pub const CACHE_FILE: &str = "match-vectors.bin";
/// Vectors kept (about 1.5 KB each at 384-d: 30 MB): a month of a busy
/// arXiv category mix.
pub const MAX_CACHED: usize = 20_000;

/// Incoming-paper vectors by content key, in insertion order (oldest first).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VectorCache {
    model: String,
    dim: usize,
    order: Vec<VecKey>,
    vectors: HashMap<VecKey, Vec<f32>>,
}

impl VectorCache {
    pub fn new(model: &str, dim: usize) -> VectorCache {
        VectorCache {
            model: model.to_string(),
            dim,
            ..Default::default()
        }
    }

    /// The cache at `path` for `model`/`dim`, or an empty one when it is
    /// missing, damaged or for another model.
    pub fn load(path: &Path, model: &str, dim: usize) -> VectorCache {
        Self::read(path, model, dim).unwrap_or_else(|| Self::new(model, dim))
    }

    fn read(path: &Path, model: &str, dim: usize) -> Option<VectorCache> {
        let b = std::fs::read(path).ok()?;
        let body = unseal(&b)?;
        let mut r = Reader::new(body);
        if r.take(8)? != MAGIC || r.u32()? != VERSION || r.bytes()? != model.as_bytes() {
            return None;
        }
        if r.u32()? as usize != dim {
            return None;
        }
        let n = r.u64()? as usize;
        let mut c = Self::new(model, dim);
        for _ in 0..n {
            let key: VecKey = r.take(16)?.try_into().ok()?;
            let v = r.array(dim, 4, |x| f32::from_le_bytes(x.try_into().expect("4")))?;
            c.insert(key, v);
        }
        r.done().then_some(c)
    }

    pub fn get(&self, key: &VecKey) -> Option<&[f32]> {
        self.vectors.get(key).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    pub fn insert(&mut self, key: VecKey, v: Vec<f32>) {
        if v.len() != self.dim {
            return;
        }
        if self.vectors.insert(key, v).is_none() {
            self.order.push(key);
        }
    }

    /// Writes the newest [`MAX_CACHED`] vectors atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let keep = &self.order[self.order.len().saturating_sub(MAX_CACHED)..];
        let mut b = Vec::with_capacity(64 + keep.len() * (16 + 4 * self.dim));
        b.extend_from_slice(MAGIC);
        put_u32(&mut b, VERSION);
        put_bytes(&mut b, self.model.as_bytes());
        put_u32(&mut b, self.dim as u32);
        b.extend_from_slice(&(keep.len() as u64).to_le_bytes());
        for k in keep {
            b.extend_from_slice(k);
            for x in &self.vectors[k] {
                b.extend_from_slice(&x.to_le_bytes());
            }
        }
        seal(&mut b);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        write_atomic(path, &b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage_or_another_model() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(CACHE_FILE);
        let mut c = VectorCache::new("m", 3);
        c.insert([1; 16], vec![1.0, 0.0, 0.0]);
        c.insert([2; 16], vec![0.0, 1.0, 0.0]);
        c.insert([3; 16], vec![0.0, 1.0]); // wrong dimension: ignored
        c.save(&p).unwrap();
        let back = VectorCache::load(&p, "m", 3);
        assert_eq!(back, c);
        assert_eq!(back.len(), 2);
        assert!(VectorCache::load(&p, "other", 3).is_empty());
        assert!(VectorCache::load(&p, "m", 4).is_empty());
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(VectorCache::load(&p, "m", 3).is_empty());
    }
}
