//! Adding rows to a built HNSW graph, as hnswlib inserts, so that adding N
//! papers to a library of M costs in proportion to N (times log M), not a
//! rebuild of all M.
//!
//! For each new row, in order: its level is drawn as in hnswlib
//! (`floor(-ln U / ln M)`, U from a hash of the row number, so the same
//! rows always get the same levels); a greedy walk from the entry point
//! descends to that level; on each layer from there down, a beam of
//! `ef_construction` gives the candidates, and
//! the row keeps those `refine::select` keeps (the heuristic of the build,
//! slots it leaves free filled with the nearest dropped candidates: 2M
//! links on layer 0, M above). Each new neighbour links back; a list that
//! is full is cut back by the same selection over its links plus the new
//! row, as hnswlib's `repairConnectionsForUpdate` does and as the build's
//! second refinement pass leaves every list. A row above the top layer
//! becomes the entry point. The walks compare the graph's 8-bit row codes
//! (new rows encoded with the existing scales), as searches do; the
//! selection compares exact vectors.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::graph::{Cand, Graph, Layer, NONE};
use super::quant::{Codes, dot_i8_fn};
use super::refine::select;
use super::slab::Slab;
use super::{Matrix, dot_fn};

/// Highest level a row is given (hnsw_rs's build uses 16 layers).
const MAX_LEVEL: usize = 15;

/// The level of new row `row` in a graph with `m` links per node.
fn level_of(row: usize, m: u32) -> usize {
    // splitmix64 of the row number: a fixed, well-spread draw per row.
    let mut z = (row as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let ml = 1.0 / f64::from(m.max(2)).ln();
    ((-u.ln() * ml) as usize).min(MAX_LEVEL)
}

/// Visited marks reused across the insertions of one call.
struct Marks {
    marks: Vec<u32>,
    epoch: u32,
}

impl Marks {
    fn next(&mut self) -> u32 {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|x| *x = 0);
            self.epoch = 1;
        }
        self.epoch
    }
}

impl Graph {
    /// Inserts rows `self.len()..m.rows()` of `m`, whose first rows are the
    /// ones the graph was built over (unchanged).
    pub fn insert_rows(&mut self, m: &Matrix) {
        let from = self.n as usize;
        let n = m.rows();
        if n <= from {
            return;
        }
        if from == 0 {
            // An empty graph (built over no rows) gets the build's widths.
            self.stride0 = self.stride0.max(2 * self.m);
            self.stride = self.stride.max(self.m);
        }
        let s0 = self.stride0 as usize;
        let mut level0 = std::mem::replace(&mut self.level0, Slab::Owned(Vec::new())).into_vec();
        level0.resize(n * s0, NONE);
        self.level0 = Slab::Owned(level0);
        if from == 0 {
            // Nothing to keep: scales from the rows themselves.
            self.codes = super::quant::Codes::encode(m.dim, m.as_slice());
        } else if self.codes.dim == m.dim && self.codes.rows() == from {
            self.codes.append(&m.as_slice()[from * m.dim..]);
        }
        self.n = n as u32;
        let mut marks = Marks {
            marks: vec![0; n],
            epoch: 0,
        };
        // The walks compare 8-bit codes, as searches do (a quarter of the
        // memory traffic of the f32 rows); the neighbour selection uses the
        // exact vectors. The codes are moved out while the lists change.
        let codes = std::mem::replace(
            &mut self.codes,
            Codes {
                dim: 0,
                scales: Vec::new(),
                codes: Slab::Owned(Vec::new()),
            },
        );
        let coded = (codes.dim == m.dim && codes.rows() == n).then_some(&codes);
        for row in from..n {
            self.insert_one(m, coded, row, &mut marks);
        }
        self.codes = codes;
    }

    fn insert_one(&mut self, m: &Matrix, codes: Option<&Codes>, row: usize, marks: &mut Marks) {
        let level = level_of(row, self.m);
        let top = self.upper.len();
        let stride = self.stride as usize;
        for l in 1..=level {
            if l > self.upper.len() {
                self.upper.push(Layer {
                    nodes: Vec::new(),
                    adj: Vec::new(),
                });
            }
            // New rows are numbered after every existing one: pushing keeps
            // the layer's node list sorted.
            let layer = &mut self.upper[l - 1];
            layer.nodes.push(row as u32);
            layer.adj.extend(std::iter::repeat_n(NONE, stride));
        }
        if self.entry == NONE {
            self.entry = row as u32;
            return;
        }
        let dot = dot_fn();
        let doti = dot_i8_fn();
        let q = m.row(row);
        let qc = codes.map(|c| c.prepare(q));
        let dist = |v: u32| match (codes, &qc) {
            (Some(c), Some(qc)) => 1.0 - c.dot(v as usize, qc, doti),
            _ => 1.0 - dot(m.row(v as usize), q),
        };
        let mut ep = Cand {
            dist: dist(self.entry),
            node: self.entry,
        };
        for l in (level + 1..=top).rev() {
            loop {
                let mut moved = false;
                for &nb in self.links(l, ep.node) {
                    let d = dist(nb);
                    if d < ep.dist {
                        ep = Cand { dist: d, node: nb };
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        let vec_of = |u: u32| m.row(u as usize);
        let mut entries = vec![ep];
        for l in (0..=level.min(top)).rev() {
            let found = self.beam(l, &entries, self.ef_construction as usize, &dist, marks);
            let cap = if l == 0 {
                self.stride0 as usize
            } else {
                stride
            };
            let cands: Vec<u32> = found.iter().map(|c| c.node).collect();
            let mut out = vec![NONE; cap];
            select(&vec_of, row, &cands, true, &mut out);
            self.links_mut(l, row as u32).copy_from_slice(&out);
            for &v in out.iter().take_while(|&&x| x != NONE) {
                let slots = self.links_mut(l, v);
                match slots.iter().position(|&x| x == NONE) {
                    Some(free) => slots[free] = row as u32,
                    None => {
                        let mut cands = slots.to_vec();
                        cands.push(row as u32);
                        let mut cut = vec![NONE; cap];
                        select(&vec_of, v as usize, &cands, true, &mut cut);
                        slots.copy_from_slice(&cut);
                    }
                }
            }
            entries = found;
        }
        if level > top {
            self.entry = row as u32;
        }
    }

    /// Node `u`'s links on layer `l` (0 = the bottom layer).
    fn links(&self, l: usize, u: u32) -> &[u32] {
        if l == 0 {
            self.neighbours0(u)
        } else {
            self.neighbours_upper(&self.upper[l - 1], u)
        }
    }

    /// Node `u`'s slots on layer `l`, `NONE`-padded. `u` is on that layer.
    fn links_mut(&mut self, l: usize, u: u32) -> &mut [u32] {
        if l == 0 {
            let s = self.stride0 as usize;
            let Slab::Owned(v) = &mut self.level0 else {
                unreachable!("insert_rows owns layer 0 before inserting")
            };
            &mut v[u as usize * s..(u as usize + 1) * s]
        } else {
            let s = self.stride as usize;
            let layer = &mut self.upper[l - 1];
            let j = layer
                .nodes
                .binary_search(&u)
                .expect("a node's links are asked for on its own layers only");
            &mut layer.adj[j * s..(j + 1) * s]
        }
    }

    /// The `ef` nearest nodes of layer `l` found by a beam search from
    /// `entries`, nearest first.
    fn beam(
        &self,
        l: usize,
        entries: &[Cand],
        ef: usize,
        dist: &dyn Fn(u32) -> f32,
        marks: &mut Marks,
    ) -> Vec<Cand> {
        let ef = ef.max(1);
        let epoch = marks.next();
        let mut cands: BinaryHeap<Reverse<Cand>> = BinaryHeap::new();
        let mut best: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
        for &e in entries {
            if marks.marks[e.node as usize] != epoch {
                marks.marks[e.node as usize] = epoch;
                cands.push(Reverse(e));
                best.push(e);
                if best.len() > ef {
                    best.pop();
                }
            }
        }
        while let Some(Reverse(c)) = cands.pop() {
            if best.len() >= ef && c.dist > best.peek().map_or(f32::INFINITY, |b| b.dist) {
                break;
            }
            for &nb in self.links(l, c.node) {
                if marks.marks[nb as usize] == epoch {
                    continue;
                }
                marks.marks[nb as usize] = epoch;
                let d = dist(nb);
                if best.len() < ef || d < best.peek().map_or(f32::INFINITY, |b| b.dist) {
                    let cand = Cand { dist: d, node: nb };
                    cands.push(Reverse(cand));
                    best.push(cand);
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        best.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::graph::tests::random_matrix;
    use crate::index::{HnswParams, exact_search};

    fn recall(g: &Graph, m: &Matrix, queries: &Matrix, ef: usize) -> f64 {
        let mut found = 0;
        for i in 0..queries.rows() {
            let truth: Vec<usize> = exact_search(m, queries.row(i), 10, &|_| true)
                .iter()
                .map(|h| h.row)
                .collect();
            found += g
                .search(m, queries.row(i), 10, ef)
                .iter()
                .filter(|h| truth.contains(&h.row))
                .count();
        }
        found as f64 / (10 * queries.rows()) as f64
    }

    #[test]
    fn levels_are_fixed_per_row_and_geometric() {
        let levels: Vec<usize> = (0..100_000).map(|r| level_of(r, 16)).collect();
        assert_eq!(
            levels[..50],
            (0..50).map(|r| level_of(r, 16)).collect::<Vec<_>>()
        );
        // P(level >= 1) = 1/M: about 6,250 of 100,000.
        let up = levels.iter().filter(|&&l| l >= 1).count();
        assert!((5_500..7_000).contains(&up), "{up} rows above layer 0");
        assert!(levels.iter().all(|&l| l <= MAX_LEVEL));
    }

    #[test]
    fn inserted_rows_are_found_and_recall_holds() {
        let all = random_matrix(3000, 24, 11);
        let params = HnswParams::default();
        let base = Matrix::owned(24, all.as_slice()[..2000 * 24].to_vec());
        let mut g = Graph::build(&base, &params);
        // Five increments of 200 rows.
        for step in 1..=5 {
            let rows = 2000 + 200 * step;
            let m = Matrix::owned(24, all.as_slice()[..rows * 24].to_vec());
            g.insert_rows(&m);
            assert_eq!(g.len(), rows);
        }
        // Every list valid: ids in range, no self links, no duplicates,
        // nothing after the first empty slot.
        let s0 = g.stride0 as usize;
        for u in 0..3000u32 {
            let slots = &g.level0.as_slice()[u as usize * s0..(u as usize + 1) * s0];
            let l = g.neighbours0(u);
            assert!(!l.is_empty(), "row {u} has no links");
            assert!(slots[l.len()..].iter().all(|&x| x == NONE));
            assert!(l.iter().all(|&v| v < 3000 && v != u));
            let mut d = l.to_vec();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), l.len());
        }
        for layer in &g.upper {
            assert!(layer.nodes.windows(2).all(|w| w[0] < w[1]));
        }
        // Each inserted row is its own nearest neighbour.
        for r in [2000, 2345, 2999] {
            assert_eq!(g.search(&all, all.row(r), 1, 64)[0].row, r);
        }
        // Recall on held-out queries: the grown graph against one built
        // over all rows at once.
        let q = random_matrix(100, 24, 5);
        let grown = recall(&g, &all, &q, 96);
        let full = recall(&Graph::build(&all, &params), &all, &q, 96);
        assert!(
            grown >= 0.95,
            "recall after insertion {grown} (full build {full})"
        );
        assert!(
            grown >= full - 0.03,
            "recall after insertion {grown} vs full build {full}"
        );
    }

    #[test]
    fn inserting_into_an_empty_or_saved_graph() {
        let params = HnswParams::default();
        let all = random_matrix(300, 8, 3);
        let mut g = Graph::build(&Matrix::owned(8, Vec::new()), &params);
        g.insert_rows(&all);
        assert_eq!(g.len(), 300);
        for r in [0, 150, 299] {
            assert_eq!(g.search(&all, all.row(r), 1, 64)[0].row, r);
        }
        // A graph loaded from its (memory-mapped) file grows the same way as
        // the one in memory.
        let base = Matrix::owned(8, all.as_slice()[..200 * 8].to_vec());
        let mut a = Graph::build(&base, &params);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g");
        a.save(&p, "fp").unwrap();
        let mut b = Graph::load(&p, "fp", &params, 200).unwrap();
        a.insert_rows(&all);
        b.insert_rows(&all);
        assert_eq!(a, b);
        b.save(&p, "fp2").unwrap();
        assert_eq!(Graph::load(&p, "fp2", &params, 300), Some(a));
    }
}
