//! papermap's side of the k-means comparison in `scripts/bench-peers` (run
//! through `cargo bench --bench topics -- ...`). Not a test: it measures.
//!
//! ```text
//! topics kmeans --dim D --data X.f32 --k K [--seed S] [--labels-out L.u32]
//! ```
//! Prints one JSON object: seconds, inertia (sum of squared distances),
//! Lloyd iterations; writes the labels (u32 per row) when asked.

use std::time::Instant;

mod common;

use common::arg;
use papermap::cluster::{KMeansOptions, kmeans};

fn main() {
    let args = common::args();
    if args.first().map(String::as_str) == Some("texts") {
        // texts LIBRARY OUT.jsonl: id and embedded text of each paper, in
        // library (= matrix) order.
        let lib = papermap::store::Library::open(std::path::Path::new(&args[1])).expect("library");
        let mut out = String::new();
        for p in lib.papers() {
            out.push_str(&format!(
                "{}\n",
                serde_json::json!({"id": p.id, "title": p.title, "text": p.embed_text()})
            ));
        }
        std::fs::write(&args[2], out).unwrap();
        return;
    }
    if args.first().map(String::as_str) != Some("kmeans") {
        eprintln!(
            "usage: topics kmeans --dim D --data X.f32 --k K [--seed S] [--labels-out L.u32]"
        );
        std::process::exit(2);
    }
    let dim: usize = arg(&args, "--dim").expect("--dim").parse().unwrap();
    let k: usize = arg(&args, "--k").expect("--k").parse().unwrap();
    let seed: u64 = arg(&args, "--seed").unwrap_or("42").parse().unwrap();
    let path = arg(&args, "--data").expect("--data");
    let data = common::read_f32(path);
    let t = Instant::now();
    let mut opts = KMeansOptions::new(k, seed);
    if let Some(r) = arg(&args, "--restarts") {
        opts.restarts = r.parse().unwrap();
    }
    if let Some(r) = arg(&args, "--init-sample") {
        opts.init_sample = r.parse().unwrap();
    }
    if let Some(r) = arg(&args, "--max-iter") {
        opts.max_iter = r.parse().unwrap();
    }
    let c = kmeans(&data, dim, &opts).expect("k-means");
    let s = t.elapsed().as_secs_f64();
    if let Some(out) = arg(&args, "--labels-out") {
        let b: Vec<u8> = c
            .labels
            .iter()
            .flat_map(|&l| (l as u32).to_le_bytes())
            .collect();
        std::fs::write(out, b).unwrap();
    }
    println!(
        "{{\"n\": {}, \"k\": {k}, \"seconds\": {s:.3}, \"inertia\": {:.4}, \"iterations\": {}}}",
        data.len() / dim,
        c.inertia,
        c.iterations
    );
}
