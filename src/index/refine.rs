//! Neighbour re-selection after hnsw_rs has built the graph.
//!
//! hnsw_rs picks a new point's neighbours with the diversity heuristic of
//! the HNSW paper, but its reverse update appends the new point to each
//! neighbour's list and drops the farthest entry once the list is full.
//! Over a million insertions the lists drift to plain nearest-neighbour
//! lists: the few long links that let a walk leave a dense region are the
//! first dropped, and recall at a fixed beam falls with the library's size
//! (recall@10 0.896 at 1M vectors and ef 96, where hnswlib, which re-runs
//! the heuristic when a list overflows, reaches 0.983-0.987).
//!
//! `refine_layer` puts hnswlib's rule back, deterministically for a given
//! graph:
//! 1. every node's candidates are its neighbours and their neighbours (up
//!    to about a thousand); in order of distance, a candidate is kept only
//!    if it is closer to the node than to every neighbour kept before it
//!    (the heuristic), up to `cap` (2M on layer 0, M above);
//! 2. every kept link is made two-way; a list that then holds more than
//!    `cap` entries is cut back by the same heuristic, and slots the
//!    heuristic leaves free are filled with the nearest dropped candidates.
//!
//! Both passes read only the previous pass's arrays, so the result does
//! not depend on the number of threads. `Graph::build` runs it twice on
//! layer 0 (the second pass finds better candidates in the first pass's
//! graph) and once on each upper layer. Measured with `benches/search.rs`
//! on generated vectors, same hnsw_rs graph and queries:
//! - 300k, one pass: recall@10 at ef 16/32/64/96 0.828/0.937/0.983/0.993
//!   -> 0.920/0.982/0.999/1.000 (hnswlib 0.870/0.965/0.994/0.999), 52 s
//!   on top of a 414 s build;
//! - 1M: ef 96 0.896 -> 0.978 after one pass -> 0.986 after the second
//!   (201 s); ef 128 0.992, ef 200 0.996. Queries that found none of
//!   their 10 neighbours at ef 96: 16 of 1,000 after one pass, 9 after two.
//!
//! Measured worse: keeping at most M in pass 1; only the nearest 100 or
//! 200 candidates (the long links are among the far ones); no fill in
//! pass 2; a Vamana-style slack (alpha 1.2: lists fill with near
//! neighbours and whole regions fall out of reach, recall 0.39).

use super::{Matrix, dot_fn};

const NONE: u32 = u32::MAX;

/// Re-selects the lists of one layer: `adj` holds `stride` `NONE`-padded
/// slots per node, as local ids; local id `u` is row `rows[u]` of `mat`
/// (row `u` when `rows` is empty, as on layer 0). Returns the new lists
/// with `cap` slots per node.
pub(super) fn refine_layer(
    adj: &[u32],
    stride: usize,
    rows: &[u32],
    mat: &Matrix,
    cap: usize,
) -> Vec<u32> {
    let n = if rows.is_empty() {
        mat.rows()
    } else {
        rows.len()
    };
    let row = |u: u32| {
        mat.row(if rows.is_empty() {
            u as usize
        } else {
            rows[u as usize] as usize
        })
    };
    // Pass 1: the heuristic over each node's two-hop neighbourhood.
    let fwd = par_nodes(n, cap, |u, marks, out| {
        let mut cands = Vec::new();
        marks[u] = u as u32;
        for &v in links(adj, stride, u) {
            add_new(&mut cands, marks, u, v);
            for &w in links(adj, stride, v as usize) {
                add_new(&mut cands, marks, u, w);
            }
        }
        select(&row, u, &cands, false, out);
    });
    // Reverse links, as compressed rows.
    let mut start = vec![0usize; n + 1];
    for &v in fwd.iter().filter(|&&v| v != NONE) {
        start[v as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut rev = vec![0u32; start[n]];
    for u in 0..n {
        for &v in links(&fwd, cap, u) {
            rev[fill[v as usize]] = u as u32;
            fill[v as usize] += 1;
        }
    }
    // Pass 2: own links plus reverse links, cut back when over `cap`.
    par_nodes(n, cap, |u, marks, out| {
        let mut cands = Vec::new();
        marks[u] = u as u32;
        for &v in links(&fwd, cap, u)
            .iter()
            .chain(&rev[start[u]..start[u + 1]])
        {
            add_new(&mut cands, marks, u, v);
        }
        select(&row, u, &cands, true, out);
    })
}

/// Node `u`'s links: its `stride` slots up to the first `NONE`.
fn links(adj: &[u32], stride: usize, u: usize) -> &[u32] {
    let a = &adj[u * stride..(u + 1) * stride];
    &a[..a.iter().position(|&x| x == NONE).unwrap_or(stride)]
}

/// Adds `v` to node `u`'s candidates unless already marked for `u`.
fn add_new(cands: &mut Vec<u32>, marks: &mut [u32], u: usize, v: u32) {
    if marks[v as usize] != u as u32 {
        marks[v as usize] = u as u32;
        cands.push(v);
    }
}

/// Runs `f(node, marks, out)` for every node on every core; `out` is the
/// node's `width` slots, pre-filled with `NONE`.
fn par_nodes<F>(n: usize, width: usize, f: F) -> Vec<u32>
where
    F: Fn(usize, &mut [u32], &mut [u32]) + Sync,
{
    let mut out = vec![NONE; n * width];
    if n == 0 || width == 0 {
        return out;
    }
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    // Blocks of nodes handed out in order; small enough to balance.
    let block = 1024;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let chunks: Vec<&mut [u32]> = out.chunks_mut(block * width).collect();
    let chunks: Vec<std::sync::Mutex<&mut [u32]>> =
        chunks.into_iter().map(std::sync::Mutex::new).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                // `marks[v] == u` means v was seen for node u; NONE is never a node.
                let mut marks = vec![NONE; n];
                loop {
                    let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(chunk) = chunks.get(b) else { break };
                    let mut chunk = chunk.lock().unwrap_or_else(|e| e.into_inner());
                    for (i, slot) in chunk.chunks_mut(width).enumerate() {
                        f(b * block + i, &mut marks, slot);
                    }
                }
            });
        }
    });
    out
}

/// The heuristic: of the candidates, in order of distance to `u`, keep one
/// only if it is closer to `u` than to every one kept before it, up to
/// `out.len()`. With `fill`, slots left free are filled with the nearest
/// candidates the heuristic dropped.
pub(super) fn select<'a>(
    row: &impl Fn(u32) -> &'a [f32],
    u: usize,
    cands: &[u32],
    fill: bool,
    out: &mut [u32],
) {
    let keep = out.len();
    let dot = dot_fn();
    let q = row(u as u32);
    let mut scored: Vec<(f32, u32)> = cands.iter().map(|&c| (1.0 - dot(q, row(c)), c)).collect();
    scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut kept: Vec<u32> = Vec::with_capacity(keep);
    let mut dropped: Vec<u32> = Vec::new();
    for &(d, c) in &scored {
        if kept.len() == keep {
            break;
        }
        let v = row(c);
        if kept.iter().all(|&s| 1.0 - dot(v, row(s)) > d) {
            kept.push(c);
        } else if fill {
            dropped.push(c);
        }
    }
    if fill {
        let room = keep - kept.len();
        kept.extend(dropped.into_iter().take(room));
    }
    out[..kept.len()].copy_from_slice(&kept);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::graph::tests::random_matrix;

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
        let mut out = [NONE; 4];
        select(&|u: u32| m.row(u as usize), 0, &[2, 3, 1], false, &mut out);
        assert_eq!(out, [1, 3, NONE, NONE]);
        // With fill, the dropped candidate takes the free slot.
        let mut out = [NONE; 3];
        select(&|u: u32| m.row(u as usize), 0, &[2, 3, 1], true, &mut out);
        assert_eq!(out, [1, 3, 2]);
        // Never more than the slots.
        let mut out = [NONE; 1];
        select(&|u: u32| m.row(u as usize), 0, &[2, 3, 1], true, &mut out);
        assert_eq!(out, [1]);
    }

    #[test]
    fn refined_lists_are_valid_and_links_go_both_ways() {
        let m = random_matrix(3000, 16, 5);
        let n = m.rows();
        // A ring (each node linked to the next four) as the input graph.
        let stride = 4;
        let level0: Vec<u32> = (0..n)
            .flat_map(|u| (1..=stride).map(move |d| ((u + d) % n) as u32))
            .collect();
        let cap = 8;
        let out = refine_layer(&level0, stride, &[], &m, cap);
        assert_eq!(out.len(), n * cap);
        let lists: Vec<Vec<u32>> = out
            .chunks(cap)
            .map(|c| c.iter().copied().take_while(|&x| x != NONE).collect())
            .collect();
        let mut two_way = 0;
        let mut links = 0;
        for (u, l) in lists.iter().enumerate() {
            assert!(!l.is_empty(), "node {u} lost every link");
            let mut seen = l.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), l.len(), "duplicate link at node {u}");
            assert!(l.iter().all(|&v| (v as usize) < n && v as usize != u));
            // Nothing but NONE after the first NONE.
            assert!(
                out[u * cap + l.len()..(u + 1) * cap]
                    .iter()
                    .all(|&x| x == NONE)
            );
            links += l.len();
            two_way += l
                .iter()
                .filter(|&&v| lists[v as usize].contains(&(u as u32)))
                .count();
        }
        // Pass 2 makes every kept link two-way unless a full list cut it.
        assert!(
            two_way * 10 >= links * 8,
            "{two_way} of {links} links two-way"
        );
        // Deterministic: the same input gives the same lists.
        assert_eq!(refine_layer(&level0, stride, &[], &m, cap), out);
    }
}
