//! Nearest-neighbour search over the library's vectors, behind one type.
//!
//! - The matrix: every paper's L2-normalised f32 vector in paper order,
//!   persisted as the derived file `derived/vectors.f32` (header with the
//!   library fingerprint and a CRC32 of the data) and memory-mapped on
//!   open, so a query command does not gather vectors from the log.
//! - Exact search: a SIMD dot product (AVX2+FMA when the CPU has it) over
//!   the matrix. Exact is exact, and fast enough below `hnsw_threshold`.
//! - HNSW above the threshold: built by inserting every row as hnswlib
//!   does, in parallel (`insert.rs`: M 16, ef_construction 200, at most 16
//!   layers; the same routine adds new rows to a built graph), searched by
//!   `graph.rs` over the same matrix, persisted as `derived/hnsw.graph` and
//!   rebuilt only when stale or damaged.

mod graph;
mod insert;
mod quant;
mod slab;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::store::derived::{Access, Built, DerivedFile, Refresh, refresh};
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
        Matrix::gather_rows(lib, dim, 0)
    }

    /// As [`Matrix::gather`] for the papers from row `from` on (the rows of
    /// the missing ones count from `from`).
    fn gather_rows(lib: &Library, dim: usize, from: usize) -> (Matrix, Vec<usize>) {
        let rows = lib.len().saturating_sub(from);
        let Some(model) = lib.manifest().model.as_ref() else {
            return (
                Matrix::owned(dim, vec![0.0; rows * dim]),
                (from..lib.len()).collect(),
            );
        };
        let dim = model.dim;
        let mut data = Vec::with_capacity(rows * dim);
        let mut missing = Vec::new();
        for (row, p) in lib.papers().iter().enumerate().skip(from) {
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
        if fingerprint == lib.fingerprint() {
            return Ok(refresh::<Matrix>(lib, (), Access::Reader)?.0);
        }
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

    /// The 64-byte header: magic, version, dim, rows, CRC32 of the data,
    /// the fingerprint (length byte + bytes), zero padding.
    fn header(&self, crc: u32, fingerprint: &str) -> Result<Vec<u8>> {
        Matrix::header_of(self.dim, self.rows, crc, fingerprint)
    }

    fn header_of(dim: usize, rows: usize, crc: u32, fingerprint: &str) -> Result<Vec<u8>> {
        let mut head = Vec::with_capacity(MATRIX_HEADER);
        head.extend_from_slice(MATRIX_MAGIC);
        head.extend_from_slice(&MATRIX_VERSION.to_le_bytes());
        head.extend_from_slice(&(dim as u32).to_le_bytes());
        head.extend_from_slice(&(rows as u64).to_le_bytes());
        head.extend_from_slice(&crc.to_le_bytes());
        let fp = fingerprint.as_bytes();
        if fp.len() > MATRIX_HEADER - head.len() - 1 {
            return Err(Error::Invalid(format!(
                "fingerprint too long: {fingerprint}"
            )));
        }
        head.push(fp.len() as u8);
        head.extend_from_slice(fp);
        head.resize(MATRIX_HEADER, 0);
        Ok(head)
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
        let head = self.header(crc.finalize(), fingerprint)?;
        let tmp = temp_beside(path);
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

    /// Writes the matrix after `from` of its rows were already saved at
    /// `path` (checked by `load`): the file is copied (by the kernel, not
    /// through memory), the new rows appended, the header rewritten with
    /// the CRC continued from the old one, then renamed over the old file.
    /// Readers that mapped the old file keep it; nothing is written in place.
    fn save_appended(&self, path: &Path, fingerprint: &str, from: usize) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = temp_beside(path);
        let old_len = (MATRIX_HEADER + from * self.dim * 4) as u64;
        let result = (|| {
            // Shorter than its rows: not the file that was loaded.
            if fs::metadata(path).at(path)?.len() < old_len {
                return Err(Error::Invalid(format!(
                    "{}: changed while it was extended",
                    path.display()
                )));
            }
            fs::copy(path, &tmp).at(&tmp)?;
            let mut f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&tmp)
                .at(&tmp)?;
            let mut head = [0u8; MATRIX_HEADER];
            f.read_exact(&mut head).at(&tmp)?;
            if u64::from_le_bytes(head[16..24].try_into().expect("8")) != from as u64 {
                return Err(Error::Invalid(format!(
                    "{}: changed while it was extended",
                    path.display()
                )));
            }
            // Bytes past the rows (an in-place append killed before its
            // header, or one under way) are not copied on.
            f.set_len(old_len).at(&tmp)?;
            let old_crc = u32::from_le_bytes(head[24..28].try_into().expect("4"));
            let mut crc = crc32fast::Hasher::new_with_initial_len(old_crc, old_len - 64);
            f.seek(SeekFrom::End(0)).at(&tmp)?;
            {
                let mut w = BufWriter::with_capacity(1 << 20, &mut f);
                for x in &self.as_slice()[from * self.dim..] {
                    let b = x.to_le_bytes();
                    crc.update(&b);
                    w.write_all(&b).at(&tmp)?;
                }
                w.flush().at(&tmp)?;
            }
            f.seek(SeekFrom::Start(0)).at(&tmp)?;
            f.write_all(&self.header(crc.finalize(), fingerprint)?)
                .at(&tmp)?;
            f.sync_all().at(&tmp)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, path).at(path)?;
        sync_dir(dir)
    }

    /// Appends `tail`'s rows in place to the matrix saved at `path` for
    /// `built` (the writer only, under the library lock): the rows go
    /// after the old ones (over any bytes a killed append left there) and
    /// are synced, then the header is rewritten with the new rows,
    /// fingerprint and the CRC continued from the old one, and synced.
    /// Killed before the header, the file is still the old matrix (`load`
    /// ignores bytes past its rows); readers that mapped it read only the
    /// rows their header named, which do not change. `Ok(false)` when the
    /// header is not `built`'s or the file is shorter than its rows.
    fn append_rows(path: &Path, built: &Built, tail: &Matrix, fingerprint: &str) -> Result<bool> {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = fs::OpenOptions::new().read(true).write(true).open(path) else {
            return Ok(false);
        };
        let mut head = [0u8; MATRIX_HEADER];
        if f.read_exact(&mut head).is_err() {
            return Ok(false);
        }
        let dim = tail.dim;
        let old_len = (MATRIX_HEADER + built.rows * dim * 4) as u64;
        let u32_at = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4"));
        let fits = &head[..8] == MATRIX_MAGIC
            && u32_at(8) == MATRIX_VERSION
            && u32_at(12) as usize == dim
            && Matrix::peek_header(path).as_ref() == Some(built)
            && f.metadata().at(path)?.len() >= old_len;
        if !fits {
            return Ok(false);
        }
        let mut crc = crc32fast::Hasher::new_with_initial_len(u32_at(24), old_len - 64);
        f.seek(SeekFrom::Start(old_len)).at(path)?;
        {
            let mut w = BufWriter::with_capacity(1 << 20, &mut f);
            for x in tail.as_slice() {
                let b = x.to_le_bytes();
                crc.update(&b);
                w.write_all(&b).at(path)?;
            }
            w.flush().at(path)?;
        }
        let rows = built.rows + tail.rows();
        // What a killed append left past the new rows, if anything (no
        // reader maps past the rows its header names, all before here).
        f.set_len((MATRIX_HEADER + rows * dim * 4) as u64)
            .at(path)?;
        f.sync_data().at(path)?;
        f.seek(SeekFrom::Start(0)).at(path)?;
        f.write_all(&Matrix::header_of(dim, rows, crc.finalize(), fingerprint)?)
            .at(path)?;
        f.sync_data().at(path)?;
        Ok(true)
    }

    /// The header of a saved matrix: fingerprint and rows (nothing else
    /// checked: `load` checks everything).
    fn peek_header(path: &Path) -> Option<Built> {
        use std::io::Read;
        let mut h = [0u8; MATRIX_HEADER];
        File::open(path).ok()?.read_exact(&mut h).ok()?;
        let fp_len = h[28] as usize;
        if &h[..8] != MATRIX_MAGIC || 29 + fp_len > MATRIX_HEADER {
            return None;
        }
        Some(Built {
            fingerprint: String::from_utf8(h[29..29 + fp_len].to_vec()).ok()?,
            rows: usize::try_from(u64::from_le_bytes(h[16..24].try_into().expect("8"))).ok()?,
        })
    }

    /// Maps a saved matrix; `None` when missing, stale, of another shape or
    /// failing its CRC.
    pub fn load(path: &Path, fingerprint: &str, rows: usize, dim: usize) -> Option<Matrix> {
        let f = File::open(path).ok()?;
        let len = f.metadata().ok()?.len() as usize;
        // Bytes past the rows: an in-place append killed before its header.
        let end = MATRIX_HEADER + rows.checked_mul(dim)?.checked_mul(4)?;
        if len < end {
            return None;
        }
        #[cfg(target_endian = "little")]
        {
            use std::io::Read;
            // The header is read with a read call, not through the map: the
            // writer's append rewrites it in place.
            let mut h = [0u8; MATRIX_HEADER];
            (&f).read_exact(&mut h).ok()?;
            // SAFETY: derived files are replaced by rename; the only write
            // in place is the writer's append (`append_rows`), to the header
            // (never read through this map) and after the rows this map
            // reads.
            let map = unsafe { memmap2::MmapOptions::new().len(end).map(&f) }.ok()?;
            let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4"));
            let fp_len = h[28] as usize;
            if &h[..8] != MATRIX_MAGIC
                || u32_at(8) != MATRIX_VERSION
                || u32_at(12) as usize != dim
                || u64::from_le_bytes(h[16..24].try_into().expect("8")) as usize != rows
                || 29 + fp_len > MATRIX_HEADER
                || &h[29..29 + fp_len] != fingerprint.as_bytes()
                || crc32fast::hash(&map[MATRIX_HEADER..end]) != u32_at(24)
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

/// The temp file an atomic write of `path` goes through (`.NAME.tmp.PID`,
/// which the store's temp-file hygiene knows).
fn temp_beside(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("matrix");
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

impl DerivedFile for Matrix {
    const FILE: &'static str = MATRIX_FILE;
    type Input<'a> = ();

    fn peek(path: &Path) -> Option<Built> {
        Matrix::peek_header(path)
    }

    fn load(path: &Path, built: &Built, lib: &Library, (): ()) -> Option<Matrix> {
        Matrix::load(path, &built.fingerprint, built.rows, lib.dim())
    }

    fn build(lib: &Library, (): ()) -> Result<Matrix> {
        Matrix::from_library(lib)
    }

    /// The old rows and the vectors of the papers after them (every one
    /// must be embedded, as for `build`).
    fn extend(self, from: usize, lib: &Library, (): ()) -> Result<Matrix> {
        let (tail, missing) = Matrix::gather_rows(lib, lib.dim(), from);
        if !missing.is_empty() {
            return Matrix::from_library(lib);
        }
        let mut data = Vec::with_capacity(lib.len() * self.dim);
        data.extend_from_slice(self.as_slice());
        data.extend_from_slice(tail.as_slice());
        Ok(Matrix::owned(self.dim, data))
    }

    /// The new rows appended in place (every one must be embedded).
    fn append(path: &Path, built: &Built, lib: &Library, (): ()) -> Result<bool> {
        let (tail, missing) = Matrix::gather_rows(lib, lib.dim(), built.rows);
        if !missing.is_empty() || tail.dim != lib.dim() {
            return Ok(false);
        }
        Matrix::append_rows(path, built, &tail, &lib.fingerprint())
    }

    /// The rows kept, copied in order.
    fn shrink(self, removed: &[usize], _: &Library, (): ()) -> Result<Option<Matrix>> {
        let mut gone = removed.iter().peekable();
        let data: Vec<f32> = self
            .as_slice()
            .chunks_exact(self.dim.max(1))
            .enumerate()
            .filter(|(row, _)| gone.next_if(|&&r| r == *row).is_none())
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        Ok(Some(Matrix::owned(self.dim, data)))
    }

    fn save(&self, path: &Path, fingerprint: &str) -> Result<()> {
        Matrix::save(self, path, fingerprint)
    }

    fn save_extended(&self, path: &Path, fingerprint: &str, from: usize) -> Result<()> {
        self.save_appended(path, fingerprint, from)
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
        let graph = if matrix.rows() >= opts.hnsw_threshold.max(1) {
            Some(ensure_graph(lib, &matrix, &opts.hnsw, Access::Reader)?)
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

/// Loads the persisted graph if it matches the library, else extends the
/// one built for a prefix of it, else builds it; saved as `access` says.
pub fn ensure_graph(
    lib: &Library,
    m: &Matrix,
    params: &HnswParams,
    access: Access,
) -> Result<Graph> {
    Ok(refresh::<Graph>(lib, (m, params), access)?.0)
}

impl DerivedFile for Graph {
    const FILE: &'static str = GRAPH_FILE;
    type Input<'a> = (&'a Matrix, &'a HnswParams);

    fn peek(path: &Path) -> Option<Built> {
        Graph::peek(path)
    }

    fn load(
        path: &Path,
        built: &Built,
        _: &Library,
        (_, params): Self::Input<'_>,
    ) -> Option<Graph> {
        Graph::load(path, &built.fingerprint, params, built.rows)
    }

    fn build(_: &Library, (m, params): Self::Input<'_>) -> Result<Graph> {
        Ok(Graph::build(m, params))
    }

    fn extend(mut self, _: usize, _: &Library, (m, _): Self::Input<'_>) -> Result<Graph> {
        self.insert_rows(m);
        Ok(self)
    }

    /// Only a graph with its codes: the repairs measure distances on them
    /// (`m` is today's matrix, numbered as after every step of a chain).
    fn shrink(
        mut self,
        removed: &[usize],
        _: &Library,
        (m, _): Self::Input<'_>,
    ) -> Result<Option<Graph>> {
        if !self.is_coded() {
            return Ok(None);
        }
        self.remove_rows(removed, m);
        Ok(Some(self))
    }

    fn save(&self, path: &Path, fingerprint: &str) -> Result<()> {
        Graph::save(self, path, fingerprint)
    }
}

/// What [`refresh_derived`] did to each file (`None`: not needed, e.g. no
/// graph below the HNSW threshold), and how long it took.
#[derive(Debug, Clone, Default)]
pub struct DerivedReport {
    pub matrix: Option<Refresh>,
    pub graph: Option<Refresh>,
    pub lexical: Option<Refresh>,
    /// Papers in the library (rows of every file).
    pub rows: usize,
    pub seconds: f64,
    /// Seconds spent on the matrix, the graph and the lexical index.
    pub split: [f64; 3],
}

impl DerivedReport {
    /// How each file was brought up to date: matrix, graph, lexical index.
    fn files(&self) -> [Option<Refresh>; 3] {
        [self.matrix, self.graph, self.lexical]
    }

    /// Whether anything had to be built, extended or shrunk.
    pub fn changed(&self) -> bool {
        self.files()
            .iter()
            .any(|r| r.is_some_and(|h| h != Refresh::Current))
    }

    /// Whether a file was rebuilt from the whole library.
    pub fn rebuilt(&self) -> bool {
        self.files().contains(&Some(Refresh::Rebuilt))
    }

    /// One phrase for the user: "index up to date", "index extended from
    /// 1,000 to 1,010 papers in 0.4 s (...)", "index updated for 3 removed
    /// paper(s) in 0.2 s (...)", "index rebuilt in 12.0 s (...)".
    pub fn summary(&self) -> String {
        let from = self
            .files()
            .iter()
            .filter_map(|r| match r {
                Some(Refresh::Extended { from }) => Some(*from),
                _ => None,
            })
            .min();
        let removed = self
            .files()
            .iter()
            .filter_map(|r| match r {
                Some(Refresh::Shrunk { removed }) => Some(*removed),
                _ => None,
            })
            .max();
        let [m, g, l] = self.split;
        if self.rebuilt() {
            format!(
                "index rebuilt in {:.1} s (matrix {m:.1}, graph {g:.1}, lexical {l:.1})",
                self.seconds
            )
        } else if let Some(removed) = removed.filter(|_| from.is_none()) {
            format!(
                "index updated for {removed} removed paper(s) in {:.1} s (matrix {m:.1}, graph {g:.1}, lexical {l:.1})",
                self.seconds
            )
        } else if let Some(from) = from {
            format!(
                "index extended from {from} to {} papers in {:.1} s (matrix {m:.1}, graph {g:.1}, lexical {l:.1})",
                self.rows, self.seconds
            )
        } else {
            "index up to date".to_string()
        }
    }
}

/// Brings the writer's derived search files up to date after the library
/// changed: the matrix and the lexical index always, the graph when the
/// library reaches `opts.hnsw_threshold`; papers appended since the last
/// refresh are added to each file, anything else rebuilds it.
pub fn refresh_derived(lib: &Library, opts: &SearchOptions) -> Result<DerivedReport> {
    let t = std::time::Instant::now();
    let mut report = DerivedReport {
        rows: lib.len(),
        ..Default::default()
    };
    let (m, how) = refresh::<Matrix>(lib, (), Access::Writer)?;
    report.matrix = Some(how);
    report.split[0] = t.elapsed().as_secs_f64();
    if m.rows() >= opts.hnsw_threshold.max(1) {
        report.graph = Some(refresh::<Graph>(lib, (&m, &opts.hnsw), Access::Writer)?.1);
    }
    drop(m);
    report.split[1] = t.elapsed().as_secs_f64() - report.split[0];
    // Not loaded when it can grow on disk (a segment of the new papers).
    report.lexical = Some(crate::store::derived::update::<crate::lexical::Bm25>(
        lib,
        (),
    )?);
    report.split[2] = t.elapsed().as_secs_f64() - report.split[0] - report.split[1];
    report.seconds = t.elapsed().as_secs_f64();
    Ok(report)
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
    fn an_appended_matrix_file_equals_one_written_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(MATRIX_FILE);
        let q = dir.path().join("whole.f32");
        let all = Matrix::owned(3, (0..30).map(|i| i as f32 * 0.25).collect());
        Matrix::owned(3, all.as_slice()[..18].to_vec())
            .save(&p, "old")
            .unwrap();
        assert_eq!(
            Matrix::peek_header(&p),
            Some(Built {
                fingerprint: "old".into(),
                rows: 6
            })
        );
        // A killed in-place append's tail is not carried on (a reader's
        // save, which copies the file).
        let mut b = fs::read(&p).unwrap();
        b.extend_from_slice(&[9u8; 30]);
        fs::write(&p, &b).unwrap();
        all.save_appended(&p, "new", 6).unwrap();
        all.save(&q, "new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), fs::read(&q).unwrap());
        assert!(Matrix::load(&p, "new", 10, 3).is_some());
        // A file that is not the `from` rows it should be is refused and
        // left as it was.
        let before = fs::read(&p).unwrap();
        assert!(all.save_appended(&p, "newer", 6).is_err());
        assert_eq!(fs::read(&p).unwrap(), before);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "temp file left"
        );
    }

    #[test]
    fn rows_appended_in_place_equal_a_file_written_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(MATRIX_FILE);
        let q = dir.path().join("whole.f32");
        let all = Matrix::owned(3, (0..30).map(|i| i as f32 * 0.25).collect());
        let part = |a: usize, b: usize| Matrix::owned(3, all.as_slice()[a * 3..b * 3].to_vec());
        let built = |fp: &str, rows| Built {
            fingerprint: fp.into(),
            rows,
        };
        part(0, 6).save(&p, "old").unwrap();
        // Not the state the file is at: nothing written.
        let before = fs::read(&p).unwrap();
        assert!(!Matrix::append_rows(&p, &built("other", 6), &part(6, 8), "new").unwrap());
        assert!(!Matrix::append_rows(&p, &built("old", 5), &part(5, 8), "new").unwrap());
        assert_eq!(fs::read(&p).unwrap(), before);
        // A killed append: rows written, header not. Still the old matrix
        // (also to `check`), and the next append writes over those bytes
        // (and cuts any past its own).
        let mut b = before.clone();
        b.extend_from_slice(&[7u8; 40]);
        fs::write(&p, &b).unwrap();
        assert_eq!(
            Matrix::load(&p, "old", 6, 3).unwrap().as_slice(),
            part(0, 6).as_slice()
        );
        assert_eq!(crate::store::derived::inspect(dir.path(), "old"), vec![]);
        assert!(Matrix::append_rows(&p, &built("old", 6), &part(6, 8), "mid").unwrap());
        assert!(Matrix::append_rows(&p, &built("mid", 8), &part(8, 10), "new").unwrap());
        all.save(&q, "new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), fs::read(&q).unwrap());
        assert_eq!(
            Matrix::load(&p, "new", 10, 3).unwrap().as_slice(),
            all.as_slice()
        );
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
