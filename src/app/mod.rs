//! The operations every front end calls (the CLI and the server),
//! each taking checked parameters and returning plain data: opening a
//! library for queries (answering while a writer works), related papers as
//! JSON answers, the batch protocol line by line. No printing, no clap: a
//! front end parses its input into these parameters and renders the result.

use std::path::Path;

use serde_json::{Value, json};

use crate::embed::{Embedder, HashEmbedder, MiniLm, MiniLmOptions};
use crate::error::{Error, Result};
use crate::index::{HnswParams, Matrix, SearchOptions, Searcher};
use crate::query::{Engine, Related, RelatedOptions, Resolved, resolve};
use crate::store::Library;

pub mod live;

/// Widest HNSW search breadth accepted.
pub const MAX_EF: usize = 10_000;

/// Which embedder turns free text into a query vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedderKind {
    /// The bundled model (all-MiniLM-L6-v2).
    MiniLm,
    /// The deterministic hashing embedder (tests, benchmarks).
    Hash,
}

impl std::str::FromStr for EmbedderKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "minilm" => Ok(EmbedderKind::MiniLm),
            "hash" => Ok(EmbedderKind::Hash),
            o => Err(Error::Invalid(format!("unknown embedder '{o}' (minilm)"))),
        }
    }
}

/// A library opened for queries: its papers, a searcher over the vectors
/// that exist, and the rows of papers not embedded yet.
pub struct QuerySource {
    pub lib: Library,
    pub searcher: Searcher,
    pub missing: Vec<usize>,
}

impl QuerySource {
    /// Opens `path` for queries with HNSW breadth `ef` (checked here, for
    /// every front end). A current derived matrix holds every paper's
    /// vector: then neither the vectors log nor the per-paper embedding
    /// check is needed. Otherwise the cached vectors are gathered; papers a
    /// writer has not embedded yet are left out of dense search (searched
    /// exactly, never put in a persisted graph) instead of failing the query.
    pub fn open(path: &Path, search: &SearchOptions, ef: usize) -> Result<QuerySource> {
        Self::open_inner(path, search, ef, true)
    }

    /// As [`QuerySource::open`], but never builds an HNSW graph: a stale or
    /// missing one means exact search until the writer saves the new one.
    /// For the server, which reopens the library after every change.
    pub fn open_no_build(path: &Path, search: &SearchOptions, ef: usize) -> Result<QuerySource> {
        Self::open_inner(path, search, ef, false)
    }

    fn open_inner(
        path: &Path,
        search: &SearchOptions,
        ef: usize,
        build: bool,
    ) -> Result<QuerySource> {
        if !(1..=MAX_EF).contains(&ef) {
            return Err(Error::Invalid(format!(
                "--ef must be between 1 and {MAX_EF} (got {ef})"
            )));
        }
        let mut lib = Library::open_without_vectors(path)?;
        let search = SearchOptions {
            hnsw: HnswParams {
                ef_search: ef,
                ..search.hnsw.clone()
            },
            ..search.clone()
        };
        let with_matrix = |lib: &Library, m: Matrix| -> Result<Searcher> {
            if build {
                Searcher::with_matrix(lib, m, &search)
            } else {
                Ok(Searcher::with_matrix_no_build(lib, m, &search))
            }
        };
        if let Some(m) = Matrix::load_current(&lib) {
            let searcher = with_matrix(&lib, m)?;
            return Ok(QuerySource {
                lib,
                searcher,
                missing: Vec::new(),
            });
        }
        lib.load_vectors()?;
        // No model yet (`add --no-embed`): every row is missing, none is searched.
        let (m, missing) = Matrix::gather(&lib, lib.dim().max(1));
        let searcher = if missing.is_empty() {
            let m = Matrix::load_or_build(&lib, &lib.fingerprint()).unwrap_or(m);
            with_matrix(&lib, m)?
        } else {
            Searcher::exact(m)
        };
        Ok(QuerySource {
            lib,
            searcher,
            missing,
        })
    }
}

/// The one-line note for papers not searchable by meaning yet.
pub fn not_embedded_note(n: usize) -> String {
    format!(
        "{n} paper(s) added since the last index are not embedded yet: found by their words only until embedding finishes (`papermap embed`, or the `add` already running)"
    )
}

/// Embeds free text with the library's model, loaded on first use.
pub fn text_embedder(kind: EmbedderKind, dim: usize) -> impl FnMut(&str) -> Result<Vec<f32>> {
    let mut model: Option<Box<dyn Embedder>> = None;
    move |t: &str| {
        if model.is_none() {
            model = Some(match kind {
                EmbedderKind::Hash => Box::new(HashEmbedder::new(dim)),
                EmbedderKind::MiniLm => Box::new(MiniLm::load(&MiniLmOptions::default())?),
            });
        }
        let m = model.as_mut().expect("model loaded");
        Ok(m.embed(&[t])?.remove(0))
    }
}

/// The JSON answer to one related-papers query: the resolved query, the
/// settings, and each result with its date, scores and "why" terms.
pub fn answer_json(
    lib: &Library,
    q: &Resolved,
    results: &[Related],
    opts: &RelatedOptions,
    engine: &Engine,
) -> Value {
    let not_embedded = engine.not_embedded();
    let engine = engine.searcher.engine();
    let paper_ref = |row: usize| {
        let p = &lib.papers()[row];
        json!({"id": p.id, "title": p.title})
    };
    let query = match q {
        Resolved::Paper { row, matched_by } => {
            json!({"kind": "paper", "paper": paper_ref(*row), "matched_by": matched_by})
        }
        Resolved::Text { text } => json!({"kind": "text", "text": text}),
        Resolved::Set { positive, negative } => json!({
            "kind": "set",
            "positive": positive.iter().map(|r| paper_ref(*r)).collect::<Vec<_>>(),
            "negative": negative.iter().map(|r| paper_ref(*r)).collect::<Vec<_>>(),
        }),
    };
    json!({
        "query": query,
        "mode": opts.mode,
        "weight": opts.weight,
        "direction": opts.direction,
        "engine": engine,
        "not_embedded": not_embedded,
        "results": results.iter().enumerate().map(|(i, r)| {
            let p = &lib.papers()[r.row];
            let date = p.first_published();
            json!({
                "rank": i + 1, "id": p.id, "title": p.title, "year": p.year,
                "authors": p.authors.iter().take(3).collect::<Vec<_>>(),
                "more_authors": p.authors.len().saturating_sub(3),
                "date": date.map(|d| d.to_string()), "undated": date.is_none(),
                "doi": p.doi, "arxiv": p.arxiv,
                "score": r.score, "dense": r.dense, "lexical": r.lexical, "why": r.why,
            })
        }).collect::<Vec<_>>(),
    })
}

/// One line of the batch protocol: a plain line (id, DOI, arXiv id, title
/// or free text) or a JSON object naming the query (`query`, `id`, `paper`,
/// `doi`, `arxiv`, `arxiv_id`, `title`, or `text` for free text), or a
/// reading list (`positive`, `negative`), with optional `k` and
/// `direction`. The answer as JSON, or the error that line gets.
pub fn batch_line(
    lib: &Library,
    engine: &Engine,
    line: &str,
    opts: &RelatedOptions,
    embed_text: &mut dyn FnMut(&str) -> Result<Vec<f32>>,
) -> Result<Value> {
    let mut o = opts.clone();
    let q = if line.starts_with('{') {
        let v: Value =
            serde_json::from_str(line).map_err(|e| Error::Query(format!("invalid JSON: {e}")))?;
        if let Some(k) = v.get("k") {
            o.k = k
                .as_u64()
                .and_then(|k| usize::try_from(k).ok())
                .ok_or_else(|| Error::Query("\"k\" must be a positive integer".into()))?;
        }
        if let Some(d) = v.get("direction") {
            o.direction = d
                .as_str()
                .ok_or_else(|| {
                    Error::Query("\"direction\" must be \"prior\", \"later\" or \"any\"".into())
                })?
                .parse()?;
        }
        o.check()?;
        let list = |key: &str| -> Result<Vec<usize>> {
            v.get(key)
                .and_then(|x| x.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str())
                        .map(|s| match resolve(lib, s)? {
                            Resolved::Paper { row, .. } => Ok(row),
                            _ => Err(Error::Query(format!("'{s}' is not a paper in the library"))),
                        })
                        .collect()
                })
                .unwrap_or_else(|| Ok(Vec::new()))
        };
        if v.get("positive").is_some() {
            Resolved::Set {
                positive: list("positive")?,
                negative: list("negative")?,
            }
        } else {
            // Any one of these keys names the query; ids may be numbers.
            const KEYS: [&str; 8] = [
                "query", "id", "paper", "doi", "arxiv", "arxiv_id", "title", "text",
            ];
            let (key, s) = KEYS
                .iter()
                .find_map(|k| match v.get(*k)? {
                    Value::String(s) => Some((*k, s.clone())),
                    Value::Number(n) => Some((*k, n.to_string())),
                    _ => None,
                })
                .ok_or_else(|| {
                    Error::Query(format!("needs \"positive\" or one of {}", KEYS.join(", ")))
                })?;
            // "text" is free text as given, never matched to a title.
            if key == "text" {
                Resolved::Text { text: s }
            } else {
                resolve(lib, &s)?
            }
        }
    } else {
        resolve(lib, line)?
    };
    let r = engine.related(&q, &o, embed_text)?;
    Ok(answer_json(lib, &q, &r, &o, engine))
}

/// Topics of the library at `root` with `opts`, and the library they were
/// computed on. Papers not embedded yet (a writer is embedding them, or
/// `add --no-embed`) are left out of every topic and counted in the
/// report's `not_embedded` ([`topics_not_embedded_note`]).
pub fn topics(
    root: &Path,
    opts: &crate::pipeline::TopicOptions,
) -> Result<(Library, crate::report::TopicReport)> {
    let lib = open_for_topics(root)?;
    let report = crate::pipeline::topics(&lib, opts)?;
    Ok((lib, report))
}

/// The library at `root` for topics: with its vectors, unless a current
/// derived matrix holds every paper's (then the vectors log is not read).
pub fn open_for_topics(root: &Path) -> Result<Library> {
    let mut lib = Library::open_without_vectors(root)?;
    if Matrix::load_current(&lib).is_none() {
        lib.load_vectors()?;
    }
    Ok(lib)
}

/// The one-line note for papers left out of the topics.
pub fn topics_not_embedded_note(n: usize) -> String {
    format!(
        "{} paper{} added since the last index {} not embedded yet: left out of the topics until embedding finishes (`papermap embed`, or the `add` already running)",
        crate::report::thousands(n),
        if n == 1 { "" } else { "s" },
        if n == 1 { "is" } else { "are" }
    )
}

/// The library at `root` with its vectors, every paper embedded (what
/// topics and their evaluation need): the error says whether another
/// papermap is embedding the rest right now.
pub fn open_embedded(root: &Path) -> Result<Library> {
    let mut lib = Library::open_without_vectors(root)?;
    lib.load_vectors()?;
    let missing = crate::pipeline::missing_vectors(&lib);
    if missing > 0 {
        return Err(match crate::store::lock::active_writer(lib.root()) {
            Some(pid) => Error::NotReady(format!(
                "{missing} paper(s) are being embedded by another papermap (pid {pid}); topics need every paper embedded: try again when it finishes (`related` answers meanwhile)"
            )),
            None => Error::NotReady(format!(
                "{missing} paper(s) are not embedded yet; run `papermap embed` to finish"
            )),
        });
    }
    Ok(lib)
}

/// What `status` reports about a library.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub library: String,
    pub format_version: u32,
    pub generation: u64,
    pub papers: usize,
    pub without_abstract: usize,
    /// Model id and dimension, once something was embedded.
    pub model: Option<(String, usize)>,
    pub vectors_cached: usize,
    pub vectors_missing: usize,
    pub matrix_current: bool,
    pub graph_current: bool,
    /// Libraries below this size are searched exactly (no graph needed).
    pub hnsw_threshold: usize,
    pub topics_current: bool,
    pub warnings: Vec<String>,
}

/// The state of the library at `root` and of its derived files.
pub fn status(root: &Path, search: &SearchOptions) -> Result<Status> {
    let lib = Library::open(root)?;
    let m = lib.manifest();
    let (matrix_current, graph_current) = crate::index::derived_status(&lib, &search.hnsw);
    Ok(Status {
        library: root.display().to_string(),
        format_version: m.version,
        generation: m.generation,
        papers: lib.len(),
        without_abstract: lib.papers().iter().filter(|p| !p.has_abstract()).count(),
        model: m.model.as_ref().map(|m| (m.id.clone(), m.dim)),
        vectors_cached: lib.cached_vectors(),
        vectors_missing: crate::pipeline::missing_vectors(&lib),
        matrix_current,
        graph_current,
        hnsw_threshold: search.hnsw_threshold,
        topics_current: crate::pipeline::topics_current(&lib),
        warnings: lib.warnings.clone(),
    })
}
