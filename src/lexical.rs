//! The lexical half of hybrid relevance: BM25 over title and abstract (title
//! terms counted twice), and the "why related" explanation: the shared terms
//! and two-word phrases that weigh most.

use std::collections::HashMap;

use crate::paper::Paper;
use crate::text;

/// BM25 parameters (the usual defaults).
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// An in-memory inverted index over a library's papers.
#[derive(Debug, Clone, Default)]
pub struct Bm25 {
    postings: HashMap<String, Vec<(u32, u16)>>,
    doc_len: Vec<u32>,
    avg_len: f32,
}

/// Terms of a paper for lexical matching: title twice, then abstract.
pub fn paper_terms(p: &Paper) -> Vec<String> {
    let mut t = text::terms(&p.title);
    t.extend(t.clone());
    t.extend(text::terms(&p.abs));
    t
}

impl Bm25 {
    pub fn build(papers: &[Paper]) -> Bm25 {
        let mut postings: HashMap<String, Vec<(u32, u16)>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(papers.len());
        for (d, p) in papers.iter().enumerate() {
            let terms = paper_terms(p);
            doc_len.push(terms.len() as u32);
            let mut tf: HashMap<String, u16> = HashMap::new();
            for t in terms {
                *tf.entry(t).or_default() += 1;
            }
            for (t, n) in tf {
                postings.entry(t).or_default().push((d as u32, n));
            }
        }
        let avg_len = doc_len.iter().map(|&l| l as f32).sum::<f32>() / doc_len.len().max(1) as f32;
        Bm25 {
            postings,
            doc_len,
            avg_len,
        }
    }

    pub fn docs(&self) -> usize {
        self.doc_len.len()
    }

    /// Inverse document frequency (BM25+ style, never negative).
    pub fn idf(&self, term: &str) -> f32 {
        let n = self.docs() as f32;
        let df = self.postings.get(term).map_or(0, Vec::len) as f32;
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// BM25 scores of every document with at least one query term.
    /// Each distinct query term counts once: long queries (a whole abstract)
    /// are not dominated by their repeated words.
    pub fn scores(&self, query_terms: &[String]) -> HashMap<usize, f32> {
        let mut uniq: Vec<&String> = query_terms.iter().collect();
        uniq.sort();
        uniq.dedup();
        let mut out: HashMap<usize, f32> = HashMap::new();
        for t in uniq {
            let Some(list) = self.postings.get(t) else {
                continue;
            };
            let idf = self.idf(t);
            for &(d, tf) in list {
                let tf = f32::from(tf);
                let len = self.doc_len[d as usize] as f32;
                let s =
                    idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / self.avg_len.max(1.0)));
                *out.entry(d as usize).or_default() += s;
            }
        }
        out
    }
}

/// The shared terms and phrases that weigh most between a query and a paper,
/// best first: two-word phrases both contain, then single terms, by idf.
pub fn why_related(
    bm: &Bm25,
    query_terms: &[String],
    doc_terms: &[String],
    max: usize,
) -> Vec<String> {
    let qset: std::collections::HashSet<&String> = query_terms.iter().collect();
    let qpairs: std::collections::HashSet<(&String, &String)> =
        query_terms.windows(2).map(|w| (&w[0], &w[1])).collect();
    let mut phrases: Vec<(f32, String)> = doc_terms
        .windows(2)
        .filter(|w| w[0] != w[1] && qpairs.contains(&(&w[0], &w[1])))
        .map(|w| (bm.idf(&w[0]) + bm.idf(&w[1]), format!("{} {}", w[0], w[1])))
        .collect();
    phrases.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    phrases.dedup_by(|a, b| a.1 == b.1);
    let mut singles: Vec<(f32, String)> = doc_terms
        .iter()
        .filter(|t| qset.contains(t))
        .map(|t| (bm.idf(t), t.clone()))
        .collect();
    singles.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    singles.dedup_by(|a, b| a.1 == b.1);
    let mut out: Vec<String> = Vec::new();
    let common = (bm.docs() as f32 / 2.0 + 1.0).ln();
    for (w, p) in phrases.into_iter().chain(singles) {
        // Terms in half the library explain nothing.
        if w <= common * 0.5 || out.len() >= max {
            continue;
        }
        // Skip a single term already inside a chosen phrase.
        if !p.contains(' ') && out.iter().any(|o| o.split(' ').any(|x| x == p)) {
            continue;
        }
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper(title: &str, abs: &str) -> Paper {
        Paper {
            title: title.into(),
            abs: abs.into(),
            ..Default::default()
        }
    }

    #[test]
    fn bm25_prefers_rare_shared_terms_and_explains_them() {
        let papers = vec![
            paper(
                "Graph neural networks for molecules",
                "Message passing on molecular graphs.",
            ),
            paper(
                "Convolutional networks for images",
                "Image classification with deep networks.",
            ),
            paper(
                "Molecular property prediction",
                "Graph neural networks predict molecular properties.",
            ),
        ];
        let bm = Bm25::build(&papers);
        let q = text::terms("graph neural networks molecular");
        let s = bm.scores(&q);
        assert!(s[&0] > s[&1] && s[&2] > s[&1]);
        let why = why_related(&bm, &q, &paper_terms(&papers[2]), 3);
        assert_eq!(why[0], "graph neural");
    }
}
