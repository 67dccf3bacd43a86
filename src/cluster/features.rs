//! The space topics are clustered in. Sentence embeddings alone put papers
//! of one field close when they *sound* alike (same genre of abstract); the
//! words they share say more about the field. So each paper is the
//! concatenation of
//! - its embedding, centred on the library mean and re-normalised (the
//!   common direction all MiniLM abstracts share carries no topic), and
//! - its TF-IDF vector (the lexical index's weighting), randomly projected
//!   to `lexical_dims` dimensions (a seeded +-1 projection keeps cosines,
//!   Johnson-Lindenstrauss) and weighted by `lexical_weight`,
//!
//! the whole row normalised again, so k-means on it is spherical k-means on
//! a dense+lexical cosine. Then each row is smoothed with its `smooth_k`
//! nearest neighbours in that space (`x_i + mean of neighbours`,
//! re-normalised): a paper is clustered by what it and its closest papers
//! share, which damps the noise of one short abstract. Neighbours are exact
//! up to `EXACT_SMOOTH` papers; above, they are searched within the blocks
//! of a coarse seeded k-means (about 2,000 papers each), O(n^2/blocks).
//! Measured on label-dev at k = 17 in `scripts/bench-topics` (see
//! ARCHITECTURE.md).

use super::layout::knn_within;
use super::{KMeansOptions, kmeans};
use ndarray::{ArrayView2, Axis};

/// Libraries up to this size get exact neighbours for smoothing.
pub const EXACT_SMOOTH: usize = 20_000;

/// Options of the topic space.
#[derive(Debug, Clone)]
pub struct FeatureOptions {
    /// Weight of the lexical part relative to the (unit) dense part.
    /// Default 0.4.
    pub lexical_weight: f32,
    /// Dimensions of the projected TF-IDF vectors. Default 384.
    pub lexical_dims: usize,
    /// Centre the embeddings on their mean first. Default false (it lowered
    /// V-measure with the lexical part on label-dev).
    pub center: bool,
    /// Neighbours each row is smoothed with; 0 = none. Default 30.
    pub smooth_k: usize,
    /// Seed of the coarse blocks above `EXACT_SMOOTH` papers.
    pub seed: u64,
}

impl Default for FeatureOptions {
    fn default() -> Self {
        FeatureOptions {
            lexical_weight: 0.4,
            lexical_dims: 384,
            center: false,
            smooth_k: 30,
            seed: 42,
        }
    }
}

/// Rows of the topic space (row-major) and its dimension. `dense` is
/// n x dim; `docs[i]` is paper i's unit TF-IDF vector as (term, weight).
pub fn topic_space(
    dense: &[f32],
    dim: usize,
    docs: &[Vec<(u32, f32)>],
    opts: &FeatureOptions,
) -> (Vec<f32>, usize) {
    let n = dense.len() / dim.max(1);
    let lex = if opts.lexical_weight > 0.0 && docs.len() == n {
        opts.lexical_dims
    } else {
        0
    };
    let out_dim = dim + lex;
    let mut mean = vec![0f64; dim];
    if opts.center && n > 1 {
        for r in dense.chunks(dim) {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
    }
    let mut out = vec![0f32; n * out_dim];
    for (i, row) in out.chunks_mut(out_dim).enumerate() {
        let (d, l) = row.split_at_mut(dim);
        for ((o, &v), &m) in d.iter_mut().zip(&dense[i * dim..(i + 1) * dim]).zip(&mean) {
            *o = v - m as f32;
        }
        unit(d);
        if lex > 0 {
            for &(t, w) in &docs[i] {
                project(t, w, l);
            }
            unit(l);
            l.iter_mut().for_each(|v| *v *= opts.lexical_weight);
        }
        unit(row);
    }
    if opts.smooth_k > 0 && n > opts.smooth_k + 1 {
        out = smooth(&out, out_dim, opts.smooth_k, opts.seed);
    }
    (out, out_dim)
}

/// Each row plus the mean of its `k` nearest rows, re-normalised.
fn smooth(x: &[f32], dim: usize, k: usize, seed: u64) -> Vec<f32> {
    let n = x.len() / dim;
    let view = ArrayView2::from_shape((n, dim), x).expect("row-major matrix");
    let blocks: Vec<Vec<usize>> = if n <= EXACT_SMOOTH {
        vec![(0..n).collect()]
    } else {
        let c = n.div_ceil(2_000);
        let opts = KMeansOptions {
            restarts: 1,
            max_iter: 20,
            ..KMeansOptions::new(c, seed)
        };
        let labels = kmeans(x, dim, &opts).map_or_else(|_| vec![0; n], |c| c.labels);
        let mut b = vec![Vec::new(); c];
        for (i, &l) in labels.iter().enumerate() {
            b[l].push(i);
        }
        b
    };
    let mut out = x.to_vec();
    for rows in blocks.iter().filter(|b| b.len() > 1) {
        let sub = view.select(Axis(0), rows);
        let nbs = knn_within(&sub.view(), k.min(rows.len() - 1));
        for (i, nb) in nbs.iter().enumerate() {
            let o = &mut out[rows[i] * dim..(rows[i] + 1) * dim];
            let w = 1.0 / nb.len() as f32;
            for &(j, _) in nb {
                for (a, &b) in o.iter_mut().zip(sub.row(j)) {
                    *a += w * b;
                }
            }
            unit(o);
        }
    }
    out
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Adds term `t` with weight `w` through the projection: entry j of the
/// term's column is +-1, the sign from a hash of (t, j), so the projection
/// is the same on every run and needs no stored matrix.
fn project(t: u32, w: f32, out: &mut [f32]) {
    let mut h = u64::from(t).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    for chunk in out.chunks_mut(64) {
        // splitmix64: 64 signs per step.
        h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        for (j, o) in chunk.iter_mut().enumerate() {
            *o += if (z >> j) & 1 == 1 { w } else { -w };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_unit_and_shared_words_pull_papers_together() {
        // Papers 0 and 1 share a term, 2 does not; embeddings are equal.
        let dense = vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let docs = vec![vec![(3, 1.0)], vec![(3, 1.0)], vec![(9, 1.0)]];
        let opts = FeatureOptions {
            smooth_k: 0,
            ..Default::default()
        };
        let (x, d) = topic_space(&dense, 3, &docs, &opts);
        assert_eq!(d, 3 + 384);
        let row = |i: usize| &x[i * d..(i + 1) * d];
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f32>();
        for i in 0..3 {
            assert!((dot(row(i), row(i)) - 1.0).abs() < 1e-5);
        }
        assert!(dot(row(0), row(1)) > 0.99);
        // Unrelated terms project to nearly orthogonal vectors: only the
        // dense part is shared, cosine 1 / (1 + 0.4^2) = 0.862.
        assert!(
            (dot(row(0), row(2)) - 0.862).abs() < 0.02,
            "{}",
            dot(row(0), row(2))
        );
    }

    #[test]
    fn smoothing_pulls_a_stray_row_toward_its_neighbours() {
        // Four rows near e0, one of them tilted toward e1; with k = 3 its
        // neighbours are the other three, so smoothing reduces the tilt.
        let rows = [[1.0, 0.0], [0.99, 0.14], [0.98, -0.2], [0.8, 0.6]];
        let x: Vec<f32> = rows.iter().flatten().copied().collect();
        let s = smooth(&x, 2, 3, 1);
        assert!(s[7] < 0.6 && s[7] > 0.0, "{s:?}");
        assert!(((s[6] * s[6] + s[7] * s[7]) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn centring_removes_the_shared_direction() {
        let dense = vec![1.0, 0.1, 1.0, -0.1];
        let opts = FeatureOptions {
            center: true,
            ..Default::default()
        };
        let (x, d) = topic_space(&dense, 2, &[], &opts);
        assert_eq!(d, 2);
        // After centring the two rows point in opposite directions.
        assert!((x[0] * x[2] + x[1] * x[3] + 1.0).abs() < 1e-5, "{x:?}");
    }
}
