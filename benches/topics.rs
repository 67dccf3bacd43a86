//! papermap's side of the k-means comparison in `scripts/bench-peers` (run
//! through `cargo bench --bench topics -- ...`). Not a test: it measures.
//!
//! ```text
//! topics kmeans --dim D --data X.f32 --k K [--seed S] [--labels-out L.u32]
//! ```
//! Prints one JSON object: seconds, inertia (sum of squared distances),
//! Lloyd iterations; writes the labels (u32 per row) when asked.
//!
//! ```text
//! topics space LIBRARY LABELS.jsonl [--k 17] [--seeds 1,2,3] [--lexical svd|projection]
//!        [--dims 200,...] [--weight 0.4,...] [--power 3,...] [--smooth 30,...]
//! ```
//! Topic-space variants (every combination of the comma lists): one JSON line
//! each with the V-measure per k-means seed against the labels, mean, sd,
//! and the seconds the space took. LABELS may hold a subset of the papers
//! (a tuning split): every paper is clustered, the labelled ones scored.

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
    if args.first().map(String::as_str) == Some("space") {
        space(&args);
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

fn list<T: std::str::FromStr>(args: &[String], name: &str, default: &str) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    arg(args, name)
        .unwrap_or(default)
        .split(',')
        .map(|v| v.parse().expect(name))
        .collect()
}

fn space(args: &[String]) {
    use papermap::cluster::features::{FeatureOptions, Lexical, topic_space};
    let lib = papermap::app::open_embedded(std::path::Path::new(&args[1])).expect("library");
    let (labelled, _) =
        papermap::eval::read_labels(std::path::Path::new(&args[2]), &lib).expect("labels");
    let fp = lib.fingerprint();
    let m = papermap::index::Matrix::load_or_build(&lib, &fp).expect("matrix");
    let lex = papermap::lexical::Bm25::load_or_build(&lib, &fp, false).expect("lexical");
    let docs: Vec<Vec<(u32, f32)>> = lib
        .papers()
        .iter()
        .map(|p| lex.tfidf_vector(&papermap::lexical::paper_terms(p)))
        .collect();
    let k: usize = arg(args, "--k").unwrap_or("17").parse().unwrap();
    let seeds: Vec<u64> = list(args, "--seeds", "1,2,3");
    let svd = arg(args, "--lexical").unwrap_or("svd") == "svd";
    let truth: Vec<usize> = labelled.iter().map(|x| x.1).collect();
    for dims in list::<usize>(args, "--dims", "200") {
        for weight in list::<f32>(args, "--weight", "0.4") {
            for power in list::<usize>(args, "--power", "3") {
                for smooth in list::<usize>(args, "--smooth", "30") {
                    let opts = FeatureOptions {
                        lexical_weight: weight,
                        lexical_dims: dims,
                        lexical: if svd {
                            Lexical::Svd { power_iters: power }
                        } else {
                            Lexical::Projection
                        },
                        smooth_k: smooth,
                        ..Default::default()
                    };
                    let t = Instant::now();
                    let (x, dim) = topic_space(m.as_slice(), m.dim, &docs, &opts);
                    let secs = t.elapsed().as_secs_f64();
                    let v: Vec<f64> = seeds
                        .iter()
                        .map(|&s| {
                            let c = kmeans(&x, dim, &KMeansOptions::new(k, s)).expect("k-means");
                            let pred: Vec<usize> = labelled.iter().map(|x| c.labels[x.0]).collect();
                            papermap::eval::cluster_agreement(&truth, &pred).0
                        })
                        .collect();
                    let mean = v.iter().sum::<f64>() / v.len() as f64;
                    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
                        / (v.len().max(2) - 1) as f64)
                        .sqrt();
                    println!(
                        "{}",
                        serde_json::json!({"lexical": if svd {"svd"} else {"projection"},
                            "dims": dims, "weight": weight, "power": power, "smooth": smooth,
                            "space_seconds": (secs * 1000.0).round() / 1000.0,
                            "v": v.iter().map(|x| (x * 10000.0).round() / 10000.0).collect::<Vec<_>>(),
                            "mean": (mean * 10000.0).round() / 10000.0,
                            "sd": (sd * 10000.0).round() / 10000.0})
                    );
                }
            }
        }
    }
}
