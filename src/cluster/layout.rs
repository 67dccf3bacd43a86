//! The 2-D map: a neighbour-graph layout in the manner of UMAP, written
//! here (reading McInnes et al. 2018), deterministic for a seed.
//!
//! 1. The `K` nearest neighbours of each paper of a seeded sample (all
//!    papers up to `SAMPLE`), exact, by blocks of one matrix multiply.
//! 2. Fuzzy edge weights: `exp(-(d - rho_i) / sigma_i)` with `rho_i` the
//!    distance to the nearest neighbour and `sigma_i` set by bisection so
//!    each paper's weights sum to log2(K); symmetrised `a + b - ab`.
//! 3. Start from the PCA plane (scaled to a box of side 20), then SGD:
//!    each edge is sampled in proportion to its weight and pulls its ends
//!    together with UMAP's curve (a = 1.577, b = 0.895: min_dist 0.1),
//!    each pull followed by `NEG` pushes from random papers. Single thread
//!    and one seeded generator, so the same input and seed give the same
//!    map. Cost is O(edges x epochs), about O(n K) per epoch.
//! 4. Beyond the sample (libraries over `SAMPLE` papers), each other paper
//!    is placed at the similarity-weighted mean of its nearest sample
//!    papers: one blocked matrix multiply against the sample, O(n S d).
//!
//! The same neighbour search gives each paper its five most related papers
//! for the report's paper cards (beyond the sample: searched within the
//! paper's topic, which keeps it O(n^2 / k)).

use ndarray::{ArrayView2, Axis, s};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};

use super::{project_2d, sample_rows};
use crate::error::Result;

/// Papers laid out by SGD; the rest are placed by their neighbours.
pub const SAMPLE: usize = 10_000;
const K: usize = 15;
const NEG: usize = 5;
const A: f32 = 1.577;
const B: f32 = 0.895;

/// Map coordinates and related papers (rows) per paper.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub xy: Vec<[f32; 2]>,
    pub related: Vec<Vec<u32>>,
}

/// Lays out `data` (n x dim, unit rows). `labels` (topics) bound the
/// related-paper search beyond the sample.
pub fn layout(data: &[f32], dim: usize, labels: &[usize], seed: u64) -> Result<Layout> {
    let n = data.len() / dim.max(1);
    if n < 4 {
        return Ok(Layout {
            xy: (0..n).map(|i| [i as f32, 0.0]).collect(),
            related: (0..n)
                .map(|i| (0..n as u32).filter(|&j| j as usize != i).collect())
                .collect(),
        });
    }
    let x = ArrayView2::from_shape((n, dim), data).expect("row-major matrix");
    let rows = sample_rows(n, SAMPLE, seed);
    let sample = x.select(Axis(0), &rows);
    let k = K.min(rows.len() - 1);
    let knn = knn_within(&sample.view(), k);
    // Start: PCA of the sample, scaled to a box of side 20.
    let flat: Vec<f32> = sample.iter().copied().collect();
    let mut pos = project_2d(&flat, dim, seed)?;
    normalise_box(&mut pos, 10.0);
    let epochs = if rows.len() <= 2_000 { 500 } else { 250 };
    sgd(&mut pos, &knn, epochs, seed);
    let mut xy = vec![[0f32; 2]; n];
    let mut related: Vec<Vec<u32>> = vec![Vec::new(); n];
    if rows.len() == n {
        xy = pos;
        for (i, nb) in knn.iter().enumerate() {
            related[i] = nb.iter().take(5).map(|&(j, _)| j as u32).collect();
        }
        return Ok(Layout { xy, related });
    }
    for (s, &r) in rows.iter().enumerate() {
        xy[r] = pos[s];
    }
    place_rest(&x, &sample.view(), &rows, &pos, &mut xy);
    related_within_topics(&x, labels, &mut related);
    Ok(Layout { xy, related })
}

/// The `k` nearest rows of each row (by dot product, highest first), itself
/// excluded, ties by row.
pub(crate) fn knn_within(x: &ArrayView2<f32>, k: usize) -> Vec<Vec<(usize, f32)>> {
    let n = x.nrows();
    let mut out = Vec::with_capacity(n);
    const BLOCK: usize = 1024;
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let g = x.slice(s![start..end, ..]).dot(&x.t());
        for (i, row) in g.rows().into_iter().enumerate() {
            out.push(top_k(row.iter().copied(), k, Some(start + i)));
        }
    }
    out
}

/// The `k` largest values with their indices, highest first (ties: lower
/// index), skipping index `skip`.
fn top_k(vals: impl Iterator<Item = f32>, k: usize, skip: Option<usize>) -> Vec<(usize, f32)> {
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    for (j, v) in vals.enumerate() {
        if Some(j) == skip || !v.is_finite() {
            continue;
        }
        if best.len() == k && v <= best[k - 1].1 {
            continue;
        }
        let at = best.partition_point(|&(_, b)| b >= v);
        best.insert(at, (j, v));
        best.truncate(k);
    }
    best
}

/// UMAP's fuzzy weights of the neighbour graph, symmetrised, as an edge list.
fn edges(knn: &[Vec<(usize, f32)>]) -> Vec<(usize, usize, f32)> {
    let target = (knn.first().map_or(1, Vec::len).max(2) as f32).log2();
    let mut directed: std::collections::HashMap<(usize, usize), f32> =
        std::collections::HashMap::new();
    for (i, nb) in knn.iter().enumerate() {
        if nb.is_empty() {
            continue;
        }
        let d: Vec<f32> = nb.iter().map(|&(_, c)| (1.0 - c).max(0.0)).collect();
        let rho = d[0];
        let sum = |sigma: f32| d.iter().map(|&x| (-(x - rho) / sigma).exp()).sum::<f32>();
        let (mut lo, mut hi) = (1e-6f32, 10.0f32);
        for _ in 0..40 {
            let mid = 0.5 * (lo + hi);
            if sum(mid) > target {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let sigma = 0.5 * (lo + hi);
        for (&(j, _), &dj) in nb.iter().zip(&d) {
            directed.insert((i, j), (-(dj - rho) / sigma).exp());
        }
    }
    let mut out: Vec<(usize, usize, f32)> = Vec::new();
    for (&(i, j), &w) in &directed {
        let back = directed.get(&(j, i)).copied();
        if back.is_some() && j < i {
            continue; // counted from the other side
        }
        let b = back.unwrap_or(0.0);
        out.push((i.min(j), i.max(j), w + b - w * b));
    }
    out.sort_by_key(|a| (a.0, a.1));
    out
}

fn normalise_box(pos: &mut [[f32; 2]], half: f32) {
    for d in 0..2 {
        let (lo, hi) = pos
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), p| {
                (l.min(p[d]), h.max(p[d]))
            });
        let span = (hi - lo).max(1e-9);
        for p in pos.iter_mut() {
            p[d] = (p[d] - lo) / span * 2.0 * half - half;
        }
    }
}

/// UMAP's optimisation (`optimize_layout_euclidean`), single-threaded.
fn sgd(pos: &mut [[f32; 2]], knn: &[Vec<(usize, f32)>], epochs: usize, seed: u64) {
    let e = edges(knn);
    if e.is_empty() {
        return;
    }
    let n = pos.len();
    let wmax = e.iter().map(|x| x.2).fold(0f32, f32::max);
    let per_sample: Vec<f32> = e.iter().map(|x| wmax / x.2.max(1e-6)).collect();
    let mut next = per_sample.clone();
    let per_neg: Vec<f32> = per_sample.iter().map(|p| p / NEG as f32).collect();
    let mut next_neg = per_neg.clone();
    let mut rng = Xoshiro256Plus::seed_from_u64(seed ^ 0x1a_7007);
    let clip = |v: f32| v.clamp(-4.0, 4.0);
    for epoch in 1..=epochs {
        let alpha = 1.0 - (epoch - 1) as f32 / epochs as f32;
        let ep = epoch as f32;
        for (ei, &(i, j, _)) in e.iter().enumerate() {
            if next[ei] > ep {
                continue;
            }
            let (pi, pj) = (pos[i], pos[j]);
            let dx = [pi[0] - pj[0], pi[1] - pj[1]];
            let d2 = dx[0] * dx[0] + dx[1] * dx[1];
            if d2 > 0.0 {
                let g = -2.0 * A * B * d2.powf(B - 1.0) / (1.0 + A * d2.powf(B));
                for d in 0..2 {
                    let m = clip(g * dx[d]) * alpha;
                    pos[i][d] += m;
                    pos[j][d] -= m;
                }
            }
            next[ei] += per_sample[ei];
            let negs = ((ep - next_neg[ei]) / per_neg[ei]).max(0.0) as usize;
            for _ in 0..negs {
                let o = (rng.next_u64() % n as u64) as usize;
                if o == i {
                    continue;
                }
                let po = pos[o];
                let pi = pos[i];
                let dx = [pi[0] - po[0], pi[1] - po[1]];
                let d2 = dx[0] * dx[0] + dx[1] * dx[1];
                let g = 2.0 * B / ((0.001 + d2) * (1.0 + A * d2.powf(B)));
                for d in 0..2 {
                    pos[i][d] += if d2 > 0.0 { clip(g * dx[d]) } else { 4.0 } * alpha;
                }
            }
            next_neg[ei] += negs as f32 * per_neg[ei];
        }
    }
}

/// Places every paper outside the sample at the weighted mean of its five
/// most similar sample papers (weights `exp((cos - best) / 0.02)`).
fn place_rest(
    x: &ArrayView2<f32>,
    sample: &ArrayView2<f32>,
    rows: &[usize],
    pos: &[[f32; 2]],
    xy: &mut [[f32; 2]],
) {
    let mut in_sample = vec![false; x.nrows()];
    rows.iter().for_each(|&r| in_sample[r] = true);
    let rest: Vec<usize> = (0..x.nrows()).filter(|&r| !in_sample[r]).collect();
    const BLOCK: usize = 1024;
    for chunk in rest.chunks(BLOCK) {
        let g = x.select(Axis(0), chunk).dot(&sample.t());
        for (i, row) in g.rows().into_iter().enumerate() {
            let nb = top_k(row.iter().copied(), 5, None);
            let best = nb[0].1;
            let (mut sx, mut sy, mut sw) = (0f32, 0f32, 0f32);
            for &(j, c) in &nb {
                let w = ((c - best) / 0.02).exp();
                sx += w * pos[j][0];
                sy += w * pos[j][1];
                sw += w;
            }
            xy[chunk[i]] = [sx / sw, sy / sw];
        }
    }
}

/// Five most related papers of each paper among its own topic.
fn related_within_topics(x: &ArrayView2<f32>, labels: &[usize], related: &mut [Vec<u32>]) {
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (r, &l) in labels.iter().enumerate() {
        members[l].push(r);
    }
    for m in members.iter().filter(|m| m.len() > 1) {
        let sub = x.select(Axis(0), m);
        for (i, nb) in knn_within(&sub.view(), 5.min(m.len() - 1))
            .into_iter()
            .enumerate()
        {
            related[m[i]] = nb.iter().map(|&(j, _)| m[j] as u32).collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `groups` tight groups of `per` unit vectors in `dim` dimensions.
    fn groups(groups: usize, per: usize, dim: usize) -> Vec<f32> {
        let mut rng = Xoshiro256Plus::seed_from_u64(5);
        let mut u = || (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32 - 0.5;
        let mut out = Vec::new();
        for g in 0..groups {
            for _ in 0..per {
                let mut v: Vec<f32> = (0..dim).map(|_| 0.15 * u()).collect();
                v[g] += 1.0;
                crate::embed::normalize(&mut v);
                out.extend(v);
            }
        }
        out
    }

    #[test]
    fn groups_are_separated_on_the_map_and_the_layout_is_seeded() {
        let (g, per, dim) = (4, 40, 8);
        let data = groups(g, per, dim);
        let labels: Vec<usize> = (0..g * per).map(|i| i / per).collect();
        let a = layout(&data, dim, &labels, 3).unwrap();
        assert_eq!(a, layout(&data, dim, &labels, 3).unwrap());
        // Each group's spread is well below the distance between groups.
        let centre = |c: usize| {
            let pts = &a.xy[c * per..(c + 1) * per];
            let m = pts
                .iter()
                .fold([0f32; 2], |s, p| [s[0] + p[0], s[1] + p[1]]);
            [m[0] / per as f32, m[1] / per as f32]
        };
        let dist =
            |p: [f32; 2], q: [f32; 2]| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
        let spread = (0..g)
            .map(|c| {
                let m = centre(c);
                a.xy[c * per..(c + 1) * per]
                    .iter()
                    .map(|&p| dist(p, m))
                    .sum::<f32>()
                    / per as f32
            })
            .fold(0f32, f32::max);
        let gap = (0..g)
            .flat_map(|c| (c + 1..g).map(move |d| (c, d)))
            .map(|(c, d)| dist(centre(c), centre(d)))
            .fold(f32::INFINITY, f32::min);
        assert!(gap > 2.0 * spread, "gap {gap} spread {spread}");
        // Related papers come from the paper's own group.
        for (i, r) in a.related.iter().enumerate() {
            assert_eq!(r.len(), 5);
            assert!(r.iter().all(|&j| j as usize / per == i / per), "{i}: {r:?}");
        }
    }

    #[test]
    fn top_k_keeps_the_largest_in_order() {
        let got = top_k([0.1, 0.9, 0.5, 0.9, 0.3].into_iter(), 3, Some(3));
        assert_eq!(got, vec![(1, 0.9), (2, 0.5), (4, 0.3)]);
    }
}
