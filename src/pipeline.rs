//! The stages wired together, as the commands use them: `add` (ingest,
//! embed what is new, refresh the index) and `topics` (in `topics.rs`:
//! cluster, label, keep ids stable, cache the result as a derived file).

use std::path::{Path, PathBuf};

use crate::embed::{EmbedOptions, EmbedReport, Embedder, embed_library};
use crate::error::Result;
use crate::index::{SearchOptions, refresh_derived};
use crate::ingest::{FileReport, IngestOptions, ingest};
use crate::store::{Library, WriteOptions, Writer};

mod topics;
pub use topics::{
    TOPIC_STATE_FILE, TopicOptions, TopicState, merge_topics, pin_k, rename_topic, topic_space,
    topics,
};

/// Makes the real or test embedder on demand: only when there is something
/// to embed, so a run with nothing new never loads the model.
pub type EmbedderFactory<'a> = &'a mut dyn FnMut() -> Result<Box<dyn Embedder>>;

/// What `add` did.
#[derive(Debug, Default)]
pub struct AddReport {
    pub files: Vec<FileReport>,
    pub embed: EmbedReport,
    pub index_built: bool,
    pub warnings: Vec<String>,
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
pub fn add(
    root: &Path,
    paths: &[PathBuf],
    opts: &AddOptions,
    make: EmbedderFactory,
) -> Result<AddReport> {
    // Ingest holds only ids and identity keys in memory (bounded by the
    // number of papers, not their text); embedding then opens the library
    // in full. The lock is released in between: another writer may slip in,
    // which is harmless since both steps work from what is committed.
    crate::ingest::check_inputs(paths)?;
    let mut w = Writer::open_for_ingest(root, &opts.write)?;
    let mut report = AddReport {
        warnings: w.warnings.clone(),
        ..Default::default()
    };
    report.files = ingest(&mut w, paths, &opts.ingest)?;
    drop(w);
    if opts.no_embed {
        return Ok(report);
    }
    let mut w = Writer::open(root, &opts.write)?;
    let (e, built) = embed_and_index(&mut w, opts, make)?;
    report.embed = e;
    report.index_built = built;
    Ok(report)
}

/// Embeds what is missing (loading the model only if needed) and makes sure
/// the persisted HNSW index matches the library.
pub fn embed_and_index(
    w: &mut Writer,
    opts: &AddOptions,
    make: EmbedderFactory,
) -> Result<(EmbedReport, bool)> {
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
        return Ok((embed, false));
    }
    let rebuilt = refresh_derived(w.library(), &opts.search)?;
    crate::lexical::Bm25::load_or_build(w.library(), &w.library().fingerprint(), true)?;
    Ok((embed, rebuilt))
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
