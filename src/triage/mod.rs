//! "What is new for me": `papermap match` scores papers that are not in the
//! library (a day of arXiv, a journal alert, a colleague's list) against the
//! library. Each incoming paper is compared with library papers exactly as
//! `related` compares a paper with the library ([`Engine::related_to`]:
//! dense cosine and TF-IDF cosine fused on raw scores), and its relevance is
//! the mean fused similarity of its `neighbours` closest library papers (1:
//! the single best match). The closest papers come with the terms they share
//! ("why"), and the topic the paper would join is the weighted majority of
//! those neighbours' topics in the stored main topics run.
//!
//! Only incoming papers are embedded, never the library; their vectors go to
//! a cache of their own (`cache.rs`), not to the library's vector log, so
//! looking at a paper does not grow the library. Incoming files are read by
//! the same ingest code as `add` (every format, Zotero's database, file:line
//! problems, duplicates merged by identity) into a private temporary library
//! that is removed afterwards; papers the library already holds (same DOI,
//! arXiv id or title and year: `Library::find_same`) are listed apart.
//! `add_matches` stores chosen papers through the store's writer and the
//! embedding pass, reusing the vectors computed here.
//!
//! Plain data in, plain data out: front ends (the CLI, a server) convert
//! their input into [`MatchOptions`] and render a [`MatchReport`]
//! (`render.rs` has Markdown and the self-contained HTML digest).

mod cache;
pub mod render;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

pub use cache::{CACHE_FILE, MAX_CACHED, VectorCache};

use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::ingest::{FileReport, IngestOptions};
use crate::lexical::paper_terms;
use crate::paper::Paper;
use crate::pipeline::{AddOptions, AddReport, EmbedderFactory, TOPIC_STATE_FILE, TopicState};
use crate::query::{DEFAULT_WEIGHT, Engine, Mode, Related, RelatedOptions, Resolved, resolve};
use crate::store::{Library, WriteOptions, Writer, vec_key};

/// Most results a match may list.
pub const MAX_TOP: usize = 100_000;
/// Most library neighbours a relevance may average.
pub const MAX_NEIGHBOURS: usize = 100;
/// Relevance averages this many closest library papers by default. On the
/// citation benchmark (`scripts/bench-triage`) 3 was chosen among 1, 3, 5
/// and 10 on fitting draws and reported on held-out draws.
pub const DEFAULT_NEIGHBOURS: usize = 3;
/// A part of the library (reading list, collection) up to this size is
/// scored paper by paper; larger parts go through the search indexes with
/// the rest of the library filtered out.
const DIRECT_LIMIT: usize = 5_000;
/// How much of the similarity to the `--not` papers is taken off: the same
/// half weight a reading list's negatives get in `related`.
const NOT_WEIGHT: f32 = 0.5;

/// Options of a match, checked by [`MatchOptions::check`].
#[derive(Debug, Clone)]
pub struct MatchOptions {
    /// Results listed, 1..=[`MAX_TOP`]. Default 50.
    pub top: usize,
    /// Only papers scoring at least this (finite). Default none.
    pub threshold: Option<f32>,
    /// Closest library papers whose fused similarity is averaged into the
    /// relevance, 1..=[`MAX_NEIGHBOURS`]. Default [`DEFAULT_NEIGHBOURS`].
    pub neighbours: usize,
    /// Closest library papers shown per result (with shared terms), 0..=10.
    /// Default 3.
    pub closest: usize,
    /// Default hybrid (as `related`).
    pub mode: Mode,
    /// Dense share of the hybrid score, 0..=1. Default [`DEFAULT_WEIGHT`].
    pub weight: f32,
    /// Match only against these library papers (id, DOI, arXiv id, title).
    pub like: Vec<String>,
    /// Papers close to these library papers score lower.
    pub not: Vec<String>,
    /// Match only against library papers in this Zotero collection path or
    /// below it ("Thesis" holds "Thesis/Chapter 2").
    pub collection: Option<String>,
    /// Words or phrases an incoming paper must all contain (title or
    /// abstract, compared as stemmed terms).
    pub require: Vec<String>,
    /// Words or phrases none of which an incoming paper may contain.
    pub exclude_terms: Vec<String>,
    /// Threads scoring incoming papers. Default: available cores (at most 8).
    pub threads: usize,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            top: 50,
            threshold: None,
            neighbours: DEFAULT_NEIGHBOURS,
            closest: 3,
            mode: Mode::Hybrid,
            weight: DEFAULT_WEIGHT,
            like: Vec::new(),
            not: Vec::new(),
            collection: None,
            require: Vec::new(),
            exclude_terms: Vec::new(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        }
    }
}

impl MatchOptions {
    /// Bounds of every option, checked once for every front end.
    pub fn check(&self) -> Result<()> {
        if !(1..=MAX_TOP).contains(&self.top) {
            return Err(Error::Invalid(format!(
                "--top must be between 1 and {MAX_TOP} (got {})",
                self.top
            )));
        }
        if let Some(t) = self.threshold
            && !t.is_finite()
        {
            return Err(Error::Invalid(format!(
                "--threshold must be a finite number (got {t})"
            )));
        }
        if !(1..=MAX_NEIGHBOURS).contains(&self.neighbours) {
            return Err(Error::Invalid(format!(
                "--neighbours must be between 1 and {MAX_NEIGHBOURS} (got {})",
                self.neighbours
            )));
        }
        if self.closest > 10 {
            return Err(Error::Invalid(format!(
                "closest papers shown must be between 0 and 10 (got {})",
                self.closest
            )));
        }
        if !(0.0..=1.0).contains(&self.weight) {
            return Err(Error::Invalid(format!(
                "weight must be between 0 and 1 (got {})",
                self.weight
            )));
        }
        if !(1..=256).contains(&self.threads) {
            return Err(Error::Invalid(format!(
                "threads must be between 1 and 256 (got {})",
                self.threads
            )));
        }
        if self
            .collection
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err(Error::Invalid("--collection cannot be empty".into()));
        }
        for (flag, list) in [
            ("--require", &self.require),
            ("--exclude-terms", &self.exclude_terms),
        ] {
            for w in list {
                if crate::text::terms(w).is_empty() {
                    return Err(Error::Invalid(format!(
                        "{flag} '{w}' has no searchable word (stop words and punctuation are ignored)"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Papers read from incoming files, duplicates merged, with the per-file
/// summaries (warnings name file:line).
#[derive(Debug, Default)]
pub struct Incoming {
    pub papers: Vec<Paper>,
    pub files: Vec<FileReport>,
}

/// Reads `paths` with `add`'s ingest code into a private temporary library
/// (removed on return), so every format, its problems and the identity
/// merging behave exactly as in `add`. A file that cannot be read is an
/// error naming it; bad records are skipped with file:line warnings
/// (`opts.strict` makes the first one an error).
pub fn read_incoming(paths: &[PathBuf], opts: &IngestOptions) -> Result<Incoming> {
    crate::ingest::check_inputs(paths)?;
    let tmp = TempDir::new()?;
    let mut w = Writer::open_for_ingest(&tmp.0, &WriteOptions::default())?;
    let files = crate::ingest::ingest(&mut w, paths, opts)?;
    drop(w);
    if let Some(f) = files.iter().find(|f| f.error.is_some()) {
        return Err(Error::Input {
            path: f.path.clone(),
            reason: format!(
                "cannot be matched: {}",
                f.error.as_deref().unwrap_or_default()
            ),
        });
    }
    let lib = Library::open_without_vectors(&tmp.0)?;
    Ok(Incoming {
        papers: lib.papers().to_vec(),
        files,
    })
}

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!(
            "papermap-match-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An incoming paper as reported (no verbatim original record).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaperInfo {
    pub id: String,
    pub title: String,
    #[serde(rename = "abstract")]
    pub abs: String,
    pub authors: Vec<String>,
    pub year: Option<i32>,
    pub date: Option<String>,
    pub doi: Option<String>,
    pub arxiv: Option<String>,
    pub url: Option<String>,
    pub venue: Option<String>,
    /// `file:line` it was read from.
    pub source: String,
}

impl PaperInfo {
    fn of(p: &Paper) -> PaperInfo {
        PaperInfo {
            id: p.id.clone(),
            title: p.title.clone(),
            abs: p.abs.clone(),
            authors: p.authors.clone(),
            year: p.year,
            date: p.first_published().map(|d| d.to_string()),
            doi: p.doi.clone(),
            arxiv: p.arxiv.clone(),
            url: p.url.clone(),
            venue: p.venue.clone(),
            source: p.source.clone(),
        }
    }
}

/// A library paper an incoming paper is close to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Closest {
    pub id: String,
    pub title: String,
    pub year: Option<i32>,
    pub score: f32,
    pub dense: f32,
    pub lexical: f32,
    /// Terms and phrases both papers share, weightiest first.
    pub why: Vec<String>,
}

/// The topic an incoming paper would join.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicGuess {
    pub id: u32,
    pub name: String,
    /// Share of the neighbours' similarity that lies in this topic (0..1).
    pub share: f32,
}

/// One scored incoming paper.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub rank: usize,
    pub paper: PaperInfo,
    /// The relevance results are sorted by: `mean` minus the `--not` penalty.
    pub score: f32,
    /// Fused similarity of the single closest library paper.
    pub best: f32,
    /// Mean fused similarity of the `neighbours` closest library papers.
    pub mean: f32,
    /// Subtracted for closeness to the `--not` papers.
    pub penalty: f32,
    /// Shared terms with the closest papers, weightiest first.
    pub why: Vec<String>,
    pub closest: Vec<Closest>,
    pub topic: Option<TopicGuess>,
    /// The record as read (for `add_matches`).
    #[serde(skip)]
    pub record: Paper,
    #[serde(skip)]
    vector: Vec<f32>,
}

/// An incoming paper the library already holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InLibrary {
    pub paper: PaperInfo,
    pub library_id: String,
    pub library_title: String,
}

/// What was compared with what, and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchSettings {
    pub mode: Mode,
    pub weight: f32,
    pub neighbours: usize,
    pub threshold: Option<f32>,
    pub top: usize,
    pub like: Vec<String>,
    pub not: Vec<String>,
    pub collection: Option<String>,
    pub require: Vec<String>,
    pub exclude_terms: Vec<String>,
}

/// Counts and times of a match.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MatchCounts {
    /// Distinct incoming papers.
    pub incoming: usize,
    pub in_library: usize,
    /// Left out by `--require` / `--exclude-terms`.
    pub filtered: usize,
    /// Scored (new, passing the keyword filters).
    pub scored: usize,
    pub below_threshold: usize,
    pub listed: usize,
    /// Library papers matched against (all, or the `--like`/`--collection` part).
    pub reference: usize,
    pub library: usize,
    /// Incoming papers embedded by this run / found in the match cache.
    pub embedded: usize,
    pub cached: usize,
    pub embed_seconds: f64,
    pub total_seconds: f64,
}

/// The answer of a match: plain data for any front end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchReport {
    pub settings: MatchSettings,
    pub counts: MatchCounts,
    /// The search engine over the library ("exact" or "hnsw").
    pub engine: &'static str,
    /// Topics used for "would join" (the stored main run), or why none.
    pub topics: String,
    pub results: Vec<Match>,
    pub in_library: Vec<InLibrary>,
    pub notes: Vec<String>,
}

/// Scores `incoming` against the library behind `engine`. `make` gives the
/// library's embedder and is called only if some paper is not in the match
/// cache.
pub fn match_papers(
    engine: &Engine,
    incoming: &[Paper],
    opts: &MatchOptions,
    make: EmbedderFactory,
) -> Result<MatchReport> {
    opts.check()?;
    let start = Instant::now();
    let lib = engine.lib;
    if lib.is_empty() {
        return Err(Error::Empty(
            "the library is empty; add papers first (papermap add FILES)".into(),
        ));
    }
    let rows_of = |items: &[String]| -> Result<Vec<usize>> {
        items
            .iter()
            .map(|s| match resolve(lib, s)? {
                Resolved::Paper { row, .. } => Ok(row),
                _ => Err(Error::Query(format!(
                    "'{s}' is not a paper in the library (--like and --not take ids, DOIs, arXiv ids or titles)"
                ))),
            })
            .collect()
    };
    let like = rows_of(&opts.like)?;
    let not = rows_of(&opts.not)?;
    let reference = reference_rows(lib, &like, opts.collection.as_deref())?;
    let mut notes = Vec::new();

    // Split: already in the library, filtered out by keywords, to score.
    let mut counts = MatchCounts {
        incoming: incoming.len(),
        library: lib.len(),
        reference: reference.as_ref().map_or(lib.len(), Vec::len),
        ..Default::default()
    };
    let require: Vec<Vec<String>> = opts.require.iter().map(|w| crate::text::terms(w)).collect();
    let exclude: Vec<Vec<String>> = opts
        .exclude_terms
        .iter()
        .map(|w| crate::text::terms(w))
        .collect();
    let mut in_library = Vec::new();
    let mut todo: Vec<&Paper> = Vec::new();
    for p in incoming {
        if let Some(row) = lib.find_same(p) {
            let lp = &lib.papers()[row];
            in_library.push(InLibrary {
                paper: PaperInfo::of(p),
                library_id: lp.id.clone(),
                library_title: lp.title.clone(),
            });
            continue;
        }
        let (t, a) = (crate::text::terms(&p.title), crate::text::terms(&p.abs));
        let has = |phrase: &Vec<String>| contains_phrase(&t, phrase) || contains_phrase(&a, phrase);
        if !require.iter().all(has) || exclude.iter().any(has) {
            counts.filtered += 1;
            continue;
        }
        todo.push(p);
    }
    counts.in_library = in_library.len();
    counts.scored = todo.len();

    // Vectors: match cache first, then the library's model.
    let dense = opts.mode != Mode::Lexical && opts.mode != Mode::Bm25;
    let vectors: Vec<Vec<f32>> = if dense && !todo.is_empty() {
        let t = Instant::now();
        let (v, embedded, cached) = embed_incoming(lib, &todo, make, &mut notes)?;
        counts.embedded = embedded;
        counts.cached = cached;
        counts.embed_seconds = t.elapsed().as_secs_f64();
        v
    } else {
        vec![Vec::new(); todo.len()]
    };

    let topics = StoredTopics::load(lib);
    let ropts = RelatedOptions {
        k: opts.neighbours.max(opts.closest).max(1),
        mode: opts.mode,
        weight: opts.weight,
        ..Default::default()
    };
    // A small part of the library is scored exactly, paper by paper; a large
    // one through the indexes with the rest filtered out.
    let (set, ropts) = match &reference {
        Some(rows) if rows.len() <= DIRECT_LIMIT => (Some(engine.row_set(rows)), ropts),
        Some(rows) => {
            let inside: HashSet<usize> = rows.iter().copied().collect();
            let exclude = (0..lib.len()).filter(|r| !inside.contains(r)).collect();
            (None, RelatedOptions { exclude, ..ropts })
        }
        None => (None, ropts),
    };
    let not_set = (!not.is_empty()).then(|| engine.row_set(&not));
    let score_one = |p: &Paper, v: &Vec<f32>| -> Result<Match> {
        let terms = paper_terms(p);
        let near: Vec<Related> = match &set {
            Some(s) => engine.related_among(v, &terms, s, &ropts),
            None => engine.related_to(v, &terms, &ropts)?,
        };
        let best = near.first().map_or(0.0, |r| r.score);
        let k = opts.neighbours.min(counts.reference).max(1);
        let mean = near.iter().take(k).map(|r| r.score).sum::<f32>() / k as f32;
        let penalty = match &not_set {
            Some(s) => {
                let o = RelatedOptions {
                    k: 1,
                    ..ropts.clone()
                };
                let o = RelatedOptions {
                    exclude: HashSet::new(),
                    ..o
                };
                NOT_WEIGHT
                    * engine
                        .related_among(v, &terms, s, &o)
                        .first()
                        .map_or(0.0, |r| r.score.max(0.0))
            }
            None => 0.0,
        };
        let topic = topics
            .as_ref()
            .and_then(|t| t.guess(&near[..near.len().min(opts.neighbours)]));
        let papers = lib.papers();
        let closest: Vec<Closest> = near
            .iter()
            .take(opts.closest)
            .map(|r| Closest {
                id: papers[r.row].id.clone(),
                title: papers[r.row].title.clone(),
                year: papers[r.row].year,
                score: r.score,
                dense: r.dense,
                lexical: r.lexical,
                why: r.why.clone(),
            })
            .collect();
        let mut why: Vec<String> = Vec::new();
        for w in near
            .iter()
            .take(opts.neighbours.max(1))
            .flat_map(|r| &r.why)
        {
            if why.len() < 6 && !why.contains(w) {
                why.push(w.clone());
            }
        }
        Ok(Match {
            rank: 0,
            paper: PaperInfo::of(p),
            score: mean - penalty,
            best,
            mean,
            penalty,
            why,
            closest,
            topic,
            record: p.clone(),
            vector: v.clone(),
        })
    };
    let mut results = parallel_map(&todo, &vectors, opts.threads, &score_one)?;
    results.sort_by(|a, b| b.score.total_cmp(&a.score));
    if let Some(t) = opts.threshold {
        let before = results.len();
        results.retain(|m| m.score >= t);
        counts.below_threshold = before - results.len();
    }
    results.truncate(opts.top);
    for (i, m) in results.iter_mut().enumerate() {
        m.rank = i + 1;
    }
    counts.listed = results.len();
    if engine.not_embedded() > 0 {
        notes.push(crate::app::not_embedded_note(engine.not_embedded()));
    }
    counts.total_seconds = start.elapsed().as_secs_f64();
    Ok(MatchReport {
        settings: MatchSettings {
            mode: opts.mode,
            weight: opts.weight,
            neighbours: opts.neighbours,
            threshold: opts.threshold,
            top: opts.top,
            like: opts.like.clone(),
            not: opts.not.clone(),
            collection: opts.collection.clone(),
            require: opts.require.clone(),
            exclude_terms: opts.exclude_terms.clone(),
        },
        counts,
        engine: engine.searcher.engine(),
        topics: topics.as_ref().map_or_else(
            || {
                "no topics computed (run `papermap topics` to see which topic a paper would join)"
                    .into()
            },
            |t| t.describe.clone(),
        ),
        results,
        in_library,
        notes,
    })
}

/// Scores papers on `threads` threads, keeping their order.
fn parallel_map<F>(
    papers: &[&Paper],
    vectors: &[Vec<f32>],
    threads: usize,
    f: &F,
) -> Result<Vec<Match>>
where
    F: Fn(&Paper, &Vec<f32>) -> Result<Match> + Sync,
{
    let threads = threads.clamp(1, papers.len().max(1));
    if threads == 1 {
        return papers.iter().zip(vectors).map(|(p, v)| f(p, v)).collect();
    }
    let chunk = papers.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = papers
            .chunks(chunk)
            .zip(vectors.chunks(chunk))
            .map(|(ps, vs)| {
                s.spawn(move || {
                    ps.iter()
                        .zip(vs)
                        .map(|(p, v)| f(p, v))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(papers.len());
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| Error::Query("a scoring thread failed".into()))??,
            );
        }
        Ok(out)
    })
}

/// Library rows matched against: the `--like` papers, those in
/// `collection` (or below it), both (the papers in both), or `None` for
/// the whole library.
fn reference_rows(
    lib: &Library,
    like: &[usize],
    collection: Option<&str>,
) -> Result<Option<Vec<usize>>> {
    let in_collection = collection.map(|c| {
        let c = c.trim().trim_matches('/');
        let prefix = format!("{c}/");
        lib.papers()
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.collections
                    .iter()
                    .any(|x| x == c || x.starts_with(&prefix))
            })
            .map(|(i, _)| i)
            .collect::<Vec<usize>>()
    });
    if let (Some(c), Some(rows)) = (collection, &in_collection)
        && rows.is_empty()
    {
        let mut known: Vec<&str> = lib
            .papers()
            .iter()
            .flat_map(|p| p.collections.iter().map(String::as_str))
            .collect();
        known.sort_unstable();
        known.dedup();
        return Err(Error::Query(format!(
            "no library paper is in collection '{c}' ({})",
            if known.is_empty() {
                "the library records no collections: they come from a Zotero database".to_string()
            } else {
                format!(
                    "collections: {}",
                    known
                        .iter()
                        .take(20)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )));
    }
    let mut rows = match (like.is_empty(), in_collection) {
        (true, None) => return Ok(None),
        (false, None) => like.to_vec(),
        (true, Some(c)) => c,
        (false, Some(c)) => {
            let c: HashSet<usize> = c.into_iter().collect();
            let both: Vec<usize> = like.iter().copied().filter(|r| c.contains(r)).collect();
            if both.is_empty() {
                return Err(Error::Query(
                    "none of the --like papers is in the --collection".into(),
                ));
            }
            both
        }
    };
    rows.sort_unstable();
    rows.dedup();
    Ok(Some(rows))
}

/// True when `phrase` (terms) occurs as consecutive terms of `terms`.
fn contains_phrase(terms: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && terms.windows(phrase.len()).any(|w| w == phrase)
}

/// Vectors of `papers` under the library's model: from the match cache, the
/// rest embedded (length-sorted batches of 8) and cached. Returns the
/// vectors and how many were embedded and cached.
fn embed_incoming(
    lib: &Library,
    papers: &[&Paper],
    make: EmbedderFactory,
    notes: &mut Vec<String>,
) -> Result<(Vec<Vec<f32>>, usize, usize)> {
    let Some(model) = lib.manifest().model.clone() else {
        return Err(Error::Empty(
            "the library is not embedded yet; run `papermap embed` first".into(),
        ));
    };
    let path = lib.derived_dir().join(CACHE_FILE);
    let mut cache = VectorCache::load(&path, &model.id, model.dim);
    let texts: Vec<String> = papers.iter().map(|p| p.embed_text()).collect();
    let keys: Vec<_> = texts.iter().map(|t| vec_key(&model.id, t)).collect();
    let mut todo: Vec<usize> = (0..papers.len())
        .filter(|&i| cache.get(&keys[i]).is_none())
        .collect();
    todo.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
    todo.dedup_by_key(|i| keys[*i]);
    let embedded = todo.len();
    if !todo.is_empty() {
        let mut e = make()?;
        check_model(e.as_ref(), &model.id, model.dim)?;
        for chunk in todo.chunks(8) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
            for (&i, v) in chunk.iter().zip(e.embed(&batch)?) {
                cache.insert(keys[i], v);
            }
        }
        if let Err(e) = cache.save(&path) {
            notes.push(format!(
                "the vectors of the incoming papers could not be cached ({e}); a re-run embeds them again"
            ));
        }
    }
    let vectors = keys
        .iter()
        .map(|k| cache.get(k).map(<[f32]>::to_vec).unwrap_or_default())
        .collect();
    Ok((vectors, embedded, papers.len() - embedded.min(papers.len())))
}

fn check_model(e: &dyn Embedder, id: &str, dim: usize) -> Result<()> {
    if e.id() != id {
        return Err(Error::Invalid(format!(
            "the library was embedded with {id}, but the embedder is {}; incoming papers must be embedded by the library's model",
            e.id()
        )));
    }
    if e.dim() != dim {
        return Err(Error::Dimension {
            expected: dim,
            received: e.dim(),
        });
    }
    Ok(())
}

/// The stored main topics run: each library row's topic (after the user's
/// merges) and each topic's name.
struct StoredTopics {
    of_row: Vec<Option<u32>>,
    names: HashMap<u32, String>,
    describe: String,
}

impl StoredTopics {
    fn load(lib: &Library) -> Option<StoredTopics> {
        let state: TopicState =
            crate::store::manifest::read_checked_json(&lib.root().join(TOPIC_STATE_FILE))?;
        let run = state.main.as_ref()?;
        // Merges map B -> A (chains followed, as the topics run does).
        let final_id = |mut id: u32| {
            for _ in 0..=state.merged_into.len() {
                match state.merged_into.get(&id) {
                    Some(&to) if to != id => id = to,
                    _ => break,
                }
            }
            id
        };
        let mut of_row = vec![None; lib.len()];
        let mut ids: Vec<u32> = Vec::new();
        for t in &run.topics {
            let id = final_id(t.id);
            if !ids.contains(&id) {
                ids.push(id);
            }
            for m in &t.members {
                if let Some(r) = lib.index_of(m) {
                    of_row[r] = Some(id);
                }
            }
        }
        ids.sort_unstable();
        let unassigned = of_row.iter().filter(|x| x.is_none()).count();
        // Names: the user's, else the topic's keywords (c-TF-IDF over the
        // stored run's membership; papers added since form one extra group).
        let slot: HashMap<u32, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let labels: Vec<usize> = of_row
            .iter()
            .map(|t| t.map_or(ids.len(), |id| slot[&id]))
            .collect();
        let groups = ids.len() + usize::from(unassigned > 0);
        let kw = crate::label::keywords(lib.papers(), &labels, groups, 10);
        let names = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let name = state
                    .names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| crate::label::name(&kw[i]));
                (*id, name)
            })
            .collect();
        let describe = format!(
            "the stored topics run ({} topics{})",
            ids.len(),
            if unassigned > 0 {
                format!(
                    "; {unassigned} library paper(s) added since are in no topic until `papermap topics` runs again"
                )
            } else {
                String::new()
            }
        );
        Some(StoredTopics {
            of_row,
            names,
            describe,
        })
    }

    /// The topic holding most of the neighbours' similarity.
    fn guess(&self, near: &[Related]) -> Option<TopicGuess> {
        let mut w: HashMap<u32, f32> = HashMap::new();
        let mut total = 0f32;
        for r in near {
            let s = r.score.max(1e-6);
            total += s;
            if let Some(t) = self.of_row.get(r.row).copied().flatten() {
                *w.entry(t).or_default() += s;
            }
        }
        let (id, s) = w
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
        Some(TopicGuess {
            id,
            name: self.names.get(&id).cloned().unwrap_or_default(),
            share: if total > 0.0 { s / total } else { 0.0 },
        })
    }
}

/// Embeds with vectors already computed for some texts (by `match`); the
/// library's model, when given, embeds the others.
struct Precomputed {
    id: String,
    dim: usize,
    known: HashMap<String, Vec<f32>>,
    model: Option<Box<dyn Embedder>>,
}

impl Embedder for Precomputed {
    fn id(&self) -> &str {
        &self.id
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for t in texts {
            match (self.known.get(*t), self.model.as_mut()) {
                (Some(v), _) => out.push(v.clone()),
                (None, Some(m)) => out.push(m.embed(&[t])?.remove(0)),
                (None, None) => {
                    return Err(Error::Model(
                        "a paper without a computed vector reached the embedder".into(),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Adds the papers of `matches` to the library at `root` through the
/// store's writer, then embeds and indexes as `add` does, reusing the
/// vectors the match computed (the model is loaded only for papers it did
/// not embed).
pub fn add_matches(
    root: &Path,
    matches: &[Match],
    opts: &AddOptions,
    make: EmbedderFactory,
) -> Result<AddReport> {
    let mut w = Writer::open(root, &opts.write)?;
    let mut report = AddReport {
        warnings: w.warnings.clone(),
        ..Default::default()
    };
    let mut file = FileReport {
        path: PathBuf::from("(match)"),
        format: "match".into(),
        ..Default::default()
    };
    for m in matches {
        file.read += 1;
        match w.add_paper(m.record.clone())? {
            crate::store::Added::New(_) => file.new += 1,
            crate::store::Added::Duplicate(_) => file.duplicate += 1,
            crate::store::Added::Updated(_) => file.updated += 1,
        }
    }
    w.commit()?;
    report.files.push(file);
    let Some(model) = w.library().manifest().model.clone() else {
        return Err(Error::Empty("the library has no model yet".into()));
    };
    let known: HashMap<String, Vec<f32>> = matches
        .iter()
        .filter(|m| m.vector.len() == model.dim)
        .map(|m| (m.record.embed_text(), m.vector.clone()))
        .collect();
    // The model is loaded only if some paper (added here, or left
    // unembedded by an earlier run) has no vector from the match.
    let lib = w.library();
    let others = lib.papers().iter().any(|p| {
        let t = p.embed_text();
        !known.contains_key(&t) && lib.vector(&vec_key(&model.id, &t)).is_none()
    });
    let fallback = if others {
        let m = make()?;
        check_model(m.as_ref(), &model.id, model.dim)?;
        Some(m)
    } else {
        None
    };
    let mut pre = Some(Precomputed {
        id: model.id.clone(),
        dim: model.dim,
        known,
        model: fallback,
    });
    let mut factory = move || -> Result<Box<dyn Embedder>> {
        Ok(Box::new(pre.take().ok_or_else(|| {
            Error::Model("the embedder was asked for twice".into())
        })?))
    };
    let (e, index) = crate::pipeline::embed_and_index(&mut w, opts, &mut factory)?;
    report.embed = e;
    report.index = index;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(s: &str) -> Vec<String> {
        crate::text::terms(s)
    }

    #[test]
    fn options_are_checked() {
        assert!(MatchOptions::default().check().is_ok());
        let bad = [
            MatchOptions {
                top: 0,
                ..Default::default()
            },
            MatchOptions {
                top: MAX_TOP + 1,
                ..Default::default()
            },
            MatchOptions {
                threshold: Some(f32::NAN),
                ..Default::default()
            },
            MatchOptions {
                threshold: Some(f32::INFINITY),
                ..Default::default()
            },
            MatchOptions {
                neighbours: 0,
                ..Default::default()
            },
            MatchOptions {
                weight: 1.5,
                ..Default::default()
            },
            MatchOptions {
                require: vec!["the of".into()],
                ..Default::default()
            },
            MatchOptions {
                collection: Some("  ".into()),
                ..Default::default()
            },
        ];
        for o in bad {
            assert!(o.check().is_err(), "{o:?}");
        }
    }

    #[test]
    fn phrases_match_consecutive_stemmed_terms() {
        let t = terms("Graph neural networks for molecules");
        assert!(contains_phrase(&t, &terms("neural network")));
        assert!(contains_phrase(&t, &terms("molecule")));
        assert!(!contains_phrase(&t, &terms("networks graph")));
        assert!(!contains_phrase(&t, &[]));
    }
}
