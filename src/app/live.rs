//! A library kept open by a long-running front end (the server): an owned
//! snapshot of one committed state (papers, searcher, lexical index and,
//! once computed, its topics), a shared text embedder, and the plain-data
//! answers the server renders (a paper's page, a reading list as BibTeX).
//! A snapshot never changes; a newer library state is a new snapshot, so a
//! request always sees one consistent state while another process writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use super::{EmbedderKind, QuerySource};
use crate::embed::{Embedder, HashEmbedder, MiniLm, MiniLmOptions};
use crate::error::{Error, Result};
use crate::index::SearchOptions;
use crate::query::{Direction, Engine, RelatedOptions, Resolved};
use crate::report::TopicReport;
use crate::store::Library;

self_cell::self_cell!(
    /// The library and the engine that borrows it, owned together.
    struct Opened {
        owner: Library,
        #[covariant]
        dependent: Engine,
    }
);

/// What changes when the library does: the manifest generation (papers
/// and vectors committed) and the derived files a writer saves after it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stamp {
    pub generation: u64,
    derived: Vec<Option<(u64, std::time::SystemTime)>>,
}

impl Stamp {
    /// Reads the stamp of the library at `root` without opening it.
    pub fn read(root: &Path) -> Result<Stamp> {
        let manifest = crate::store::Manifest::read(root, &root.join(crate::store::MANIFEST))?
            .ok_or_else(|| Error::NoLibrary {
                path: root.to_path_buf(),
                reason: "no MANIFEST.json".into(),
            })?;
        let d = root.join("derived");
        let lexical = d.join(crate::lexical::LEXICAL_FILE);
        let derived = [
            d.join(crate::index::MATRIX_FILE),
            d.join(crate::index::GRAPH_FILE),
            crate::store::delta::path_of(&lexical),
            lexical,
        ]
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        })
        .collect();
        Ok(Stamp {
            generation: manifest.generation,
            derived,
        })
    }
}

/// Topics of a snapshot, the library state they were computed on (whose
/// rows the report's members name) and, per paper id, its topic id.
pub struct Topics {
    pub report: TopicReport,
    pub lib: Library,
    pub by_id: HashMap<String, u32>,
}

/// One committed state of a library, open for queries.
pub struct Snapshot {
    opened: Opened,
    pub root: PathBuf,
    pub stamp: Stamp,
    topics: OnceLock<std::result::Result<Arc<Topics>, String>>,
}

impl Snapshot {
    /// Opens the library at `root` as it is now (never building an HNSW
    /// graph: exact search until the writer saves one).
    pub fn open(root: &Path, search: &SearchOptions, ef: usize) -> Result<Snapshot> {
        // The stamp first: a change after it makes the next check reopen.
        let stamp = Stamp::read(root)?;
        let QuerySource {
            lib,
            searcher,
            missing,
        } = QuerySource::open_no_build(root, search, ef)?;
        let opened = Opened::try_new(lib, |lib| Engine::with_unembedded(lib, searcher, &missing))?;
        opened.borrow_dependent().warm();
        Ok(Snapshot {
            opened,
            root: root.to_path_buf(),
            stamp,
            topics: OnceLock::new(),
        })
    }

    pub fn lib(&self) -> &Library {
        self.opened.borrow_owner()
    }

    pub fn engine(&self) -> &Engine<'_> {
        self.opened.borrow_dependent()
    }

    /// The topics of this state if computed: `None` while not (yet), an
    /// error when they cannot be (e.g. a damaged library). Papers not
    /// embedded yet are in no topic (the report counts them).
    pub fn topics(&self) -> Option<std::result::Result<Arc<Topics>, String>> {
        self.topics.get().cloned()
    }

    /// Computes the topics of this state (the stored main run: the user's
    /// ids, names and k) unless done; slow for a large library, so the
    /// server calls it off the request path.
    pub fn compute_topics(&self) {
        self.topics.get_or_init(|| {
            super::topics(&self.root, &Default::default())
                .map(|(lib, report)| {
                    let by_id = report
                        .topics
                        .iter()
                        .flat_map(|t| t.papers.iter().map(move |m| (m.id.clone(), t.id)))
                        .collect();
                    Arc::new(Topics { report, lib, by_id })
                })
                .map_err(|e| e.to_string())
        });
    }

    /// The row of the paper an id, DOI, arXiv id or exact title names.
    pub fn find(&self, id: &str) -> Result<usize> {
        match crate::query::resolve(self.lib(), id)? {
            Resolved::Paper { row, .. } => Ok(row),
            _ => Err(Error::NotFound(format!("no paper '{id}' in the library"))),
        }
    }

    /// Everything a paper's page shows: its fields, safe links, its topic
    /// (if topics are computed), related papers and, when it is dated, the
    /// earlier work it builds on and the later work built on it.
    pub fn paper_page(&self, row: usize, k: usize, embedder: &SharedEmbedder) -> Result<Value> {
        let lib = self.lib();
        let mut page = paper_json(lib, row);
        if let Some(Ok(t)) = self.topics()
            && let Some(id) = t.by_id.get(&lib.papers()[row].id)
        {
            page["topic"] = json!({"id": id, "name": t.report.topic_name(*id)});
        }
        let q = Resolved::Paper {
            row,
            matched_by: "id",
        };
        let dated = lib.papers()[row].first_published().is_some();
        for (key, direction) in [
            ("related", Direction::Any),
            ("prior", Direction::Prior),
            ("later", Direction::Later),
        ] {
            if direction != Direction::Any && !dated {
                page[key] = Value::Null;
                continue;
            }
            let opts = RelatedOptions {
                k,
                direction,
                ..Default::default()
            };
            opts.check()?;
            let r = self
                .engine()
                .related(&q, &opts, &mut |t| embedder.embed(t))?;
            page[key] = super::answer_json(lib, &q, &r, &opts, self.engine())["results"].take();
        }
        Ok(page)
    }
}

/// A paper's fields as JSON, with links only to arXiv, doi.org and http(s)
/// URLs (a `javascript:` URL from a BibTeX file is dropped).
pub fn paper_json(lib: &Library, row: usize) -> Value {
    let p = &lib.papers()[row];
    let date = p.first_published();
    let mut links = serde_json::Map::new();
    if let Some(a) = &p.arxiv {
        links.insert("arxiv".into(), json!(format!("https://arxiv.org/abs/{a}")));
    }
    if let Some(d) = &p.doi {
        links.insert("doi".into(), json!(format!("https://doi.org/{d}")));
    }
    if let Some(u) = p.url.as_deref().filter(|u| is_web_url(u)) {
        links.insert("url".into(), json!(u));
    }
    json!({
        "id": p.id, "title": p.title, "abstract": p.abs, "authors": p.authors,
        "year": p.year, "date": date.map(|d| d.to_string()), "undated": date.is_none(),
        "venue": p.venue, "doi": p.doi, "arxiv": p.arxiv, "links": links,
        "collections": p.collections, "source": p.source,
    })
}

fn is_web_url(u: &str) -> bool {
    let l = u.trim_start().to_ascii_lowercase();
    (l.starts_with("https://") || l.starts_with("http://")) && !u.chars().any(char::is_whitespace)
}

/// BibTeX entries for a reading list, in the order given.
pub fn reading_list_bibtex(lib: &Library, rows: &[usize]) -> String {
    rows.iter()
        .map(|&r| crate::report::bibtex::entry(&lib.papers()[r]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One text embedder shared by every request: the model is loaded on first
/// use and used by one request at a time (ONNX Runtime uses every core).
pub struct SharedEmbedder {
    kind: EmbedderKind,
    model: Mutex<Option<Box<dyn Embedder + Send>>>,
}

impl SharedEmbedder {
    pub fn new(kind: EmbedderKind) -> SharedEmbedder {
        SharedEmbedder {
            kind,
            model: Mutex::new(None),
        }
    }

    /// Embeds `text` with the library's model (`dim` for the hashing one).
    pub fn embed_dim(&self, text: &str, dim: usize) -> Result<Vec<f32>> {
        let mut guard = self.model.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(match self.kind {
                EmbedderKind::Hash => Box::new(HashEmbedder::new(dim)),
                EmbedderKind::MiniLm => Box::new(MiniLm::load(&MiniLmOptions::default())?),
            });
        }
        let m = guard.as_mut().expect("model loaded");
        Ok(m.embed(&[text])?.remove(0))
    }

    /// Embeds `text` (384-d for the hashing embedder, as `add` makes it).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        self.embed_dim(text, 384)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_urls_become_links() {
        for ok in [
            "https://arxiv.org/abs/1",
            "http://example.org/a?b=c",
            "HTTPS://X.ORG",
        ] {
            assert!(is_web_url(ok), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            " javascript:alert(1)",
            "data:text/html,<script>",
            "file:///etc/passwd",
            "//evil.example/x",
            "https://a.org/x y",
            "",
        ] {
            assert!(!is_web_url(bad), "{bad}");
        }
    }
}
