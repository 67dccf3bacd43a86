//! The HNSW side of the index (hnsw_rs), with the traps we measured handled
//! here: `max_layer` is always 16 (other values break dumps), `DistDot`
//! comes from the `simdeez_f` build (plain `DistDot` panics on self-dot > 1),
//! files are checked against a stamp before hnsw_rs sees them (some of its
//! reload errors call `process::exit`), and the reloaded graph's borrow of
//! its loader is resolved by keeping the loader alive for the process.

use std::fs;
use std::path::Path;

use hnsw_rs::hnswio::{HnswIo, ReloadOptions};
use hnsw_rs::prelude::{AnnT, DistDot, Hnsw};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Hit, Matrix};
use crate::error::{Error, IoContext, Result};
use crate::store::manifest::{read_checked_json, write_checked_json};

const BASENAME: &str = "papers";
const STAMP: &str = "stamp.json";

/// HNSW parameters. Defaults: M 16, ef_construction 200, ef_search 64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

/// What the dump was built from, and checksums of its files.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Stamp {
    fingerprint: String,
    m: usize,
    ef_construction: usize,
    basename: String,
    files: Vec<(String, u64, String)>,
}

pub struct HnswIndex {
    hnsw: Hnsw<'static, f32, DistDot>,
    ef_search: usize,
}

impl HnswIndex {
    pub fn build(m: &Matrix, params: &HnswParams) -> HnswIndex {
        let n = m.rows();
        let hnsw = Hnsw::<f32, DistDot>::new(
            params.m.min(256),
            n.max(1),
            16,
            params.ef_construction,
            DistDot {},
        );
        let rows: Vec<(&[f32], usize)> = (0..n).map(|i| (m.row(i), i)).collect();
        hnsw.parallel_insert_slice(&rows);
        let mut hnsw = hnsw;
        hnsw.set_searching_mode(true);
        HnswIndex {
            hnsw,
            ef_search: params.ef_search,
        }
    }

    pub fn search(&self, q: &[f32], k: usize) -> Vec<Hit> {
        self.hnsw
            .search(q, k, self.ef_search.max(k))
            .into_iter()
            .map(|n| Hit {
                row: n.d_id,
                score: 1.0 - n.distance,
            })
            .collect()
    }

    /// Dumps into `dir` (replacing an older dump), then writes the stamp last.
    pub fn save(&self, dir: &Path, fingerprint: &str) -> Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir).at(dir)?;
        }
        fs::create_dir_all(dir).at(dir)?;
        let base = self
            .hnsw
            .file_dump(dir, BASENAME)
            .map_err(|e| Error::io(dir, std::io::Error::other(e.to_string())))?;
        let mut files = Vec::new();
        for ext in ["hnsw.graph", "hnsw.data"] {
            let p = dir.join(format!("{base}.{ext}"));
            let bytes = fs::read(&p).at(&p)?;
            files.push((
                format!("{base}.{ext}"),
                bytes.len() as u64,
                super::super::embed::assets::hex(&Sha256::digest(&bytes)),
            ));
        }
        let stamp = Stamp {
            fingerprint: fingerprint.to_string(),
            m: self.hnsw.get_max_nb_connection() as usize,
            ef_construction: self.hnsw.get_ef_construction(),
            basename: base,
            files,
        };
        write_checked_json(&dir.join(STAMP), &stamp)
    }

    /// Loads a dump that matches `fingerprint` and `params`; `None` when
    /// there is none, it is stale, or any file fails its checksum.
    pub fn load(dir: &Path, fingerprint: &str, params: &HnswParams) -> Result<Option<HnswIndex>> {
        let Some(stamp) = read_stamp(dir) else {
            return Ok(None);
        };
        if stamp.fingerprint != fingerprint
            || stamp.m != params.m
            || stamp.ef_construction != params.ef_construction
        {
            return Ok(None);
        }
        for (name, len, sha) in &stamp.files {
            let p = dir.join(name);
            match fs::read(&p) {
                Ok(b)
                    if b.len() as u64 == *len
                        && &super::super::embed::assets::hex(&Sha256::digest(&b)) == sha => {}
                _ => return Ok(None),
            }
        }
        // hnsw_rs ties the graph's lifetime to its loader (upstream issue 19);
        // the loader is small and an index is loaded once per process.
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, &stamp.basename)));
        io.set_options(ReloadOptions::default().set_mmap(true));
        match io.load_hnsw::<f32, DistDot>() {
            Ok(mut hnsw) => {
                hnsw.set_searching_mode(true);
                Ok(Some(HnswIndex {
                    hnsw,
                    ef_search: params.ef_search,
                }))
            }
            Err(_) => Ok(None),
        }
    }
}

fn read_stamp(dir: &Path) -> Option<Stamp> {
    read_checked_json(&dir.join(STAMP))
}

pub fn stamp_matches(dir: &Path, fingerprint: &str) -> bool {
    read_stamp(dir).is_some_and(|s| s.fingerprint == fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_matrix(n: usize, dim: usize, seed: u64) -> Matrix {
        let mut s = seed;
        let mut data = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let mut row: Vec<f32> = (0..dim)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % 2000) as f32 / 1000.0 - 1.0
                })
                .collect();
            crate::embed::normalize(&mut row);
            data.extend(row);
        }
        Matrix { dim, data }
    }

    #[test]
    fn hnsw_finds_the_query_itself_and_survives_reload() {
        let m = random_matrix(500, 32, 7);
        let params = HnswParams::default();
        let h = HnswIndex::build(&m, &params);
        for r in [0, 123, 499] {
            assert_eq!(h.search(m.row(r), 1)[0].row, r);
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("hnsw");
        h.save(&d, "fp1").unwrap();
        assert!(HnswIndex::load(&d, "other", &params).unwrap().is_none());
        let back = HnswIndex::load(&d, "fp1", &params).unwrap().unwrap();
        assert_eq!(back.search(m.row(42), 1)[0].row, 42);

        // A damaged dump is rebuilt, never handed to hnsw_rs.
        let stamp = read_stamp(&d).unwrap();
        let graph = d.join(&stamp.files[0].0);
        let mut bytes = fs::read(&graph).unwrap();
        bytes[100] ^= 0xff;
        fs::write(&graph, bytes).unwrap();
        assert!(HnswIndex::load(&d, "fp1", &params).unwrap().is_none());
    }
}
