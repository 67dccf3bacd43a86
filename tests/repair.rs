//! Issue 21 on the real binary in temporary directories (hashing embedder:
//! the model is not the point): repair keeps every intact record whatever
//! byte of the papers log, the vector log or the manifest is flipped;
//! leftovers of interrupted writes are cleaned; a path without a library is
//! an error for every read command; non-regular input files are refused.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use papermap::paper::Paper;
use papermap::store::{Library, vec_key};

mod common;
use common::{fixture, papermap};

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "papermap failed: {}", text(o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fails_with(o: &Output, needle: &str) {
    assert!(!o.status.success(), "succeeded: {}", text(o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(needle), "{}", text(o));
    assert!(!err.contains("panicked"), "{}", text(o));
}

/// The `mini.jsonl` library, embedded with the hashing embedder.
fn mini(lib: &Path) {
    ok(&papermap(
        lib,
        &[
            "--embedder",
            "hash",
            "add",
            fixture("mini.jsonl").to_str().unwrap(),
        ],
    ));
}

/// Everything a library holds that matters: each paper in full, with its
/// vector's bytes (None when it has none).
type Content = Vec<(Paper, Option<Vec<u32>>)>;

fn content(lib: &Path) -> Content {
    let l = Library::open(lib).unwrap_or_else(|e| panic!("{}: {e}", lib.display()));
    let model = l.manifest().model.clone().expect("a model").id;
    l.papers()
        .iter()
        .map(|p| {
            let v = l
                .vector(&vec_key(&model, &p.embed_text()))
                .map(|v| v.iter().map(|x| x.to_bits()).collect());
            (p.clone(), v)
        })
        .collect()
}

fn copy_lib(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// (frame start, payload start, payload end) of every frame of a clean log.
fn frames(bytes: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, at + 8, at + 8 + len));
        at += 8 + len;
    }
    out
}

/// Positions of each class in a log: header, length field, checksum field,
/// payload (first, middle and last frame).
fn log_positions(bytes: &[u8]) -> Vec<(&'static str, usize, Option<usize>)> {
    let f = frames(bytes);
    let mut out = vec![
        ("header", 0, None),
        ("header", 2, None),
        ("header", 7, None),
    ];
    for k in [0, f.len() / 2, f.len() - 1] {
        let (start, p, end) = f[k];
        out.push(("length", start, None));
        out.push(("length", start + 1, None));
        out.push(("length", start + 3, None));
        out.push(("crc", start + 4, None));
        out.push(("crc", start + 7, None));
        out.push(("payload", p, Some(k)));
        out.push(("payload", (p + end) / 2, Some(k)));
        out.push(("payload", end - 1, Some(k)));
    }
    out
}

/// Issue 21's damage matrix in small, through the binary: a flip in each
/// position class of each file, then `check --repair`; every record whose
/// payload was not hit is kept with its full content, and a lost paper is
/// named in the report.
#[test]
fn check_repair_keeps_every_intact_record_for_each_damage_class() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    mini(&clean);
    let want = content(&clean);
    assert_eq!(want.len(), 12);
    assert!(want.iter().all(|(_, v)| v.is_some()));
    let mut trials = 0;
    let mut tally: HashMap<String, (usize, usize)> = HashMap::new();
    for file in ["papers-1.log", "vectors-1.log", "MANIFEST.json"] {
        let original = std::fs::read(clean.join(file)).unwrap();
        let positions = if file.ends_with(".log") {
            log_positions(&original)
        } else {
            let t = String::from_utf8(original.clone()).unwrap();
            let at = |needle: &str| t.find(needle).unwrap_or_else(|| panic!("{needle}"));
            vec![
                ("structure", 0, None),
                ("structure", at(":"), None),
                ("key", at("\"generation\"") + 3, None),
                ("number", at("\"bytes\": ") + 9, None),
                ("number", at("\"dim\": ") + 7, None),
                ("number", at("\"min_reader_version\": ") + 22, None),
                ("string", at("papers-1.log") + 7, None),
                ("string", at("hash-embedder") + 2, None),
                ("crc", at("\"crc32\": \"") + 11, None),
                ("whitespace", at("\n") + 1, None),
                ("end", original.len() - 1, None),
            ]
        };
        for (class, i, hit) in positions {
            trials += 1;
            let lib = dir.path().join(format!("t{trials}"));
            copy_lib(&clean, &lib);
            let mut b = original.clone();
            b[i] ^= 0x51;
            std::fs::write(lib.join(file), &b).unwrap();
            let before = papermap(&lib, &["check"]);
            assert!(
                !before.status.success(),
                "{file} {class} byte {i}: damage not reported: {}",
                text(&before)
            );
            let report = ok(&papermap(&lib, &["check", "--repair"]));
            let got = content(&lib);
            let ctx = format!("{file} {class} byte {i}: {report}");
            let mut expected = want.clone();
            if let Some(k) = hit {
                // Vector records are in embedding order: find the paper by key.
                let k = if file.starts_with("vectors") {
                    let (_, p, _) = frames(&original)[k];
                    let key = &original[p..p + 16];
                    want.iter()
                        .position(|(paper, _)| {
                            vec_key("hash-embedder-v1", &paper.embed_text()) == key
                        })
                        .expect("the vector's paper")
                } else {
                    k
                };
                if file.starts_with("papers") {
                    expected.remove(k);
                    assert!(report.contains("1 damaged range(s) lost"), "{ctx}");
                    assert!(
                        report.contains(&format!("lost a record of paper {:?}", want[k].0.id)),
                        "{ctx}"
                    );
                } else {
                    expected[k].1 = None;
                }
            }
            if got != expected {
                let differ: Vec<&str> = want
                    .iter()
                    .filter(|w| !got.contains(w))
                    .map(|(p, _)| p.id.as_str())
                    .collect();
                panic!("{ctx}: papers or vectors differ: {differ:?}");
            }
            let intact = want.len() * 2 - usize::from(hit.is_some());
            // Records kept in the logs: papers, and cached vectors (a lost
            // paper's vector is still in the cache).
            let kept = got.len() + Library::open(&lib).unwrap().cached_vectors();
            let e = tally.entry(format!("{file} {class}")).or_default();
            e.0 += intact;
            e.1 += kept;
            // The library is usable again, and `embed` restores a lost vector.
            ok(&papermap(&lib, &["--embedder", "hash", "embed"]));
            ok(&papermap(&lib, &["check"]));
            std::fs::remove_dir_all(&lib).unwrap();
        }
    }
    for (class, (intact, kept)) in &tally {
        assert_eq!(intact, kept, "{class}");
    }
    assert_eq!(trials, 2 * 27 + 11, "every class of every file was tried");
}

/// The issue's repro: one byte of the papers log header set to 0x51, and
/// two bytes of the manifest flipped; all papers survive.
#[test]
fn issue_21_header_and_manifest_damage_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    mini(&lib);
    let want = content(&lib);
    let log = lib.join("papers-1.log");
    let mut b = std::fs::read(&log).unwrap();
    b[2] = 0x51;
    std::fs::write(&log, &b).unwrap();
    fails_with(&papermap(&lib, &["list"]), "check --repair");
    let r = ok(&papermap(&lib, &["check", "--repair"]));
    assert!(r.contains("12 intact record(s) kept"), "{r}");
    assert!(r.contains("(nothing lost)"), "{r}");
    assert!(lib.join("papers-1.log.damaged").exists(), "{r}");
    assert_eq!(content(&lib), want);

    let manifest = lib.join("MANIFEST.json");
    let mut b = std::fs::read(&manifest).unwrap();
    b[40] ^= 0x04;
    b[90] ^= 0x10;
    std::fs::write(&manifest, &b).unwrap();
    for cmd in [
        &["status"][..],
        &["list"],
        &["check"],
        &["related", "bandit-1"],
    ] {
        fails_with(
            &papermap(&lib, cmd),
            "check --repair` rebuilds the manifest",
        );
    }
    let r = ok(&papermap(&lib, &["check", "--repair"]));
    assert!(r.contains("rebuilt MANIFEST.json from the logs"), "{r}");
    assert!(
        r.contains("model hash-embedder-v1 (384-d): 12 of 12 papers"),
        "{r}"
    );
    assert!(lib.join("MANIFEST.json.damaged").exists());
    assert_eq!(content(&lib), want);
    ok(&papermap(&lib, &["check"]));

    std::fs::remove_file(&manifest).unwrap();
    fails_with(&papermap(&lib, &["status"]), "MANIFEST.json is missing");
    ok(&papermap(&lib, &["check", "--repair"]));
    assert_eq!(content(&lib), want);
}

#[test]
fn a_path_without_a_library_is_an_error_for_every_read_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    std::fs::write(&file, "root:x:0:0\n").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for lib in [dir.path().join("missing"), file, empty] {
        for cmd in [
            &["status"][..],
            &["list"],
            &["check"],
            &["check", "--repair"],
            &["related", "x"],
            &["topics"],
        ] {
            fails_with(&papermap(&lib, cmd), "no library at");
        }
    }
}

#[test]
fn non_regular_input_files_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let fifo = dir.path().join("pipe.bib");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let good = fixture("mini.jsonl");
    let cases = [
        ("/dev/zero", "is a character device"),
        (fifo.to_str().unwrap(), "is a FIFO"),
        (dir.path().to_str().unwrap(), "is a directory"),
    ];
    for (path, reason) in cases {
        // Listed after a good file: nothing is stored from either.
        let o = papermap(
            &lib,
            &["--embedder", "hash", "add", good.to_str().unwrap(), path],
        );
        fails_with(&o, &format!("{path}: {reason}"));
        assert!(!lib.join("MANIFEST.json").exists());
    }
}

#[test]
fn check_names_damaged_derived_files_and_leftovers_then_they_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    mini(&lib);
    let o = papermap(&lib, &["check"]);
    ok(&o);
    assert!(!text(&o).contains("note:"), "{}", text(&o));
    for f in ["vectors.f32", "lexical.bin"] {
        let p = lib.join("derived").join(f);
        let mut b = std::fs::read(&p).unwrap();
        let last = b.len() - 1;
        b[last] ^= 0x20;
        std::fs::write(&p, b).unwrap();
    }
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let tmp = lib.join("derived").join(format!(".vectors.f32.tmp.{dead}"));
    std::fs::write(&tmp, b"half a matrix").unwrap();
    let log = lib.join("papers-1.log");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, &[7u8; 11]).unwrap();
    drop(f);

    let o = papermap(&lib, &["check"]);
    let err = ok(&o);
    for needle in [
        "derived/vectors.f32: damaged (checksum mismatch); it will be rebuilt",
        "derived/lexical.bin: damaged (checksum mismatch); it will be rebuilt",
        &format!(".vectors.f32.tmp.{dead}: temp file of a papermap process that is gone"),
        "papers-1.log: 11 byte(s) past the last commit",
    ] {
        assert!(err.contains(needle), "{needle:?} in {err}");
    }
    // The next writer removes the temp file and cuts the tail.
    ok(&papermap(&lib, &["--embedder", "hash", "embed"]));
    assert!(!tmp.exists());
    let o = papermap(&lib, &["check"]);
    assert!(!text(&o).contains("note:"), "{}", text(&o));
    ok(&o);
}
