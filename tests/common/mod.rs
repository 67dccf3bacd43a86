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

/// `related` for each query in the lexical, hybrid and dense modes (graph
/// on) names none of `gone`, and answers the same once the derived files
/// are deleted and built from scratch.
pub fn answers_match_rebuilt_files(lib: &Path, queries: &[&str], gone: &[&str]) {
    let run = |args: &[&str]| {
        let o = papermap_hash(lib, &[&["--hnsw-threshold", "1"][..], args].concat());
        assert!(
            o.status.success(),
            "papermap {args:?} failed: {}",
            stderr(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let answers = || {
        ["lexical", "hybrid", "dense"]
            .iter()
            .flat_map(|mode| {
                queries
                    .iter()
                    .map(|q| run(&["related", q, "--json", "-k", "8", "--mode", mode]))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let before = answers();
    for a in &before {
        for g in gone {
            assert!(!a.contains(&format!("\"{g}\"")), "{g} in {a}");
        }
    }
    std::fs::remove_dir_all(lib.join("derived")).unwrap();
    run(&["embed"]);
    assert!(lib.join("derived/hnsw.graph").exists());
    assert_eq!(answers(), before);
}
