//! "Related papers": for a paper (id, DOI, arXiv id, exact or fuzzy title),
//! a free text, or a reading list of positive and negative papers. Dense
//! and BM25 scores are fused by a convex combination of min-max normalised
//! scores: the candidates are the union of the dense and the BM25 top lists,
//! each candidate gets both scores (the missing one computed), each score is
//! min-max normalised over the candidates, then weighted (`--weight`, the
//! dense share, 0.5 by default). Every result says which shared terms made
//! it related.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use serde::Serialize;

use crate::embed::normalize;
use crate::error::{Error, Result};
use crate::index::{Searcher, dot};
use crate::lexical::{Bm25, paper_terms, why_related};
use crate::paper::normalize_title;
use crate::store::Library;
use crate::text;

/// How results are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Dense,
    Lexical,
    Hybrid,
}

impl FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dense" => Ok(Mode::Dense),
            "lexical" => Ok(Mode::Lexical),
            "hybrid" => Ok(Mode::Hybrid),
            o => Err(Error::Invalid(format!(
                "unknown mode '{o}' (dense, lexical, hybrid)"
            ))),
        }
    }
}

/// The dense share of the hybrid score by default. Min-max normalised BM25
/// is more spread at the top of a candidate list than cosine similarity, so
/// 0.5 leans lexical: on the sample corpus the hybrid top 10 shares 0.72 of
/// the BM25 top 10 and 0.57 of the dense one. At 0.6 the two sides weigh
/// about equally (0.66 / 0.64; `scripts/bench-relevance --fusions`).
pub const DEFAULT_WEIGHT: f32 = 0.6;

/// Options for a related-papers query.
#[derive(Debug, Clone)]
pub struct RelatedOptions {
    /// Results wanted. Default 10.
    pub k: usize,
    /// Default hybrid.
    pub mode: Mode,
    /// Weight of the dense score in hybrid mode, 0..=1. Default
    /// [`DEFAULT_WEIGHT`].
    pub weight: f32,
    pub year_from: Option<i32>,
    pub year_to: Option<i32>,
    /// Paper rows never to return (e.g. already read).
    pub exclude: HashSet<usize>,
}

impl Default for RelatedOptions {
    fn default() -> Self {
        RelatedOptions {
            k: 10,
            mode: Mode::Hybrid,
            weight: DEFAULT_WEIGHT,
            year_from: None,
            year_to: None,
            exclude: HashSet::new(),
        }
    }
}

/// What a query string turned out to mean.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Resolved {
    Paper {
        row: usize,
        matched_by: &'static str,
    },
    Text {
        text: String,
    },
    Set {
        positive: Vec<usize>,
        negative: Vec<usize>,
    },
}

/// One related paper.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Related {
    pub row: usize,
    pub score: f32,
    pub dense: f32,
    pub lexical: f32,
    pub why: Vec<String>,
}

/// Finds the paper a user means: id, DOI, arXiv id, exact title, then a
/// fuzzy title match (four words or more). Anything else is free text.
/// Several equally good fuzzy matches are an error that lists them.
pub fn resolve(lib: &Library, input: &str) -> Result<Resolved> {
    let q = input.trim();
    if q.is_empty() {
        return Err(Error::Query("empty query".into()));
    }
    if let Some(row) = lib.index_of(q) {
        return Ok(Resolved::Paper {
            row,
            matched_by: "id",
        });
    }
    let probe = crate::paper::Paper {
        title: q.to_string(),
        doi: crate::ingest::normalize::clean_doi(q).filter(|_| q.contains("10.")),
        arxiv: crate::ingest::normalize::clean_arxiv(q),
        ..Default::default()
    };
    if let Some(row) = lib.find_same(&probe) {
        let p = &lib.papers()[row];
        let by = if probe.doi.is_some() && p.doi == probe.doi {
            "doi"
        } else if probe.arxiv.is_some() && p.arxiv == probe.arxiv {
            "arxiv"
        } else {
            "title"
        };
        return Ok(Resolved::Paper {
            row,
            matched_by: by,
        });
    }
    let nq = normalize_title(q);
    let qwords: HashSet<&str> = nq.split(' ').collect();
    if qwords.len() >= 4 {
        let mut scored: Vec<(f32, usize)> = lib
            .papers()
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let nt = normalize_title(&p.title);
                let twords: HashSet<&str> = nt.split(' ').collect();
                let inter = qwords.intersection(&twords).count() as f32;
                let sim = 2.0 * inter / (qwords.len() + twords.len()) as f32;
                (sim >= 0.8).then_some((sim, i))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        match scored.as_slice() {
            [] => {}
            [(_, row)] => {
                return Ok(Resolved::Paper {
                    row: *row,
                    matched_by: "fuzzy title",
                });
            }
            [(best, row), (second, _), ..] if best - second >= 0.05 => {
                return Ok(Resolved::Paper {
                    row: *row,
                    matched_by: "fuzzy title",
                });
            }
            many => {
                let list: Vec<String> = many
                    .iter()
                    .take(5)
                    .map(|(_, r)| format!("  {}  {}", lib.papers()[*r].id, lib.papers()[*r].title))
                    .collect();
                return Err(Error::Query(format!(
                    "'{q}' matches several papers; name one by id:\n{}",
                    list.join("\n")
                )));
            }
        }
    }
    Ok(Resolved::Text {
        text: q.to_string(),
    })
}

/// Everything a related query needs, loaded once per process: the dense
/// searcher and the persisted BM25 index. Per-paper terms are computed only
/// for the papers a query touches.
pub struct Engine<'a> {
    pub lib: &'a Library,
    pub searcher: Searcher,
    bm25: Bm25,
}

impl<'a> Engine<'a> {
    pub fn new(lib: &'a Library, searcher: Searcher) -> Result<Engine<'a>> {
        let bm25 = Bm25::load_or_build(lib, &lib.fingerprint(), false)?;
        Ok(Engine {
            lib,
            searcher,
            bm25,
        })
    }

    fn terms(&self, row: usize) -> Vec<String> {
        paper_terms(&self.lib.papers()[row])
    }

    /// Rows that are the same paper as `row`: itself and any paper with the
    /// identical embedded text.
    fn twins(&self, row: usize) -> Vec<usize> {
        let papers = self.lib.papers();
        let p = &papers[row];
        let text = p.embed_text();
        let mut out: Vec<usize> = papers
            .iter()
            .enumerate()
            .filter(|(_, x)| x.title == p.title && x.embed_text() == text)
            .map(|(i, _)| i)
            .collect();
        if !out.contains(&row) {
            out.push(row);
        }
        out
    }

    /// Related papers for a resolved query. `embed_text` embeds free text
    /// (only called for text queries).
    pub fn related(
        &self,
        q: &Resolved,
        opts: &RelatedOptions,
        embed_text: &mut dyn FnMut(&str) -> Result<Vec<f32>>,
    ) -> Result<Vec<Related>> {
        let mut exclude = opts.exclude.clone();
        let (qvec, qterms, neg_terms): (Vec<f32>, Vec<String>, Vec<String>) = match q {
            Resolved::Paper { row, .. } => {
                exclude.extend(self.twins(*row));
                (
                    self.searcher.matrix.row(*row).to_vec(),
                    self.terms(*row),
                    Vec::new(),
                )
            }
            Resolved::Text { text: t } => (
                if opts.mode == Mode::Lexical {
                    Vec::new()
                } else {
                    embed_text(t)?
                },
                text::terms(t),
                Vec::new(),
            ),
            Resolved::Set { positive, negative } => {
                if positive.is_empty() {
                    return Err(Error::Query(
                        "a reading-list query needs at least one positive paper".into(),
                    ));
                }
                let dim = self.searcher.matrix.dim;
                // Rocchio: mean of positives minus half the mean of negatives.
                let mut v = vec![0f32; dim];
                for &r in positive {
                    exclude.extend(self.twins(r));
                    for (a, b) in v.iter_mut().zip(self.searcher.matrix.row(r)) {
                        *a += b / positive.len() as f32;
                    }
                }
                for &r in negative {
                    exclude.extend(self.twins(r));
                    for (a, b) in v.iter_mut().zip(self.searcher.matrix.row(r)) {
                        *a -= 0.5 * b / negative.len() as f32;
                    }
                }
                normalize(&mut v);
                let pos: Vec<String> = positive.iter().flat_map(|&r| self.terms(r)).collect();
                let neg: Vec<String> = negative.iter().flat_map(|&r| self.terms(r)).collect();
                (v, pos, neg)
            }
        };
        let papers = self.lib.papers();
        let keep = |r: usize| {
            if exclude.contains(&r) {
                return false;
            }
            match (opts.year_from, opts.year_to, papers[r].year) {
                (None, None, _) => true,
                (_, _, None) => false,
                (f, t, Some(y)) => f.is_none_or(|f| y >= f) && t.is_none_or(|t| y <= t),
            }
        };
        let pool = (opts.k * 10).max(100);
        let mut dense: HashMap<usize, f32> = HashMap::new();
        if opts.mode != Mode::Lexical && !qvec.is_empty() {
            for h in self.searcher.search(&qvec, pool, &keep) {
                dense.insert(h.row, h.score);
            }
        }
        let mut lexical: HashMap<usize, f32> = HashMap::new();
        // BM25 of every paper (the accumulator scores them all anyway).
        let mut lexical_all: Vec<f32> = Vec::new();
        if opts.mode != Mode::Dense {
            let mut acc = vec![0f32; self.bm25.docs()];
            self.bm25.accumulate(&qterms, 1.0, &mut acc);
            if !neg_terms.is_empty() {
                self.bm25.accumulate(&neg_terms, -0.5, &mut acc);
            }
            let mut v: Vec<(usize, f32)> = acc
                .iter()
                .copied()
                .enumerate()
                .filter(|(d, x)| *x > 0.0 && keep(*d))
                .collect();
            // Top `pool` by selection, not a sort of every matching paper.
            let order =
                |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            if v.len() > pool {
                v.select_nth_unstable_by(pool, order);
                v.truncate(pool);
            }
            v.sort_unstable_by(order);
            lexical.extend(v);
            lexical_all = acc;
        }
        let mut rows: Vec<usize> = dense.keys().chain(lexical.keys()).copied().collect();
        rows.sort_unstable();
        rows.dedup();
        // Both scores for every candidate (dense for the lexical-only ones,
        // BM25 for the dense-only ones), so the fusion compares like with like.
        if opts.mode == Mode::Hybrid {
            for &r in &rows {
                dense
                    .entry(r)
                    .or_insert_with(|| dot(self.searcher.matrix.row(r), &qvec));
                if let Some(&l) = lexical_all.get(r) {
                    lexical.entry(r).or_insert(l);
                }
            }
        }
        let pairs: Vec<(f32, f32)> = rows
            .iter()
            .map(|r| {
                (
                    dense.get(r).copied().unwrap_or(0.0),
                    lexical.get(r).copied().unwrap_or(0.0),
                )
            })
            .collect();
        let scores: Vec<f32> = match opts.mode {
            Mode::Dense => pairs.iter().map(|p| p.0).collect(),
            Mode::Lexical => pairs.iter().map(|p| p.1).collect(),
            Mode::Hybrid => fuse(&pairs, opts.weight),
        };
        let mut out: Vec<Related> = rows
            .into_iter()
            .zip(pairs.into_iter().zip(scores))
            .map(|(row, ((dense, lexical), score))| Related {
                row,
                score,
                dense,
                lexical,
                why: Vec::new(),
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        out.truncate(opts.k);
        for r in &mut out {
            r.why = why_related(&self.bm25, &qterms, &self.terms(r.row), 4);
        }
        Ok(out)
    }
}

/// Hybrid scores of candidates given as (dense, lexical) pairs: each score
/// min-max normalised over the candidates (no spread carries no
/// information), then `weight * dense + (1 - weight) * lexical`.
fn fuse(pairs: &[(f32, f32)], weight: f32) -> Vec<f32> {
    let range = |f: fn(&(f32, f32)) -> f32| {
        pairs
            .iter()
            .map(f)
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            })
    };
    let unit = |x: f32, (lo, hi): (f32, f32)| if hi > lo { (x - lo) / (hi - lo) } else { 0.0 };
    let (dr, lr) = (range(|p| p.0), range(|p| p.1));
    pairs
        .iter()
        .map(|&(d, l)| weight * unit(d, dr) + (1.0 - weight) * unit(l, lr))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::{EmbedOptions, Embedder, HashEmbedder, embed_library};
    use crate::index::SearchOptions;
    use crate::paper::Paper;
    use crate::store::{WriteOptions, Writer};

    fn library() -> (tempfile::TempDir, Library) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        let items = [
            (
                "g1",
                "Graph neural networks for molecule property prediction",
                "Message passing networks on molecular graphs predict chemical properties.",
                2019,
            ),
            (
                "g2",
                "Molecular graph learning with message passing",
                "We learn molecular representations with graph neural networks and message passing.",
                2021,
            ),
            (
                "v1",
                "Vision transformers for image classification",
                "Transformers applied to image patches classify images.",
                2021,
            ),
            (
                "v2",
                "Image classification with convolutional networks",
                "Deep convolutional networks classify natural images.",
                2015,
            ),
            (
                "d1",
                "Denoising diffusion models for image generation",
                "Diffusion models generate images by denoising.",
                2020,
            ),
        ];
        for (id, t, a, y) in items {
            w.add_paper(Paper {
                id: id.into(),
                title: t.into(),
                abs: a.into(),
                year: Some(y),
                ..Default::default()
            })
            .unwrap();
        }
        w.commit().unwrap();
        let mut e = HashEmbedder::new(256);
        embed_library(
            &mut w,
            &mut e,
            &EmbedOptions {
                progress: false,
                ..Default::default()
            },
        )
        .unwrap();
        drop(w);
        let lib = Library::open(dir.path()).unwrap();
        (dir, lib)
    }

    #[test]
    fn fusion_is_a_convex_combination_of_normalised_scores() {
        let pairs = [(0.9, 1.0), (0.8, 9.0), (0.5, 10.0), (0.2, 0.0)];
        let order = |scores: Vec<f32>| {
            let mut idx: Vec<usize> = (0..scores.len()).collect();
            idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
            idx
        };
        // Weight 1 is dense order, weight 0 lexical order.
        assert_eq!(order(fuse(&pairs, 1.0)), vec![0, 1, 2, 3]);
        assert_eq!(order(fuse(&pairs, 0.0)), vec![2, 1, 0, 3]);
        // Even weight: second in both beats first in one and far down the other.
        assert_eq!(order(fuse(&pairs, 0.5))[0], 1);
        // BM25's scale does not matter, only its spread over the candidates.
        let scaled: Vec<(f32, f32)> = pairs.iter().map(|&(d, l)| (d, 3.0 * l + 7.0)).collect();
        let (a, b) = (fuse(&pairs, 0.5), fuse(&scaled, 0.5));
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
        // No lexical spread (no shared terms): the dense order decides.
        let flat: Vec<(f32, f32)> = pairs.iter().map(|&(d, _)| (d, 0.0)).collect();
        assert_eq!(order(fuse(&flat, 0.5)), vec![0, 1, 2, 3]);
        assert!(fuse(&[], 0.5).is_empty());
    }

    #[test]
    fn resolves_ids_titles_and_text() {
        let (_d, lib) = library();
        assert_eq!(
            resolve(&lib, "g2").unwrap(),
            Resolved::Paper {
                row: 1,
                matched_by: "id"
            }
        );
        assert_eq!(
            resolve(
                &lib,
                "graph neural networks for molecule property prediction"
            )
            .unwrap(),
            Resolved::Paper {
                row: 0,
                matched_by: "title"
            }
        );
        assert_eq!(
            resolve(
                &lib,
                "Graph neural networks for molecule property predictions!"
            )
            .unwrap(),
            Resolved::Paper {
                row: 0,
                matched_by: "fuzzy title"
            }
        );
        assert!(matches!(
            resolve(&lib, "protein folding").unwrap(),
            Resolved::Text { .. }
        ));
    }

    #[test]
    fn related_excludes_the_query_and_ranks_same_topic_first() {
        let (_d, lib) = library();
        let s = Searcher::open(&lib, &SearchOptions::default()).unwrap();
        let engine = Engine::new(&lib, s).unwrap();
        let mut e = HashEmbedder::new(256);
        let mut embed = |t: &str| Ok(e.embed(&[t]).unwrap().remove(0));
        for mode in [Mode::Dense, Mode::Lexical, Mode::Hybrid] {
            let opts = RelatedOptions {
                k: 3,
                mode,
                ..Default::default()
            };
            let r = engine
                .related(
                    &Resolved::Paper {
                        row: 0,
                        matched_by: "id",
                    },
                    &opts,
                    &mut embed,
                )
                .unwrap();
            assert!(r.iter().all(|x| x.row != 0), "{mode:?}");
            assert_eq!(r[0].row, 1, "{mode:?}: {r:?}");
        }
        let opts = RelatedOptions {
            k: 5,
            year_from: Some(2020),
            ..Default::default()
        };
        let r = engine
            .related(
                &Resolved::Text {
                    text: "image generation".into(),
                },
                &opts,
                &mut embed,
            )
            .unwrap();
        assert_eq!(r[0].row, 4);
        assert!(r.iter().all(|x| lib.papers()[x.row].year.unwrap() >= 2020));
        assert!(
            r[0].why.iter().any(|w| w.contains("image")),
            "{:?}",
            r[0].why
        );

        let set = Resolved::Set {
            positive: vec![2],
            negative: vec![4],
        };
        let r = engine
            .related(
                &set,
                &RelatedOptions {
                    k: 2,
                    ..Default::default()
                },
                &mut embed,
            )
            .unwrap();
        assert_eq!(r[0].row, 3);
    }
}
