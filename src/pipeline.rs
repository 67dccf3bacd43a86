//! The stages wired together, as the commands use them: `add` (ingest,
//! embed what is new, refresh the index) and `topics` (cluster, label,
//! keep ids stable, cache the result as a derived file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cluster::stable::{PriorTopic, assign_ids};
use crate::cluster::{self, KMeansOptions};
use crate::embed::{EmbedOptions, EmbedReport, Embedder, embed_library, normalize};
use crate::error::Result;
use crate::index::{Matrix, SearchOptions, refresh_derived};
use crate::ingest::{FileReport, IngestOptions, ingest};
use crate::label;
use crate::report::{LibraryInfo, MapPoint, Member, Params, TopicReport, TopicView, round4};
use crate::store::manifest::{read_checked_json, write_checked_json};
use crate::store::{Library, WriteOptions, Writer};

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
    let (e, built) = embed_and_index(&mut w, opts, make)?;
    report.embed = e;
    report.index_built = built;
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

/// Options for topics.
#[derive(Debug, Clone)]
pub struct TopicOptions {
    /// Number of topics; chosen by silhouette when None.
    pub k: Option<usize>,
    /// Default 42.
    pub seed: u64,
    /// Keywords per topic. Default 10.
    pub keywords: usize,
    /// Representative papers per topic. Default 5.
    pub representatives: usize,
}

impl Default for TopicOptions {
    fn default() -> Self {
        TopicOptions {
            k: None,
            seed: 42,
            keywords: 10,
            representatives: 5,
        }
    }
}

/// The cached result of a topics run.
#[derive(Debug, Serialize, Deserialize)]
struct TopicsFile {
    /// Bumped whenever clustering or labelling changes, so a cache written
    /// by an older papermap is recomputed rather than reused.
    #[serde(default)]
    algorithm: u32,
    requested_k: Option<usize>,
    report: TopicReport,
}

const TOPICS_FILE: &str = "topics.json";
const TOPICS_ALGORITHM: u32 = 4;

/// Computes topics, or returns the cached ones when the library and the
/// parameters are unchanged. Ids are kept stable against the previous run.
pub fn topics(lib: &Library, opts: &TopicOptions) -> Result<TopicReport> {
    let path = lib.derived_dir().join(TOPICS_FILE);
    let fingerprint = lib.fingerprint();
    let previous: Option<TopicsFile> = read_checked_json(&path);
    if let Some(prev) = &previous
        && prev.algorithm == TOPICS_ALGORITHM
        && prev.report.library.fingerprint == fingerprint
        && prev.requested_k == opts.k
        && prev.report.params.seed == opts.seed
        && prev
            .report
            .topics
            .first()
            .is_none_or(|t| t.keywords.len() <= opts.keywords)
    {
        let mut r = prev.report.clone();
        restore_rows(lib, &mut r);
        return Ok(r);
    }
    let prior: Vec<PriorTopic> = previous
        .as_ref()
        .map(|p| {
            p.report
                .topics
                .iter()
                .map(|t| PriorTopic {
                    id: t.id,
                    members: t.papers.iter().map(|m| m.id.clone()).collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let report = compute_topics(lib, opts, &prior, fingerprint)?;
    std::fs::create_dir_all(lib.derived_dir())
        .map_err(|e| crate::Error::io(lib.derived_dir(), e))?;
    let file = TopicsFile {
        algorithm: TOPICS_ALGORITHM,
        requested_k: opts.k,
        report: report.clone(),
    };
    write_checked_json(&path, &file)?;
    Ok(report)
}

/// Rows are not stored in the cache; find them again by paper id.
fn restore_rows(lib: &Library, r: &mut TopicReport) {
    for t in &mut r.topics {
        for m in t.representatives.iter_mut().chain(t.papers.iter_mut()) {
            m.row = lib.index_of(&m.id).unwrap_or(0);
        }
    }
}

fn compute_topics(
    lib: &Library,
    opts: &TopicOptions,
    prior: &[PriorTopic],
    fingerprint: String,
) -> Result<TopicReport> {
    let m = Matrix::load_or_build(lib, &fingerprint)?;
    let n = m.rows();
    if n == 0 {
        return Err(crate::Error::Empty(
            "the library is empty; add papers first".into(),
        ));
    }
    let (k, k_scores, chosen_by) = match opts.k {
        Some(k) => (k, Vec::new(), "user"),
        None => {
            let (k, s) = cluster::choose_k(m.as_slice(), m.dim, opts.seed)?;
            (k, s, "silhouette")
        }
    };
    let c = cluster::kmeans(m.as_slice(), m.dim, &KMeansOptions::new(k, opts.seed))?;
    let papers = lib.papers();
    let keywords = label::keywords(papers, &c.labels, k, opts.keywords);

    // Unit centroids: distances and topic similarity are cosines.
    let mut unit: Vec<Vec<f32>> = c.centroids.chunks(m.dim).map(<[f32]>::to_vec).collect();
    unit.iter_mut().for_each(|v| normalize(v));
    let mut members: Vec<Vec<Member>> = vec![Vec::new(); k];
    for (row, &l) in c.labels.iter().enumerate() {
        let p = &papers[row];
        members[l].push(Member {
            id: p.id.clone(),
            title: p.title.clone(),
            year: p.year,
            distance: round4(1.0 - crate::index::dot(m.row(row), &unit[l])),
            row,
        });
    }
    for ms in &mut members {
        ms.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    }
    let ids = assign_ids(
        prior,
        &members
            .iter()
            .map(|ms| ms.iter().map(|x| x.id.clone()).collect())
            .collect::<Vec<_>>(),
    );
    let mut topics: Vec<TopicView> = (0..k)
        .filter(|&c| !members[c].is_empty())
        .map(|ci| {
            let mut similar: Vec<(u32, f32)> = (0..k)
                .filter(|&o| o != ci && !members[o].is_empty())
                .map(|o| (ids[o].0, round4(crate::index::dot(&unit[ci], &unit[o]))))
                .collect();
            similar.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            similar.truncate(3);
            TopicView {
                id: ids[ci].0,
                name: label::name(&keywords[ci]),
                keywords: keywords[ci].clone(),
                size: members[ci].len(),
                change: ids[ci].1,
                representatives: members[ci]
                    .iter()
                    .take(opts.representatives)
                    .cloned()
                    .collect(),
                papers: members[ci].clone(),
                similar,
            }
        })
        .collect();
    topics.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
    let topic_of: HashMap<usize, u32> = (0..k).map(|c| (c, ids[c].0)).collect();
    let xy = cluster::project_2d(m.as_slice(), m.dim, opts.seed)?;
    let map = xy
        .iter()
        .enumerate()
        .map(|(row, p)| MapPoint {
            id: papers[row].id.clone(),
            topic: topic_of[&c.labels[row]],
            x: round4(p[0]),
            y: round4(p[1]),
        })
        .collect();
    Ok(TopicReport {
        generator: format!("papermap {}", env!("CARGO_PKG_VERSION")),
        library: LibraryInfo {
            papers: n,
            model: lib
                .manifest()
                .model
                .as_ref()
                .map_or(String::new(), |m| m.id.clone()),
            fingerprint,
        },
        params: Params {
            k,
            seed: opts.seed,
            k_chosen_by: chosen_by.into(),
            k_scores: k_scores
                .into_iter()
                .map(|s| cluster::KScore {
                    k: s.k,
                    silhouette: round4(s.silhouette),
                })
                .collect(),
            inertia: (c.inertia * 1e4).round() / 1e4,
        },
        topics,
        map,
    })
}
