//! Nearest-neighbour search over the library's vectors, behind one type.
//!
//! - Exact: a flat, row-major, L2-normalised f32 matrix in paper order and a
//!   SIMD dot product (AVX2+FMA when the CPU has it). Exact is exact, and
//!   for a one-shot command it is faster than loading a graph up to a few
//!   hundred thousand papers.
//! - HNSW (`hnsw_rs`, `DistDot` with `simdeez_f`, M 16, ef_construction 200,
//!   max_layer 16), used above `hnsw_threshold` papers. It is a derived
//!   file: dumped under `derived/hnsw/` with a stamp of the library state it
//!   was built from, and rebuilt when stale or damaged. `hnsw_rs` stays
//!   inside this module.

mod hnsw;

use std::path::Path;

use crate::error::{Error, Result};
use crate::store::{Library, vec_key};
pub use hnsw::{HnswIndex, HnswParams};

/// Vectors of every paper, in library order.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    /// Gathers each paper's cached vector. Every paper must be embedded.
    pub fn from_library(lib: &Library) -> Result<Matrix> {
        let model = lib.manifest().model.as_ref().ok_or_else(|| {
            Error::Empty("the library has no vectors yet; run `papermap add` first".into())
        })?;
        let dim = model.dim;
        let mut data = Vec::with_capacity(lib.len() * dim);
        let mut missing = 0;
        for p in lib.papers() {
            match lib.vector(&vec_key(&model.id, &p.embed_text())) {
                Some(v) => data.extend_from_slice(v),
                None => {
                    missing += 1;
                    data.extend(std::iter::repeat_n(0.0, dim));
                }
            }
        }
        if missing > 0 {
            return Err(Error::Empty(format!(
                "{missing} paper(s) have no vector yet; run `papermap embed` (or `papermap add`) to finish embedding"
            )));
        }
        Ok(Matrix { dim, data })
    }

    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// One search result: a row (paper index) and its cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub row: usize,
    pub score: f32,
}

/// Dot product, with AVX2+FMA when available.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were checked just above.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_portable(a, b)
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut i = 0;
    let mut s0 = _mm256_setzero_ps();
    let mut s1 = _mm256_setzero_ps();
    // SAFETY: every load reads 8 floats at i < n - 7 (or n - 15) of slices of length >= n.
    unsafe {
        while i + 16 <= n {
            s0 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
                s0,
            );
            s1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(i + 8)),
                _mm256_loadu_ps(b.as_ptr().add(i + 8)),
                s1,
            );
            i += 16;
        }
        while i + 8 <= n {
            s0 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
                s0,
            );
            i += 8;
        }
        let s = _mm256_add_ps(s0, s1);
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), s);
        let mut total: f32 = lanes.iter().sum();
        while i < n {
            total += a[i] * b[i];
            i += 1;
        }
        total
    }
}

/// Exact top-k by dot product over rows that `keep` accepts.
pub fn exact_search(m: &Matrix, q: &[f32], k: usize, keep: &dyn Fn(usize) -> bool) -> Vec<Hit> {
    let mut hits: Vec<Hit> = (0..m.rows())
        .filter(|&r| keep(r))
        .map(|r| Hit {
            row: r,
            score: dot(m.row(r), q),
        })
        .collect();
    top_k(&mut hits, k);
    hits
}

/// Keeps the best `k` hits, sorted best first (ties broken by row for
/// reproducible output).
pub fn top_k(hits: &mut Vec<Hit>, k: usize) {
    let cmp = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row));
    if hits.len() > k && k > 0 {
        hits.select_nth_unstable_by(k - 1, cmp);
        hits.truncate(k);
    }
    hits.sort_by(cmp);
}

/// Search options.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Libraries with at least this many papers use HNSW. Default 200,000:
    /// below that, exact search plus no index load is faster per command.
    pub hnsw_threshold: usize,
    pub hnsw: HnswParams,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            hnsw_threshold: 200_000,
            hnsw: HnswParams::default(),
        }
    }
}

/// Dense search over a library: exact or HNSW by size.
pub struct Searcher {
    pub matrix: Matrix,
    hnsw: Option<HnswIndex>,
}

impl Searcher {
    /// Uses (loading, or building and saving, as needed) the HNSW index when
    /// the library is large enough; exact search otherwise.
    pub fn open(lib: &Library, opts: &SearchOptions) -> Result<Searcher> {
        let matrix = Matrix::from_library(lib)?;
        let hnsw = if matrix.rows() >= opts.hnsw_threshold.max(1) {
            Some(ensure_hnsw(lib, &matrix, &opts.hnsw)?)
        } else {
            None
        };
        Ok(Searcher { matrix, hnsw })
    }

    pub fn engine(&self) -> &'static str {
        if self.hnsw.is_some() { "hnsw" } else { "exact" }
    }

    /// Top-k rows for `q` among rows `keep` accepts. HNSW results are taken
    /// with head-room for filtered rows; a very selective filter falls back
    /// to exact search over the allowed rows (hnsw_rs filters are slow).
    pub fn search(&self, q: &[f32], k: usize, keep: &dyn Fn(usize) -> bool) -> Vec<Hit> {
        if let Some(h) = &self.hnsw {
            let want = k + 16;
            let mut hits: Vec<Hit> = h
                .search(q, want)
                .into_iter()
                .filter(|x| keep(x.row))
                .collect();
            if hits.len() >= k {
                top_k(&mut hits, k);
                return hits;
            }
        }
        exact_search(&self.matrix, q, k, keep)
    }
}

/// Loads the persisted HNSW index if it matches the library, else builds and
/// saves it.
pub fn ensure_hnsw(lib: &Library, m: &Matrix, params: &HnswParams) -> Result<HnswIndex> {
    let dir = lib.derived_dir().join("hnsw");
    let fp = lib.fingerprint();
    if let Some(h) = HnswIndex::load(&dir, &fp, params)? {
        return Ok(h);
    }
    let h = HnswIndex::build(m, params);
    h.save(&dir, &fp)?;
    Ok(h)
}

/// True when `dir` holds an index stamped with `fingerprint`.
pub fn hnsw_is_current(dir: &Path, fingerprint: &str) -> bool {
    hnsw::stamp_matches(dir, fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_dot_matches_portable() {
        let a: Vec<f32> = (0..389).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..389).map(|i| (i as f32 * 0.11).cos()).collect();
        assert!((dot(&a, &b) - dot_portable(&a, &b)).abs() < 1e-3);
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn exact_search_ranks_and_filters() {
        let m = Matrix {
            dim: 2,
            data: vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8],
        };
        let hits = exact_search(&m, &[1.0, 0.0], 2, &|_| true);
        assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), vec![0, 2]);
        let hits = exact_search(&m, &[1.0, 0.0], 2, &|r| r != 0);
        assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), vec![2, 1]);
    }
}
