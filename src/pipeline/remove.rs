//! `remove`: papers named by id, DOI or arXiv id leave the library.
//!
//! Every name is resolved before anything is written, so one unknown name
//! (unless `ignore_missing`) removes nothing. The removal is one commit of
//! removal records (`store::Record::Remove`), as crash-safe as an add; the
//! removal is then noted for the derived files (`store::derived::Removals`)
//! and they are refreshed from the new state: the matrix, the HNSW graph and
//! the lexical index drop the removed rows (a pass over each, not a build). The dead records are reclaimed by a later
//! compaction (`store::compact`).

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::index::{DerivedReport, SearchOptions, refresh_derived};
use crate::paper::Paper;
use crate::store::derived::{Built, RemovalStep, Removals};
use crate::store::{Library, WriteOptions, Writer, compact::Compacted};

/// A paper named for removal, and where it was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveRef {
    /// An id, DOI or arXiv id.
    pub name: String,
    /// `FILE:LINE` for a name read from a list, empty for an argument.
    pub origin: String,
}

impl RemoveRef {
    pub fn arg(name: &str) -> RemoveRef {
        RemoveRef {
            name: name.trim().to_string(),
            origin: String::new(),
        }
    }

    fn located(&self, what: &str) -> String {
        if self.origin.is_empty() {
            what.to_string()
        } else {
            format!("{}: {what}", self.origin)
        }
    }
}

/// Reads a removal list: one id, DOI or arXiv id per line; blank lines and
/// `#` comments (whole lines or after the name) are skipped.
pub fn read_list(path: &Path) -> Result<Vec<RemoveRef>> {
    let bytes = std::fs::read(path).at(path)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Input {
        path: path.to_path_buf(),
        reason: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        let name = name.trim_start_matches('\u{feff}');
        if name.is_empty() {
            continue;
        }
        if name.contains(char::is_whitespace) {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: n as u64 + 1,
                reason: format!("{name:?} is not one id, DOI or arXiv id (one per line)"),
            });
        }
        out.push(RemoveRef {
            name: name.to_string(),
            origin: format!("{}:{}", path.display(), n + 1),
        });
    }
    Ok(out)
}

/// Options for `remove`.
#[derive(Debug, Clone, Default)]
pub struct RemoveOptions {
    pub write: WriteOptions,
    pub search: SearchOptions,
    /// Remove the papers that are found and report the others, instead of
    /// failing (and removing nothing) at the first unknown name.
    pub ignore_missing: bool,
}

/// What `remove` did.
#[derive(Debug, Default)]
pub struct RemoveReport {
    /// (id, title) of each paper removed.
    pub removed: Vec<(String, String)>,
    /// Names that matched no paper (with `ignore_missing`), located.
    pub missing: Vec<String>,
    /// Names that repeat a paper already named.
    pub repeated: usize,
    /// How the derived files were brought to the new state (`None`: left
    /// for `papermap embed`, or nothing is left).
    pub index: Option<DerivedReport>,
    /// Papers still waiting for a vector: derived files are then left for
    /// `papermap embed` (readers answer meanwhile).
    pub not_embedded: usize,
    /// A compaction the writer did when it opened.
    pub compacted: Option<Compacted>,
    pub warnings: Vec<String>,
}

/// The paper a name means, exactly: its id, DOI or arXiv id (never a title:
/// removal does not guess).
pub fn find_exact(lib: &Library, name: &str) -> Option<usize> {
    if let Some(i) = lib.index_of(name) {
        return Some(i);
    }
    let doi = crate::ingest::normalize::clean_doi(name).filter(|_| name.contains("10."));
    let arxiv = crate::ingest::normalize::clean_arxiv(name);
    if doi.is_none() && arxiv.is_none() {
        return None;
    }
    // No title: only the DOI and arXiv keys are looked up.
    let probe = Paper {
        doi,
        arxiv,
        ..Default::default()
    };
    lib.find_same(&probe)
}

/// Removes the named papers (see the module header).
pub fn remove(root: &Path, names: &[RemoveRef], opts: &RemoveOptions) -> Result<RemoveReport> {
    crate::store::require_library(root)?;
    let mut w = Writer::open(root, &opts.write)?;
    let mut report = RemoveReport {
        warnings: w.warnings.clone(),
        compacted: w.compacted.clone(),
        ..Default::default()
    };
    let mut ids: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    for r in names {
        match find_exact(w.library(), &r.name) {
            Some(i) => {
                let p = &w.library().papers()[i];
                if ids.contains(&p.id) {
                    report.repeated += 1;
                } else {
                    ids.push(p.id.clone());
                    report.removed.push((p.id.clone(), p.title.clone()));
                }
            }
            None => missing.push(r.located(&format!("'{}'", r.name))),
        }
    }
    if !missing.is_empty() && !opts.ignore_missing {
        return Err(Error::Query(format!(
            "no paper with the id, DOI or arXiv id {} in the library; nothing was removed",
            missing.join(", ")
        )));
    }
    report.missing = missing;
    if ids.is_empty() {
        return Ok(report);
    }
    let before = Built {
        fingerprint: w.library().fingerprint(),
        rows: w.library().len(),
    };
    let mut rows: Vec<usize> = ids
        .iter()
        .filter_map(|id| w.library().index_of(id))
        .collect();
    rows.sort_unstable();
    w.remove_papers(&ids)?;
    w.commit()?;
    // So that the derived files drop these rows instead of being built
    // again. Only a shortcut: the removal is committed, so a failure to
    // note it (or a crash before) means a rebuild, said as a warning.
    let step = RemovalStep {
        from: before.fingerprint,
        from_rows: before.rows,
        to: w.library().fingerprint(),
        removed: rows,
    };
    if let Err(e) = Removals::record(&w.library().derived_dir(), step) {
        report.warnings.push(format!(
            "could not note the removal for the search files ({e}); they will be built again"
        ));
    }
    refresh(&w, &opts.search, &mut report)?;
    Ok(report)
}

/// Rebuilds the derived files for the new state when every paper has its
/// vector (else `embed` does it; readers rebuild what they need meanwhile).
pub(crate) fn refresh(w: &Writer, search: &SearchOptions, report: &mut RemoveReport) -> Result<()> {
    report.not_embedded = super::missing_vectors(w.library());
    if report.not_embedded == 0 && !w.is_empty() {
        report.index = Some(refresh_derived(w.library(), search)?);
    }
    Ok(())
}

/// Paths named by `--file` that do not exist are an error before anything
/// is opened.
pub fn check_lists(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        if !p.is_file() {
            return Err(Error::Input {
                path: p.clone(),
                reason: "no such file".into(),
            });
        }
    }
    Ok(())
}
