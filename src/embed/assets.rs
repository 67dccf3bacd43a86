//! Finding the ONNX Runtime library and the model files that `scripts/setup`
//! installed, and checking them against the manifest bundled in the binary.
//! Missing or wrong files produce an error that says which command fixes it.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

/// The model manifest and graph, compiled into the binary so that the graph
/// and the checksums can never disagree with the code that uses them.
pub const MANIFEST_JSON: &str = include_str!("../../models/all-MiniLM-L6-v2/manifest.json");
pub const GRAPH: &[u8] = include_bytes!("../../models/all-MiniLM-L6-v2/model.onnx");

const FIX: &str = "run `bash scripts/setup` from the papermap checkout, or set PAPERMAP_CACHE to the folder it filled";

#[derive(Debug, Clone, Deserialize)]
pub struct ModelManifest {
    pub id: String,
    pub dim: usize,
    pub max_tokens: usize,
    pub graph: GraphInfo,
    pub weights: WeightsInfo,
    pub runtime: RuntimeInfo,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GraphInfo {
    pub sha256: String,
    pub external_data: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WeightsInfo {
    pub files: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeInfo {
    pub library: String,
    pub sha256: String,
    pub pypi: String,
}

pub fn manifest() -> ModelManifest {
    serde_json::from_str(MANIFEST_JSON).expect("bundled model manifest is valid JSON")
}

/// Where set-up put things: `$PAPERMAP_CACHE`, else a `.cache/papermap`
/// beside the checkout the binary was built in (found by walking up from the
/// executable, then from the working directory), else `~/.cache/papermap`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PAPERMAP_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let starts = [
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf)),
        std::env::current_dir().ok(),
    ];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            let c = dir.join(".cache").join("papermap");
            if c.is_dir() {
                return c;
            }
        }
    }
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    home.join("papermap")
}

/// Paths of everything the real model needs, all checked to exist.
#[derive(Debug, Clone)]
pub struct Assets {
    pub runtime: PathBuf,
    pub model_dir: PathBuf,
    pub manifest: ModelManifest,
}

impl Assets {
    pub fn locate() -> Result<Assets> {
        let m = manifest();
        let cache = cache_dir();
        let runtime = match std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => cache.join("onnxruntime").join(&m.runtime.library),
        };
        if !runtime.is_file() {
            return Err(Error::MissingAsset {
                what: "the ONNX Runtime library",
                path: runtime,
                fix: FIX,
            });
        }
        let model_dir = cache.join(&m.id);
        for name in m.weights.files.keys() {
            let p = model_dir.join(name);
            if !p.is_file() {
                return Err(Error::MissingAsset {
                    what: "a model file",
                    path: p,
                    fix: FIX,
                });
            }
        }
        Ok(Assets {
            runtime,
            model_dir,
            manifest: m,
        })
    }

    /// Reads a model file and checks its sha256 against the manifest. The
    /// weights are hashed once; a stamp (size, mtime, hash) saves the work on
    /// later runs.
    pub fn read_checked(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.model_dir.join(name);
        let bytes = fs::read(&path).at(&path)?;
        let expected = &self.manifest.weights.files[name];
        let stamp_path = self.model_dir.join(format!(".{name}.verified"));
        let meta = fs::metadata(&path).at(&path)?;
        let stamp = format!("{} {} {:?}", expected, meta.len(), meta.modified().ok());
        if fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) {
            return Ok(bytes);
        }
        let found = hex(&Sha256::digest(&bytes));
        if &found != expected {
            return Err(Error::AssetChecksum {
                path,
                expected: expected.clone(),
                found,
            });
        }
        let _ = fs::write(&stamp_path, stamp);
        Ok(bytes)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_graph_matches_its_manifest() {
        let m = manifest();
        assert_eq!(hex(&Sha256::digest(GRAPH)), m.graph.sha256);
        assert_eq!(m.dim, 384);
        assert_eq!(m.max_tokens, 256);
        assert!(m.weights.files.contains_key(&m.graph.external_data));
    }
}
