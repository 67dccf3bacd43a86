//! Papers that arrive after a clustering: each joins the nearest topic in
//! the topic space, without clustering again, and the rule for when that is
//! no longer good enough (the library *drifted*) so a full clustering runs.
//!
//! A new paper has no neighbours' rows to be smoothed with and no row of
//! the SVD, so it is placed in the space *before smoothing*: its unit
//! embedding beside its TF-IDF vector folded in through the stored LSA
//! basis (`features::fold_in`), compared by cosine with the stored k-means
//! centroids. The clustered papers' own unsmoothed rows, compared with
//! their centroids the same way, give the baseline distance the drift
//! rule measures new papers against. Centroids stay those of the clustering
//! (they are what the topics *are* until the next full run); keywords and
//! representatives are recomputed from the grown membership by the caller.
//!
//! [`Placement`] is the part stored with the topics: centroids, the
//! baseline and the basis, the basis quantised to 8 bits per value with a
//! scale per term (fold-in sums a few hundred terms, so the rounding of one
//! is noise) and keyed by term text, since the lexical index renumbers its
//! terms when it grows.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::features::{Basis, fold_in};

/// Label of a paper that is in no topic (it was not embedded yet).
pub const UNASSIGNED: u32 = u32::MAX;

/// A full clustering runs once more than this share of the papers in the
/// topics were placed by extension instead of clustered. The centroids and
/// k (chosen by stability) were fitted to the clustered papers; past a
/// fifth of members that took no part in them, a new field that arrived is
/// being forced into old topics instead of becoming one, and the one-off
/// cost of re-clustering is small next to the library having grown by 25%.
pub const MAX_PLACED_SHARE: f64 = 0.2;

/// A full clustering runs when the papers placed now sit, on average, this
/// many times farther (cosine distance) from their topic's centroid than
/// the clustered papers sit from theirs, measured in the same unsmoothed
/// space. Measured with MiniLM vectors on 5,000 NeurIPS/ICML papers
/// (`../shared/eval/cite-dev`, 40 topics): the other 885 papers of the same
/// set placed at 1.075x; 200 arXiv papers of fields the library lacks
/// (security, networking, software engineering, sound, graphics) at 1.36x.
/// 1.25x sits between them: a batch that is mostly a new field re-clusters,
/// more of the library's own fields do not.
pub const MAX_DISTANCE_RATIO: f32 = 1.25;

/// The distance rule needs at least this many new papers: a handful of
/// outliers is not a drift (they join their nearest topic).
pub const MIN_DRIFT_PAPERS: usize = 20;

/// Why a clustering is not extended but redone.
#[derive(Debug, Clone, PartialEq)]
pub enum Drift {
    /// Too many members placed instead of clustered.
    Share { placed: usize, total: usize },
    /// New papers far from every topic.
    Distance { mean: f32, baseline: f32 },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Share { placed, total } => write!(
                f,
                "{placed} of {total} papers would be in topics they were not clustered into (over {:.0}%)",
                MAX_PLACED_SHARE * 100.0
            ),
            Drift::Distance { mean, baseline } => write!(
                f,
                "the new papers are {:.2}x farther from their nearest topic than the clustered papers (over {MAX_DISTANCE_RATIO}x)",
                mean / baseline.max(f32::MIN_POSITIVE)
            ),
        }
    }
}

/// The share rule: `clustered` papers were clustered, `placed` (old and
/// new) would be placed. Checked before anything is computed.
pub fn share_drift(clustered: usize, placed: usize) -> Option<Drift> {
    let total = clustered + placed;
    (total > 0 && placed as f64 > MAX_PLACED_SHARE * total as f64)
        .then_some(Drift::Share { placed, total })
}

/// The distance rule over the new papers' distances to their topics.
pub fn distance_drift(distances: &[f32], baseline: f32) -> Option<Drift> {
    if distances.len() < MIN_DRIFT_PAPERS || baseline <= 0.0 {
        return None;
    }
    let mean = distances.iter().sum::<f32>() / distances.len() as f32;
    (mean > MAX_DISTANCE_RATIO * baseline).then_some(Drift::Distance { mean, baseline })
}

/// The nearest of `k` unit centroids (`centroids` is k x dim) to a unit
/// `row`, and its cosine distance. Ties go to the lower index.
pub fn nearest(centroids: &[f32], dim: usize, row: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (c, cen) in centroids.chunks(dim.max(1)).enumerate() {
        let s: f32 = cen.iter().zip(row).map(|(a, b)| a * b).sum();
        if s > best.1 {
            best = (c, s);
        }
    }
    (best.0, 1.0 - best.1)
}

/// What a clustering keeps so that later papers can join it (stored in
/// `derived/topics.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Dimension of the embeddings.
    pub dense_dim: usize,
    /// Dimension of the LSA part.
    pub lexical_dims: usize,
    pub lexical_weight: f32,
    /// Unit centroids, k x (dense_dim + lexical_dims), of the smoothed
    /// rows k-means clustered.
    pub centroids: Vec<f32>,
    /// Mean cosine distance of the clustered papers' unsmoothed rows to
    /// their centroid.
    pub baseline: f32,
    /// Terms of the basis, by text.
    pub terms: Vec<String>,
    /// Per term, the value an 8-bit code of 127 stands for.
    pub scales: Vec<f32>,
    /// terms x lexical_dims signed 8-bit codes, base64.
    pub codes: String,
}

impl Placement {
    /// From a clustering: `plain` are the unsmoothed rows (n x dim) of the
    /// clustered papers with their `labels`; `terms[i]` is the text of
    /// `basis.terms[i]`.
    pub fn new(
        dense_dim: usize,
        basis: &Basis,
        terms: Vec<String>,
        centroids: &[f32],
        plain: &[f32],
        labels: &[usize],
    ) -> Placement {
        let dim = dense_dim + basis.dims;
        let mut cen = centroids.to_vec();
        cen.chunks_mut(dim.max(1)).for_each(unit);
        let mut sum = 0f64;
        for (row, &l) in plain.chunks(dim.max(1)).zip(labels) {
            let c = &cen[l * dim..(l + 1) * dim];
            sum += f64::from(1.0 - row.iter().zip(c).map(|(a, b)| a * b).sum::<f32>());
        }
        let baseline = if labels.is_empty() {
            0.0
        } else {
            (sum / labels.len() as f64) as f32
        };
        let r = basis.dims;
        let mut scales = Vec::with_capacity(terms.len());
        let mut bytes = Vec::with_capacity(terms.len() * r);
        for row in basis.v.chunks(r.max(1)) {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            scales.push(max);
            for &v in row {
                let q = if max > 0.0 {
                    (v / max * 127.0).round()
                } else {
                    0.0
                };
                bytes.push(q as i8 as u8);
            }
        }
        Placement {
            dense_dim,
            lexical_dims: r,
            lexical_weight: basis.weight,
            centroids: cen,
            baseline,
            terms,
            scales,
            codes: base64_encode(&bytes),
        }
    }

    /// Number of centroids.
    pub fn k(&self) -> usize {
        self.centroids.len() / (self.dense_dim + self.lexical_dims).max(1)
    }

    /// The basis decoded, and each term's index in it; None when the stored
    /// codes do not fit the terms (a damaged or foreign file).
    pub fn decode(&self) -> Option<(Basis, HashMap<&str, usize>)> {
        let r = self.lexical_dims;
        let bytes = base64_decode(&self.codes)?;
        if bytes.len() != self.terms.len() * r || self.scales.len() != self.terms.len() {
            return None;
        }
        let mut v = Vec::with_capacity(bytes.len());
        for (row, &s) in bytes.chunks(r.max(1)).zip(&self.scales) {
            v.extend(row.iter().map(|&b| f32::from(b as i8) * s / 127.0));
        }
        let index = self
            .terms
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        let basis = Basis {
            terms: (0..self.terms.len() as u32).collect(),
            dims: r,
            v,
            weight: self.lexical_weight,
        };
        Some((basis, index))
    }

    /// The topic (centroid index) a paper joins and its distance: its
    /// `embedding` and TF-IDF weights over the basis terms (index, weight).
    pub fn place(
        &self,
        basis: &Basis,
        embedding: &[f32],
        lexical: &[(usize, f32)],
    ) -> (usize, f32) {
        let row = fold_in(embedding, lexical, basis);
        nearest(&self.centroids, self.dense_dim + self.lexical_dims, &row)
    }
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| B64.iter().position(|&b| b == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for c in s.chunks(4) {
        let pad = c.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &b in &c[..4 - pad] {
            n = (n << 6) | val(b)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_picks_the_most_similar_centroid() {
        // Three unit centroids in 2-D.
        let c = [1.0, 0.0, 0.0, 1.0, -1.0, 0.0];
        let (t, d) = nearest(&c, 2, &[0.6, 0.8]);
        assert_eq!(t, 1);
        assert!((d - 0.2).abs() < 1e-6);
        assert_eq!(nearest(&c, 2, &[-0.8, 0.6]).0, 2);
        assert_eq!(nearest(&c, 2, &[0.8, -0.6]).0, 0);
    }

    #[test]
    fn share_rule_fires_only_past_a_fifth() {
        assert_eq!(share_drift(800, 200), None);
        assert_eq!(
            share_drift(800, 201),
            Some(Drift::Share {
                placed: 201,
                total: 1001
            })
        );
        assert_eq!(share_drift(0, 0), None);
        assert!(share_drift(0, 1).is_some());
    }

    #[test]
    fn distance_rule_needs_enough_papers_and_a_clear_gap() {
        let near = vec![0.5f32; 100];
        assert_eq!(distance_drift(&near, 0.45), None);
        let far = vec![0.7f32; 100];
        assert!(matches!(
            distance_drift(&far, 0.45),
            Some(Drift::Distance { .. })
        ));
        // Too few papers to call it a drift.
        assert_eq!(distance_drift(&far[..MIN_DRIFT_PAPERS - 1], 0.45), None);
        assert!(distance_drift(&far[..MIN_DRIFT_PAPERS], 0.45).is_some());
        assert_eq!(distance_drift(&far, 0.0), None);
    }

    /// Two topics in a 2-d embedding + 2-d lexical space: "graph" words and
    /// embeddings near e0, "protein" words and embeddings near e1.
    fn two_topics() -> (Placement, Vec<f32>) {
        let basis = Basis {
            terms: vec![0, 1],
            dims: 2,
            // Term 0 ("graph") -> lexical e0, term 1 ("protein") -> e1.
            v: vec![0.9, 0.1, 0.1, 0.9],
            weight: 0.5,
        };
        let w = 0.5f32;
        let n = (1.0 + w * w).sqrt();
        let centroids = vec![1.0 / n, 0.0, w / n, 0.0, 0.0, 1.0 / n, 0.0, w / n];
        let plain = centroids.clone();
        let p = Placement::new(
            2,
            &basis,
            vec!["graph".into(), "protein".into()],
            &centroids,
            &plain,
            &[0, 1],
        );
        (p, centroids)
    }

    #[test]
    fn a_paper_joins_the_topic_of_its_embedding_and_words() {
        let (p, centroids) = two_topics();
        assert_eq!(p.k(), 2);
        assert!(p.baseline.abs() < 1e-6, "{}", p.baseline);
        // Stored as text and 8-bit codes, read back within rounding.
        let (basis, index) = p.decode().expect("decodes");
        assert_eq!(index["protein"], 1);
        assert!((basis.v[0] - 0.9).abs() < 0.01 && (basis.v[1] - 0.1).abs() < 0.01);
        // Embedding and words agree: topic 1, close to its centroid.
        let (t, d) = p.place(&basis, &[0.1, 0.99], &[(1, 1.0)]);
        assert_eq!(t, 1);
        assert!(d < 0.05, "{d}");
        // Embedding says 0, words say 1 strongly: the embedding weighs
        // more (lexical weight 0.5), so topic 0, but farther away.
        let (t, d2) = p.place(&basis, &[0.9, 0.436], &[(1, 1.0)]);
        assert_eq!(t, 0);
        assert!(d2 > d);
        // Centroids were kept as given (already unit, up to rounding).
        for (a, b) in p.centroids.iter().zip(&centroids) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn damaged_codes_are_refused() {
        let (mut p, _) = two_topics();
        p.codes.pop();
        assert!(p.decode().is_none());
        let (mut p, _) = two_topics();
        p.codes = base64_encode(&[1, 2, 3]);
        assert!(p.decode().is_none());
    }

    #[test]
    fn base64_round_trips() {
        for n in 0..10 {
            let b: Vec<u8> = (0..n).map(|i| (i * 97 + 13) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&b)).as_deref(), Some(&b[..]));
        }
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        assert_eq!(base64_decode("TQ==").as_deref(), Some(&b"M"[..]));
        assert!(base64_decode("T!==").is_none());
    }
}
