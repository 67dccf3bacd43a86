//! The real embedding path (fastembed + ONNX Runtime + the bundled graph over
//! the official weights) reproduces sentence-transformers' vectors.
//! Needs `bash scripts/setup` (the test command runs it first).

use papermap::embed::{Embedder, MiniLm, MiniLmOptions};

#[test]
fn real_model_reproduces_every_reference_vector() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/all-MiniLM-L6-v2.jsonl"
    ))
    .unwrap();
    let refs: Vec<(String, Vec<f32>)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let e = v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (v["text"].as_str().unwrap().to_string(), e)
        })
        .collect();
    assert!(
        refs.len() >= 50,
        "reference file has {} vectors",
        refs.len()
    );
    let mut model =
        MiniLm::load(&MiniLmOptions::default()).expect("model (run `bash scripts/setup`)");
    // Mixed batches: padding must not change any vector.
    let mut worst = (1.0f32, String::new());
    for chunk in refs.chunks(7) {
        let texts: Vec<&str> = chunk.iter().map(|(t, _)| t.as_str()).collect();
        let got = model.embed(&texts).unwrap();
        for ((t, want), v) in chunk.iter().zip(&got) {
            assert_eq!(v.len(), 384);
            let norm_w: f32 = want.iter().map(|x| x * x).sum::<f32>().sqrt();
            let cos: f32 = v.iter().zip(want).map(|(a, b)| a * b).sum::<f32>() / norm_w;
            if cos < worst.0 {
                worst = (cos, t.clone());
            }
        }
    }
    eprintln!(
        "worst cosine over {} reference vectors: {} ({:?})",
        refs.len(),
        worst.0,
        worst.1
    );
    assert!(
        worst.0 >= 0.9999,
        "worst cosine {} for {:?}",
        worst.0,
        worst.1
    );
}
