//! Turning paper text into vectors. The `Embedder` trait has the real
//! backend (all-MiniLM-L6-v2 through fastembed and ONNX Runtime: mean
//! pooling, 256 tokens, L2-normalised) and a deterministic hashing embedder
//! for tests. `embed_library` embeds only what the content-keyed cache lacks,
//! in length-sorted batches, committing as it goes so a crash loses at most
//! one batch.

pub mod assets;
mod minilm;

use std::collections::HashSet;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Result;
use crate::store::{Writer, vec_key};
pub use minilm::{MiniLm, MiniLmOptions};

/// Anything that maps texts to L2-normalised vectors of a fixed size.
pub trait Embedder {
    /// Identifies the model; part of every cache key.
    fn id(&self) -> &str;
    fn dim(&self) -> usize;
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// A deterministic bag-of-words embedder (feature hashing of stemmed terms).
/// Fast and model-free: for tests where the model is not the point.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dim: usize,
}

impl HashEmbedder {
    pub fn new(dim: usize) -> Self {
        HashEmbedder { dim }
    }
}

impl Embedder for HashEmbedder {
    fn id(&self) -> &str {
        "hash-embedder-v1"
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; self.dim];
                for term in crate::text::terms(t) {
                    let h = crate::text::fnv1a(term.as_bytes()) as usize;
                    v[h % self.dim] += if (h >> 16) & 1 == 0 { 1.0 } else { -1.0 };
                }
                normalize(&mut v);
                v
            })
            .collect())
    }
}

/// Scales `v` to unit length (leaves an all-zero vector alone).
pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Options for an embedding pass.
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// Texts per model call. Default 8: length-sorted batches of 8 ran
    /// 4-5% faster than 32 here (`scripts/bench-peers --embed-batches 8,32`;
    /// activations stay in cache).
    pub batch_size: usize,
    /// Texts embedded between commits. Default 256.
    pub commit_every: usize,
    /// Longest time between commits. Default 2 s: a crash costs at most
    /// that much model time.
    pub commit_interval: std::time::Duration,
    /// Show a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            batch_size: 8,
            commit_every: 256,
            commit_interval: std::time::Duration::from_secs(2),
            progress: true,
        }
    }
}

/// What an embedding pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbedReport {
    pub embedded: usize,
    pub cached: usize,
    pub seconds: f64,
}

/// Embeds every paper whose text has no cached vector.
pub fn embed_library(
    writer: &mut Writer,
    embedder: &mut dyn Embedder,
    opts: &EmbedOptions,
) -> Result<EmbedReport> {
    writer.set_model(embedder.id(), embedder.dim())?;
    let model = embedder.id().to_string();
    let mut seen = HashSet::new();
    let mut todo: Vec<(crate::store::VecKey, String)> = Vec::new();
    let mut cached = 0;
    for p in writer.papers() {
        let text = p.embed_text();
        let key = vec_key(&model, &text);
        if writer.vector(&key).is_some() {
            cached += 1;
        } else if seen.insert(key) {
            todo.push((key, text));
        }
    }
    // Similar lengths in a batch waste less padding.
    todo.sort_by_key(|(_, t)| std::cmp::Reverse(t.len()));
    let start = Instant::now();
    let bar = if opts.progress && !todo.is_empty() {
        let b =
            ProgressBar::with_draw_target(Some(todo.len() as u64), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template(
                "embedding {bar:30} {pos}/{len} papers, {per_sec}, eta {eta}",
            )
            .expect("valid template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut since_commit = 0;
    let mut last_commit = Instant::now();
    for chunk in todo.chunks(opts.batch_size.max(1)) {
        let texts: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
        let vectors = embedder.embed(&texts)?;
        for ((key, _), v) in chunk.iter().zip(&vectors) {
            writer.put_vector(*key, v)?;
        }
        since_commit += chunk.len();
        if since_commit >= opts.commit_every || last_commit.elapsed() >= opts.commit_interval {
            writer.commit()?;
            since_commit = 0;
            last_commit = Instant::now();
        }
        bar.inc(chunk.len() as u64);
    }
    writer.commit()?;
    bar.finish_and_clear();
    Ok(EmbedReport {
        embedded: todo.len(),
        cached,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_embedder_is_deterministic_and_normalised() {
        let mut e = HashEmbedder::new(64);
        let a = e.embed(&["graph neural networks"]).unwrap();
        let b = e.embed(&["graph neural network"]).unwrap();
        assert_eq!(a, b);
        let n: f32 = a[0].iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5);
    }
}
