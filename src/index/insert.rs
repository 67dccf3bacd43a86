//! Inserting rows into an HNSW graph, as hnswlib inserts: the one routine
//! that builds a graph (every row inserted into an empty one) and that adds
//! new rows to a built one, so adding N papers to a library of M costs in
//! proportion to N (times log M), not a rebuild of all M.
//!
//! For each row: its level is drawn as in hnswlib (`floor(-ln U / ln M)`,
//! U from a hash of the row number, so the same rows always get the same
//! levels); a greedy walk from the entry point descends to that level; on
//! each layer from there down, a beam of `ef_construction` gives the
//! candidates and the row keeps up to M of them chosen by the heuristic
//! (`Select`: in order of distance, a candidate is kept only if it is
//! closer to the row than to every one kept before it). Each new neighbour
//! links back; a list that is full (2M on layer 0, M above) is cut back by
//! the same heuristic over its links plus the new row (hnswlib's
//! `mutuallyConnectNewElement`). A row above the top layer becomes the
//! entry point. Distances, in the walks and in the selection, are between
//! the graph's 8-bit row codes (new rows encoded with the existing scales)
//! and 16-bit weights of the other row (from its exact vector for the row
//! going in, from its code for a kept neighbour): no f32 row is read but
//! the new one's. Against hnswlib's f32 selection this costs little recall
//! (1M generated vectors, ef 96: 0.989 with exact selection, 0.985 with
//! codes; hnswlib 0.983-0.988).
//!
//! Large insertions (a build, or at least `PARALLEL_MIN` new rows) run on
//! every core, as hnswlib's `add_items` does: the first `SERIAL_INSERTS`
//! rows of a graph go in one at a time (inserted concurrently into a tiny
//! graph a row could miss its neighbours), then each thread takes the next
//! row. Lists are atomics, read without a lock (a walk may see a list in
//! the middle of an update; every id in it is valid) and written under a
//! lock per node (striped); the entry point and top layer are under one
//! lock, held through a whole insertion when the row goes above the top
//! layer. The lists then depend on thread timing, as hnswlib's do (same
//! recall, not the same graph twice); smaller insertions run on one thread
//! and always give the same graph.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::graph::{Cand, Graph, Layer, NONE, prefetch};
use super::quant::{Codes, DotI8, dot_i8_fn};
use super::slab::Slab;
use super::{Matrix, dot_fn};

/// Highest level a row is given (16 layers).
const MAX_LEVEL: usize = 15;
/// Rows of a graph inserted one at a time before the parallel insertion.
const SERIAL_INSERTS: usize = 1_000;
/// Fewest new rows inserted in parallel (fewer: one thread, deterministic).
const PARALLEL_MIN: usize = 10_000;
/// Node locks, shared by striping: two threads rarely want the same one.
const STRIPES: usize = 1 << 12;

/// The level of row `row` in a graph with `m` links per node.
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

/// One upper layer while rows go in: sorted nodes, `stride` slots each.
struct SharedLayer {
    nodes: Vec<u32>,
    adj: Vec<AtomicU32>,
}

/// The graph's lists while rows go in, shared by the inserting threads.
struct Links<'a> {
    m: usize,
    ef: usize,
    stride0: usize,
    stride: usize,
    level0: Vec<AtomicU32>,
    upper: Vec<SharedLayer>,
    locks: Vec<Mutex<()>>,
    /// The entry point and its level (the top layer); `NONE` while empty.
    entry: Mutex<(u32, usize)>,
    mat: &'a Matrix,
    codes: Option<&'a Codes>,
    dot: fn(&[f32], &[f32]) -> f32,
    doti: DotI8,
}

/// One thread's reusable buffers.
struct Scratch {
    marks: Vec<u32>,
    epoch: u32,
    cands: BinaryHeap<Reverse<Cand>>,
    best: BinaryHeap<Cand>,
    nbs: Vec<u32>,
    todo: Vec<u32>,
    pruned: Vec<Cand>,
    probe: Probe,
    pv: Probe,
    sel: Select,
    cut: Select,
}

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch {
            marks: vec![0; n],
            epoch: 0,
            cands: BinaryHeap::new(),
            best: BinaryHeap::new(),
            nbs: Vec::new(),
            todo: Vec::new(),
            pruned: Vec::new(),
            probe: Probe::default(),
            pv: Probe::default(),
            sel: Select::default(),
            cut: Select::default(),
        }
    }

    fn next_epoch(&mut self) -> u32 {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|x| *x = 0);
            self.epoch = 1;
        }
        self.epoch
    }
}

fn to_atomic(v: Vec<u32>) -> Vec<AtomicU32> {
    v.into_iter().map(AtomicU32::new).collect()
}

fn from_atomic(v: Vec<AtomicU32>) -> Vec<u32> {
    v.into_iter().map(AtomicU32::into_inner).collect()
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
            // An empty graph gets the build's widths, and codes scaled by
            // the rows themselves.
            self.stride0 = self.stride0.max(2 * self.m);
            self.stride = self.stride.max(self.m);
            self.codes = Codes::encode(m.dim, m.as_slice());
        } else if self.codes.dim == m.dim && self.codes.rows() == from {
            self.codes.append(&m.as_slice()[from * m.dim..]);
        }
        let top = if self.entry == NONE {
            0
        } else {
            self.upper.len()
        };
        // Every new row's slots on each of its layers, before any goes in.
        // New rows are numbered after every existing one: pushing keeps the
        // layers' node lists sorted.
        let stride = self.stride as usize;
        for row in from..n {
            for l in 1..=level_of(row, self.m) {
                if l > self.upper.len() {
                    self.upper.push(Layer {
                        nodes: Vec::new(),
                        adj: Vec::new(),
                    });
                }
                let layer = &mut self.upper[l - 1];
                layer.nodes.push(row as u32);
                layer.adj.extend(std::iter::repeat_n(NONE, stride));
            }
        }
        let mut level0 = std::mem::replace(&mut self.level0, Slab::Owned(Vec::new())).into_vec();
        level0.resize(n * self.stride0 as usize, NONE);
        self.level0 = Slab::Owned(level0);
        let coded = self.codes.dim == m.dim && self.codes.rows() == n;
        if coded && n - from >= PARALLEL_MIN {
            on_huge_pages(&mut self.codes);
        }
        let codes = std::mem::replace(&mut self.codes, Codes::encode(0, &[]));
        let links = self.take_links(m, coded.then_some(&codes), n, top);
        links.insert_all(from, n);
        self.put_links(links);
        self.codes = codes;
        self.n = n as u32;
    }

    /// Drops rows `removed` (sorted) from the graph, the others numbered
    /// again in order; `m` is the matrix without them. A node that linked
    /// to a removed one keeps its other links and fills the freed slots
    /// with the nearest of the removed ones' links (a repair of the
    /// neighbourhood, as hnswlib repairs a deleted element's; choosing the
    /// whole list again by the heuristic left fewer links: recall@10 at ef
    /// 12 on 3,000 random rows less a fifth, 0.75 against 0.89 filled, 0.79
    /// with no repair, 0.85 built again); the others keep theirs. A removed entry point gives way to a node of the highest
    /// layer that still has one. Cost: one pass over the lists, and a
    /// selection per node that lost a link. Distances come from the
    /// graph's own 8-bit codes (kept in the graph's numbering), never from
    /// `m`, whose rows may be numbered otherwise (a later removal, rows
    /// appended since); the graph must have its codes ([`Graph::is_coded`]).
    pub fn remove_rows(&mut self, removed: &[usize], m: &Matrix) {
        debug_assert!(self.is_coded());
        let old_n = self.n as usize;
        let mut new_id = vec![NONE; old_n];
        let mut next = 0u32;
        let mut r = removed.iter().peekable();
        for (row, id) in new_id.iter_mut().enumerate() {
            if r.next_if(|&&x| x == row).is_none() {
                *id = next;
                next += 1;
            }
        }
        let n = next as usize;
        let gone = |v: u32| new_id[v as usize] == NONE;
        // (layer, node, candidates) of every node that lost a link, new ids.
        let mut repairs: Vec<(usize, u32, usize, Vec<u32>)> = Vec::new();
        let mut relist = |l: usize, u: u32, list: &[u32], of_removed: &dyn Fn(u32) -> Vec<u32>| {
            let kept: Vec<u32> = list
                .iter()
                .filter(|&&v| !gone(v))
                .map(|&v| new_id[v as usize])
                .collect();
            if kept.len() < list.len() {
                let mut cands = kept.clone();
                for &x in list.iter().filter(|&&x| gone(x)) {
                    for w in of_removed(x) {
                        if !gone(w) && w != u && !cands.contains(&new_id[w as usize]) {
                            cands.push(new_id[w as usize]);
                        }
                    }
                }
                repairs.push((l, new_id[u as usize], kept.len(), cands));
            }
            kept
        };
        let s0 = self.stride0 as usize;
        let mut level0 = vec![NONE; n * s0];
        for u in 0..old_n as u32 {
            if gone(u) {
                continue;
            }
            let kept = relist(0, u, self.neighbours0(u), &|x| self.neighbours0(x).to_vec());
            let at = new_id[u as usize] as usize * s0;
            level0[at..at + kept.len()].copy_from_slice(&kept);
        }
        let s = self.stride as usize;
        let mut upper = Vec::with_capacity(self.upper.len());
        for (i, layer) in self.upper.iter().enumerate() {
            let mut nodes = Vec::new();
            let mut adj = Vec::new();
            for &u in &layer.nodes {
                if gone(u) {
                    continue;
                }
                let of = |x: u32| self.neighbours_upper(layer, x).to_vec();
                let kept = relist(i + 1, u, self.neighbours_upper(layer, u), &of);
                nodes.push(new_id[u as usize]);
                adj.extend(kept.iter().copied().chain(std::iter::repeat(NONE)).take(s));
            }
            upper.push(Layer { nodes, adj });
        }
        while upper.last().is_some_and(|l| l.nodes.is_empty()) {
            upper.pop();
        }
        self.entry = match self.entry {
            NONE => NONE,
            e if !gone(e) => new_id[e as usize],
            _ => match upper.last() {
                Some(l) => l.nodes[0],
                None if n > 0 => 0,
                None => NONE,
            },
        };
        let codes = self.codes.retain_rows(|row| new_id[row] != NONE);
        self.level0 = Slab::Owned(level0);
        self.upper = upper;
        self.n = n as u32;
        repairs.retain(|(l, _, _, _)| *l == 0 || *l <= self.upper.len());
        let top = self.upper.len();
        let links = self.take_links(m, Some(&codes), n, top);
        let mut probe = Probe::default();
        let mut buf = Vec::new();
        let mut cands: Vec<Cand> = Vec::new();
        for (l, u, kept, list) in &repairs {
            links.probe_code_into(*u, &mut probe, &mut buf);
            cands.clear();
            cands.extend(list[*kept..].iter().map(|&c| Cand {
                dist: links.dist(&probe, c),
                node: c,
            }));
            cands.sort_unstable();
            let cap = if *l == 0 { links.stride0 } else { links.stride };
            let filled: Vec<u32> = list[..*kept]
                .iter()
                .copied()
                .chain(cands.iter().map(|c| c.node))
                .take(cap)
                .collect();
            links.write(*l, *u, &filled);
        }
        self.put_links(links);
        self.codes = codes;
    }

    /// Whether every row has its 8-bit code (what [`Graph::remove_rows`]
    /// needs).
    pub fn is_coded(&self) -> bool {
        self.codes.dim > 0 && self.codes.rows() == self.n as usize
    }

    /// The lists as the inserting threads share them (taken out of `self`
    /// until [`Graph::put_links`]), over the first `n` rows of `m`; the
    /// entry point is on layer `top`.
    fn take_links<'a>(
        &mut self,
        m: &'a Matrix,
        codes: Option<&'a Codes>,
        n: usize,
        top: usize,
    ) -> Links<'a> {
        let level0 = std::mem::replace(&mut self.level0, Slab::Owned(Vec::new())).into_vec();
        Links {
            m: self.m as usize,
            ef: self.ef_construction as usize,
            stride0: self.stride0 as usize,
            stride: self.stride as usize,
            level0: to_atomic(level0),
            upper: std::mem::take(&mut self.upper)
                .into_iter()
                .map(|l| SharedLayer {
                    nodes: l.nodes,
                    adj: to_atomic(l.adj),
                })
                .collect(),
            locks: (0..STRIPES.min(n.max(1))).map(|_| Mutex::new(())).collect(),
            entry: Mutex::new((self.entry, top)),
            mat: m,
            codes,
            dot: dot_fn(),
            doti: walk_dot(),
        }
    }

    /// Puts the lists back from [`Graph::take_links`].
    fn put_links(&mut self, links: Links<'_>) {
        let Links {
            level0,
            upper,
            entry,
            ..
        } = links;
        self.level0 = Slab::Owned(from_atomic(level0));
        self.upper = upper
            .into_iter()
            .map(|l| Layer {
                nodes: l.nodes,
                adj: from_atomic(l.adj),
            })
            .collect();
        self.entry = entry.into_inner().unwrap_or_else(PoisonError::into_inner).0;
    }
}

impl Links<'_> {
    /// Inserts rows `from..n`: one at a time, then (see the module header)
    /// on every core.
    fn insert_all(&self, from: usize, n: usize) {
        let parallel_from = if n - from >= PARALLEL_MIN {
            from.max(SERIAL_INSERTS).min(n)
        } else {
            n
        };
        let mut scratch = Scratch::new(n);
        for row in from..parallel_from {
            self.insert(row, &mut scratch);
        }
        drop(scratch);
        if parallel_from == n {
            return;
        }
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let next = AtomicUsize::new(parallel_from);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut scratch = Scratch::new(n);
                    loop {
                        let row = next.fetch_add(1, Relaxed);
                        if row >= n {
                            break;
                        }
                        self.insert(row, &mut scratch);
                    }
                });
            }
        });
    }

    fn lock(&self, u: u32) -> MutexGuard<'_, ()> {
        self.locks[u as usize % self.locks.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Node `u`'s slots on layer `l` (0 = the bottom layer); `u` is on it.
    fn slots(&self, l: usize, u: u32) -> &[AtomicU32] {
        if l == 0 {
            let s = self.stride0;
            &self.level0[u as usize * s..(u as usize + 1) * s]
        } else {
            let layer = &self.upper[l - 1];
            let j = layer
                .nodes
                .binary_search(&u)
                .expect("a node's links are asked for on its own layers only");
            &layer.adj[j * self.stride..(j + 1) * self.stride]
        }
    }

    /// Node `u`'s links on layer `l`, into `out`.
    fn read(&self, l: usize, u: u32, out: &mut Vec<u32>) {
        out.clear();
        for a in self.slots(l, u) {
            let v = a.load(Relaxed);
            if v == NONE {
                break;
            }
            out.push(v);
        }
    }

    /// Replaces node `u`'s links on layer `l` with `links` (caller holds
    /// `u`'s lock).
    fn write(&self, l: usize, u: u32, links: &[u32]) {
        let slots = self.slots(l, u);
        for (i, a) in slots.iter().enumerate() {
            a.store(links.get(i).copied().unwrap_or(NONE), Relaxed);
        }
    }

    fn insert(&self, row: usize, sc: &mut Scratch) {
        let level = level_of(row, self.m as u32);
        let mut guard = self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        let (entry, top) = *guard;
        if entry == NONE {
            *guard = (row as u32, level);
            return;
        }
        // A row above the top layer holds the entry lock until it is in.
        let held = (level > top).then_some(guard);
        let mut probe = std::mem::take(&mut sc.probe);
        self.probe_into(row as u32, &mut probe);
        let dist = |v: u32| self.dist(&probe, v);
        let mut ep = Cand {
            dist: dist(entry),
            node: entry,
        };
        for l in (level + 1..=top).rev() {
            loop {
                let mut moved = false;
                self.read(l, ep.node, &mut sc.nbs);
                for &nb in &sc.nbs {
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
        let mut entries = vec![ep];
        for l in (0..=level.min(top)).rev() {
            let found = self.beam(l, &entries, &dist, sc);
            let cap = if l == 0 { self.stride0 } else { self.stride };
            let kept = sc.sel.run(self, &found, self.m.clamp(1, cap));
            {
                let _lock = self.lock(row as u32);
                self.write(l, row as u32, kept);
            }
            for &v in kept {
                let _lock = self.lock(v);
                self.read(l, v, &mut sc.nbs);
                if sc.nbs.len() < cap {
                    self.slots(l, v)[sc.nbs.len()].store(row as u32, Relaxed);
                } else {
                    // Full: the heuristic over its links and the new row.
                    self.probe_code_into(v, &mut sc.pv, &mut sc.cut.buf);
                    sc.pruned.clear();
                    sc.pruned
                        .extend(sc.nbs.iter().chain([&(row as u32)]).map(|&c| Cand {
                            dist: self.dist(&sc.pv, c),
                            node: c,
                        }));
                    sc.pruned.sort_unstable();
                    self.write(l, v, sc.cut.run(self, &sc.pruned, cap));
                }
            }
            entries = found;
        }
        if let Some(mut g) = held {
            *g = (row as u32, level);
        }
        sc.probe = probe;
    }

    /// Prepares row `u` for distances to other rows, into `p`.
    fn probe_into(&self, u: u32, p: &mut Probe) {
        p.row = u;
        if let Some(c) = self.codes {
            p.factor = weights(&c.scales, self.mat.row(u as usize), &mut p.weights);
        }
    }

    /// As `probe_into`, from row `u`'s 8-bit code instead of its vector:
    /// for the neighbour selection, whose rows' codes were just read by the
    /// walk (a fifth of the bytes of the vector, and likely in cache).
    fn probe_code_into(&self, u: u32, p: &mut Probe, buf: &mut Vec<f32>) {
        let Some(c) = self.codes else {
            return self.probe_into(u, p);
        };
        p.row = u;
        buf.clear();
        buf.extend(
            c.row(u as usize)
                .iter()
                .zip(&c.scales)
                .map(|(&x, &s)| f32::from(x) * s),
        );
        p.factor = weights(&c.scales, buf, &mut p.weights);
    }

    #[cfg(test)]
    fn probe(&self, u: u32) -> Probe {
        let mut p = Probe::default();
        self.probe_into(u, &mut p);
        p
    }

    /// Cosine distance of row `v` to the probed row: its 8-bit code against
    /// the probe's weights when the graph has codes, else exact.
    #[inline]
    fn dist(&self, p: &Probe, v: u32) -> f32 {
        match self.codes {
            Some(c) => 1.0 - (self.doti)(c.row(v as usize), &p.weights) as f32 * p.factor,
            None => 1.0 - (self.dot)(self.mat.row(v as usize), self.mat.row(p.row as usize)),
        }
    }

    /// The `ef` nearest nodes of layer `l` found by a beam search from
    /// `entries`, nearest first.
    fn beam(
        &self,
        l: usize,
        entries: &[Cand],
        dist: &impl Fn(u32) -> f32,
        sc: &mut Scratch,
    ) -> Vec<Cand> {
        let ef = self.ef.max(1);
        let epoch = sc.next_epoch();
        sc.cands.clear();
        sc.best.clear();
        for &e in entries {
            if sc.marks[e.node as usize] != epoch {
                sc.marks[e.node as usize] = epoch;
                sc.cands.push(Reverse(e));
                sc.best.push(e);
                if sc.best.len() > ef {
                    sc.best.pop();
                }
            }
        }
        while let Some(Reverse(c)) = sc.cands.pop() {
            if sc.best.len() >= ef && c.dist > sc.best.peek().map_or(f32::INFINITY, |b| b.dist) {
                break;
            }
            self.read(l, c.node, &mut sc.nbs);
            // The next candidate's list, while this one's rows are scored.
            if let (0, Some(Reverse(next))) = (l, sc.cands.peek()) {
                prefetch(self.slots(0, next.node));
            }
            sc.todo.clear();
            for &nb in &sc.nbs {
                if sc.marks[nb as usize] != epoch {
                    sc.marks[nb as usize] = epoch;
                    sc.todo.push(nb);
                }
            }
            for &nb in sc.todo.iter().take(2) {
                self.prefetch_row(nb);
            }
            for i in 0..sc.todo.len() {
                if let Some(&ahead) = sc.todo.get(i + 2) {
                    self.prefetch_row(ahead);
                }
                let nb = sc.todo[i];
                let d = dist(nb);
                if sc.best.len() < ef || d < sc.best.peek().map_or(f32::INFINITY, |b| b.dist) {
                    let cand = Cand { dist: d, node: nb };
                    sc.cands.push(Reverse(cand));
                    sc.best.push(cand);
                    if sc.best.len() > ef {
                        sc.best.pop();
                    }
                }
            }
        }
        let mut out: Vec<Cand> = sc.best.drain().collect();
        out.sort_unstable();
        out
    }

    fn prefetch_row(&self, v: u32) {
        match self.codes {
            Some(c) => prefetch(c.row(v as usize)),
            None => prefetch(self.mat.row(v as usize)),
        }
    }
}

/// Moves the codes into memory backed by 2 MiB pages where the system
/// allows: the walk reads rows at random, and with 4 KiB pages nearly every
/// row read at 1M rows (384 MB of codes) is a TLB miss.
fn on_huge_pages(codes: &mut Codes) {
    let bytes = codes.codes.as_slice().len();
    if bytes < 1 << 24 || !cfg!(target_os = "linux") {
        return;
    }
    let Ok(mut map) = memmap2::MmapMut::map_anon(bytes) else {
        return;
    };
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    for (d, &x) in map.iter_mut().zip(codes.codes.as_slice()) {
        *d = x as u8;
    }
    let Ok(map) = map.make_read_only() else {
        return;
    };
    if let Some(slab) = Slab::mapped(&std::sync::Arc::new(map), 0, bytes) {
        codes.codes = slab;
    }
}

/// The walk's integer dot product: `quant.rs`'s, or with AVX-512 where the
/// CPU has it (twice the lanes; the walk's distances are most of the build).
fn walk_dot() -> DotI8 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
            return dot_i8_avx512_checked;
        }
    }
    dot_i8_fn()
}

/// Only ever handed out by `walk_dot` after the CPU check.
#[cfg(target_arch = "x86_64")]
fn dot_i8_avx512_checked(c: &[i8], w: &[i16]) -> i32 {
    // SAFETY: `walk_dot` returns this function only when AVX-512 F and BW are present.
    unsafe { dot_i8_avx512(c, w) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn dot_i8_avx512(c: &[i8], w: &[i16]) -> i32 {
    use std::arch::x86_64::*;
    let n = c.len().min(w.len());
    let mut i = 0;
    // SAFETY: every load reads 32 codes / 32 weights at i <= n - 32 of
    // slices of length >= n.
    unsafe {
        let mut s0 = _mm512_setzero_si512();
        let mut s1 = _mm512_setzero_si512();
        while i + 64 <= n {
            let c0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(c.as_ptr().add(i) as *const __m256i));
            let c1 =
                _mm512_cvtepi8_epi16(_mm256_loadu_si256(c.as_ptr().add(i + 32) as *const __m256i));
            let w0 = _mm512_loadu_si512(w.as_ptr().add(i) as *const _);
            let w1 = _mm512_loadu_si512(w.as_ptr().add(i + 32) as *const _);
            s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(c0, w0));
            s1 = _mm512_add_epi32(s1, _mm512_madd_epi16(c1, w1));
            i += 64;
        }
        while i + 32 <= n {
            let c0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(c.as_ptr().add(i) as *const __m256i));
            let w0 = _mm512_loadu_si512(w.as_ptr().add(i) as *const _);
            s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(c0, w0));
            i += 32;
        }
        let mut total = _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
        while i < n {
            total += c[i] as i32 * w[i] as i32;
            i += 1;
        }
        total
    }
}

/// A row prepared for distances: its row number, and with codes its
/// 16-bit weights and the factor back to a dot product.
#[derive(Default)]
struct Probe {
    row: u32,
    weights: Vec<i16>,
    factor: f32,
}

/// `x` as 16-bit weights `x_i * scale_i` for the integer dot product with
/// the codes, into `out`; returns the factor that turns the integer sum
/// back into a dot product. The same as `Codes::prepare`, written so that
/// it vectorises: the build prepares every kept
/// neighbour, and the scalar version was a fifth of the build's time.
fn weights(scales: &[f32], x: &[f32], out: &mut Vec<i16>) -> f32 {
    const L: usize = 8;
    let mut max = [0f32; L];
    let mut sum = [0f32; L];
    let xs = x.chunks_exact(L);
    let ss = scales.chunks_exact(L);
    let (xr, sr) = (xs.remainder(), ss.remainder());
    for (xc, sc) in xs.zip(ss) {
        for i in 0..L {
            let w = (xc[i] * sc[i]).abs();
            max[i] = if w > max[i] { w } else { max[i] };
            sum[i] += w;
        }
    }
    let mut max = max.iter().fold(0f32, |m, &x| if x > m { x } else { m });
    let mut sum: f32 = sum.iter().sum();
    for (&a, &s) in xr.iter().zip(sr) {
        let w = (a * s).abs();
        max = max.max(w);
        sum += w;
    }
    out.clear();
    if !(max > 0.0 && max.is_finite() && sum.is_finite()) {
        out.resize(x.len(), 0);
        return 0.0;
    }
    // |sum of c_i * w_i| <= 127 * sum |w_i| must stay below 2^31.
    let scale = (32767.0 / max).min(2.0e9 / (127.0 * sum));
    out.extend(
        x.iter()
            .zip(scales)
            // Half away from zero, as `round` (which is a libm call on
            // x86-64 without SSE4.1; this is two vector instructions).
            .map(|(&a, &s)| {
                let w = a * s * scale;
                (w + 0.5f32.copysign(w)) as i32 as i16
            }),
    );
    1.0 / scale
}

/// The heuristic of the HNSW paper (hnswlib's `getNeighborsByHeuristic2`),
/// with reusable buffers.
#[derive(Default)]
struct Select {
    kept: Vec<u32>,
    /// The kept rows' probes (buffers reused across calls).
    probes: Vec<Probe>,
    buf: Vec<f32>,
}

impl Select {
    /// Of `cands` (nearest first), keeps one only if it is closer to the
    /// row than to every one kept before it, up to `keep`.
    fn run(&mut self, links: &Links, cands: &[Cand], keep: usize) -> &[u32] {
        self.kept.clear();
        for c in cands {
            let k = self.kept.len();
            if k == keep {
                break;
            }
            if self.probes[..k]
                .iter()
                .all(|p| links.dist(p, c.node) > c.dist)
            {
                if self.probes.len() == k {
                    self.probes.push(Probe::default());
                }
                links.probe_code_into(c.node, &mut self.probes[k], &mut self.buf);
                self.kept.push(c.node);
            }
        }
        &self.kept
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

    fn unit(deg: f32) -> [f32; 2] {
        let r = deg.to_radians();
        [r.cos(), r.sin()]
    }

    #[test]
    fn heuristic_drops_a_candidate_shadowed_by_a_kept_one() {
        // u at 0 degrees; a at 10 and b at 13 (b is nearer to a than to u);
        // c at -20, on the other side of u.
        let rows = [unit(0.0), unit(10.0), unit(13.0), unit(-20.0)];
        let m = Matrix::owned(2, rows.concat());
        let links = Links {
            m: 16,
            ef: 10,
            stride0: 4,
            stride: 4,
            level0: Vec::new(),
            upper: Vec::new(),
            locks: vec![Mutex::new(())],
            entry: Mutex::new((NONE, 0)),
            mat: &m,
            codes: None,
            dot: dot_fn(),
            doti: dot_i8_fn(),
        };
        let u = links.probe(0);
        let mut cands: Vec<Cand> = [2, 3, 1]
            .map(|c| Cand {
                dist: links.dist(&u, c),
                node: c,
            })
            .to_vec();
        cands.sort_unstable();
        let mut s = Select::default();
        assert_eq!(s.run(&links, &cands, 4), [1, 3]);
        // Never more than asked for.
        assert_eq!(s.run(&links, &cands, 1), [1]);
    }

    #[test]
    fn the_walk_dot_matches_the_portable_one() {
        let mut z = 7u32;
        let mut next = || {
            z ^= z << 13;
            z ^= z >> 17;
            z ^= z << 5;
            z
        };
        for n in [0, 5, 31, 32, 64, 100, 384, 389] {
            let c: Vec<i8> = (0..n).map(|_| (next() % 255) as i8).collect();
            let w: Vec<i16> = (0..n).map(|_| next() as i16).collect();
            let want: i32 = c.iter().zip(&w).map(|(&a, &b)| a as i32 * b as i32).sum();
            assert_eq!(walk_dot()(&c, &w), want, "{n}");
            assert_eq!(dot_i8_fn()(&c, &w), want, "{n}");
        }
    }

    #[test]
    fn probes_agree_with_the_search_s_prepared_queries() {
        let m = random_matrix(40, 389, 4);
        let codes = Codes::encode(389, m.as_slice());
        let f = dot_i8_fn();
        let mut w = Vec::new();
        for i in 0..40 {
            let q = m.row((i * 7) % 40);
            let factor = weights(&codes.scales, q, &mut w);
            let ours = walk_dot()(codes.row(i), &w) as f32 * factor;
            let theirs = codes.dot(i, &codes.prepare(q), f);
            assert!((ours - theirs).abs() < 1e-3, "{ours} vs {theirs}");
        }
        assert_eq!(weights(&[1.0; 3], &[0.0; 3], &mut w), 0.0);
        assert_eq!(w, [0; 3]);
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

    /// Every list valid: ids in range and on the list's layer, no self
    /// links, no duplicates, nothing after the first empty slot.
    fn assert_valid(g: &Graph) {
        let n = g.len() as u32;
        let s0 = g.stride0 as usize;
        for u in 0..n {
            let slots = &g.level0.as_slice()[u as usize * s0..(u as usize + 1) * s0];
            let l = g.neighbours0(u);
            assert!(!l.is_empty(), "row {u} has no links");
            assert!(slots[l.len()..].iter().all(|&x| x == NONE));
            assert!(l.iter().all(|&v| v < n && v != u));
            let mut d = l.to_vec();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), l.len());
        }
        for layer in &g.upper {
            assert!(layer.nodes.windows(2).all(|w| w[0] < w[1]));
            for &u in &layer.nodes {
                let l = g.neighbours_upper(layer, u);
                assert!(
                    l.iter()
                        .all(|v| *v != u && layer.nodes.binary_search(v).is_ok())
                );
            }
        }
        assert!(g.entry < n);
        if let Some(top) = g.upper.last() {
            assert!(top.nodes.contains(&g.entry));
        }
    }

    #[test]
    fn a_parallel_build_is_valid_and_finds_neighbours() {
        // Past SERIAL_INSERTS + PARALLEL_MIN rows: the parallel path.
        let n = SERIAL_INSERTS + PARALLEL_MIN + 2_000;
        let m = random_matrix(n, 16, 21);
        let g = Graph::build(&m, &HnswParams::default());
        assert_eq!(g.len(), n);
        assert_valid(&g);
        for r in [0, 999, 1_000, 7_777, n - 1] {
            assert_eq!(g.search(&m, m.row(r), 1, 64)[0].row, r);
        }
        let q = random_matrix(100, 16, 8);
        let r = recall(&g, &m, &q, 96);
        assert!(r >= 0.95, "recall {r}");
    }

    #[test]
    fn removed_rows_leave_a_valid_graph_that_finds_the_rest() {
        let all = random_matrix(3000, 24, 13);
        let params = HnswParams::default();
        let q = random_matrix(100, 24, 7);
        for share in [5, 2] {
            let mut g = Graph::build(&all, &params);
            // Every `share`-th row, and the entry point and its layer-mates
            // on the top layer: the graph must find a new entry.
            let mut removed: Vec<usize> = (0..3000).filter(|r| r % share == 1).collect();
            removed.extend(
                g.upper
                    .last()
                    .map_or(vec![], |l| l.nodes.iter().map(|&u| u as usize).collect()),
            );
            removed.push(g.entry as usize);
            removed.sort_unstable();
            removed.dedup();
            let kept: Vec<f32> = (0..3000)
                .filter(|r| removed.binary_search(r).is_err())
                .flat_map(|r| all.row(r).to_vec())
                .collect();
            let rest = Matrix::owned(24, kept);
            g.remove_rows(&removed, &rest);
            assert_eq!(g.len(), 3000 - removed.len());
            assert_valid(&g);
            for r in [0, 1000, rest.rows() - 1] {
                assert_eq!(g.search(&rest, rest.row(r), 1, 64)[0].row, r);
            }
            // A small beam, where a graph that lost links shows it.
            let shrunk = recall(&g, &rest, &q, 12);
            let built = recall(&Graph::build(&rest, &params), &rest, &q, 12);
            assert!(
                shrunk >= built - 0.02,
                "recall after removing 1 in {share}: {shrunk} (built without them: {built})"
            );
            // And rows go in after.
            let mut more = rest.as_slice().to_vec();
            more.extend_from_slice(&q.as_slice()[..10 * 24]);
            let more = Matrix::owned(24, more);
            g.insert_rows(&more);
            assert_valid(&g);
            assert_eq!(g.search(&more, q.row(3), 1, 64)[0].row, rest.rows() + 3);
        }
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
        assert_valid(&g);
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
        assert_valid(&g);
        for r in [0, 150, 299] {
            assert_eq!(g.search(&all, all.row(r), 1, 64)[0].row, r);
        }
        // Small builds and insertions are serial: the same every time, and
        // the same as building in one go.
        assert_eq!(Graph::build(&all, &params), g);
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
