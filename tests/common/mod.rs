//! Helpers shared by the tests that run the real binary in a temp dir.
//! Each test file keeps its own `ok`/`fails_with` (what they return and
//! check differs per file); what is the same everywhere lives here.
#![allow(dead_code)] // each test crate uses a subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The binary with `--library lib` and then `pre` (global options).
pub fn command(lib: &Path, pre: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_papermap"));
    c.arg("--library").arg(lib).args(pre);
    c
}

/// Runs papermap on `lib` with `args`.
pub fn papermap(lib: &Path, args: &[&str]) -> Output {
    command(lib, &[])
        .args(args)
        .output()
        .expect("runs papermap")
}

/// Runs papermap on `lib` with the hashing embedder and `args`.
pub fn papermap_hash(lib: &Path, args: &[&str]) -> Output {
    command(lib, &["--embedder", "hash"])
        .args(args)
        .output()
        .expect("runs papermap")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
