//! The library on disk, and the only code that writes to it.
//!
//! ```text
//! LIB/MANIFEST.json   commit point: version, model, committed length of each log
//! LIB/papers-N.log    append-only Paper records (JSON), a later record with the same id replaces the earlier
//! LIB/vectors-N.log   append-only (16-byte content key, dim x f32) records: the embedding cache
//! LIB/LOCK            held by the one writer
//! LIB/derived/        index and topics: rebuilt whenever stale or damaged
//! ```
//! Papers are the source of truth; vectors are a cache keyed by the hash of
//! (model, text), so nothing is embedded twice and a damaged vector is simply
//! embedded again. Readers take no lock: they read only what the manifest says
//! is committed.

pub mod codec;
pub mod compact;
pub mod delta;
pub mod derived;
pub mod lock;
pub mod log;
pub mod manifest;
mod repair;
mod vecs;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::paper::Paper;
pub use lock::LockFile;
use log::{Appender, Damage};
pub use manifest::{FORMAT_VERSION, LogState, Manifest, ModelStamp};
pub use repair::{LostRange, RepairOptions, RepairReport, repair};

const PAPERS_MAGIC: &[u8; 8] = b"PMPAPER1";
const VECTORS_MAGIC: &[u8; 8] = b"PMVECTR1";
/// The manifest's file name in a library folder.
pub const MANIFEST: &str = "MANIFEST.json";

/// 64-bit XXH3 of an identity key: collisions are negligible at any
/// library size (1e-8 at half a million papers). In memory only.
fn key_hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

/// A record of the papers log: a paper (a later one with the same id
/// replaces the earlier) or the removal of one.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Paper(Box<Paper>),
    /// `{"remove":"ID"}`: the paper with this id is gone from the library
    /// from here on (a later paper record with the id brings it back).
    Remove(String),
}

/// The payload of a removal record. It can never parse as a `Paper` (no
/// `id`, no `title`), nor a paper as this (no `remove`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Removal {
    remove: String,
}

const REMOVAL_PREFIX: &[u8] = b"{\"remove\":";

/// Oldest reader of a library whose papers log holds removal records:
/// version-1 readers would stop at them as damage, so the manifest says so.
pub const REMOVAL_MIN_READER: u32 = 2;

impl Record {
    /// Parses a papers-log payload; `None` when it is neither record kind.
    pub fn parse(payload: &[u8]) -> Option<Record> {
        if payload.starts_with(REMOVAL_PREFIX) {
            serde_json::from_slice::<Removal>(payload)
                .ok()
                .map(|r| Record::Remove(r.remove))
        } else {
            serde_json::from_slice::<Paper>(payload)
                .ok()
                .map(|p| Record::Paper(Box::new(p)))
        }
    }

    pub fn to_payload(&self) -> Vec<u8> {
        match self {
            Record::Paper(p) => serde_json::to_vec(p).expect("paper serialises"),
            Record::Remove(id) => {
                serde_json::to_vec(&Removal { remove: id.clone() }).expect("removal serialises")
            }
        }
    }
}

/// Whether a payload is a record of the papers log (resynchronisation rules
/// out chance checksum matches with it).
fn is_paper_record(payload: &[u8]) -> bool {
    Record::parse(payload).is_some()
}

/// Whether a payload is a removal record.
fn is_removal(payload: &[u8]) -> bool {
    matches!(Record::parse(payload), Some(Record::Remove(_)))
}

/// Whether a payload is a vector record of `dim` dimensions (any size when
/// the dimension is not known).
fn is_vector(payload: &[u8], dim: usize) -> bool {
    payload.len() > 16
        && (payload.len() - 16).is_multiple_of(4)
        && (dim == 0 || payload.len() == 16 + 4 * dim)
}

/// Readers need a library: a directory holding a manifest. A manifest
/// missing beside its logs is damage, with the way to rebuild it.
pub fn require_library(root: &Path) -> Result<()> {
    let no = |reason: &str| {
        Err(Error::NoLibrary {
            path: root.to_path_buf(),
            reason: reason.into(),
        })
    };
    match fs::metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return no("no such directory"),
        Err(e) => return Err(Error::io(root, e)),
        Ok(m) if !m.is_dir() => return no("not a directory"),
        Ok(_) => {}
    }
    if root.join(MANIFEST).exists() {
        return Ok(());
    }
    if logs_hold_records(root) {
        return Err(manifest_missing(root));
    }
    no("no MANIFEST.json in it")
}

/// Whether any log in `root` holds more than its header. A writer writes
/// the manifest before its first append, so records without a manifest
/// mean the manifest was lost, not that nothing was committed.
fn logs_hold_records(root: &Path) -> bool {
    ["papers", "vectors"].iter().any(|stem| {
        repair::log_files(root, stem)
            .iter()
            .any(|(_, name)| fs::metadata(root.join(name)).is_ok_and(|m| m.len() > log::HEADER_LEN))
    })
}

fn manifest_missing(root: &Path) -> Error {
    Error::Corrupt {
        path: root.to_path_buf(),
        reason: format!(
            "{MANIFEST} is missing but the logs hold records; `papermap check --repair` rebuilds it from them"
        ),
    }
}

/// The maps of a library's ids and identity keys: a million entries are
/// built at every open, and SipHash was 5% of that; foldhash is seeded per
/// process all the same.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

fn add_identity(map: &mut FastMap<u64, Vec<usize>>, keys: Vec<String>, row: usize) {
    for k in keys {
        let rows = map.entry(key_hash(&k)).or_default();
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
}

/// The file part of a paper's `source`: without `:LINE` (text formats) or
/// `#KEY` (a Zotero item).
pub fn source_file(source: &str) -> &str {
    if let Some((file, line)) = source.rsplit_once(':')
        && !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
    {
        return file;
    }
    source.rsplit_once('#').map_or(source, |(file, _)| file)
}

/// Equal records, wherever they were read from (a line number that moved is
/// no change).
fn same_but_source(a: &Paper, b: &Paper) -> bool {
    Paper {
        source: String::new(),
        ..a.clone()
    } == Paper {
        source: String::new(),
        ..b.clone()
    }
}

/// Content key of a vector: the first 16 bytes of sha256(model id, text).
pub type VecKey = [u8; 16];

pub fn vec_key(model_id: &str, text: &str) -> VecKey {
    let mut h = Sha256::new();
    h.update(model_id.as_bytes());
    h.update([0u8]);
    h.update(text.as_bytes());
    h.finalize()[..16].try_into().expect("16 bytes")
}

/// What adding one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    New(String),
    /// Same paper already stored and nothing to add.
    Duplicate(String),
    /// Same paper already stored; the record filled fields it lacked.
    Updated(String),
}

/// Whether `e` came from reading a papers log the manifest no longer names.
pub(crate) fn log_switched(root: &Path, e: &Error) -> bool {
    let Error::Corrupt { path, .. } = e else {
        return false;
    };
    let Ok(Some(now)) = Manifest::read(root, &root.join(MANIFEST)) else {
        return false;
    };
    path.file_name()
        .is_some_and(|f| f.to_string_lossy() != now.papers.file && !path.exists())
}

/// What an opened library holds in memory. A type, not a flag: a lean
/// library has no `papers()` to call by mistake.
pub trait Mode: private::Sealed + std::fmt::Debug + 'static {
    /// Whether paper records stay on disk (read back on demand).
    const LEAN: bool;
}

/// Every paper in memory: queries, embedding, reports, removal.
#[derive(Debug)]
pub struct Full;

/// Ingest only: ids, years, log offsets, source files and hashed identity
/// keys in memory (bounded by the number of papers, not their text); a
/// stored record is read back from the log only to merge a duplicate.
#[derive(Debug)]
pub struct Lean;

impl Mode for Full {
    const LEAN: bool = false;
}
impl Mode for Lean {
    const LEAN: bool = true;
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::Full {}
    impl Sealed for super::Lean {}
}

/// An opened library: papers, cached vectors and the state it was read at.
/// `Library` is `Library<Full>`; `Writer::open_for_ingest` holds a
/// `Library<Lean>`.
#[derive(Debug)]
pub struct Library<M: Mode = Full> {
    root: PathBuf,
    manifest: Manifest,
    papers: Vec<Paper>,
    /// Byte offset of each paper's latest record in the papers log.
    offsets: Vec<u64>,
    /// Each paper's year (what `find_same` needs in lean mode).
    years: Vec<Option<i32>>,
    /// Each paper's source file (its `source` without `:line` or `#KEY`),
    /// hashed: which papers a re-read file or database still holds.
    sources: Vec<u64>,
    /// `Lean`: `papers` stays empty (ids, years, offsets and hashed
    /// identity keys are all that is held), full records are read back from
    /// the log on demand, and vectors are not loaded: memory does not grow
    /// with the text of the library.
    mode: std::marker::PhantomData<M>,
    by_id: FastMap<String, usize>,
    /// Identity keys (see `Paper::identity_keys`) hashed to 64 bits: three
    /// keys per paper stay small however long the titles are.
    /// Built on first use from `papers` (a reader that resolves by id never
    /// pays for normalising every title), or kept from the start in lean
    /// mode, where `papers` stays empty.
    by_identity: std::sync::OnceLock<FastMap<u64, Vec<usize>>>,
    /// The vector cache (`vecs.rs`): the log mapped, plus what was added.
    vecs: vecs::VecCache,
    dim: usize,
    /// Damage found and worked around while opening (reported to the user).
    pub warnings: Vec<String>,
    vectors_damaged: bool,
    /// Whether the vectors log was read (see `open_without_vectors`).
    vectors_loaded: bool,
    /// `fingerprint()` computed once per state (reset when a paper changes).
    fingerprint: std::sync::OnceLock<String>,
    /// Whether the papers log holds removal records (readers older than
    /// `REMOVAL_MIN_READER` cannot read it).
    has_removals: bool,
}

impl Library {
    /// Derived files that are damaged or stale (rebuilt when next needed).
    pub fn derived_problems(&self) -> Vec<derived::DerivedProblem> {
        derived::inspect(&self.derived_dir(), &self.fingerprint())
    }
    /// Opens a library for reading. A path that is not a directory holding
    /// a manifest is an error (`NoLibrary`), and so is a manifest missing
    /// beside its logs (`check --repair` rebuilds it).
    pub fn open(root: &Path) -> Result<Library> {
        require_library(root)?;
        let mut lib = Self::open_mode(root)?;
        lib.load_vectors()?;
        Ok(lib)
    }

    /// Opens a library for reading without its vectors log: for a query
    /// command whose derived matrix is current, the cached vectors are not
    /// needed (at 100k papers reading them and checking every paper's key
    /// was a third of a `related` command). Until `load_vectors` is called,
    /// `vector` finds nothing.
    pub fn open_without_vectors(root: &Path) -> Result<Library> {
        require_library(root)?;
        Self::open_mode(root)
    }

    pub fn papers(&self) -> &[Paper] {
        &self.papers
    }

    /// A fingerprint of what derived files depend on: the paper order and
    /// each paper's embedded text under the current model.
    pub fn fingerprint(&self) -> String {
        self.fingerprint
            .get_or_init(|| self.compute_fingerprint())
            .clone()
    }

    fn compute_fingerprint(&self) -> String {
        self.prefix_fingerprint(self.papers.len())
    }

    /// The fingerprint this library had when it held only its first `rows`
    /// papers (in today's order, with today's text). A derived file built
    /// for that fingerprint covers a prefix of the library and can be
    /// extended with the rest instead of rebuilt (papers are appended in
    /// order; an edited or removed paper changes every later prefix).
    pub fn prefix_fingerprint(&self, rows: usize) -> String {
        // XXH3-128 (not a cryptographic hash: derived files are caches, and
        // this runs on every query command over all the library's text).
        let model = self.manifest.model.as_ref().map_or("", |m| m.id.as_str());
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(model.as_bytes());
        for p in &self.papers[..rows.min(self.papers.len())] {
            h.update(p.id.as_bytes());
            h.update(&[0]);
            h.update(p.title.as_bytes());
            h.update(&[1]);
            h.update(p.abs.as_bytes());
            h.update(&[0]);
        }
        format!("x{:032x}", h.digest128())
    }
}

impl<M: Mode> Library<M> {
    /// Opens at the manifest's state. A compaction switches the papers log
    /// and removes the old one: a reader that read the old manifest just
    /// before finds its log gone, and reads again from the new manifest.
    fn open_mode(root: &Path) -> Result<Library<M>> {
        let mut tries = 0;
        loop {
            match Self::open_once(root) {
                Err(e) if tries < 3 && log_switched(root, &e) => tries += 1,
                r => return r,
            }
        }
    }

    fn open_once(root: &Path) -> Result<Library<M>> {
        let manifest = Manifest::read(root, &root.join(MANIFEST))?.unwrap_or_else(|| {
            let mut m = Manifest::new();
            m.papers.file = "papers-1.log".into();
            m.vectors.file = "vectors-1.log".into();
            m
        });
        let by_identity = std::sync::OnceLock::new();
        if M::LEAN {
            let _ = by_identity.set(FastMap::default());
        }
        let dim = manifest.model.as_ref().map_or(0, |m| m.dim);
        let mut lib = Library {
            root: root.to_path_buf(),
            dim,
            manifest,
            papers: Vec::new(),
            offsets: Vec::new(),
            years: Vec::new(),
            sources: Vec::new(),
            mode: std::marker::PhantomData,
            by_id: FastMap::default(),
            by_identity,
            vecs: vecs::VecCache::new(dim),
            warnings: Vec::new(),
            vectors_damaged: false,
            vectors_loaded: false,
            fingerprint: std::sync::OnceLock::new(),
            has_removals: false,
        };
        lib.load_papers()?;
        Ok(lib)
    }

    fn load_papers(&mut self) -> Result<()> {
        let path = self.root.join(&self.manifest.papers.file);
        let root = self.root.clone();
        let committed = self.manifest.papers.bytes;
        // Rows of removed papers are dropped once, after the scan (a removal
        // is O(1) while reading, the compaction O(papers)).
        let mut dead: Vec<usize> = Vec::new();
        // Every record is at most one paper, and takes more than 16 bytes:
        // the tables never grow again, and a damaged count reserves no more
        // than the file could hold.
        let n = self.manifest.papers.records.min(committed / 16) as usize;
        self.by_id.reserve(n);
        self.offsets.reserve(n);
        self.years.reserve(n);
        self.sources.reserve(n);
        if !M::LEAN {
            self.papers.reserve(n);
        }
        let scan = log::scan_with(
            &path,
            PAPERS_MAGIC,
            committed,
            &is_paper_record,
            &mut |record, offset, payload| {
                match Record::parse(payload) {
                    Some(Record::Paper(paper)) => self.insert_paper(*paper, offset),
                    Some(Record::Remove(id)) => {
                        self.has_removals = true;
                        if let Some(i) = self.by_id.remove(&id) {
                            dead.push(i);
                        }
                    }
                    None => {
                        let e = serde_json::from_slice::<Paper>(payload)
                            .err()
                            .map_or_else(String::new, |e| e.to_string());
                        return Err(Error::Corrupt {
                            path: root.clone(),
                            reason: format!(
                                "{} record {record}: neither a paper nor a removal ({e})",
                                path.display()
                            ),
                        });
                    }
                }
                Ok(())
            },
        )?;
        if let Some(d) = scan.damage.first() {
            return Err(self.papers_damage(&path, d, scan.damage.len()));
        }
        self.drop_rows(&dead);
        // Reserved for every record: give back what replaced and removed
        // ones left unused.
        if self.offsets.len() < self.offsets.capacity() / 2 {
            self.by_id.shrink_to_fit();
            self.offsets.shrink_to_fit();
            self.years.shrink_to_fit();
            self.sources.shrink_to_fit();
            self.papers.shrink_to_fit();
        }
        Ok(())
    }

    /// Drops the rows of removed papers (already gone from `by_id`) from
    /// every per-row table, keeping the order of the others, and renumbers
    /// the indexes.
    fn drop_rows(&mut self, dead: &[usize]) {
        if dead.is_empty() {
            return;
        }
        self.fingerprint = std::sync::OnceLock::new();
        let n = self.offsets.len();
        let mut is_dead = vec![false; n];
        for &i in dead {
            is_dead[i] = true;
        }
        let mut new_row = vec![usize::MAX; n];
        let mut j = 0;
        for i in 0..n {
            if !is_dead[i] {
                new_row[i] = j;
                j += 1;
            }
        }
        fn keep<T>(v: &mut Vec<T>, is_dead: &[bool]) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                !is_dead[i - 1]
            });
        }
        keep(&mut self.offsets, &is_dead);
        keep(&mut self.years, &is_dead);
        keep(&mut self.sources, &is_dead);
        if !M::LEAN {
            keep(&mut self.papers, &is_dead);
        }
        for row in self.by_id.values_mut() {
            *row = new_row[*row];
        }
        if let Some(map) = self.by_identity.get_mut() {
            map.retain(|_, rows| {
                rows.retain_mut(|r| {
                    *r = new_row[*r];
                    *r != usize::MAX
                });
                !rows.is_empty()
            });
        }
    }

    fn papers_damage(&self, path: &Path, d: &Damage, count: usize) -> Error {
        Error::Corrupt {
            path: self.root.clone(),
            reason: format!(
                "{}: record {} at byte {}: {} ({count} damaged place(s) in all). \
                 Run `papermap check --repair` to keep every intact paper and list the lost ones",
                path.display(),
                d.record,
                d.offset,
                d.reason
            ),
        }
    }

    /// Reads the vectors log (once; later calls do nothing). Damaged
    /// records become `warnings` and their papers are embedded again.
    pub fn load_vectors(&mut self) -> Result<()> {
        if self.vectors_loaded {
            return Ok(());
        }
        self.vectors_loaded = true;
        let path = self.root.join(&self.manifest.vectors.file);
        let dim = self.dim;
        let committed = self.manifest.vectors.bytes;
        let expected = 16 + 4 * dim;
        self.vecs.map(
            &path,
            committed,
            self.manifest
                .vectors
                .records
                .min(committed / expected.max(1) as u64) as usize,
        )?;
        let mut wrong_size = Vec::new();
        let vecs = &mut self.vecs;
        let scan = log::scan_with(
            &path,
            VECTORS_MAGIC,
            committed,
            &|p: &[u8]| is_vector(p, dim),
            &mut |record, offset, payload| {
                if dim == 0 || payload.len() != expected {
                    wrong_size.push((record, payload.len()));
                } else {
                    let key: VecKey = payload[..16].try_into().expect("16 bytes");
                    vecs.insert_mapped(key, offset + 8, &payload[16..]);
                }
                Ok(())
            },
        )?;
        for d in &scan.damage {
            self.vectors_damaged = true;
            self.warnings.push(format!(
                "{}: vector record {} at bytes {}..{}: {}{}",
                path.display(),
                d.record,
                d.offset,
                d.end,
                d.reason,
                if d.recovered {
                    "; the log will be rewritten"
                } else {
                    "; the affected papers will be embedded again"
                }
            ));
        }
        for (record, len) in wrong_size {
            self.vectors_damaged = true;
            self.warnings.push(format!(
                "{}: vector record {record} has {len} bytes, expected {expected}; it will be embedded again",
                path.display(),
            ));
        }
        Ok(())
    }

    /// Inserts or replaces (same id) a paper in memory; `offset` is where
    /// its record starts in the papers log.
    fn insert_paper(&mut self, paper: Paper, offset: u64) {
        self.fingerprint = std::sync::OnceLock::new();
        let keys = if self.by_identity.get().is_some() {
            paper.identity_keys()
        } else {
            Vec::new()
        };
        let idx = match self.by_id.get(&paper.id) {
            Some(&i) => {
                self.offsets[i] = offset;
                self.years[i] = paper.year;
                self.sources[i] = key_hash(source_file(&paper.source));
                if !M::LEAN {
                    self.papers[i] = paper;
                }
                i
            }
            None => {
                let i = self.offsets.len();
                self.by_id.insert(paper.id.clone(), i);
                self.offsets.push(offset);
                self.years.push(paper.year);
                self.sources.push(key_hash(source_file(&paper.source)));
                if !M::LEAN {
                    self.papers.push(paper);
                }
                i
            }
        };
        if let Some(map) = self.by_identity.get_mut() {
            add_identity(map, keys, idx);
        }
    }

    fn identity_index(&self) -> &FastMap<u64, Vec<usize>> {
        self.by_identity.get_or_init(|| {
            let mut map = FastMap::default();
            for (i, p) in self.papers.iter().enumerate() {
                add_identity(&mut map, p.identity_keys(), i);
            }
            map
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Every paper id, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    /// Ids of the papers whose stored record was read from `file` (as the
    /// path was given then): `file:LINE` or `file#KEY` sources.
    pub fn ids_from_source<'a>(&'a self, file: &str) -> impl Iterator<Item = &'a str> + 'a {
        let h = key_hash(file);
        self.by_id
            .iter()
            .filter(move |(_, row)| self.sources[**row] == h)
            .map(|(id, _)| id.as_str())
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Finds the stored twin of a record by its identity keys: DOI, then
    /// arXiv id, then title. Equal titles with years more than one apart
    /// (a preprint and its publication are one year apart at most) are
    /// different works, e.g. two books called "Bounded Rationality".
    pub fn find_same(&self, paper: &Paper) -> Option<usize> {
        paper.identity_keys().iter().find_map(|k| {
            let rows = self.identity_index().get(&key_hash(k))?;
            if !k.starts_with("title:") {
                return rows.first().copied();
            }
            rows.iter()
                .copied()
                .find(|&r| match (self.years[r], paper.year) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1,
                    _ => true,
                })
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The cached vector for a content key.
    pub fn vector(&self, key: &VecKey) -> Option<&[f32]> {
        self.vecs.get(key)
    }

    pub fn cached_vectors(&self) -> usize {
        self.vecs.len()
    }

    pub fn derived_dir(&self) -> PathBuf {
        self.root.join("derived")
    }

    /// Removes the temp files dead processes left in the library (a killed
    /// `topics` run's half-written cache, say), as every writer does when
    /// it opens; the lock is the proof that no writer runs. Returns how
    /// many were removed.
    pub fn remove_dead_temp_files(&self, _lock: &LockFile) -> usize {
        repair::remove_stale_temp_files(self.root()).len()
    }

    /// What interrupted writes left behind that the next writer (or
    /// `check --repair`) cleans up: temp files of dead processes and log
    /// bytes past the last commit. Harmless to readers, listed by `check`.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for dir in [self.root.clone(), self.derived_dir()] {
            for p in manifest::stale_temp_files(&dir) {
                out.push(format!(
                    "{}: temp file of a papermap process that is gone",
                    p.display()
                ));
            }
        }
        for state in [&self.manifest.papers, &self.manifest.vectors] {
            let path = self.root.join(&state.file);
            if let Ok(m) = fs::metadata(&path)
                && m.len() > state.bytes.max(log::HEADER_LEN)
            {
                out.push(format!(
                    "{}: {} byte(s) past the last commit (a write in progress or an interrupted one)",
                    path.display(),
                    m.len() - state.bytes.max(log::HEADER_LEN)
                ));
            }
        }
        let retired = compact::retired_on_disk(&self.root, &self.manifest);
        for p in &retired {
            out.push(format!(
                "{}: log replaced by a compaction (dead; the next writer deletes it)",
                p.display()
            ));
        }
        for p in compact::unnamed_logs(&self.root, &self.manifest) {
            if !retired.contains(&p) {
                out.push(format!(
                    "{}: log the manifest does not name, not read (a compaction or repair in progress or an interrupted one)",
                    p.display()
                ));
            }
        }
        out
    }
}

/// Options for opening a library for writing.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// How long to wait for another writer to finish. Default: 30 s.
    pub lock_wait: Duration,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            lock_wait: Duration::from_secs(30),
        }
    }
}

/// A library opened for writing: holds the lock and the log appenders.
/// Changes become visible, atomically, at `commit`.
pub struct Writer<M: Mode = Full> {
    lib: Library<M>,
    papers_log: Appender,
    vectors_log: Appender,
    pending_papers: u64,
    pending_vectors: u64,
    /// The compaction this writer's open did, if any (see `compact`).
    pub compacted: Option<compact::Compacted>,
    _lock: LockFile,
}

impl<M: Mode> std::ops::Deref for Writer<M> {
    type Target = Library<M>;
    fn deref(&self) -> &Library<M> {
        &self.lib
    }
}

impl Writer {
    pub fn open(root: &Path, opts: &WriteOptions) -> Result<Writer> {
        Self::open_mode(root, opts)
    }
}

impl Writer<Lean> {
    /// A writer for ingest only: keeps ids, years and identity keys in memory
    /// and reads a stored record back from disk only to merge a duplicate.
    pub fn open_for_ingest(root: &Path, opts: &WriteOptions) -> Result<Writer<Lean>> {
        Self::open_mode(root, opts)
    }
}

impl<M: Mode> Writer<M> {
    fn open_mode(root: &Path, opts: &WriteOptions) -> Result<Writer<M>> {
        fs::create_dir_all(root).at(root)?;
        let lock = LockFile::acquire(root, opts.lock_wait)?;
        let removed = repair::remove_stale_temp_files(root);
        if !root.join(MANIFEST).exists() {
            // Without a manifest nothing counts as committed, and opening the
            // logs would cut them to nothing: refuse if they hold records.
            if logs_hold_records(root) {
                return Err(manifest_missing(root));
            }
            // A new library: its manifest exists before the first append, so
            // a crash before the first commit leaves an empty library.
            let mut m = Manifest::new();
            m.papers.file = "papers-1.log".into();
            m.vectors.file = "vectors-1.log".into();
            m.write(&root.join(MANIFEST))?;
        }
        let mut lib = Library::<M>::open_mode(root)?;
        let cleaned = [
            (
                "temp file(s) left by a papermap process that is gone",
                removed,
            ),
            (
                "log(s) a compaction had replaced (an interrupted one left them)",
                compact::delete_retired(root, &lib.manifest),
            ),
        ];
        for (what, paths) in cleaned {
            if !paths.is_empty() {
                let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                lib.warnings.push(format!(
                    "removed {} {what}: {}",
                    paths.len(),
                    list.join(", ")
                ));
            }
        }
        if !M::LEAN {
            lib.load_vectors()?;
        }
        if lib.vectors_damaged {
            compact_vectors(&mut lib)?;
        }
        let compacted = if compact::worth_it(&lib) {
            Some(compact::compact_papers(&mut lib)?)
        } else {
            None
        };
        let papers_log = Appender::open(
            &root.join(&lib.manifest.papers.file),
            PAPERS_MAGIC,
            lib.manifest.papers.bytes,
        )?;
        let vectors_log = Appender::open(
            &root.join(&lib.manifest.vectors.file),
            VECTORS_MAGIC,
            lib.manifest.vectors.bytes,
        )?;
        Ok(Writer {
            lib,
            papers_log,
            vectors_log,
            pending_papers: 0,
            pending_vectors: 0,
            compacted,
            _lock: lock,
        })
    }

    pub fn library(&self) -> &Library<M> {
        &self.lib
    }

    /// Adds a record: new paper, duplicate, or duplicate that fills fields.
    pub fn add_paper(&mut self, mut paper: Paper) -> Result<Added> {
        if let Some(i) = self.lib.find_same(&paper) {
            let mut merged = self.stored(i)?;
            if !merged.fill_from(&paper) {
                return Ok(Added::Duplicate(merged.id));
            }
            let id = merged.id.clone();
            self.write_paper(merged)?;
            return Ok(Added::Updated(id));
        }
        paper.id = self.unique_id(&paper.id);
        let id = paper.id.clone();
        self.write_paper(paper)?;
        Ok(Added::New(id))
    }

    /// Stores a record from a source that owns its identity (a Zotero item
    /// key): a stored paper with the same id is replaced when the record
    /// differs from it (edits made at the source win), else it is new.
    /// Identity keys are not consulted: two items of the source stay two.
    pub fn put_paper(&mut self, paper: Paper) -> Result<Added> {
        if let Some(&i) = self.lib.by_id.get(&paper.id) {
            let stored = self.stored(i)?;
            if same_but_source(&stored, &paper) {
                return Ok(Added::Duplicate(paper.id));
            }
            let id = paper.id.clone();
            self.write_paper(paper)?;
            return Ok(Added::Updated(id));
        }
        let id = paper.id.clone();
        self.write_paper(paper)?;
        Ok(Added::New(id))
    }

    /// Adds a record of a file that is re-read as it changes (`add --watch`):
    /// a stored paper with the same id that came from the same file (its
    /// `source` starts with `file`) is replaced by the edited record;
    /// anything else is added as `add_paper` does.
    pub fn sync_paper(&mut self, paper: Paper, file: &str) -> Result<Added> {
        if let Some(&i) = self.lib.by_id.get(&paper.id) {
            let stored = self.stored(i)?;
            if stored
                .source
                .strip_prefix(file)
                .is_some_and(|rest| rest.starts_with(':') || rest.is_empty())
            {
                if same_but_source(&stored, &paper) {
                    return Ok(Added::Duplicate(paper.id));
                }
                let id = paper.id.clone();
                self.write_paper(paper)?;
                return Ok(Added::Updated(id));
            }
        }
        self.add_paper(paper)
    }

    /// Removes papers by id: one removal record each, visible at the next
    /// `commit` like any write. An id that names no paper is an error and
    /// nothing is written. The removed papers' vectors stay in the cache
    /// (re-adding one brings it back without embedding it again); their
    /// records are dropped by the next compaction.
    pub fn remove_papers(&mut self, ids: &[String]) -> Result<()> {
        if let Some(missing) = ids.iter().find(|id| !self.lib.by_id.contains_key(*id)) {
            return Err(Error::Invalid(format!(
                "no paper with id '{missing}' in the library; nothing was removed"
            )));
        }
        let mut dead = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(i) = self.lib.by_id.get(id).copied() else {
                continue; // named twice
            };
            self.papers_log
                .append(&Record::Remove(id.clone()).to_payload())?;
            self.pending_papers += 1;
            self.lib.by_id.remove(id);
            dead.push(i);
        }
        self.lib.has_removals = true;
        self.lib.drop_rows(&dead);
        Ok(())
    }

    /// The stored record with this id (read back from the log in lean mode).
    pub fn paper_by_id(&mut self, id: &str) -> Result<Option<Paper>> {
        match self.lib.by_id.get(id) {
            Some(&i) => self.stored(i).map(Some),
            None => Ok(None),
        }
    }

    fn unique_id(&self, wanted: &str) -> String {
        if !self.lib.by_id.contains_key(wanted) {
            return wanted.to_string();
        }
        (2..)
            .map(|n| format!("{wanted}-{n}"))
            .find(|c| !self.lib.by_id.contains_key(c))
            .expect("some suffix is free")
    }

    /// The full stored record of paper `i` (read back from the log in lean mode).
    fn stored(&mut self, i: usize) -> Result<Paper> {
        if !M::LEAN {
            return Ok(self.lib.papers[i].clone());
        }
        self.papers_log.flush()?;
        let path = self.lib.root.join(&self.lib.manifest.papers.file);
        let payload = log::read_at(&path, self.lib.offsets[i])?;
        serde_json::from_slice(&payload).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: format!("record at byte {}: {e}", self.lib.offsets[i]),
        })
    }

    fn write_paper(&mut self, paper: Paper) -> Result<()> {
        let payload = serde_json::to_vec(&paper).expect("paper serialises");
        debug_assert!(!payload.starts_with(REMOVAL_PREFIX));
        let offset = self.papers_log.end();
        self.papers_log.append(&payload)?;
        self.pending_papers += 1;
        self.lib.insert_paper(paper, offset);
        Ok(())
    }

    /// Binds the library to a model on first use; refuses a different size.
    pub fn set_model(&mut self, id: &str, dim: usize) -> Result<()> {
        match &self.lib.manifest.model {
            Some(m) if m.dim != dim => Err(Error::Dimension {
                expected: m.dim,
                received: dim,
            }),
            Some(m) if m.id == id => Ok(()),
            _ => {
                self.lib.manifest.model = Some(ModelStamp {
                    id: id.to_string(),
                    dim,
                });
                self.lib.dim = dim;
                self.lib.vecs.set_dim(dim);
                self.lib.fingerprint = std::sync::OnceLock::new();
                Ok(())
            }
        }
    }

    pub fn put_vector(&mut self, key: VecKey, v: &[f32]) -> Result<()> {
        if v.len() != self.lib.dim {
            return Err(Error::Dimension {
                expected: self.lib.dim,
                received: v.len(),
            });
        }
        if self.lib.vecs.contains(&key) {
            return Ok(());
        }
        let mut payload = Vec::with_capacity(16 + 4 * v.len());
        payload.extend_from_slice(&key);
        for x in v {
            payload.extend_from_slice(&x.to_le_bytes());
        }
        self.vectors_log.append(&payload)?;
        self.pending_vectors += 1;
        self.lib.vecs.insert(key, v);
        Ok(())
    }

    /// Makes everything added so far durable and visible: logs fsynced, then
    /// the manifest replaced atomically.
    /// The in-memory manifest changes only once the new one is on disk, and
    /// only then are the appended bytes counted as committed (a failed
    /// commit's tail is cut when the writer is dropped).
    pub fn commit(&mut self) -> Result<()> {
        let mut m = self.lib.manifest.clone();
        m.papers.bytes = self.papers_log.sync()?;
        m.papers.records += self.pending_papers;
        m.vectors.bytes = self.vectors_log.sync()?;
        m.vectors.records += self.pending_vectors;
        m.generation += 1;
        m.version = manifest::FORMAT_VERSION;
        let root = &self.lib.root;
        m.retired.retain(|f| root.join(f).exists());
        if self.lib.has_removals {
            m.min_reader_version = m.min_reader_version.max(REMOVAL_MIN_READER);
        }
        m.writer = format!("papermap {}", env!("CARGO_PKG_VERSION"));
        m.write(&self.lib.root.join(MANIFEST))?;
        self.papers_log.mark_committed(m.papers.bytes);
        self.vectors_log.mark_committed(m.vectors.bytes);
        self.lib.manifest = m;
        self.pending_papers = 0;
        self.pending_vectors = 0;
        Ok(())
    }
}

/// Rewrites the vector log from its intact records into a new file and
/// commits the switch; the damaged records' papers get embedded again.
fn compact_vectors<M: Mode>(lib: &mut Library<M>) -> Result<()> {
    let old = lib.manifest.vectors.file.clone();
    let next = next_log_name("vectors", &old);
    let path = lib.root.join(&next);
    let mut app = Appender::open(&path, VECTORS_MAGIC, 0)?;
    let rows = lib.vecs.in_log_order();
    for (key, v) in &rows {
        let mut payload = key.to_vec();
        for x in *v {
            payload.extend_from_slice(&x.to_le_bytes());
        }
        app.append(&payload)?;
    }
    let rows = rows.len();
    let bytes = app.sync()?;
    let mut m = lib.manifest.clone();
    m.vectors = LogState {
        file: next,
        bytes,
        records: rows as u64,
    };
    m.generation += 1;
    m.retired.push(old.clone());
    m.write(&lib.root.join(MANIFEST))?;
    app.mark_committed(bytes);
    lib.manifest = m;
    // The vector log is a cache: every intact record is in the new file.
    let _ = fs::remove_file(lib.root.join(old));
    lib.warnings.push(format!(
        "vector cache rewritten from its {} intact records",
        rows
    ));
    lib.vectors_damaged = false;
    Ok(())
}

pub(crate) fn next_log_name(stem: &str, current: &str) -> String {
    let n: u64 = current
        .strip_prefix(&format!("{stem}-"))
        .and_then(|s| s.strip_suffix(".log"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    format!("{stem}-{}.log", n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper(id: &str, title: &str, abs: &str) -> Paper {
        Paper {
            id: id.into(),
            title: title.into(),
            abs: abs.into(),
            ..Default::default()
        }
    }

    #[test]
    fn committed_papers_and_vectors_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        w.set_model("m", 2).unwrap();
        assert_eq!(
            w.add_paper(paper("a", "Alpha", "")).unwrap(),
            Added::New("a".into())
        );
        assert_eq!(
            w.add_paper(paper("x", "ALPHA!", "text")).unwrap(),
            Added::Updated("a".into())
        );
        assert_eq!(
            w.add_paper(paper("y", "alpha", "other")).unwrap(),
            Added::Duplicate("a".into())
        );
        assert_eq!(
            w.add_paper(paper("a", "Beta", "")).unwrap(),
            Added::New("a-2".into())
        );
        let dated = |year| Paper {
            year: Some(year),
            ..paper("b", "Bounded rationality", "")
        };
        assert_eq!(w.add_paper(dated(1990)).unwrap(), Added::New("b".into()));
        assert_eq!(w.add_paper(dated(2011)).unwrap(), Added::New("b-2".into()));
        assert_eq!(
            w.add_paper(dated(1991)).unwrap(),
            Added::Duplicate("b".into())
        );
        w.put_vector([1; 16], &[0.6, 0.8]).unwrap();
        w.commit().unwrap();
        w.add_paper(paper("c", "Uncommitted", "")).unwrap();
        drop(w);

        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(lib.len(), 4);
        assert_eq!(lib.papers()[0].abs, "text");
        assert_eq!(lib.vector(&[1; 16]), Some([0.6f32, 0.8].as_slice()));
        assert!(lib.warnings.is_empty());
    }

    #[test]
    fn ingest_writer_merges_duplicates_read_back_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open_for_ingest(dir.path(), &WriteOptions::default()).unwrap();
        w.add_paper(paper("a", "Alpha", "")).unwrap();
        w.commit().unwrap();
        // The twin of a committed record, then of an uncommitted one.
        assert_eq!(
            w.add_paper(paper("x", "alpha", "filled")).unwrap(),
            Added::Updated("a".into())
        );
        w.add_paper(paper("b", "Beta", "")).unwrap();
        assert_eq!(
            w.add_paper(paper("y", "BETA", "also")).unwrap(),
            Added::Updated("b".into())
        );
        assert_eq!(
            w.add_paper(paper("z", "beta", "other")).unwrap(),
            Added::Duplicate("b".into())
        );
        w.commit().unwrap();
        drop(w);
        let mut w = Writer::open_for_ingest(dir.path(), &WriteOptions::default()).unwrap();
        assert_eq!(
            w.add_paper(paper("q", "Alpha", "x")).unwrap(),
            Added::Duplicate("a".into())
        );
        drop(w);
        let lib = Library::open(dir.path()).unwrap();
        let abs: Vec<&str> = lib.papers().iter().map(|p| p.abs.as_str()).collect();
        assert_eq!(abs, vec!["filled", "also"]);
    }

    #[test]
    fn damaged_vector_is_dropped_and_log_rewritten_on_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        w.set_model("m", 2).unwrap();
        w.put_vector([1; 16], &[1.0, 0.0]).unwrap();
        w.put_vector([2; 16], &[0.0, 1.0]).unwrap();
        w.commit().unwrap();
        drop(w);
        let p = dir.path().join("vectors-1.log");
        let mut bytes = fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&p, bytes).unwrap();

        let lib = Library::open(dir.path()).unwrap();
        assert!(lib.vector(&[2; 16]).is_none());
        assert_eq!(lib.warnings.len(), 1, "{:?}", lib.warnings);
        let w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        assert_eq!(w.cached_vectors(), 1);
        drop(w);
        let lib = Library::open(dir.path()).unwrap();
        assert!(lib.warnings.is_empty());
        assert_eq!(lib.manifest().vectors.file, "vectors-2.log");
    }

    #[test]
    fn damaged_paper_is_reported_then_repaired_keeping_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        for i in 0..3 {
            w.add_paper(paper(&format!("p{i}"), &format!("Title {i}"), ""))
                .unwrap();
        }
        w.commit().unwrap();
        drop(w);
        let p = dir.path().join("papers-1.log");
        let mut bytes = fs::read(&p).unwrap();
        bytes[8 + 8 + 20] ^= 0x20; // first record's payload
        fs::write(&p, bytes).unwrap();
        let err = Library::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("record 0 at byte 8: checksum mismatch"),
            "{err}"
        );
        let r = repair(dir.path(), &RepairOptions::default()).unwrap();
        let lost: Vec<_> = r.lost_papers().collect();
        assert_eq!(lost.len(), 1, "{:?}", r.lines());
        assert_eq!(lost[0].ids, vec![("p0".to_string(), false)]);
        assert_eq!(lost[0].offset, 8);
        assert!(dir.path().join("papers-1.log.damaged").exists());
        let lib = Library::open(dir.path()).unwrap();
        let ids: Vec<&str> = lib.papers().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, vec!["p1", "p2"]);
    }

    /// A small library: four papers (one with authors), each with a 2-d
    /// vector keyed under model "m".
    fn small_library(root: &Path) -> Vec<(Paper, Vec<f32>)> {
        let mut w = Writer::open(root, &WriteOptions::default()).unwrap();
        w.set_model("m", 2).unwrap();
        let mut out = Vec::new();
        for i in 0..4 {
            let mut p = paper(&format!("p{i}"), &format!("T{i}"), &format!("a{i}"));
            if i == 1 {
                p.authors = vec!["Ada Lovelace".into()];
            }
            let v = vec![i as f32, 1.0 - i as f32];
            w.add_paper(p.clone()).unwrap();
            w.put_vector(vec_key("m", &p.embed_text()), &v).unwrap();
            out.push((p, v));
        }
        w.commit().unwrap();
        out
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }

    /// Byte ranges of each frame's payload in a clean log.
    fn payload_ranges(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut at = 8;
        while at < bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            out.push(at + 8..at + 8 + len);
            at += 8 + len;
        }
        out
    }

    /// The damage matrix in small: every byte of the papers log, the vector
    /// log and the manifest flipped in turn; after `repair` every record
    /// whose payload was not hit is there, with its full content, and the
    /// model is found again when the manifest was rebuilt.
    #[test]
    fn repair_keeps_every_intact_record_after_any_single_byte_flip() {
        let base = tempfile::tempdir().unwrap();
        let clean = base.path().join("clean");
        let want = small_library(&clean);
        let opts = RepairOptions {
            known_models: vec!["other".into(), "m".into()],
            ..Default::default()
        };
        for file in ["papers-1.log", "vectors-1.log", MANIFEST] {
            let original = fs::read(clean.join(file)).unwrap();
            let ranges = if file.ends_with(".log") {
                payload_ranges(&original)
            } else {
                Vec::new()
            };
            for i in 0..original.len() {
                let mask = [0x01u8, 0x80, 0x5a, 0xff][i % 4];
                let lib = base.path().join(format!("t-{file}-{i}"));
                copy_dir(&clean, &lib);
                let mut b = original.clone();
                b[i] ^= mask;
                fs::write(lib.join(file), &b).unwrap();
                let hit = ranges.iter().position(|r| r.contains(&i));
                let r = repair(&lib, &opts)
                    .unwrap_or_else(|e| panic!("{file} byte {i}: repair failed: {e}"));
                let got = Library::open(&lib)
                    .unwrap_or_else(|e| panic!("{file} byte {i}: {e}\n{:#?}", r.lines()));
                let ctx = format!("{file} byte {i} mask {mask:#x}: {:#?}", r.lines());
                let lost_paper = file.starts_with("papers").then_some(hit).flatten();
                let lost_vector = file.starts_with("vectors").then_some(hit).flatten();
                let papers: Vec<&Paper> = want
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| Some(*k) != lost_paper)
                    .map(|(_, (p, _))| p)
                    .collect();
                assert_eq!(got.papers().iter().collect::<Vec<_>>(), papers, "{ctx}");
                assert_eq!(
                    got.manifest().model,
                    Some(ModelStamp {
                        id: "m".into(),
                        dim: 2
                    }),
                    "{ctx}"
                );
                for (k, (p, v)) in want.iter().enumerate() {
                    let stored = got.vector(&vec_key("m", &p.embed_text()));
                    if Some(k) == lost_vector {
                        assert_eq!(stored, None, "{ctx}");
                    } else {
                        assert_eq!(stored, Some(v.as_slice()), "{ctx}");
                    }
                }
                assert!(got.warnings.is_empty(), "{ctx}: {:?}", got.warnings);
                if let Some(k) = lost_paper {
                    let ids: Vec<_> = r.lost_papers().flat_map(|l| l.ids.clone()).collect();
                    assert_eq!(r.lost_papers().count(), 1, "{ctx}");
                    // The id is legible unless the flip hit it.
                    if ids.is_empty() || ids[0].0 != format!("p{k}") {
                        assert!(i < ranges[k].start + 16, "{ctx}: {ids:?}");
                    }
                } else {
                    assert_eq!(r.lost_papers().count(), 0, "{ctx}");
                }
                fs::remove_dir_all(&lib).unwrap();
            }
        }
    }

    #[test]
    fn a_missing_manifest_is_rebuilt_and_a_non_library_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let want = small_library(dir.path());
        fs::remove_file(dir.path().join(MANIFEST)).unwrap();
        let err = Library::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("check --repair"), "{err}");
        // A writer must not take the logs for empty (it would cut them).
        let log_len = fs::metadata(dir.path().join("papers-1.log")).unwrap().len();
        let Err(err) = Writer::open(dir.path(), &WriteOptions::default()) else {
            panic!("a writer opened a library whose manifest is missing");
        };
        assert!(err.to_string().contains("check --repair"), "{err}");
        assert_eq!(
            fs::metadata(dir.path().join("papers-1.log")).unwrap().len(),
            log_len
        );
        let r = repair(
            dir.path(),
            &RepairOptions {
                known_models: vec!["m".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(r.manifest_rebuilt.is_some());
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(lib.len(), want.len());
        assert_eq!(lib.cached_vectors(), want.len());

        let nothing = dir.path().join("nothing-here");
        for e in [
            Library::open(&nothing).unwrap_err(),
            Library::open(&dir.path().join(MANIFEST)).unwrap_err(),
            repair(&nothing, &RepairOptions::default()).unwrap_err(),
        ] {
            assert!(matches!(e, Error::NoLibrary { .. }), "{e}");
        }
        fs::create_dir(&nothing).unwrap();
        assert!(matches!(
            Library::open(&nothing).unwrap_err(),
            Error::NoLibrary { .. }
        ));
    }

    #[test]
    fn temp_files_of_dead_processes_are_removed_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        small_library(dir.path());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let derived = dir.path().join("derived");
        fs::create_dir_all(&derived).unwrap();
        let stale = derived.join(format!(".vectors.f32.tmp.{dead}"));
        let live = dir
            .path()
            .join(format!(".MANIFEST.json.tmp.{}", std::process::id()));
        fs::write(&stale, b"half a matrix").unwrap();
        fs::write(&live, b"being written").unwrap();
        let lib = Library::open(dir.path()).unwrap();
        let left = lib.leftovers();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].contains(".vectors.f32.tmp."), "{left:?}");
        let w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        assert!(w.warnings.iter().any(|x| x.contains("removed 1 temp file")));
        drop(w);
        assert!(!stale.exists());
        assert!(live.exists(), "a live process's temp file is never removed");
    }

    /// Found by the crash test: a kill before a new library's first commit
    /// must leave an empty library, not one whose manifest looks lost.
    #[test]
    fn a_crash_before_the_first_commit_leaves_an_empty_library() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        w.add_paper(paper("a", "Alpha", "")).unwrap();
        w.papers_log.flush().unwrap();
        std::mem::forget(w); // no drop: as if killed (the lock goes with the process)
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(lib.len(), 0);
        assert_eq!(lib.leftovers().len(), 1, "{:?}", lib.leftovers());
    }

    #[test]
    fn check_repair_removes_dead_temp_files_and_cuts_an_interrupted_tail() {
        let dir = tempfile::tempdir().unwrap();
        small_library(dir.path());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".MANIFEST.json.tmp.{dead}"));
        fs::write(&stale, b"{").unwrap();
        let log = dir.path().join("vectors-1.log");
        let committed = fs::metadata(&log).unwrap().len();
        let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, &[3u8; 21]).unwrap();
        drop(f);
        assert_eq!(Library::open(dir.path()).unwrap().leftovers().len(), 2);
        let r = repair(dir.path(), &RepairOptions::default()).unwrap();
        assert_eq!(r.removed_temp_files, vec![stale.clone()]);
        assert_eq!(r.cut_tails, vec![("vectors-1.log".to_string(), 21)]);
        assert!(!stale.exists());
        assert_eq!(fs::metadata(&log).unwrap().len(), committed);
        let lib = Library::open(dir.path()).unwrap();
        assert!(lib.leftovers().is_empty());
        assert_eq!(lib.cached_vectors(), 4);
    }

    #[test]
    fn a_failed_commit_leaves_no_tail_and_the_retry_works() {
        let dir = tempfile::tempdir().unwrap();
        small_library(dir.path());
        let committed = fs::metadata(dir.path().join("papers-1.log")).unwrap().len();
        // The manifest's temp path cannot be created: the commit fails as
        // on a full disk, after the logs were appended and synced.
        let tmp = manifest::temp_path(&dir.path().join(MANIFEST));
        fs::create_dir(&tmp).unwrap();
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        w.add_paper(paper("new", "New paper", "x")).unwrap();
        assert!(w.commit().is_err());
        drop(w);
        let len = fs::metadata(dir.path().join("papers-1.log")).unwrap().len();
        assert_eq!(len, committed, "the failed write's tail was cut");
        assert_eq!(Library::open(dir.path()).unwrap().len(), 4);
        fs::remove_dir(&tmp).unwrap();
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        w.add_paper(paper("new", "New paper", "x")).unwrap();
        w.commit().unwrap();
        drop(w);
        assert_eq!(Library::open(dir.path()).unwrap().len(), 5);
    }
}
