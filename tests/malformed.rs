//! The malformed-input corpus: each file in `tests/fixtures/malformed/`
//! with the exit status and message `expected.tsv` gives for it, all fed
//! into one library that must keep every good record; plus generated
//! extremes (a 10 MB field, a million tiny records).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn papermap(lib: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_papermap"))
        .arg("--library")
        .arg(lib)
        .args(["--embedder", "hash"])
        .args(args)
        .output()
        .expect("runs papermap")
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malformed")
}

#[test]
fn every_malformed_file_gets_its_expected_message_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let expected = std::fs::read_to_string(corpus().join("expected.tsv")).unwrap();
    let mut checked = 0;
    for row in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = row.splitn(3, '\t').collect();
        let (file, code, message) = (cols[0], cols[1], cols[2]);
        let path = corpus().join(file);
        let o = papermap(&lib, &["add", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(code.parse().unwrap()),
            "{file}: {err}"
        );
        assert!(
            err.contains(message),
            "{file}: expected {message:?} in:\n{err}"
        );
        assert!(!err.contains("panicked"), "{file}: {err}");
        checked += 1;
    }
    assert_eq!(checked, 12);

    // Every good record from every file is there, cleanly decoded.
    let l = papermap::store::Library::open(&lib).unwrap();
    let titles: Vec<&str> = l.papers().iter().map(|p| p.title.as_str()).collect();
    for t in [
        "A complete entry",
        "Balanced title",
        "Café culture in Zürich",
        "Unicode über alles",
        "First record",
        "Second record",
        "Good",
    ] {
        assert!(titles.contains(&t), "{t} missing from {titles:?}");
    }
    assert_eq!(
        titles
            .iter()
            .filter(|t| t.starts_with("Paper number"))
            .count(),
        19
    );
    let cafe = l
        .papers()
        .iter()
        .find(|p| p.title.starts_with("Café"))
        .unwrap();
    assert_eq!(cafe.abs, "Résumé of naïve models");
    assert_eq!(l.len(), 7 + 19);
}

#[test]
fn a_ten_megabyte_field_is_cut_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let f = dir.path().join("huge.jsonl");
    let huge = "word ".repeat(2_000_000);
    std::fs::write(
        &f,
        format!("{{\"title\": \"Normal paper\", \"abstract\": \"short\"}}\n{{\"title\": \"Huge abstract\", \"abstract\": \"{huge}\"}}\n"),
    )
    .unwrap();
    let o = papermap(&lib, &["add", f.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("huge.jsonl:2: abstract cut to its first 50000 characters"),
        "{err}"
    );
    assert!(err.contains("read 2, new 2"), "{err}");
}

#[test]
fn a_million_tiny_records_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let f = dir.path().join("tiny.jsonl");
    let mut text = String::with_capacity(40_000_000);
    for i in 0..1_000_000 {
        text.push_str(&format!("{{\"id\":\"t{i}\",\"title\":\"T {i}\"}}\n"));
    }
    std::fs::write(&f, text).unwrap();
    let o = papermap(&lib, &["add", "--no-embed", f.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("read 1000000, new 1000000"), "{err}");
}
