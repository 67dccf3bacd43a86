//! The stages wired together, as the commands use them: `add` (ingest,
//! embed what is new, refresh the index) and `topics` (in `topics.rs`:
//! cluster, label, keep ids stable, cache the result as a derived file).

use std::path::{Path, PathBuf};

use crate::embed::{EmbedOptions, EmbedReport, Embedder, embed_library};
use crate::error::Result;
use crate::index::{DerivedReport, SearchOptions, refresh_derived};
use crate::ingest::{FileReport, IngestOptions, ingest};
use crate::store::{Library, WriteOptions, Writer};

mod remove;
pub use remove::{
    RemoveOptions, RemoveRef, RemoveReport, check_lists, find_exact, read_list, remove,
};
mod topics;
pub use topics::{
    TOPIC_STATE_FILE, TopicOptions, TopicState, merge_topics, pin_k, rename_topic, topic_space,
    topics, topics_current,
};

/// Makes the real or test embedder on demand: only when there is something
/// to embed, so a run with nothing new never loads the model.
pub type EmbedderFactory<'a> = &'a mut dyn FnMut() -> Result<Box<dyn Embedder>>;

/// What `add` did.
#[derive(Debug, Default)]
pub struct AddReport {
    pub files: Vec<FileReport>,
    pub embed: EmbedReport,
    /// What happened to the derived search files (`None`: nothing to index).
    pub index: Option<DerivedReport>,
    pub warnings: Vec<String>,
    /// Embedding and indexing were skipped (`--no-embed`).
    pub not_embedded: bool,
    /// Nothing could be stored in a library this `add` created, so it was
    /// removed again: a failed first `add` leaves nothing behind.
    pub removed_new_library: bool,
}

impl AddReport {
    /// Files that could not be read (to the end).
    pub fn failed_files(&self) -> impl Iterator<Item = &FileReport> {
        self.files.iter().filter(|f| f.error.is_some())
    }
}

/// Options for `add`.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    pub ingest: IngestOptions,
    pub embed: EmbedOptions,
    pub write: WriteOptions,
    /// Skip embedding and indexing (ingest only).
    pub no_embed: bool,
    pub search: SearchOptions,
}

/// Ingests `paths`, embeds papers without vectors, refreshes the HNSW index.
/// Every readable file is read even when others fail (their errors are in
/// the report); if this `add` created the library and stored nothing, the
/// library is removed again.
pub fn add(
    root: &Path,
    paths: &[PathBuf],
    opts: &AddOptions,
    make: EmbedderFactory,
) -> Result<AddReport> {
    crate::ingest::check_inputs(paths)?;
    let created = !root.exists();
    let fresh = created || !root.join("MANIFEST.json").exists();
    let result = add_to(root, paths, opts, make);
    let failed = match &result {
        Err(_) => true,
        Ok(r) => r.failed_files().next().is_some(),
    };
    // Only a library that holds nothing committed is removed: what a failed
    // run did commit (a first file stored before a later one failed) stays.
    if fresh && failed && holds_nothing(root) {
        remove_new_library(root, created);
        if let Ok(mut r) = result {
            r.removed_new_library = true;
            return Ok(r);
        }
    }
    result
}

/// True when the library at `root` has no committed paper (or no library
/// was made at all); a library that cannot be read is not "nothing".
fn holds_nothing(root: &Path) -> bool {
    match Library::open_without_vectors(root) {
        Ok(lib) => lib.is_empty(),
        Err(_) => std::fs::metadata(root.join("papers-1.log")).map_or(true, |m| m.len() <= 8),
    }
}

fn add_to(
    root: &Path,
    paths: &[PathBuf],
    opts: &AddOptions,
    make: EmbedderFactory,
) -> Result<AddReport> {
    // Ingest holds only ids and identity keys in memory (bounded by the
    // number of papers, not their text); embedding then opens the library
    // in full. The lock is released in between: another writer may slip in,
    // which is harmless since both steps work from what is committed.
    let mut w = Writer::open_for_ingest(root, &opts.write)?;
    let mut report = AddReport {
        warnings: w.warnings.clone(),
        ..Default::default()
    };
    report.files = ingest(&mut w, paths, &opts.ingest)?;
    let empty = w.is_empty();
    drop(w);
    if opts.no_embed {
        report.not_embedded = true;
        return Ok(report);
    }
    if empty && report.failed_files().next().is_some() {
        return Ok(report);
    }
    let mut w = Writer::open(root, &opts.write)?;
    let (e, index) = embed_and_index(&mut w, opts, make)?;
    report.embed = e;
    report.index = index;
    Ok(report)
}

/// Removes what a first `add` created: the whole folder if it made it,
/// else only the library's own files (the user's folder and anything else
/// in it stay).
fn remove_new_library(root: &Path, created: bool) {
    if created {
        let _ = std::fs::remove_dir_all(root);
        return;
    }
    for f in ["MANIFEST.json", "papers-1.log", "vectors-1.log", "LOCK"] {
        let _ = std::fs::remove_file(root.join(f));
    }
    let _ = std::fs::remove_dir_all(root.join("derived"));
}

/// The modification stamps of `paths` (length and mtime), to notice a file
/// rewritten by an exporter (Better BibTeX's automatic export). A database's
/// write-ahead log counts too (a Zotero commit may touch only it).
pub fn stamps(paths: &[PathBuf]) -> Vec<Option<(u64, std::time::SystemTime)>> {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)))
    };
    let mut out: Vec<_> = paths.iter().map(|p| stamp(p)).collect();
    out.extend(paths.iter().map(|p| {
        let mut wal = p.as_os_str().to_owned();
        wal.push("-wal");
        Some(stamp(Path::new(&wal)).unwrap_or((0, std::time::SystemTime::UNIX_EPOCH)))
    }));
    out
}

/// Waits until a file of `paths` changes from `last` and then holds still
/// for one more `poll` (an exporter may write in pieces); returns the new
/// stamps. Polls forever: the user ends it with Ctrl-C.
pub fn wait_for_change(
    paths: &[PathBuf],
    last: &[Option<(u64, std::time::SystemTime)>],
    poll: std::time::Duration,
) -> Vec<Option<(u64, std::time::SystemTime)>> {
    loop {
        std::thread::sleep(poll);
        let mut now = stamps(paths);
        if now.as_slice() != last && now.iter().all(Option::is_some) {
            loop {
                std::thread::sleep(poll);
                let again = stamps(paths);
                if again == now {
                    return now;
                }
                now = again;
            }
        }
    }
}

/// Embeds what is missing (loading the model only if needed) and brings
/// the derived search files up to date (extended with the papers appended
/// since, or rebuilt).
pub fn embed_and_index(
    w: &mut Writer,
    opts: &AddOptions,
    make: EmbedderFactory,
) -> Result<(EmbedReport, Option<DerivedReport>)> {
    let missing = missing_vectors(w.library());
    let embed = if missing > 0 {
        let mut embedder = make()?;
        embed_library(w, embedder.as_mut(), &opts.embed)?
    } else {
        EmbedReport {
            cached: w.len(),
            ..Default::default()
        }
    };
    if w.is_empty() {
        return Ok((embed, None));
    }
    let index = refresh_derived(w.library(), &opts.search)?;
    Ok((embed, Some(index)))
}

/// Papers whose text has no cached vector under the library's model.
pub fn missing_vectors(lib: &Library) -> usize {
    let Some(model) = lib.manifest().model.as_ref() else {
        return lib.len();
    };
    lib.papers()
        .iter()
        .filter(|p| {
            lib.vector(&crate::store::vec_key(&model.id, &p.embed_text()))
                .is_none()
        })
        .count()
}
