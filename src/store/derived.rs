//! Derived files: what `check` says about them and how they are kept
//! current. `check` lists each one found damaged (its
//! checksum or header fails) or stale (built for another state of the
//! library): both are rebuilt or extended when next needed, so neither is an
//! error, but the user is told. `inspect` only reads the parts every
//! derived file shares: a magic string, a checksum and the library
//! fingerprint it was built from.
//!
//! It also owns the one load-or-build rule every derived file follows
//! ([`DerivedFile`], [`refresh`]): current files are used, a file built for
//! a prefix of the library (papers appended since) is extended, a file
//! built before papers were removed has their rows dropped (the removal
//! steps are kept in [`REMOVALS_FILE`], see [`Removals`]) and is then
//! extended, anything else is rebuilt; writes are atomic (temp file,
//! fsync, rename).

use std::fs;
use std::path::Path;

use super::Library;
use super::codec::{Reader, unseal};
use super::delta::Delta;
use super::manifest::{read_checked_json, write_checked_json};
use crate::error::Result;

/// A derived file that will be rebuilt, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedProblem {
    pub file: String,
    /// "damaged (...)" or "stale (...)".
    pub state: String,
}

/// Damaged or stale files in `dir` (the library's `derived/`) for a library
/// whose fingerprint is `fingerprint`. Absent files are not listed.
pub fn inspect(dir: &Path, fingerprint: &str) -> Vec<DerivedProblem> {
    let mut out = Vec::new();
    let mut note = |file: &str, state: Option<String>| {
        if let Some(state) = state {
            out.push(DerivedProblem {
                file: format!("derived/{file}"),
                state,
            });
        }
    };
    if let Ok(b) = fs::read(dir.join("vectors.f32")) {
        note("vectors.f32", matrix_state(&b, fingerprint));
    }
    for (file, magic) in [
        ("hnsw.graph", b"PMHNSW".as_slice()),
        ("lexical.bin", b"PMBM25".as_slice()),
    ] {
        if let Ok(b) = fs::read(dir.join(file)) {
            note(file, sealed_state(&b, magic, fingerprint, &dir.join(file)));
        }
    }
    let topics = dir.join("topics.json");
    if topics.exists() {
        let state = match read_checked_json::<serde_json::Value>(&topics) {
            None => Some("damaged (not valid JSON or checksum mismatch)".to_string()),
            Some(v) if v["fingerprint"] != fingerprint => {
                Some("stale (computed for another state of the library)".to_string())
            }
            Some(_) => None,
        };
        note("topics.json", state);
    }
    out
}

/// The matrix: "PMMATRX" header (magic 8, version 4, dim 4, rows 8, crc32
/// of the data 4, fingerprint length 1 + bytes), padded to 64 bytes.
fn matrix_state(b: &[u8], fingerprint: &str) -> Option<String> {
    const HEADER: usize = 64;
    if b.len() < HEADER || !b.starts_with(b"PMMATRX") {
        return Some("damaged (header)".into());
    }
    let crc = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
    let dim = u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")) as u64;
    let rows = u64::from_le_bytes(b[16..24].try_into().expect("8 bytes"));
    // Bytes past the rows are an in-place append killed before its header.
    let end = rows
        .checked_mul(dim * 4)
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| n.checked_add(HEADER))
        .filter(|&end| end <= b.len());
    let Some(end) = end else {
        return Some("damaged (shorter than its rows)".into());
    };
    if crc32fast::hash(&b[HEADER..end]) != crc {
        return Some("damaged (checksum mismatch)".into());
    }
    let fp_len = b[28] as usize;
    if b.get(29..29 + fp_len) != Some(fingerprint.as_bytes()) {
        return Some("stale (built for another state of the library)".into());
    }
    None
}

/// Files sealed with a CRC32 trailer: magic, u32 version, then the
/// fingerprint as length-prefixed bytes; a file at `path` with segments
/// beside it ([`Delta`]) is at the state they take it to.
fn sealed_state(b: &[u8], magic: &[u8], fingerprint: &str, path: &Path) -> Option<String> {
    let Some(body) = unseal(b) else {
        return Some("damaged (checksum mismatch)".into());
    };
    let mut r = Reader::new(body);
    if !r.take(8).is_some_and(|m| m.starts_with(magic)) {
        return Some("damaged (header)".into());
    }
    let _version = r.u32();
    let base = r.bytes();
    let extended = Delta::read(path).is_some_and(|d| {
        Some(d.base.fingerprint.as_bytes()) == base && d.state().fingerprint == fingerprint
    });
    if base != Some(fingerprint.as_bytes()) && !extended {
        return Some("stale (built for another state of the library)".into());
    }
    None
}

/// What a derived file says it was built for: the library fingerprint and
/// the number of papers (rows) it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub fingerprint: String,
    pub rows: usize,
}

/// How [`refresh`] brought a derived file up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The file on disk was current.
    Current,
    /// The file covered the library's first `from` papers and was extended
    /// with the rest (cost in proportion to the papers added; after
    /// papers were removed, their rows were dropped first).
    Extended { from: usize },
    /// The file was built before `removed` papers were removed: their rows
    /// were dropped (one pass over the file, nothing computed again).
    Shrunk { removed: usize },
    /// Built from the whole library (missing, damaged, or built for a state
    /// that is not a prefix of this one: a paper edited or removed).
    Rebuilt,
}

/// Who refreshes: the writer (holds the library lock; a failed save is an
/// error) or a reader (works in memory; saving is best effort, so a
/// read-only library still answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Writer,
    Reader,
}

/// A file in `derived/` computed from the library's papers in order: the
/// matrix, the HNSW graph, the lexical index, the topics. Each knows how to read its
/// header, load itself (every check: magic, version, fingerprint, rows,
/// checksum), build from scratch, extend a prefix and write itself
/// atomically; [`refresh`] owns the decision between them, for all.
pub trait DerivedFile: Sized {
    /// File name in `derived/`.
    const FILE: &'static str;
    /// What building needs beside the library (the graph: the matrix and
    /// the HNSW parameters).
    type Input<'a>: Copy;
    /// The header's fingerprint and rows, without checking the rest.
    fn peek(path: &Path) -> Option<Built>;
    /// The file when it is valid and built for exactly `built`.
    fn load(path: &Path, built: &Built, lib: &Library, input: Self::Input<'_>) -> Option<Self>;
    fn build(lib: &Library, input: Self::Input<'_>) -> Result<Self>;
    /// `self` covers the library's first `from` papers: add the others.
    fn extend(self, from: usize, lib: &Library, input: Self::Input<'_>) -> Result<Self>;
    /// `self` was built for an earlier state of the library whose rows
    /// `removed` (sorted, in that state's numbering) were removed since; its
    /// other rows are, in order, the library's first papers. Returns the
    /// file without those rows, as a build over the remaining papers would
    /// make it (the graph: an equivalent one), or `None` when this file
    /// cannot (it is then rebuilt).
    fn shrink(
        self,
        removed: &[usize],
        lib: &Library,
        input: Self::Input<'_>,
    ) -> Result<Option<Self>> {
        let _ = (removed, lib, input);
        Ok(None)
    }
    /// Brings the file at `path`, valid for `built` (the library's first
    /// `built.rows` papers), up to the library's state on disk without
    /// loading it: the new rows appended in place or as a segment beside
    /// it ([`super::delta`]). `Ok(false)` when this file does not (or not
    /// now: segments grown too large); it is then loaded, extended and
    /// saved whole. Default: never.
    fn append(path: &Path, built: &Built, lib: &Library, input: Self::Input<'_>) -> Result<bool> {
        let _ = (path, built, lib, input);
        Ok(false)
    }
    /// Writes the whole file atomically.
    fn save(&self, path: &Path, fingerprint: &str) -> Result<()>;
    /// Writes the file after `extend` from `from` rows; by default the whole
    /// file (the matrix appends to a copy instead).
    fn save_extended(&self, path: &Path, fingerprint: &str, from: usize) -> Result<()> {
        let _ = from;
        self.save(path, fingerprint)
    }
    /// A file built for exactly this library state that still has work to
    /// do: the topics, which leave out papers not embedded when they were
    /// computed and take them in once they are. Such a file is extended
    /// from `lib.len()` (no new rows, only the pending ones). Default: never.
    fn pending(&self, lib: &Library, input: Self::Input<'_>) -> bool {
        let _ = (lib, input);
        false
    }
}

/// The derived file `D` for the library's current state: loaded when
/// current, extended when it covers a prefix of the library, else built;
/// saved (see [`Access`]) unless it was current.
pub fn refresh<D: DerivedFile>(
    lib: &Library,
    input: D::Input<'_>,
    access: Access,
) -> Result<(D, Refresh)> {
    refresh_at(&lib.derived_dir().join(D::FILE), lib, input, access)
}

/// As [`refresh`] for a file at `path` (the topics of an exploratory run
/// are cached per k and seed under names of their own).
pub fn refresh_at<D: DerivedFile>(
    path: &Path,
    lib: &Library,
    input: D::Input<'_>,
    access: Access,
) -> Result<(D, Refresh)> {
    let fingerprint = lib.fingerprint();
    let want = Built {
        fingerprint: fingerprint.clone(),
        rows: lib.len(),
    };
    let current = D::load(path, &want, lib, input);
    // Rows dropped by removal steps, when the file went through them.
    let mut shrunk: Option<usize> = None;
    let old = match current {
        Some(d) if !d.pending(lib, input) => return Ok((d, Refresh::Current)),
        Some(d) => Some((d, lib.len())),
        None => match D::peek(path) {
            Some(b) if is_prefix(&b, lib) => {
                if access == Access::Writer
                    && D::append(path, &b, lib, input)?
                    && let Some(d) = D::load(path, &want, lib, input)
                {
                    return Ok((d, Refresh::Extended { from: b.rows }));
                }
                D::load(path, &b, lib, input).map(|d| (d, b.rows))
            }
            Some(b) => {
                let removals = Removals::read(&lib.derived_dir());
                match removals.steps_from(&b, lib) {
                    Some(steps) => D::load(path, &b, lib, input)
                        .map(|d| shrink_by(d, &steps, b.rows, lib, input))
                        .transpose()?
                        .flatten()
                        .map(|(d, rows, removed)| {
                            shrunk = Some(removed);
                            (d, rows)
                        }),
                    None => None,
                }
            }
            None => None,
        },
    };
    let (d, how) = match old {
        Some((d, from)) if from == lib.len() && shrunk.is_some() => (
            d,
            Refresh::Shrunk {
                removed: shrunk.unwrap_or(0),
            },
        ),
        Some((old, from)) => (old.extend(from, lib, input)?, Refresh::Extended { from }),
        None => (D::build(lib, input)?, Refresh::Rebuilt),
    };
    let saved = match how {
        // A shrunk file differs from the one on disk before its new rows.
        Refresh::Extended { from } if shrunk.is_none() => d.save_extended(path, &fingerprint, from),
        _ => d.save(path, &fingerprint),
    };
    match saved {
        Err(e) if access == Access::Writer => Err(e),
        _ => Ok((d, how)),
    }
}

/// Whether a file built for `b` covers a proper prefix of `lib` (papers
/// appended since).
fn is_prefix(b: &Built, lib: &Library) -> bool {
    b.rows > 0 && b.rows < lib.len() && lib.prefix_fingerprint(b.rows) == b.fingerprint
}

/// As [`refresh`] for the writer when the file's content is not needed
/// (the lexical index after an add): a file that covers a prefix of the
/// library is brought up to date on disk ([`DerivedFile::append`]) without
/// being loaded, when it can be.
pub fn update<D: DerivedFile>(lib: &Library, input: D::Input<'_>) -> Result<Refresh> {
    let path = lib.derived_dir().join(D::FILE);
    if let Some(b) = D::peek(&path).filter(|b| is_prefix(b, lib))
        && D::append(&path, &b, lib, input)?
    {
        return Ok(Refresh::Extended { from: b.rows });
    }
    Ok(refresh_at::<D>(&path, lib, input, Access::Writer)?.1)
}

/// `d` (built for `rows` rows) through the removal `steps`: the file, its
/// rows and the rows removed; `None` when a step cannot be applied.
fn shrink_by<D: DerivedFile>(
    mut d: D,
    steps: &[&RemovalStep],
    mut rows: usize,
    lib: &Library,
    input: D::Input<'_>,
) -> Result<Option<(D, usize, usize)>> {
    let mut removed = 0;
    for step in steps {
        match d.shrink(&step.removed, lib, input)? {
            Some(next) => d = next,
            None => return Ok(None),
        }
        rows -= step.removed.len();
        removed += step.removed.len();
    }
    Ok(Some((d, rows, removed)))
}

/// The file in `derived/` that lists the latest removals.
pub const REMOVALS_FILE: &str = "removals.json";

/// How many removal steps are kept (a file built before the oldest is
/// rebuilt).
const MAX_REMOVAL_STEPS: usize = 16;

/// One removal: the library went from state `from` (`from_rows` papers) to
/// state `to` by losing rows `removed` (sorted, numbered as in `from`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RemovalStep {
    pub from: String,
    pub from_rows: usize,
    pub to: String,
    pub removed: Vec<usize>,
}

/// The latest removals, oldest first (`derived/removals.json`), so that a
/// derived file built before them has its rows dropped instead of being
/// built again from every paper. Written by the writer right after the
/// removal's commit; a crash before it only means a rebuild, and a step
/// that no derived file starts from is simply not used.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Removals {
    pub steps: Vec<RemovalStep>,
}

impl Removals {
    /// The steps in `dir` (none when the file is missing or damaged).
    pub fn read(dir: &Path) -> Removals {
        read_checked_json(&dir.join(REMOVALS_FILE)).unwrap_or_default()
    }

    /// Adds a step (keeping the newest [`MAX_REMOVAL_STEPS`]) and writes the
    /// file atomically.
    pub fn record(dir: &Path, step: RemovalStep) -> Result<()> {
        let mut r = Removals::read(dir);
        r.steps.push(step);
        let extra = r.steps.len().saturating_sub(MAX_REMOVAL_STEPS);
        r.steps.drain(..extra);
        fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir.to_path_buf(), e))?;
        write_checked_json(&dir.join(REMOVALS_FILE), &r)
    }

    /// The consecutive steps that take a file built for `built` to a
    /// prefix of `lib` (all of it, or its first papers with the rest
    /// appended since), or `None`.
    pub fn steps_from(&self, built: &Built, lib: &Library) -> Option<Vec<&RemovalStep>> {
        let start = self
            .steps
            .iter()
            .position(|s| s.from == built.fingerprint && s.from_rows == built.rows)?;
        let mut out = Vec::new();
        let (mut fp, mut rows) = (built.fingerprint.as_str(), built.rows);
        for s in &self.steps[start..] {
            let ordered = s.removed.windows(2).all(|w| w[0] < w[1]);
            if s.from != fp || s.from_rows != rows || !ordered || s.removed.last() >= Some(&rows) {
                break;
            }
            out.push(s);
            fp = &s.to;
            rows -= s.removed.len();
            if rows <= lib.len() && lib.prefix_fingerprint(rows) == fp {
                return Some(out);
            }
        }
        None
    }
}
