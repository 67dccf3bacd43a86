//! What `check` says about derived files: each one found damaged (its
//! checksum or header fails) or stale (built for another state of the
//! library). Both are rebuilt when next needed, so neither is an error, but
//! the user is told. The loaders in `index` and `lexical` make the real
//! decision; this only reads the parts every derived file shares: a magic
//! string, a checksum and the library fingerprint it was built from.

use std::fs;
use std::path::Path;

use super::codec::{Reader, unseal};
use super::manifest::read_checked_json;

/// A derived file that will be rebuilt, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedProblem {
    pub file: String,
    /// "damaged (...)" or "stale (...)".
    pub state: String,
}

/// Damaged or stale files in `dir` (the library's `derived/`) for a library
/// whose fingerprint is `fingerprint`. Absent files are not listed.
pub fn inspect(dir: &Path, fingerprint: &str) -> Vec<DerivedProblem> {
    let mut out = Vec::new();
    let mut note = |file: &str, state: Option<String>| {
        if let Some(state) = state {
            out.push(DerivedProblem {
                file: format!("derived/{file}"),
                state,
            });
        }
    };
    if let Ok(b) = fs::read(dir.join("vectors.f32")) {
        note("vectors.f32", matrix_state(&b, fingerprint));
    }
    for (file, magic) in [
        ("hnsw.graph", b"PMHNSW".as_slice()),
        ("lexical.bin", b"PMBM25".as_slice()),
    ] {
        if let Ok(b) = fs::read(dir.join(file)) {
            note(file, sealed_state(&b, magic, fingerprint));
        }
    }
    let topics = dir.join("topics.json");
    if topics.exists() {
        let state = match read_checked_json::<serde_json::Value>(&topics) {
            None => Some("damaged (not valid JSON or checksum mismatch)".to_string()),
            Some(v) if v["report"]["library"]["fingerprint"] != fingerprint => {
                Some("stale (computed for another state of the library)".to_string())
            }
            Some(_) => None,
        };
        note("topics.json", state);
    }
    out
}

/// The matrix: "PMMATRX" header (magic 8, version 4, dim 4, rows 8, crc32
/// of the data 4, fingerprint length 1 + bytes), padded to 64 bytes.
fn matrix_state(b: &[u8], fingerprint: &str) -> Option<String> {
    const HEADER: usize = 64;
    if b.len() < HEADER || !b.starts_with(b"PMMATRX") {
        return Some("damaged (header)".into());
    }
    let crc = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
    if crc32fast::hash(&b[HEADER..]) != crc {
        return Some("damaged (checksum mismatch)".into());
    }
    let fp_len = b[28] as usize;
    if b.get(29..29 + fp_len) != Some(fingerprint.as_bytes()) {
        return Some("stale (built for another state of the library)".into());
    }
    None
}

/// Files sealed with a CRC32 trailer: magic, u32 version, then the
/// fingerprint as length-prefixed bytes.
fn sealed_state(b: &[u8], magic: &[u8], fingerprint: &str) -> Option<String> {
    let Some(body) = unseal(b) else {
        return Some("damaged (checksum mismatch)".into());
    };
    let mut r = Reader::new(body);
    if !r.take(8).is_some_and(|m| m.starts_with(magic)) {
        return Some("damaged (header)".into());
    }
    let _version = r.u32();
    if r.bytes() != Some(fingerprint.as_bytes()) {
        return Some("stale (built for another state of the library)".into());
    }
    None
}
