//! papermap's side of `scripts/bench-search` (run through `cargo bench
//! --bench search -- ...`; the script runs hnswlib on the same files and
//! prints the comparison). Not a test: it measures and reports.
//!
//! ```text
//! search dump LIBRARY OUT.f32            write a library's matrix (raw f32)
//! search run --dim D --base B.f32 --queries Q.f32 --truth T.u32 \
//!            [--k 10] [--efs 16,32,64,96,128,200] [--graph-cache G | --grow STEPS:ROWS]
//! search recall LIBRARY QUERIES.jsonl [--efs 64,96,128]
//! ```
//! `recall` (for `scripts/bench-incremental`) embeds the JSON-lines papers
//! with the hashing embedder and prints one JSON object: recall@10 of the
//! library's persisted graph at each ef against exact search.
//! `--grow 10:1000` builds the graph over all but the last 10,000 rows and
//! inserts those in 10 steps of 1,000, saving and loading the graph
//! between steps, as adds to a library do (build time reported as 0).
//! `run` prints one JSON object: build seconds, graph bytes, load seconds,
//! and for exact search and each ef: queries per second on one thread and
//! recall@k against the truth file (k u32 row ids per query).

use std::path::Path;
use std::time::Instant;

mod common;

use common::{arg, read_f32};
use papermap::index::{Graph, HnswParams, Matrix, exact_search};

fn read_u32(path: &str) -> Vec<u32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn main() {
    let args = common::args();
    match args.first().map(String::as_str) {
        Some("dump") => {
            let lib = papermap::store::Library::open(Path::new(&args[1])).expect("open library");
            let m = Matrix::from_library(&lib).expect("library matrix");
            let bytes: Vec<u8> = m.as_slice().iter().flat_map(|x| x.to_le_bytes()).collect();
            std::fs::write(&args[2], bytes).expect("write");
            println!("{{\"rows\": {}, \"dim\": {}}}", m.rows(), m.dim);
        }
        Some("run") => run(&args[1..]),
        Some("recall") => library_recall(&args[1..]),
        _ => {
            eprintln!(
                "usage: search dump LIB OUT.f32 | search run --dim D --base B --queries Q --truth T"
            );
            std::process::exit(2);
        }
    }
}

fn library_recall(args: &[String]) {
    use papermap::embed::{Embedder, HashEmbedder};
    let lib = papermap::store::Library::open_without_vectors(Path::new(&args[0])).expect("library");
    let m = Matrix::load_current(&lib).expect("a current derived matrix");
    let params = HnswParams::default();
    let g = Graph::load(
        &lib.derived_dir().join(papermap::index::GRAPH_FILE),
        &lib.fingerprint(),
        &params,
        m.rows(),
    )
    .expect("a current graph");
    let efs: Vec<usize> = arg(args, "--efs")
        .unwrap_or("64,96,128")
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    let texts: Vec<String> = std::fs::read_to_string(&args[1])
        .expect("queries")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            let p = papermap::paper::Paper {
                title: v["title"].as_str().unwrap_or("").into(),
                abs: v["abstract"].as_str().unwrap_or("").into(),
                ..Default::default()
            };
            p.embed_text()
        })
        .collect();
    let mut e = HashEmbedder::new(m.dim);
    let qs: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| e.embed(&[t.as_str()]).expect("embeds").remove(0))
        .collect();
    let truth: Vec<Vec<usize>> = qs
        .iter()
        .map(|q| {
            exact_search(&m, q, 10, &|_| true)
                .iter()
                .map(|h| h.row)
                .collect()
        })
        .collect();
    let rows: Vec<String> = efs
        .iter()
        .map(|&ef| {
            let hit: usize = qs
                .iter()
                .zip(&truth)
                .map(|(q, t)| {
                    g.search(&m, q, 10, ef)
                        .iter()
                        .filter(|h| t.contains(&h.row))
                        .count()
                })
                .sum();
            format!("\"{ef}\": {:.4}", hit as f64 / (10 * qs.len()) as f64)
        })
        .collect();
    println!(
        "{{\"rows\": {}, \"queries\": {}, \"recall\": {{{}}}}}",
        m.rows(),
        qs.len(),
        rows.join(", ")
    );
}

/// A graph built over all but the last `steps * step` rows of `base`, then
/// grown by `steps` insertions of `step` rows, each into the graph saved
/// and loaded again (what `add` does to a library's graph).
fn grown_graph(base: &Matrix, params: &HnswParams, steps: usize, step: usize) -> Graph {
    let n = base.rows();
    let first = n - steps * step;
    let prefix = |rows: usize| Matrix::owned(base.dim, base.as_slice()[..rows * base.dim].to_vec());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grown.graph");
    let t = Instant::now();
    Graph::build(&prefix(first), params)
        .save(&path, "grown")
        .unwrap();
    eprintln!(
        "built over {first} rows in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    for i in 1..=steps {
        let rows = first + i * step;
        let t = Instant::now();
        let mut g = Graph::load(&path, "grown", params, rows - step).expect("grown graph loads");
        g.insert_rows(&prefix(rows));
        g.save(&path, "grown").unwrap();
        eprintln!(
            "step {i}: {} -> {rows} rows in {:.2} s",
            rows - step,
            t.elapsed().as_secs_f64()
        );
    }
    Graph::load(&path, "grown", params, n).expect("grown graph loads")
}

fn run(args: &[String]) {
    let dim: usize = arg(args, "--dim").expect("--dim").parse().unwrap();
    let k: usize = arg(args, "--k").unwrap_or("10").parse().unwrap();
    let efs: Vec<usize> = arg(args, "--efs")
        .unwrap_or("16,32,64,96,128,200")
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    let base = Matrix::owned(dim, read_f32(arg(args, "--base").expect("--base")));
    let queries = Matrix::owned(dim, read_f32(arg(args, "--queries").expect("--queries")));
    let truth = read_u32(arg(args, "--truth").expect("--truth"));
    let nq = queries.rows();
    assert_eq!(truth.len(), nq * k, "truth file must hold k ids per query");
    let params = HnswParams::default();

    // `--graph-cache P`: reuse a graph built for the same base by an earlier
    // run (for iterating on search code; build time is then reported as 0).
    let cached = arg(args, "--graph-cache")
        .and_then(|p| Graph::load(Path::new(p), "bench", &params, base.rows()));
    let grow = arg(args, "--grow").map(|g| {
        let (steps, step) = g.split_once(':').expect("--grow STEPS:ROWS");
        (
            steps.parse::<usize>().unwrap(),
            step.parse::<usize>().unwrap(),
        )
    });
    let t = Instant::now();
    let (g, build_s) = match (cached, grow) {
        (_, Some((steps, step))) => (grown_graph(&base, &params, steps, step), 0.0),
        (Some(g), None) => (g, 0.0),
        (None, None) => {
            let g = Graph::build(&base, &params);
            let s = t.elapsed().as_secs_f64();
            if let Some(p) = arg(args, "--graph-cache") {
                g.save(Path::new(p), "bench").unwrap();
            }
            (g, s)
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let gpath = dir.path().join("hnsw.graph");
    let mpath = dir.path().join("vectors.f32");
    g.save(&gpath, "bench").unwrap();
    base.save(&mpath, "bench").unwrap();
    let graph_bytes = std::fs::metadata(&gpath).unwrap().len();
    drop(g);
    // Load = what a query command does: map the matrix, read the graph.
    let t = Instant::now();
    let m = Matrix::load(&mpath, "bench", base.rows(), dim).expect("matrix loads");
    let g = Graph::load(&gpath, "bench", &params, base.rows()).expect("graph loads");
    let load_s = t.elapsed().as_secs_f64();

    // Recall@k of the first `found.len()` queries against the truth.
    let recall = |found: &[Vec<usize>]| -> f64 {
        let mut hit = 0usize;
        for (i, f) in found.iter().enumerate() {
            let t = &truth[i * k..(i + 1) * k];
            hit += f.iter().filter(|r| t.contains(&(**r as u32))).count();
        }
        hit as f64 / (found.len().max(1) * k) as f64
    };
    let mut rows = Vec::new();
    // Exact search on a subset (it is slow by design at large sizes).
    let exact_n = nq.min(200);
    let t = Instant::now();
    let found: Vec<Vec<usize>> = (0..exact_n)
        .map(|i| {
            exact_search(&m, queries.row(i), k, &|_| true)
                .iter()
                .map(|h| h.row)
                .collect()
        })
        .collect();
    let s = t.elapsed().as_secs_f64();
    let exact_recall = recall(&found);
    rows.push(format!(
        "{{\"engine\": \"exact\", \"ef\": 0, \"qps\": {:.1}, \"recall\": {exact_recall:.4}}}",
        exact_n as f64 / s
    ));
    for &ef in &efs {
        // Warm-up pass, then the timed pass.
        for i in 0..nq.min(100) {
            std::hint::black_box(g.search(&m, queries.row(i), k, ef));
        }
        let t = Instant::now();
        let found: Vec<Vec<usize>> = (0..nq)
            .map(|i| {
                g.search(&m, queries.row(i), k, ef)
                    .iter()
                    .map(|h| h.row)
                    .collect()
            })
            .collect();
        let s = t.elapsed().as_secs_f64();
        rows.push(format!(
            "{{\"engine\": \"hnsw\", \"ef\": {ef}, \"qps\": {:.1}, \"recall\": {:.4}}}",
            nq as f64 / s,
            recall(&found)
        ));
    }
    println!(
        "{{\"n\": {}, \"dim\": {dim}, \"queries\": {nq}, \"build_s\": {build_s:.3}, \"graph_bytes\": {graph_bytes}, \"matrix_bytes\": {}, \"load_s\": {load_s:.4}, \"results\": [{}]}}",
        base.rows(),
        std::fs::metadata(&mpath).unwrap().len(),
        rows.join(", ")
    );
}
