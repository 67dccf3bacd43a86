//! The space topics are clustered in. Sentence embeddings alone put papers
//! of one field close when they *sound* alike (same genre of abstract); the
//! words they share say more about the field. So each paper is the
//! concatenation of
//! - its embedding (optionally centred on the library mean), unit length, and
//! - its TF-IDF vector (the lexical index's weighting) reduced to
//!   `lexical_dims` dimensions by a truncated SVD of the library's TF-IDF
//!   matrix (latent semantic analysis, `cluster::svd`: words that occur
//!   together become one direction, so two papers on one field meet even
//!   when they share few exact words), unit length, weighted by
//!   `lexical_weight` (a seeded +-1 random projection, which only keeps
//!   cosines, is the measured alternative),
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

use std::collections::HashMap;

use super::layout::knn_within;
use super::{KMeansOptions, kmeans, svd};
use ndarray::{ArrayView2, Axis};

/// Libraries up to this size get exact neighbours for smoothing.
pub const EXACT_SMOOTH: usize = 20_000;

/// How the TF-IDF rows are brought down to `lexical_dims` dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lexical {
    /// A truncated SVD of the TF-IDF matrix (LSA, `cluster::svd`) with this
    /// many power iterations: the directions that words share most.
    Svd { power_iters: usize },
    /// A seeded +-1 random projection (keeps cosines, learns nothing).
    Projection,
}

/// Options of the topic space.
#[derive(Debug, Clone)]
pub struct FeatureOptions {
    /// Weight of the lexical part relative to the (unit) dense part.
    /// Default 0.5.
    pub lexical_weight: f32,
    /// Dimensions of the reduced TF-IDF vectors. Default 100.
    pub lexical_dims: usize,
    /// Default `Svd { power_iters: 3 }`.
    pub lexical: Lexical,
    /// Centre the embeddings on their mean first. Default false (it lowered
    /// V-measure with the lexical part on label-dev).
    pub center: bool,
    /// Neighbours each row is smoothed with; 0 = none. Default 30.
    pub smooth_k: usize,
    /// Seed of the SVD's test matrix and of the coarse blocks above
    /// `EXACT_SMOOTH` papers.
    pub seed: u64,
}

impl Default for FeatureOptions {
    fn default() -> Self {
        FeatureOptions {
            lexical_weight: 0.5,
            lexical_dims: 100,
            lexical: Lexical::Svd { power_iters: 3 },
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
    let s = topic_space_parts(dense, dim, docs, opts, false);
    (s.rows, s.dim)
}

/// The topic space with what a paper outside it can be placed with: the
/// rows before smoothing and the LSA basis of the terms (see [`Space`]).
pub fn topic_space_with_basis(
    dense: &[f32],
    dim: usize,
    docs: &[Vec<(u32, f32)>],
    opts: &FeatureOptions,
) -> Space {
    topic_space_parts(dense, dim, docs, opts, true)
}

/// Terms kept in [`Basis`]: those of at least this many papers. A term of
/// one paper only pulls a folded-in paper toward that one paper; dropping
/// them halves a Zipf vocabulary (the bulk of the stored basis).
pub const BASIS_MIN_DF: usize = 2;

/// The topic space and the pieces to project a new paper into it.
#[derive(Debug, Clone, Default)]
pub struct Space {
    /// Smoothed rows (what k-means clusters), n x dim.
    pub rows: Vec<f32>,
    pub dim: usize,
    /// The rows before smoothing (empty unless asked for): the space a
    /// folded-in paper is compared in, since it has no neighbours' rows.
    pub plain: Vec<f32>,
    /// The LSA basis (None with the random projection or no lexical part).
    pub basis: Option<Basis>,
}

/// The right singular vectors of the TF-IDF matrix for the terms of at
/// least [`BASIS_MIN_DF`] papers: `terms[i]` (the lexical index's term id)
/// has row `v[i * dims..]`; a paper's LSA coordinates are the sum of its
/// TF-IDF weights times these rows.
#[derive(Debug, Clone, Default)]
pub struct Basis {
    pub terms: Vec<u32>,
    pub dims: usize,
    pub v: Vec<f32>,
    /// Weight of the lexical part (`FeatureOptions::lexical_weight`).
    pub weight: f32,
}

fn topic_space_parts(
    dense: &[f32],
    dim: usize,
    docs: &[Vec<(u32, f32)>],
    opts: &FeatureOptions,
    keep: bool,
) -> Space {
    let n = dense.len() / dim.max(1);
    let use_lex = opts.lexical_weight > 0.0 && docs.len() == n && opts.lexical_dims > 0;
    let (lsa, lsa_dims, basis) = match opts.lexical {
        Lexical::Svd { power_iters } if use_lex => lsa_rows(docs, opts, power_iters, keep),
        _ => (Vec::new(), 0, None),
    };
    let lex = match opts.lexical {
        _ if !use_lex => 0,
        Lexical::Svd { .. } => lsa_dims,
        Lexical::Projection => opts.lexical_dims,
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
            if lsa_dims > 0 {
                l.copy_from_slice(&lsa[i * lsa_dims..(i + 1) * lsa_dims]);
            } else {
                for &(t, w) in &docs[i] {
                    project(t, w, l);
                }
            }
            unit(l);
            l.iter_mut().for_each(|v| *v *= opts.lexical_weight);
        }
        unit(row);
    }
    let plain = if keep { out.clone() } else { Vec::new() };
    if opts.smooth_k > 0 && n > opts.smooth_k + 1 {
        out = smooth(&out, out_dim, opts.smooth_k, opts.seed);
    }
    Space {
        rows: out,
        dim: out_dim,
        plain,
        // A centred space cannot be folded into without the mean; the
        // default does not centre.
        basis: basis.filter(|_| !opts.center),
    }
}

/// Places a paper outside the clustering in the space before smoothing:
/// its unit embedding beside its TF-IDF weights folded in through `basis`
/// (unit, times the lexical weight), the whole row unit length, as
/// [`topic_space_with_basis`] built the rows of the papers inside.
/// `lexical` is the paper's TF-IDF vector over `basis.terms` as
/// (index into `basis.terms`, weight); its scale does not matter.
pub fn fold_in(embedding: &[f32], lexical: &[(usize, f32)], basis: &Basis) -> Vec<f32> {
    let dim = embedding.len();
    let mut row = vec![0f32; dim + basis.dims];
    let (d, l) = row.split_at_mut(dim);
    d.copy_from_slice(embedding);
    unit(d);
    for &(i, w) in lexical {
        if let Some(v) = basis.v.get(i * basis.dims..(i + 1) * basis.dims) {
            for (o, &b) in l.iter_mut().zip(v) {
                *o += w * b;
            }
        }
    }
    unit(l);
    l.iter_mut().for_each(|v| *v *= basis.weight);
    unit(&mut row);
    row
}

/// The LSA coordinates of the TF-IDF rows (n x r, r <= `lexical_dims`),
/// over the whole vocabulary, and (with `keep`) the basis of the terms of
/// at least [`BASIS_MIN_DF`] papers. Terms of one paper are kept in the
/// SVD: dropping them would change a paper's lexical vector when a copy of
/// it is added, so a topic would move under `add` for no reason in the text.
fn lsa_rows(
    docs: &[Vec<(u32, f32)>],
    opts: &FeatureOptions,
    power_iters: usize,
    keep: bool,
) -> (Vec<f32>, usize, Option<Basis>) {
    // Columns renumbered densely (the lexical index's term ids may skip).
    let mut col: HashMap<u32, u32> = HashMap::new();
    let mut df: Vec<usize> = Vec::new();
    let rows: Vec<Vec<(u32, f32)>> = docs
        .iter()
        .map(|d| {
            d.iter()
                .map(|&(t, w)| {
                    let next = col.len() as u32;
                    let c = *col.entry(t).or_insert(next);
                    if c as usize == df.len() {
                        df.push(0);
                    }
                    df[c as usize] += 1;
                    (c, w)
                })
                .collect()
        })
        .collect();
    let a = svd::Csr::from_rows(&rows, col.len());
    let svd_opts = svd::SvdOptions {
        rank: opts.lexical_dims,
        power_iters,
        seed: opts.seed,
        ..Default::default()
    };
    if !keep {
        let (us, r) = svd::lsa(&a, &svd_opts);
        return (us, r, None);
    }
    let (us, r, v) = svd::lsa_with_basis(&a, &svd_opts);
    if r == 0 {
        return (us, r, None);
    }
    let mut by_col: Vec<(u32, u32)> = col
        .into_iter()
        .filter(|&(_, c)| df[c as usize] >= BASIS_MIN_DF)
        .collect();
    by_col.sort_unstable_by_key(|&(_, c)| c);
    let mut basis = Basis {
        terms: Vec::with_capacity(by_col.len()),
        dims: r,
        v: Vec::with_capacity(by_col.len() * r),
        weight: opts.lexical_weight,
    };
    for (t, c) in by_col {
        basis.terms.push(t);
        basis
            .v
            .extend_from_slice(&v[c as usize * r..(c as usize + 1) * r]);
    }
    (us, r, Some(basis))
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
            lexical: Lexical::Projection,
            lexical_dims: 384,
            lexical_weight: 0.4,
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
    fn lsa_joins_papers_through_words_they_share_with_others() {
        // Two themes: papers 0-2 use terms 1, 2 (and 0 or 3 in passing),
        // papers 3-5 use terms 5, 6. Papers 0 and 2 share no term directly
        // with each other beyond the theme words, yet in the SVD space all
        // of a theme's papers point the same way; the themes are orthogonal.
        let docs = vec![
            vec![(0, 0.6), (1, 0.6), (2, 0.53)],
            vec![(1, 0.7), (2, 0.714)],
            vec![(1, 0.6), (2, 0.6), (3, 0.53)],
            vec![(5, 0.7), (6, 0.714)],
            vec![(5, 0.6), (6, 0.6), (7, 0.53)],
            vec![(5, 0.714), (6, 0.7)],
        ];
        let dense = vec![1.0f32; 6];
        let opts = FeatureOptions {
            smooth_k: 0,
            lexical_dims: 2,
            lexical_weight: 1.0,
            ..Default::default()
        };
        let (x, d) = topic_space(&dense, 1, &docs, &opts);
        assert_eq!(d, 1 + 2);
        let row = |i: usize| &x[i * d..(i + 1) * d];
        let lex_cos = |a: &[f32], b: &[f32]| {
            let (a, b) = (&a[1..], &b[1..]);
            let dot: f32 = a.iter().zip(b).map(|(p, q)| p * q).sum();
            let na: f32 = a.iter().map(|p| p * p).sum::<f32>().sqrt();
            let nb: f32 = b.iter().map(|p| p * p).sum::<f32>().sqrt();
            dot / (na * nb)
        };
        assert!(lex_cos(row(0), row(2)) > 0.99, "{x:?}");
        assert!(lex_cos(row(3), row(4)) > 0.99, "{x:?}");
        assert!(lex_cos(row(0), row(4)).abs() < 0.01, "{x:?}");
        for i in 0..6 {
            let n: f32 = row(i).iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-5);
        }
        // Same input, same space.
        assert_eq!(topic_space(&dense, 1, &docs, &opts).0, x);
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
