//! papermap: related papers and topic reports for your own paper collection,
//! fully offline.
//!
//! The pipeline, one module per stage, data flowing one way:
//!
//! ```text
//! files -> ingest -> store -> embed -> index -> cluster -> label -> report
//!                      \________________________-> query (related papers)
//! ```
//!
//! - [`ingest`] reads BibTeX, RIS, CSV/TSV, JSON/JSON lines and scraped listings
//!   into [`paper::Paper`] records, cleaned and deduplicated.
//! - [`store`] owns the library directory: append-only logs with checksums,
//!   a versioned manifest written atomically, a writer lock.
//! - [`embed`] turns `title. abstract` into vectors with a local model
//!   (all-MiniLM-L6-v2 through fastembed/ONNX Runtime), cached by content.
//! - [`index`] answers nearest-neighbour queries: exact over a flat matrix,
//!   or HNSW (our own graph, hnswlib's algorithm) for large libraries, persisted as a derived file.
//! - [`lexical`] is the lexical side of hybrid relevance (TF-IDF cosine, BM25).
//! - [`cluster`] groups papers into topics with k-means (linfa); [`label`]
//!   names them; [`report`] renders the result.
//! - [`query`] answers "related papers" for a paper, a text or a set, in
//!   either direction of time; [`eval`] measures it (and topics) against a
//!   user's own ground truth.
//! - [`triage`] scores papers not in the library (`papermap match`) against
//!   it: relevance, closest library papers with shared terms, topic joined.

pub mod app;
pub mod cluster;
pub mod embed;
pub mod error;
pub mod eval;
pub mod index;
pub mod ingest;
pub mod label;
pub mod lexical;
pub mod paper;
pub mod pipeline;
pub mod query;
pub mod report;
pub mod serve;
pub mod store;
pub mod text;
pub mod triage;

pub use error::{Error, Result};
