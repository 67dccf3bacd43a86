//! Checking papermap against a user's own ground truth: related papers
//! against lists of relevant papers (nDCG@10, MAP@100, recall@10, P@1, the
//! SciDocs "cite" measures), topics against labels (V-measure, NMI, ARI).
//! The metrics are plain functions; the runs take a library and the parsed
//! ground truth, and never write to the library.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::cluster::{self, KMeansOptions};
use crate::error::{Error, Result};
use crate::index::Matrix;
use crate::query::{Engine, RelatedOptions, Resolved};
use crate::store::Library;

/// One judged query: a paper of the library and the papers relevant to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub row: usize,
    pub relevant: HashSet<usize>,
}

/// The non-empty lines of a JSON-lines file, parsed, each with an error
/// maker that names the file and line.
fn json_lines(path: &Path) -> Result<Vec<(serde_json::Value, impl Fn(&str) -> Error + '_)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = move |why: &str| Error::Invalid(format!("{}:{}: {why}", path.display(), i + 1));
        let v = serde_json::from_str(line).map_err(|e| bad(&format!("invalid JSON: {e}")))?;
        out.push((v, bad));
    }
    Ok(out)
}

/// Reads `{"id": ..., "relevant": [ids]}` lines (`cites` is accepted for
/// `relevant`). Ids not in the library are counted and skipped; a query
/// without any relevant paper left is skipped.
pub fn read_judgements(path: &Path, lib: &Library) -> Result<(Vec<Judged>, usize)> {
    let mut out = Vec::new();
    let mut unknown = 0;
    for (v, bad) in json_lines(path)? {
        let id = match v.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => return Err(bad("needs an \"id\"")),
        };
        let list = v
            .get("relevant")
            .or_else(|| v.get("cites"))
            .and_then(|x| x.as_array())
            .ok_or_else(|| bad("needs a \"relevant\" list of ids"))?;
        let Some(row) = lib.index_of(&id) else {
            unknown += 1;
            continue;
        };
        let mut relevant = HashSet::new();
        for r in list {
            let r = match r {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return Err(bad("\"relevant\" holds ids (strings)")),
            };
            match lib.index_of(&r) {
                Some(x) if x != row => {
                    relevant.insert(x);
                }
                Some(_) => {}
                None => unknown += 1,
            }
        }
        if !relevant.is_empty() {
            out.push(Judged { row, relevant });
        }
    }
    Ok((out, unknown))
}

/// The four ranking measures, averaged over queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RankMetrics {
    pub queries: usize,
    pub ndcg10: f64,
    pub map100: f64,
    pub recall10: f64,
    pub p1: f64,
}

/// Measures of one ranked list (best first) against the relevant set.
fn rank_measures(ranked: &[usize], relevant: &HashSet<usize>) -> [f64; 4] {
    let hit = |r: &usize| relevant.contains(r);
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .filter(|(_, r)| hit(r))
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let idcg: f64 = (0..relevant.len().min(10))
        .map(|i| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let (mut hits, mut ap) = (0usize, 0f64);
    for (i, r) in ranked.iter().take(100).enumerate() {
        if hit(r) {
            hits += 1;
            ap += hits as f64 / (i + 1) as f64;
        }
    }
    let in10 = ranked.iter().take(10).filter(|r| hit(r)).count();
    [
        dcg / idcg,
        ap / relevant.len().min(100) as f64,
        in10 as f64 / relevant.len() as f64,
        ranked.first().is_some_and(hit) as u8 as f64,
    ]
}

/// Runs every judged query through `related` with `opts` (k raised to 100
/// for MAP@100) and averages the measures.
pub fn related(
    engine: &Engine,
    judged: &[Judged],
    opts: &RelatedOptions,
    embed_text: &mut dyn FnMut(&str) -> Result<Vec<f32>>,
) -> Result<RankMetrics> {
    let mut o = opts.clone();
    o.k = o.k.max(100);
    o.explain = false;
    let mut sum = [0f64; 4];
    for j in judged {
        let q = Resolved::Paper {
            row: j.row,
            matched_by: "id",
        };
        let ranked: Vec<usize> = engine
            .related(&q, &o, embed_text)?
            .iter()
            .map(|r| r.row)
            .collect();
        for (s, m) in sum.iter_mut().zip(rank_measures(&ranked, &j.relevant)) {
            *s += m;
        }
    }
    let n = judged.len().max(1) as f64;
    Ok(RankMetrics {
        queries: judged.len(),
        ndcg10: sum[0] / n,
        map100: sum[1] / n,
        recall10: sum[2] / n,
        p1: sum[3] / n,
    })
}

/// Agreement of a clustering with reference labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ClusterMetrics {
    pub papers: usize,
    pub labels: usize,
    pub k: usize,
    pub v_measure: f64,
    /// Normalised mutual information (arithmetic mean of the entropies,
    /// scikit-learn's default; equal to the V-measure).
    pub nmi: f64,
    pub ari: f64,
}

/// V-measure, NMI and adjusted Rand index of `pred` against `truth`.
pub fn cluster_agreement(truth: &[usize], pred: &[usize]) -> (f64, f64, f64) {
    let n = truth.len() as f64;
    let mut joint: HashMap<(usize, usize), f64> = HashMap::new();
    let mut a: HashMap<usize, f64> = HashMap::new();
    let mut b: HashMap<usize, f64> = HashMap::new();
    for (&t, &p) in truth.iter().zip(pred) {
        *joint.entry((t, p)).or_default() += 1.0;
        *a.entry(t).or_default() += 1.0;
        *b.entry(p).or_default() += 1.0;
    }
    let entropy =
        |m: &HashMap<usize, f64>| -> f64 { m.values().map(|&c| -(c / n) * (c / n).ln()).sum() };
    let (ha, hb) = (entropy(&a), entropy(&b));
    let mi: f64 = joint
        .iter()
        .map(|(&(t, p), &c)| (c / n) * ((c * n) / (a[&t] * b[&p])).ln())
        .sum();
    let nmi = if ha + hb > 0.0 {
        2.0 * mi / (ha + hb)
    } else {
        1.0
    };
    let pairs = |c: f64| c * (c - 1.0) / 2.0;
    let index: f64 = joint.values().map(|&c| pairs(c)).sum();
    let sa: f64 = a.values().map(|&c| pairs(c)).sum();
    let sb: f64 = b.values().map(|&c| pairs(c)).sum();
    let expected = sa * sb / pairs(n).max(1.0);
    let max = (sa + sb) / 2.0;
    let ari = if (max - expected).abs() < f64::EPSILON {
        1.0
    } else {
        (index - expected) / (max - expected)
    };
    // V-measure with beta 1 is the NMI with the arithmetic mean.
    (nmi, nmi, ari)
}

/// Reads `{"id": ..., "label": ...}` lines: the rows of labelled papers of
/// the library and their label numbers.
pub fn read_labels(path: &Path, lib: &Library) -> Result<(Vec<(usize, usize)>, usize)> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut unknown = 0;
    for (v, bad) in json_lines(path)? {
        let field = |k: &str| match v.get(k) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let (Some(id), Some(label)) = (field("id"), field("label")) else {
            return Err(bad("needs \"id\" and \"label\""));
        };
        match lib.index_of(&id) {
            Some(row) => {
                let next = names.len();
                out.push((row, *names.entry(label).or_insert(next)));
            }
            None => unknown += 1,
        }
    }
    Ok((out, unknown))
}

/// Clusters the library's vectors with k (default: the number of labels)
/// and the topic seed, and compares the labelled papers' clusters with
/// their labels. Nothing is stored.
pub fn topics(
    lib: &Library,
    labelled: &[(usize, usize)],
    k: Option<usize>,
    seed: u64,
) -> Result<ClusterMetrics> {
    if labelled.is_empty() {
        return Err(Error::Invalid("no labelled paper is in the library".into()));
    }
    let labels = labelled.iter().map(|x| x.1).collect::<HashSet<_>>().len();
    let k = k.unwrap_or(labels);
    let m = Matrix::load_or_build(lib, &lib.fingerprint())?;
    // The space `topics` clusters in (embeddings + lexical features).
    let (x, dim) = crate::pipeline::topic_space(lib, &m)?;
    let c = cluster::kmeans(&x, dim, &KMeansOptions::new(k, seed))?;
    let truth: Vec<usize> = labelled.iter().map(|x| x.1).collect();
    let pred: Vec<usize> = labelled.iter().map(|x| c.labels[x.0]).collect();
    let (v, nmi, ari) = cluster_agreement(&truth, &pred);
    Ok(ClusterMetrics {
        papers: labelled.len(),
        labels,
        k,
        v_measure: v,
        nmi,
        ari,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_measures_match_hand_computed_values() {
        let rel: HashSet<usize> = [1, 5].into_iter().collect();
        let [ndcg, map, r10, p1] = rank_measures(&[1, 2, 5, 7], &rel);
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((ndcg - (1.0 + 1.0 / 4f64.log2()) / ideal).abs() < 1e-12);
        assert!((map - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!((r10, p1), (1.0, 1.0));
        let [ndcg, map, r10, p1] = rank_measures(&[9, 8], &rel);
        assert_eq!((ndcg, map, r10, p1), (0.0, 0.0, 0.0, 0.0));
    }

    #[test]
    fn cluster_agreement_matches_known_values() {
        // Identical up to renaming: perfect.
        let (v, _, ari) = cluster_agreement(&[0, 0, 1, 1], &[5, 5, 3, 3]);
        assert!((v - 1.0).abs() < 1e-12 && (ari - 1.0).abs() < 1e-12);
        // scikit-learn: v_measure_score([0,0,1,1],[0,0,1,2]) = 0.8,
        // adjusted_rand_score = 0.5714285714285715.
        let (v, _, ari) = cluster_agreement(&[0, 0, 1, 1], &[0, 0, 1, 2]);
        assert!((v - 0.8).abs() < 1e-9, "{v}");
        assert!((ari - 0.571_428_571_428_571_5).abs() < 1e-9, "{ari}");
        // One cluster for everything says nothing.
        let (v, _, ari) = cluster_agreement(&[0, 1, 2, 3], &[0, 0, 0, 0]);
        assert!(v.abs() < 1e-12 && ari.abs() < 1e-12);
    }
}
