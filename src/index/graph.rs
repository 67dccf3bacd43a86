//! The HNSW graph as papermap stores and searches it: built by our own
//! insertion (`insert.rs`, hnswlib's algorithm, in parallel), its neighbour
//! lists kept as fixed-stride `u32` arrays (layer 0 for every node, then
//! each upper layer for its few nodes) and searched here. The walk compares
//! the 8-bit row codes of `quant.rs` (a quarter of the memory traffic of
//! the f32 rows; 1.6x the queries per second at equal recall on 100k
//! vectors), with a reusable visited-epoch array and prefetching of the
//! next neighbour; the final beam is re-scored with the exact f32 vectors
//! of the shared matrix, so scores are exact.
//!
//! File `derived/hnsw.graph` (little-endian): magic, version, the library
//! fingerprint, parameters, zero padding to a 4-byte boundary, the arrays,
//! the codes (about 520 bytes per paper at M 16 and 384 dimensions), and a
//! CRC32 of everything before it. It is memory-mapped on load and layer 0
//! and the codes are searched in place; a file that fails any check (CRC,
//! parameters, any neighbour id out of range) is rebuilt, never searched.

use std::cell::RefCell;
use std::collections::BinaryHeap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::quant::{Codes, dot_i8_fn};
use super::slab::Slab;
use super::{Hit, HnswParams, Matrix, dot_fn};
use crate::error::{IoContext, Result};
use crate::store::codec::{Reader, put_bytes, put_u32, put_u32s, seal, unseal};
use crate::store::manifest::write_atomic;

const MAGIC: &[u8; 8] = b"PMHNSW\0\0";
/// 2: the 8-bit row codes that steer the walk. 3: layer 0 aligned to 4
/// bytes, so it and the codes are used in place from the mapped file.
/// 5: every layer chosen by hnswlib's heuristic (older graphs are
/// rebuilt; since then built by `insert.rs`, same format).
const VERSION: u32 = 5;
pub(super) const NONE: u32 = u32::MAX;

/// One upper layer: its nodes (sorted) and their neighbour lists.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Layer {
    pub(super) nodes: Vec<u32>,
    /// `nodes.len() * stride` entries, unused slots hold `NONE`.
    pub(super) adj: Vec<u32>,
}

/// A flattened HNSW graph over the rows of a matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub m: u32,
    pub ef_construction: u32,
    pub(super) n: u32,
    pub(super) entry: u32,
    /// Neighbour slots per node on layer 0 and on upper layers.
    pub(super) stride0: u32,
    pub(super) stride: u32,
    /// `n * stride0` entries, unused slots hold `NONE`.
    pub(super) level0: Slab<u32>,
    pub(super) upper: Vec<Layer>,
    /// 8-bit codes of the rows: the walk's distances (see `quant.rs`).
    pub(super) codes: Codes,
}

/// Candidate ordered by distance (smaller is closer).
#[derive(Clone, Copy, PartialEq)]
pub(super) struct Cand {
    pub(super) dist: f32,
    pub(super) node: u32,
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.dist.total_cmp(&o.dist).then(self.node.cmp(&o.node))
    }
}

thread_local! {
    /// Per-thread visited marks: `marks[i] == epoch` means visited.
    static VISITED: RefCell<(Vec<u32>, u32)> = const { RefCell::new((Vec::new(), 0)) };
}

/// Prefetches the bytes at `p..p + len` (a hint that never faults).
#[inline]
pub(super) fn prefetch<T>(s: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let p = s.as_ptr() as *const i8;
        let len = std::mem::size_of_val(s);
        let mut at = 0;
        while at < len {
            // SAFETY: prefetching is a hint and never faults; the pointer is in bounds.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                _mm_prefetch(p.add(at), _MM_HINT_T0);
            }
            at += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = s;
}

impl Graph {
    /// Builds the graph over the rows of `m`: every row inserted into an
    /// empty graph as hnswlib inserts (`insert.rs`; in parallel past the
    /// first rows, so a large graph depends on thread timing).
    pub fn build(m: &Matrix, params: &HnswParams) -> Graph {
        let mut g = Graph {
            m: params.m as u32,
            ef_construction: params.ef_construction as u32,
            n: 0,
            entry: NONE,
            stride0: (2 * params.m).max(2) as u32,
            stride: params.m.max(1) as u32,
            level0: Slab::Owned(Vec::new()),
            upper: Vec::new(),
            codes: Codes::encode(m.dim, &[]),
        };
        g.insert_rows(m);
        g
    }

    pub fn len(&self) -> usize {
        self.n as usize
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub(super) fn neighbours0(&self, node: u32) -> &[u32] {
        let s = self.stride0 as usize;
        let a = &self.level0.as_slice()[node as usize * s..(node as usize + 1) * s];
        let len = a.iter().position(|&x| x == NONE).unwrap_or(s);
        &a[..len]
    }

    pub(super) fn neighbours_upper<'a>(&self, layer: &'a Layer, node: u32) -> &'a [u32] {
        let Ok(j) = layer.nodes.binary_search(&node) else {
            return &[];
        };
        let s = self.stride as usize;
        let a = &layer.adj[j * s..(j + 1) * s];
        let len = a.iter().position(|&x| x == NONE).unwrap_or(s);
        &a[..len]
    }

    /// The `k` nearest rows of `m` to `q` (cosine), searching layer 0 with a
    /// beam of `ef` (at least `k`). The walk compares 8-bit codes; the final
    /// beam is re-scored with the exact vectors.
    pub fn search(&self, m: &Matrix, q: &[f32], k: usize, ef: usize) -> Vec<Hit> {
        if self.n == 0 || self.entry == NONE || k == 0 {
            return Vec::new();
        }
        let ef = ef.max(k);
        let coded = self.codes.dim == m.dim && self.codes.rows() == self.n as usize;
        let dotf = dot_fn();
        let doti = dot_i8_fn();
        let qc = self.codes.prepare(q);
        let dist = |r: u32| {
            if coded {
                1.0 - self.codes.dot(r as usize, &qc, doti)
            } else {
                1.0 - dotf(m.row(r as usize), q)
            }
        };
        let fetch = |r: u32| {
            if coded {
                prefetch(self.codes.row(r as usize));
            } else {
                prefetch(&m.row(r as usize)[..m.dim.min(32)]);
            }
        };
        // Greedy descent through the upper layers.
        let mut cur = self.entry;
        let mut cur_d = dist(cur);
        for layer in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                for &nb in self.neighbours_upper(layer, cur) {
                    let d = dist(nb);
                    if d < cur_d {
                        cur_d = d;
                        cur = nb;
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        // Beam search on layer 0.
        let best = VISITED.with(|v| {
            let mut v = v.borrow_mut();
            let (marks, epoch) = &mut *v;
            if marks.len() < self.n as usize {
                *marks = vec![0; self.n as usize];
                *epoch = 0;
            }
            *epoch = epoch.wrapping_add(1);
            if *epoch == 0 {
                marks.iter_mut().for_each(|x| *x = 0);
                *epoch = 1;
            }
            let epoch = *epoch;
            let mut cands: BinaryHeap<std::cmp::Reverse<Cand>> = BinaryHeap::with_capacity(ef * 4);
            let mut best: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
            marks[cur as usize] = epoch;
            let start = Cand {
                dist: cur_d,
                node: cur,
            };
            cands.push(std::cmp::Reverse(start));
            best.push(start);
            while let Some(std::cmp::Reverse(c)) = cands.pop() {
                if best.len() >= ef && c.dist > best.peek().map_or(f32::INFINITY, |b| b.dist) {
                    break;
                }
                let nbs = self.neighbours0(c.node);
                for (i, &nb) in nbs.iter().enumerate() {
                    if let Some(&next) = nbs.get(i + 1) {
                        fetch(next);
                    }
                    if marks[nb as usize] == epoch {
                        continue;
                    }
                    marks[nb as usize] = epoch;
                    let d = dist(nb);
                    let worst = best.peek().map_or(f32::INFINITY, |b| b.dist);
                    if best.len() < ef || d < worst {
                        let cand = Cand { dist: d, node: nb };
                        cands.push(std::cmp::Reverse(cand));
                        best.push(cand);
                        if best.len() > ef {
                            best.pop();
                        }
                    }
                }
            }
            best.into_vec()
        });
        let mut out: Vec<Hit> = Vec::with_capacity(best.len());
        for (i, c) in best.iter().enumerate() {
            if let Some(next) = best.get(i + 1) {
                prefetch(m.row(next.node as usize));
            }
            out.push(Hit {
                row: c.node as usize,
                score: dotf(m.row(c.node as usize), q),
            });
        }
        super::top_k(&mut out, k);
        out
    }

    /// Serialises the graph with `fingerprint`, atomically.
    pub fn save(&self, path: &Path, fingerprint: &str) -> Result<()> {
        let level0 = self.level0.as_slice();
        let codes = self.codes.codes.as_slice();
        let mut b = Vec::with_capacity(64 + 4 * (level0.len() + 1024) + codes.len());
        b.extend_from_slice(MAGIC);
        put_u32(&mut b, VERSION);
        put_bytes(&mut b, fingerprint.as_bytes());
        for x in [
            self.m,
            self.ef_construction,
            self.n,
            self.entry,
            self.stride0,
            self.stride,
            self.upper.len() as u32,
        ] {
            put_u32(&mut b, x);
        }
        b.resize(b.len().next_multiple_of(4), 0);
        put_u32s(&mut b, level0);
        for l in &self.upper {
            put_u32(&mut b, l.nodes.len() as u32);
            put_u32s(&mut b, &l.nodes);
            put_u32s(&mut b, &l.adj);
        }
        put_u32(&mut b, self.codes.dim as u32);
        put_u32s(
            &mut b,
            &self
                .codes
                .scales
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>(),
        );
        b.extend(codes.iter().map(|&x| x as u8));
        seal(&mut b);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).at(dir)?;
        }
        write_atomic(path, &b)
    }

    /// The fingerprint and rows a saved graph's header names (nothing else
    /// checked: `load` checks everything).
    pub fn peek(path: &Path) -> Option<crate::store::derived::Built> {
        let b = crate::store::codec::head(path, 1024)?;
        let mut r = Reader::new(&b);
        if r.take(8)? != MAGIC || r.u32()? != VERSION {
            return None;
        }
        let fingerprint = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let (_m, _efc, n) = (r.u32()?, r.u32()?, r.u32()?);
        Some(crate::store::derived::Built {
            fingerprint,
            rows: n as usize,
        })
    }

    /// Loads a graph saved for `fingerprint` with the same M and
    /// ef_construction over `rows` rows; `None` when missing, stale or
    /// damaged in any way. The file is memory-mapped: layer 0 and the codes
    /// are searched in place (checked once here: CRC and every id in range).
    pub fn load(path: &Path, fingerprint: &str, params: &HnswParams, rows: usize) -> Option<Graph> {
        let f = fs::File::open(path).ok()?;
        // SAFETY: derived files are only ever replaced by rename, never
        // written in place, so the mapped bytes do not change under us.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&f) }.ok()?);
        let mut r = Reader::new(unseal(&map)?);
        if r.take(8)? != MAGIC || r.u32()? != VERSION || r.bytes()? != fingerprint.as_bytes() {
            return None;
        }
        let (m, efc, n, entry, stride0, stride, layers) = (
            r.u32()?,
            r.u32()?,
            r.u32()?,
            r.u32()?,
            r.u32()?,
            r.u32()?,
            r.u32()?,
        );
        if m as usize != params.m
            || efc as usize != params.ef_construction
            || n as usize != rows
            || (n > 0 && entry >= n)
        {
            return None;
        }
        let pad = r.pos().next_multiple_of(4) - r.pos();
        if r.take(pad)?.iter().any(|&x| x != 0) {
            return None;
        }
        let len0 = (n as usize).checked_mul(stride0 as usize)?;
        let level0 = place(&map, &mut r, len0, |r| r.u32s(len0))?;
        let mut upper = Vec::new();
        for _ in 0..layers {
            let count = r.u32()? as usize;
            let nodes = r.u32s(count)?;
            let adj = r.u32s(count.checked_mul(stride as usize)?)?;
            upper.push(Layer { nodes, adj });
        }
        let dim = r.u32()? as usize;
        let scales: Vec<f32> = r.u32s(dim)?.into_iter().map(f32::from_bits).collect();
        let len = dim.checked_mul(n as usize)?;
        let codes = place(&map, &mut r, len, |r| {
            Some(r.take(len)?.iter().map(|&x| x as i8).collect())
        })?;
        let ok = r.done()
            && scales.iter().all(|s| s.is_finite() && *s > 0.0)
            && level0.as_slice().iter().all(|&x| x == NONE || x < n)
            && upper.iter().all(|l| {
                l.nodes.windows(2).all(|w| w[0] < w[1])
                    && l.nodes.iter().all(|&x| x < n)
                    && l.adj.iter().all(|&x| x == NONE || x < n)
            });
        ok.then_some(Graph {
            m,
            ef_construction: efc,
            n,
            entry: if n == 0 { NONE } else { entry },
            stride0,
            stride,
            level0,
            upper,
            codes: Codes { dim, scales, codes },
        })
    }
}

/// The next `len` items of `r`: in place in `map` on a little-endian
/// machine, else decoded by `decode`.
fn place<T: super::slab::Plain>(
    map: &Arc<memmap2::Mmap>,
    r: &mut Reader,
    len: usize,
    decode: impl Fn(&mut Reader) -> Option<Vec<T>>,
) -> Option<Slab<T>> {
    if !cfg!(target_endian = "little") {
        return decode(r).map(Slab::Owned);
    }
    // The body starts at byte 0 of the map, so positions are file offsets.
    let at = r.pos();
    r.take(len.checked_mul(std::mem::size_of::<T>())?)?;
    Slab::mapped(map, at, len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::index::exact_search;

    pub(crate) fn random_matrix(n: usize, dim: usize, seed: u64) -> Matrix {
        let mut s = seed;
        let mut data = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let mut row: Vec<f32> = (0..dim)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % 2000) as f32 / 1000.0 - 1.0
                })
                .collect();
            crate::embed::normalize(&mut row);
            data.extend(row);
        }
        Matrix::owned(dim, data)
    }

    #[test]
    fn graph_search_matches_exact_and_survives_reload() {
        let m = random_matrix(2000, 24, 7);
        let params = HnswParams::default();
        let g = Graph::build(&m, &params);
        // An upper layer links only nodes of that layer, never a node to
        // itself.
        assert!(!g.upper.is_empty());
        for layer in &g.upper {
            for &u in &layer.nodes {
                let nb = g.neighbours_upper(layer, u);
                assert!(
                    nb.iter()
                        .all(|v| *v != u && layer.nodes.binary_search(v).is_ok())
                );
            }
        }
        for r in [0, 123, 1999] {
            assert_eq!(g.search(&m, m.row(r), 1, 64)[0].row, r);
        }
        // Recall@10 against exact search on held-out queries.
        let q = random_matrix(50, 24, 99);
        let mut found = 0;
        for i in 0..q.rows() {
            let truth: Vec<usize> = exact_search(&m, q.row(i), 10, &|_| true)
                .iter()
                .map(|h| h.row)
                .collect();
            let hits = g.search(&m, q.row(i), 10, 128);
            // The walk uses 8-bit codes; the scores returned are exact.
            for h in &hits {
                assert_eq!(h.score, crate::index::dot(m.row(h.row), q.row(i)));
            }
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
            found += hits.iter().filter(|h| truth.contains(&h.row)).count();
        }
        assert!(
            found as f64 / 500.0 >= 0.95,
            "recall {}",
            found as f64 / 500.0
        );

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hnsw.graph");
        g.save(&p, "fp1").unwrap();
        // Fingerprints of every length mod 4 (layer 0 is padded to 4 bytes
        // and used in place from the mapped file).
        for fp in ["f", "fp", "fp1", "fp12"] {
            g.save(&p, fp).unwrap();
            let loaded = Graph::load(&p, fp, &params, 2000).expect("loads");
            assert_eq!(loaded, g);
            assert!(matches!(loaded.level0, Slab::Mapped { .. }) || cfg!(target_endian = "big"));
            for r in [5, 77] {
                assert_eq!(
                    loaded.search(&m, m.row(r), 10, 64),
                    g.search(&m, m.row(r), 10, 64)
                );
            }
        }
        g.save(&p, "fp1").unwrap();
        assert_eq!(Graph::load(&p, "fp1", &params, 2000).as_ref(), Some(&g));
        assert!(Graph::load(&p, "other", &params, 2000).is_none());
        assert!(Graph::load(&p, "fp1", &params, 1999).is_none());
        let other = HnswParams {
            m: 8,
            ..params.clone()
        };
        assert!(Graph::load(&p, "fp1", &other, 2000).is_none());
        // Any flipped byte or truncation is caught.
        let bytes = fs::read(&p).unwrap();
        for at in [0, 9, 40, bytes.len() / 2, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            fs::write(&p, &b).unwrap();
            assert!(
                Graph::load(&p, "fp1", &params, 2000).is_none(),
                "flip at {at}"
            );
        }
        fs::write(&p, &bytes[..bytes.len() - 9]).unwrap();
        assert!(Graph::load(&p, "fp1", &params, 2000).is_none());
    }

    #[test]
    fn empty_and_tiny_graphs() {
        let params = HnswParams::default();
        let g = Graph::build(&Matrix::owned(4, Vec::new()), &params);
        assert!(
            g.search(&Matrix::owned(4, Vec::new()), &[1.0, 0.0, 0.0, 0.0], 3, 10)
                .is_empty()
        );
        let m = random_matrix(3, 4, 1);
        let g = Graph::build(&m, &params);
        assert_eq!(g.search(&m, m.row(2), 5, 10).len(), 3);
    }
}
