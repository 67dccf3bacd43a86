//! Nearest-neighbour search over the library's vectors, behind one type.
//!
//! - The matrix: every paper's L2-normalised f32 vector in paper order,
//!   persisted as the derived file `derived/vectors.f32` (header with the
//!   library fingerprint and a CRC32 of the data) and memory-mapped on
//!   open, so a query command does not gather vectors from the log.
//! - Exact search: a SIMD dot product (AVX2+FMA when the CPU has it) over
//!   the matrix. Exact is exact, and fast enough below `hnsw_threshold`.
//! - HNSW above the threshold: built by `hnsw_rs` (`DistDot` with
//!   `simdeez_f`, M 16, ef_construction 200, max_layer 16), flattened and
//!   searched by `graph.rs` over the same matrix, persisted as
//!   `derived/hnsw.graph` and rebuilt only when stale or damaged.
//!   `hnsw_rs` stays inside `graph.rs`.

mod graph;
mod quant;
mod refine;
mod slab;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::store::manifest::sync_dir;
use crate::store::{Library, vec_key};
pub use graph::Graph;

const MATRIX_MAGIC: &[u8; 8] = b"PMMATRX\0";
const MATRIX_VERSION: u32 = 1;
const MATRIX_HEADER: usize = 64;
pub const MATRIX_FILE: &str = "vectors.f32";
pub const GRAPH_FILE: &str = "hnsw.graph";

/// HNSW parameters. Defaults: M 16, ef_construction 200, ef_search 96
/// (recall@10 >= 0.98 in `scripts/bench-search`).
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
            ef_search: 96,
        }
    }
}

enum Store {
    Owned(Vec<f32>),
    #[cfg(target_endian = "little")]
    Mapped(memmap2::Mmap),
}

/// Vectors of every paper, in library order, owned or memory-mapped.
pub struct Matrix {
    pub dim: usize,
    rows: usize,
    store: Store,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Matrix({} x {})", self.rows, self.dim)
    }
}

impl Matrix {
    pub fn owned(dim: usize, data: Vec<f32>) -> Matrix {
        Matrix {
            dim,
            rows: data.len().checked_div(dim).unwrap_or(0),
            store: Store::Owned(data),
        }
    }

    /// Gathers each paper's cached vector. Every paper must be embedded.
    pub fn from_library(lib: &Library) -> Result<Matrix> {
        let (m, missing) = Matrix::gather(lib, lib.dim());
        if lib.manifest().model.is_none() {
            return Err(Error::Empty(
                "the library has no vectors yet; run `papermap add` first".into(),
            ));
        }
        if !missing.is_empty() {
            return Err(Error::Empty(format!(
                "{} paper(s) have no vector yet; run `papermap embed` (or `papermap add`) to finish embedding",
                missing.len()
            )));
        }
        Ok(m)
    }

    /// Each paper's cached vector, a zero row for a paper not embedded yet
    /// (a writer is still embedding, or `add --no-embed`), and the rows of
    /// those papers. `dim` is used when the library has no model yet.
    pub fn gather(lib: &Library, dim: usize) -> (Matrix, Vec<usize>) {
        let Some(model) = lib.manifest().model.as_ref() else {
            return (
                Matrix::owned(dim, vec![0.0; lib.len() * dim]),
                (0..lib.len()).collect(),
            );
        };
        let dim = model.dim;
        let mut data = Vec::with_capacity(lib.len() * dim);
        let mut missing = Vec::new();
        for (row, p) in lib.papers().iter().enumerate() {
            match lib.vector(&vec_key(&model.id, &p.embed_text())) {
                Some(v) => data.extend_from_slice(v),
                None => {
                    missing.push(row);
                    data.extend(std::iter::repeat_n(0.0, dim));
                }
            }
        }
        (Matrix::owned(dim, data), missing)
    }

    /// The persisted matrix when it matches `fingerprint` and the library's
    /// size, else gathered from the library and saved (best effort: a
    /// read-only library is still searchable).
    pub fn load_or_build(lib: &Library, fingerprint: &str) -> Result<Matrix> {
        let path = lib.derived_dir().join(MATRIX_FILE);
        if let Some(m) = Matrix::load(&path, fingerprint, lib.len(), lib.dim()) {
            return Ok(m);
        }
        let m = Matrix::from_library(lib)?;
        let _ = m.save(&path, fingerprint);
        Ok(m)
    }

    /// The persisted matrix when it is current for the library (it then
    /// holds every paper's vector, so the vectors log need not be read).
    pub fn load_current(lib: &Library) -> Option<Matrix> {
        let path = lib.derived_dir().join(MATRIX_FILE);
        Matrix::load(&path, &lib.fingerprint(), lib.len(), lib.dim())
    }

    /// Writes the matrix atomically (streamed: a million rows never exist twice in memory).
    pub fn save(&self, path: &Path, fingerprint: &str) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).at(dir)?;
        let data = self.as_slice();
        let mut crc = crc32fast::Hasher::new();
        for x in data {
            crc.update(&x.to_le_bytes());
        }
        let mut head = Vec::with_capacity(MATRIX_HEADER);
        head.extend_from_slice(MATRIX_MAGIC);
        head.extend_from_slice(&MATRIX_VERSION.to_le_bytes());
        head.extend_from_slice(&(self.dim as u32).to_le_bytes());
        head.extend_from_slice(&(self.rows as u64).to_le_bytes());
        head.extend_from_slice(&crc.finalize().to_le_bytes());
        let fp = fingerprint.as_bytes();
        if fp.len() > MATRIX_HEADER - head.len() - 1 {
            return Err(Error::Invalid(format!(
                "fingerprint too long: {fingerprint}"
            )));
        }
        head.push(fp.len() as u8);
        head.extend_from_slice(fp);
        head.resize(MATRIX_HEADER, 0);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("matrix");
        let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
        {
            let f = File::create(&tmp).at(&tmp)?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            w.write_all(&head).at(&tmp)?;
            for x in data {
                w.write_all(&x.to_le_bytes()).at(&tmp)?;
            }
            let f = w
                .into_inner()
                .map_err(|e| Error::io(&tmp, e.into_error()))?;
            f.sync_all().at(&tmp)?;
        }
        fs::rename(&tmp, path).at(path)?;
        sync_dir(dir)
    }

    /// Maps a saved matrix; `None` when missing, stale, of another shape or
    /// failing its CRC.
    pub fn load(path: &Path, fingerprint: &str, rows: usize, dim: usize) -> Option<Matrix> {
        let f = File::open(path).ok()?;
        let len = f.metadata().ok()?.len() as usize;
        if len != MATRIX_HEADER + rows.checked_mul(dim)?.checked_mul(4)? {
            return None;
        }
        #[cfg(target_endian = "little")]
        {
            // SAFETY: derived files are only ever replaced by rename, never
            // written in place, so the mapped bytes do not change under us.
            let map = unsafe { memmap2::Mmap::map(&f) }.ok()?;
            let h = &map[..MATRIX_HEADER];
            let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4"));
            let fp_len = h[28] as usize;
            if &h[..8] != MATRIX_MAGIC
                || u32_at(8) != MATRIX_VERSION
                || u32_at(12) as usize != dim
                || u64::from_le_bytes(h[16..24].try_into().expect("8")) as usize != rows
                || 29 + fp_len > MATRIX_HEADER
                || &h[29..29 + fp_len] != fingerprint.as_bytes()
                || crc32fast::hash(&map[MATRIX_HEADER..]) != u32_at(24)
            {
                return None;
            }
            if !(map.as_ptr() as usize + MATRIX_HEADER).is_multiple_of(std::mem::align_of::<f32>())
            {
                return None;
            }
            Some(Matrix {
                dim,
                rows,
                store: Store::Mapped(map),
            })
        }
        #[cfg(not(target_endian = "little"))]
        {
            let _ = (f, fingerprint);
            None
        }
    }

    /// All rows, row-major.
    pub fn as_slice(&self) -> &[f32] {
        match &self.store {
            Store::Owned(v) => v,
            #[cfg(target_endian = "little")]
            Store::Mapped(map) => {
                let bytes = &map[MATRIX_HEADER..];
                // SAFETY: `load` checked the length (rows * dim * 4 bytes) and
                // the 4-byte alignment; f32 has no invalid bit patterns and the
                // file is little-endian like the target.
                unsafe {
                    std::slice::from_raw_parts(bytes.as_ptr() as *const f32, self.rows * self.dim)
                }
            }
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.as_slice()[i * self.dim..(i + 1) * self.dim]
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

/// The dot product to use on this CPU, chosen once (hot loops call it
/// through the pointer instead of re-checking CPU features per call).
pub(crate) fn dot_fn() -> fn(&[f32], &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return dot_avx2_checked;
        }
    }
    dot_portable
}

/// Only ever handed out by `dot_fn` after the CPU check.
#[cfg(target_arch = "x86_64")]
fn dot_avx2_checked(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: `dot_fn` returns this function only when AVX2 and FMA are present.
    unsafe { dot_avx2(a, b) }
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
    /// Libraries with at least this many papers use HNSW (see
    /// `DEFAULT_HNSW_THRESHOLD`).
    pub hnsw_threshold: usize,
    pub hnsw: HnswParams,
}

/// Exact search costs about 0.07 ms per 1,000 papers per query here (7 ms
/// at 100k, memory-bound); above 50,000 papers a batch of queries through
/// HNSW is much faster at recall >= 0.98, and loading the graph costs
/// milliseconds (`scripts/bench-search`).
pub const DEFAULT_HNSW_THRESHOLD: usize = 50_000;

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            hnsw_threshold: DEFAULT_HNSW_THRESHOLD,
            hnsw: HnswParams::default(),
        }
    }
}

/// Dense search over a library: exact or HNSW by size.
pub struct Searcher {
    pub matrix: Matrix,
    graph: Option<Graph>,
    ef_search: usize,
}

impl Searcher {
    /// Maps the persisted matrix (or builds it) and, when the library is
    /// large enough, loads (or builds and saves) the HNSW graph.
    pub fn open(lib: &Library, opts: &SearchOptions) -> Result<Searcher> {
        let matrix = Matrix::load_or_build(lib, &lib.fingerprint())?;
        Self::with_matrix(lib, matrix, opts)
    }

    /// A searcher over `matrix` (the library's current one, e.g. from
    /// `Matrix::load_current`), loading or building the graph as `open` does.
    pub fn with_matrix(lib: &Library, matrix: Matrix, opts: &SearchOptions) -> Result<Searcher> {
        let fp = lib.fingerprint();
        let graph = if matrix.rows() >= opts.hnsw_threshold.max(1) {
            Some(ensure_graph(lib, &matrix, &fp, &opts.hnsw, false)?)
        } else {
            None
        };
        Ok(Searcher {
            matrix,
            graph,
            ef_search: opts.hnsw.ef_search,
        })
    }

    /// A searcher over `matrix` that never builds a graph: the persisted one
    /// when it is current, else exact search. For long-running readers (the
    /// server), which must not spend minutes building what the writer that
    /// changed the library is about to save.
    pub fn with_matrix_no_build(lib: &Library, matrix: Matrix, opts: &SearchOptions) -> Searcher {
        let graph = if matrix.rows() >= opts.hnsw_threshold.max(1) {
            let path = lib.derived_dir().join(GRAPH_FILE);
            Graph::load(&path, &lib.fingerprint(), &opts.hnsw, matrix.rows())
        } else {
            None
        };
        Searcher {
            matrix,
            graph,
            ef_search: opts.hnsw.ef_search,
        }
    }

    /// Exact search only: for a matrix with rows not embedded yet, which
    /// must never go into a persisted graph.
    pub fn exact(matrix: Matrix) -> Searcher {
        Searcher {
            matrix,
            graph: None,
            ef_search: 0,
        }
    }

    /// A searcher over a bare matrix (benchmarks, tests).
    pub fn from_parts(matrix: Matrix, graph: Option<Graph>, ef_search: usize) -> Searcher {
        Searcher {
            matrix,
            graph,
            ef_search,
        }
    }

    pub fn engine(&self) -> &'static str {
        if self.graph.is_some() {
            "hnsw"
        } else {
            "exact"
        }
    }

    /// Top-k rows for `q` among rows `keep` accepts. HNSW results are taken
    /// with head-room for filtered rows; a selective filter falls back to
    /// exact search over the allowed rows.
    pub fn search(&self, q: &[f32], k: usize, keep: &dyn Fn(usize) -> bool) -> Vec<Hit> {
        if let Some(g) = &self.graph {
            let want = k + 16;
            let mut hits: Vec<Hit> = g
                .search(&self.matrix, q, want, self.ef_search.max(want))
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

/// Loads the persisted graph if it matches the library, else builds and
/// saves it. `writer`: the caller holds the library lock and a failed save
/// is an error; a reader's save is best effort.
pub fn ensure_graph(
    lib: &Library,
    m: &Matrix,
    fingerprint: &str,
    params: &HnswParams,
    writer: bool,
) -> Result<Graph> {
    let path = lib.derived_dir().join(GRAPH_FILE);
    if let Some(g) = Graph::load(&path, fingerprint, params, m.rows()) {
        return Ok(g);
    }
    let g = Graph::build(m, params);
    match g.save(&path, fingerprint) {
        Err(e) if writer => Err(e),
        _ => Ok(g),
    }
}

/// Brings the derived search files up to date after the library changed:
/// the matrix always, the graph when the library reaches `opts.hnsw_threshold`.
/// Returns whether anything was rebuilt.
pub fn refresh_derived(lib: &Library, opts: &SearchOptions) -> Result<bool> {
    let fp = lib.fingerprint();
    let mpath = lib.derived_dir().join(MATRIX_FILE);
    let mut rebuilt = false;
    let m = match Matrix::load(&mpath, &fp, lib.len(), lib.dim()) {
        Some(m) => m,
        None => {
            let m = Matrix::from_library(lib)?;
            m.save(&mpath, &fp)?;
            rebuilt = true;
            m
        }
    };
    if m.rows() >= opts.hnsw_threshold.max(1) {
        let gpath = lib.derived_dir().join(GRAPH_FILE);
        if Graph::load(&gpath, &fp, &opts.hnsw, m.rows()).is_none() {
            Graph::build(&m, &opts.hnsw).save(&gpath, &fp)?;
            rebuilt = true;
        }
    }
    Ok(rebuilt)
}

/// Whether the derived search files match the library: (matrix, graph).
pub fn derived_status(lib: &Library, params: &HnswParams) -> (bool, bool) {
    let fp = lib.fingerprint();
    let d = lib.derived_dir();
    (
        Matrix::load(&d.join(MATRIX_FILE), &fp, lib.len(), lib.dim()).is_some(),
        Graph::load(&d.join(GRAPH_FILE), &fp, params, lib.len()).is_some(),
    )
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
        let m = Matrix::owned(2, vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8]);
        let hits = exact_search(&m, &[1.0, 0.0], 2, &|_| true);
        assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), vec![0, 2]);
        let hits = exact_search(&m, &[1.0, 0.0], 2, &|r| r != 0);
        assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), vec![2, 1]);
    }

    #[test]
    fn matrix_file_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d").join(MATRIX_FILE);
        let m = Matrix::owned(3, (0..30).map(|i| i as f32 * 0.5).collect());
        m.save(&p, "fp").unwrap();
        let back = Matrix::load(&p, "fp", 10, 3).unwrap();
        assert_eq!(back.as_slice(), m.as_slice());
        assert_eq!(back.row(9), &[13.5, 14.0, 14.5]);
        assert!(Matrix::load(&p, "other", 10, 3).is_none());
        assert!(Matrix::load(&p, "fp", 9, 3).is_none());
        assert!(Matrix::load(&p, "fp", 10, 4).is_none());
        let bytes = fs::read(&p).unwrap();
        for at in [0, 12, 30, MATRIX_HEADER + 7, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[at] ^= 0x01;
            fs::write(&p, &b).unwrap();
            assert!(Matrix::load(&p, "fp", 10, 3).is_none(), "flip at {at}");
        }
    }
}
