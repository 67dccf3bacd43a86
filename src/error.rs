//! The library's one error type. Every variant names what the user needs to act:
//! the file, the record or line, and the reason. The binary adds nothing but
//! context and an exit code.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: u64,
        reason: String,
    },

    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },

    #[error(
        "library {path} was written by format version {found}; this papermap reads versions {oldest} to {current}{hint}"
    )]
    FormatVersion {
        path: PathBuf,
        found: u32,
        oldest: u32,
        current: u32,
        hint: &'static str,
    },

    #[error(
        "no library at {path} ({reason}); add papers first (papermap add FILES) or pass --library DIR"
    )]
    NoLibrary { path: PathBuf, reason: String },

    #[error("library {path} is damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },

    #[error(
        "library {path} is being written by another papermap process (pid {pid}); wait for it to finish or remove {lock} if that process is gone"
    )]
    Locked {
        path: PathBuf,
        pid: String,
        lock: PathBuf,
    },

    #[error("{what} is missing ({path}): {fix}")]
    MissingAsset {
        what: &'static str,
        path: PathBuf,
        fix: &'static str,
    },

    #[error(
        "{path}: checksum mismatch (expected sha256 {expected}, found {found}); run `bash scripts/setup` to fetch it again"
    )]
    AssetChecksum {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("embedding model error: {0}")]
    Model(String),

    #[error(
        "vector dimension mismatch: library holds {expected}-d vectors, model gives {received}-d"
    )]
    Dimension { expected: usize, received: usize },

    #[error("{0}")]
    Query(String),

    #[error("invalid option: {0}")]
    Invalid(String),

    #[error("{0}")]
    Empty(String),

    /// Something the answer needs is being made by another process (or in
    /// the background): try again shortly.
    #[error("{0}")]
    NotReady(String),

    /// No paper (or topic) with this id.
    #[error("{0}")]
    NotFound(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Adds a path to I/O results: `fs::read(p).at(p)?`.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
