//! The real model: all-MiniLM-L6-v2 through fastembed's user-defined model
//! path, with the graph from the binary and the weights as an in-memory
//! external initializer. Settings that silently change vectors when left at
//! fastembed's defaults are fixed here: mean pooling, 256 tokens.

use std::sync::OnceLock;

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};

use super::Embedder;
use super::assets::{Assets, GRAPH};
use crate::error::{Error, Result};

/// Options for the ONNX Runtime session.
#[derive(Debug, Clone, Default)]
pub struct MiniLmOptions {
    /// Intra-op threads; default: every core.
    pub threads: Option<usize>,
    /// Let ONNX Runtime spin while waiting for work. Default off: measured
    /// about 10% faster on a busy 2-core machine.
    pub spinning: bool,
}

pub struct MiniLm {
    model: TextEmbedding,
    id: String,
    dim: usize,
}

/// The ONNX Runtime environment: one per process, loaded from the library
/// that set-up installed (ort can only load one).
static RUNTIME: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

impl MiniLm {
    /// Loads the runtime and model that `scripts/setup` installed.
    pub fn load(opts: &MiniLmOptions) -> Result<MiniLm> {
        let assets = Assets::locate()?;
        // ort panics when it cannot dlopen; Assets::locate checked the file,
        // and loading happens once per process.
        let env = RUNTIME
            .get_or_init(|| {
                ort::init_from(&assets.runtime)
                    .map_err(|e| format!("cannot load {}: {e}", assets.runtime.display()))?
                    .with_name("papermap")
                    .build()
                    .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
            })
            .clone()
            .map_err(Error::Model)?;
        let m = &assets.manifest;
        let tokenizer_files = TokenizerFiles {
            tokenizer_file: assets.read_checked("tokenizer.json")?,
            config_file: assets.read_checked("config.json")?,
            special_tokens_map_file: assets.read_checked("special_tokens_map.json")?,
            tokenizer_config_file: assets.read_checked("tokenizer_config.json")?,
        };
        let weights = assets.read_checked(&m.graph.external_data)?;
        let model = UserDefinedEmbeddingModel::new(GRAPH.to_vec(), tokenizer_files)
            .with_pooling(Pooling::Mean)
            .with_external_initializer(m.graph.external_data.clone(), weights);
        let threads = opts
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let init = InitOptionsUserDefined::new()
            .with_environment(env)
            .with_max_length(m.max_tokens)
            .with_intra_threads(threads)
            .with_session_config(
                "session.intra_op.allow_spinning",
                if opts.spinning { "1" } else { "0" },
            );
        let model = TextEmbedding::try_new_from_user_defined(model, init)
            .map_err(|e| Error::Model(format!("cannot start the model: {e}")))?;
        Ok(MiniLm {
            model,
            id: m.id.clone(),
            dim: m.dim,
        })
    }
}

impl Embedder for MiniLm {
    fn id(&self) -> &str {
        &self.id
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = self
            .model
            .embed(texts, Some(texts.len()))
            .map_err(|e| Error::Model(e.to_string()))?;
        // fastembed normalises after mean pooling; renormalise in f32 anyway
        // so stored vectors are unit length to the last bit we can control.
        for v in &mut out {
            if v.len() != self.dim {
                return Err(Error::Dimension {
                    expected: self.dim,
                    received: v.len(),
                });
            }
            super::normalize(v);
        }
        Ok(out)
    }
}
