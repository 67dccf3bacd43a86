//! The real binary in a temporary directory. Tests named `real_model_*` use
//! the real embedding model (needs `bash scripts/setup`); the others use the
//! deterministic hashing embedder, as the model is not their point.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{answers_match_rebuilt_files, fixture, papermap, papermap_hash, stderr};

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "papermap failed: {}\nstdout: {}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A library holding `mini.jsonl`, embedded with the hashing embedder.
fn add_mini(lib: &Path) {
    let mini = fixture("mini.jsonl");
    ok(&papermap(
        lib,
        &["--embedder", "hash", "add", mini.to_str().unwrap()],
    ));
}

/// The command failed and its error output says `needle`.
fn fails_with(o: &Output, needle: &str) {
    assert!(
        !o.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(stderr(o).contains(needle), "{}", stderr(o));
}

#[test]
fn real_model_end_to_end_on_a_small_library() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let add = papermap(&lib, &["add", fixture("mini.jsonl").to_str().unwrap()]);
    ok(&add);
    assert!(stderr(&add).contains("read 12, new 12"), "{}", stderr(&add));
    assert!(
        stderr(&add).contains("embedded 12 papers"),
        "{}",
        stderr(&add)
    );

    // A paper's related list: same-topic papers first, never itself.
    let out = ok(&papermap(
        &lib,
        &[
            "related",
            "Contextual Bandits with Online Neural Regression",
            "--json",
            "-k",
            "3",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["query"]["paper"]["id"], "bandit-1");
    let ids: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| id.starts_with("bandit-")), "{ids:?}");
    assert!(!ids.contains(&"bandit-1"));

    // Free text goes through the model.
    let out = ok(&papermap(
        &lib,
        &[
            "related",
            "low-bit integer weights for LLMs",
            "--json",
            "-k",
            "2",
            "--mode",
            "dense",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["query"]["kind"], "text");
    assert!(
        v["results"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("quant-"),
        "{out}"
    );

    // Topics with k = 3 recover the three groups.
    let out = ok(&papermap(&lib, &["topics", "-k", "3", "--json"]));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    for t in r["topics"].as_array().unwrap() {
        let prefixes: std::collections::HashSet<&str> = t["papers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().split('-').next().unwrap())
            .collect();
        assert_eq!(prefixes.len(), 1, "mixed topic: {t}");
    }

    // Adding the same file again embeds nothing.
    let again = papermap(&lib, &["add", fixture("mini.jsonl").to_str().unwrap()]);
    ok(&again);
    assert!(
        stderr(&again).contains("new 0, duplicate 12"),
        "{}",
        stderr(&again)
    );
    assert!(
        stderr(&again).contains("embedded 0 papers"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn every_shared_format_ingests_with_the_right_counts() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let files = [
        "zotero-export.bib",
        "scopus-export.ris",
        "arxiv-oai-snapshot.jsonl",
        "arxiv-api-listing.jsonl",
    ];
    let paths: Vec<String> = files
        .iter()
        .map(|f| fixture(f).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["--embedder", "hash", "add"];
    args.extend(paths.iter().map(String::as_str));
    let o = papermap(&lib, &args);
    ok(&o);
    let err = stderr(&o);
    for (f, read) in [
        ("zotero-export.bib", 150),
        ("scopus-export.ris", 120),
        ("arxiv-oai-snapshot.jsonl", 100),
        ("arxiv-api-listing.jsonl", 150),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(f) && l.contains("read "))
            .unwrap_or_else(|| panic!("no summary for {f}: {err}"));
        assert!(line.contains(&format!("read {read},")), "{line}");
    }
    // The one Zotero entry with neither title nor abstract is named with its line.
    assert!(
        err.contains("zotero-export.bib:1952: record has neither title nor abstract"),
        "{err}"
    );

    // Titles and abstracts are clean: no LaTeX, no copyright tails, no hard breaks.
    let lib_ = papermap::store::Library::open(&lib).unwrap();
    for p in lib_.papers() {
        for text in [&p.title, &p.abs] {
            assert!(
                !text.contains('\n') && !text.contains("  "),
                "{}: {text:?}",
                p.id
            );
            assert!(
                !text.contains("\\'") && !text.contains("{\\"),
                "{}: {text:?}",
                p.id
            );
            assert!(!text.contains("All rights reserved"), "{}: {text:?}", p.id);
        }
    }
    let umap = lib_
        .papers()
        .iter()
        .find(|p| p.id == "mcinnes_umap_2018")
        .unwrap();
    assert_eq!(
        umap.title,
        "UMAP: Uniform Manifold Approximation and Projection"
    );
    assert_eq!(umap.authors.last().unwrap(), "Großberger, Lukas");
    let oai = lib_.papers().iter().find(|p| p.id == "0704.0001").unwrap();
    assert_eq!(
        oai.title,
        "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    );
    assert_eq!(oai.year, Some(2007));
}

#[test]
fn sample_corpus_has_498_unique_papers() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let mut files: Vec<String> = std::fs::read_dir(&sample)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut args = vec!["--embedder", "hash", "add", "--no-embed"];
    args.extend(files.iter().map(String::as_str));
    ok(&papermap(&lib, &args));
    let status = ok(&papermap(&lib, &["status"]));
    assert!(
        status.contains("papers: 498 (0 without abstract)"),
        "{status}"
    );
    // Adding it all again changes nothing.
    let o = papermap(&lib, &args);
    ok(&o);
    assert_eq!(stderr(&o).matches(" new 0,").count(), 5, "{}", stderr(&o));
}

#[test]
fn reports_are_byte_identical_for_the_same_input_and_seed() {
    let dir = tempfile::tempdir().unwrap();
    let mk = |name: &str| {
        let lib = dir.path().join(name);
        ok(&papermap(
            &lib,
            &[
                "--embedder",
                "hash",
                "add",
                fixture("arxiv-oai-snapshot.jsonl").to_str().unwrap(),
            ],
        ));
        let out = dir.path().join(format!("{name}-report"));
        ok(&papermap(
            &lib,
            &["report", "--seed", "7", "--out", out.to_str().unwrap()],
        ));
        out
    };
    let (a, b) = (mk("a"), mk("b"));
    for f in ["topics.json", "topics.md", "topics.csv", "topics.html"] {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between runs");
        assert!(!x.is_empty());
    }
    let json = std::fs::read_to_string(a.join("topics.json")).unwrap();
    assert!(json.contains("\"seed\": 7"), "the seed is recorded");
    let bib: Vec<_> = std::fs::read_dir(a.join("bibtex")).unwrap().collect();
    assert!(!bib.is_empty());
}

#[test]
fn bad_input_gets_a_clear_error_and_keeps_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"title\": \"Fine paper\", \"abstract\": \"ok\"}\n{not json\n{\"abstract\": \"no title\"}\n").unwrap();
    let o = papermap(&lib, &["--embedder", "hash", "add", bad.to_str().unwrap()]);
    ok(&o);
    let err = stderr(&o);
    assert!(err.contains("bad.jsonl:2: invalid JSON"), "{err}");
    assert!(
        err.contains("bad.jsonl:3: record has an abstract but no title"),
        "{err}"
    );
    assert!(
        err.contains("read 3, new 1, duplicate 0, updated 0, skipped 2"),
        "{err}"
    );

    // --strict stores nothing from a bad file.
    let o = papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "add",
            "--strict",
            bad.to_str().unwrap(),
        ],
    );
    fails_with(&o, "bad.jsonl:2");

    let binary = dir.path().join("x.bib");
    std::fs::write(&binary, [0x7f, b'E', b'L', b'F', 0, 0, 1, 2, 3]).unwrap();
    let o = papermap(
        &lib,
        &["--embedder", "hash", "add", binary.to_str().unwrap()],
    );
    fails_with(&o, "x.bib: is a binary file");
    assert!(!stderr(&o).contains("panicked"));

    let status = ok(&papermap(&lib, &["status"]));
    assert!(status.contains("papers: 13"), "{status}");
}

#[test]
fn missing_model_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let o = Command::new(env!("CARGO_BIN_EXE_papermap"))
        .env("PAPERMAP_CACHE", dir.path().join("empty-cache"))
        .args([
            "--library",
            lib.to_str().unwrap(),
            "add",
            fixture("mini.jsonl").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("ONNX Runtime library is missing") && err.contains("scripts/setup"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_second_writer_waits_then_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    let _held =
        papermap::store::LockFile::acquire(&lib, std::time::Duration::from_secs(1)).unwrap();
    let o = papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "--lock-wait",
            "1",
            "add",
            fixture("mini.jsonl").to_str().unwrap(),
        ],
    );
    fails_with(&o, "is being written by another papermap process");
    // Readers do not need the lock.
    ok(&papermap(&lib, &["status"]));
}

#[test]
fn damaged_library_is_detected_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    // Flip a byte inside the first paper record.
    let log = lib.join("papers-1.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[40] ^= 0x01;
    std::fs::write(&log, bytes).unwrap();
    let o = papermap(&lib, &["related", "bandit-1"]);
    fails_with(&o, "record 0 at byte 8: checksum mismatch");
    let o = papermap(&lib, &["check", "--repair"]);
    ok(&o);
    // Issue 21: the 11 intact papers are kept, the lost one is named.
    assert!(
        stderr(&o).contains("11 intact record(s) kept, 1 damaged range(s) lost"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("lost a record of paper \"quant-1\""),
        "{}",
        stderr(&o)
    );
    assert!(lib.join("papers-1.log.damaged").exists());
    add_mini(&lib);
    let status = ok(&papermap(&lib, &["status"]));
    assert!(status.contains("papers: 12"), "{status}");

    // A deleted index is rebuilt; a truncated vector file is re-embedded.
    std::fs::remove_dir_all(lib.join("derived")).unwrap();
    let vectors = lib.join("vectors-1.log");
    let len = std::fs::metadata(&vectors).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&vectors)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let o = papermap(&lib, &["check"]);
    assert!(!o.status.success());
    // With no current matrix, a query reads the vectors, answers from what
    // is there and names the gap (issue 16: readers always answer).
    let o = papermap(&lib, &["--embedder", "hash", "related", "bandit-2"]);
    ok(&o);
    assert!(
        stderr(&o).contains("1 paper(s) added since the last index are not embedded yet"),
        "{}",
        stderr(&o)
    );
    ok(&papermap(&lib, &["--embedder", "hash", "embed"]));
    ok(&papermap(&lib, &["check"]));
    ok(&papermap(&lib, &["related", "bandit-2"]));
}

#[test]
fn a_damaged_topics_cache_is_recomputed_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    let first = ok(&papermap(&lib, &["topics", "-k", "3", "--json"]));
    // An exploratory run (-k other than the pinned k) has its own cache.
    let cache = lib.join("derived/topics-k3-s42.json");
    let text = std::fs::read_to_string(&cache).unwrap();
    // Change one digit of a stored map coordinate: still valid JSON.
    let i = text.find("\"xy\":[[").unwrap() + 8;
    let mut bytes = text.into_bytes();
    let at = i + bytes[i..].iter().position(u8::is_ascii_digit).unwrap();
    bytes[at] = if bytes[at] == b'9' { b'1' } else { b'9' };
    std::fs::write(&cache, bytes).unwrap();
    let second = ok(&papermap(&lib, &["topics", "-k", "3", "--json"]));
    assert_eq!(first, second);
}

/// (id, name, sorted member ids) of each topic in a `topics --json` output.
fn topic_ids(json: &str) -> Vec<(u64, String, Vec<String>)> {
    let r: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut out: Vec<(u64, String, Vec<String>)> = r["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let mut m: Vec<String> = t["papers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_string())
                .collect();
            m.sort();
            (
                t["id"].as_u64().unwrap(),
                t["name"].as_str().unwrap().to_string(),
                m,
            )
        })
        .collect();
    out.sort();
    out
}

/// Issue 18: ids are stable across runs with another k, names and merges
/// survive adding papers, "new/grown" compare with the stored report.
#[test]
fn topic_ids_names_and_merges_are_kept_across_runs_and_additions() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    ok(&papermap(&lib, &["topics", "pin", "4"]));
    let first = ok(&papermap(&lib, &["topics", "--json"]));
    let ids = topic_ids(&first);
    assert_eq!(ids.len(), 4);
    assert!(first.contains("\"run\": \"main\""));
    // Another k is exploratory and leaves the stored topics alone.
    let other = ok(&papermap(&lib, &["topics", "-k", "2", "--json"]));
    assert!(other.contains("\"run\": \"exploratory\""));
    let again = ok(&papermap(&lib, &["topics", "--json"]));
    assert_eq!(first, again);
    // Rename and merge the two largest topics' neighbours.
    let (a, b) = (ids[0].0, ids[1].0);
    ok(&papermap(
        &lib,
        &["topics", "rename", &a.to_string(), "my topic"],
    ));
    ok(&papermap(
        &lib,
        &["topics", "merge", &a.to_string(), &b.to_string()],
    ));
    let merged = topic_ids(&ok(&papermap(&lib, &["topics", "--json"])));
    assert_eq!(merged.len(), 3);
    let mine = merged.iter().find(|t| t.0 == a).unwrap();
    assert_eq!(mine.1, "my topic");
    let mut both = [ids[0].2.clone(), ids[1].2.clone()].concat();
    both.sort();
    assert_eq!(mine.2, both);
    // Unknown ids are errors that list the known ones.
    fails_with(
        &papermap(&lib, &["topics", "rename", "99", "x"]),
        "no topic 99",
    );
    // Add copies of one paper of the renamed topic (new ids, same text, so
    // the same vectors): the topic keeps its id, name and merge.
    let text = std::fs::read_to_string(fixture("mini.jsonl")).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(&format!("\"{}\"", ids[0].2[0])))
        .unwrap();
    let extra = dir.path().join("extra.jsonl");
    let copies: Vec<String> = (0..2)
        .map(|i| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["id"] = format!("copy-{i}").into();
            v["title"] = format!("{} (part {i})", v["title"].as_str().unwrap()).into();
            v.to_string()
        })
        .collect();
    std::fs::write(&extra, copies.join("\n")).unwrap();
    ok(&papermap(
        &lib,
        &["--embedder", "hash", "add", extra.to_str().unwrap()],
    ));
    let after = ok(&papermap(&lib, &["topics", "--json"]));
    let now = topic_ids(&after);
    assert_eq!(now.len(), 3, "{now:?}");
    let mine = now
        .iter()
        .find(|t| t.0 == a)
        .expect("the renamed topic keeps its id");
    assert_eq!(mine.1, "my topic");
    assert!(mine.2.contains(&"copy-0".to_string()), "{now:?}");
    let r: serde_json::Value = serde_json::from_str(&after).unwrap();
    let t = r["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == a)
        .unwrap();
    assert_eq!(t["change"], "grown", "{after}");
}

#[test]
fn large_libraries_search_through_a_persisted_graph_rebuilt_when_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let mini = fixture("mini.jsonl");
    // A threshold below the library's size stands in for a large library.
    let hnsw = ["--hnsw-threshold", "5", "--embedder", "hash"];
    let add: Vec<&str> = hnsw
        .iter()
        .copied()
        .chain(["add", mini.to_str().unwrap()])
        .collect();
    ok(&papermap(&lib, &add));
    for f in ["hnsw.graph", "vectors.f32", "lexical.bin"] {
        assert!(lib.join("derived").join(f).exists(), "{f} missing");
    }
    let status = ok(&papermap(&lib, &["--hnsw-threshold", "5", "status"]));
    assert!(status.contains("HNSW index: current"), "{status}");

    let related: Vec<&str> = hnsw
        .iter()
        .copied()
        .chain(["related", "bandit-1", "-k", "3"])
        .collect();
    let out = ok(&papermap(&lib, &related));
    assert!(out.contains("hnsw search over 12 papers"), "{out}");
    assert!(!out.contains(" bandit-1 "), "{out}");
    // Damaged derived files are rebuilt, and the answer does not change.
    for f in ["hnsw.graph", "vectors.f32", "lexical.bin"] {
        let p = lib.join("derived").join(f);
        let mut b = std::fs::read(&p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x5a;
        std::fs::write(&p, b).unwrap();
    }
    assert_eq!(ok(&papermap(&lib, &related)), out);
    let status = ok(&papermap(&lib, &["--hnsw-threshold", "5", "status"]));
    assert!(status.contains("HNSW index: current"), "{status}");
}

#[test]
fn adding_papers_extends_the_derived_files_instead_of_rebuilding_them() {
    let dir = tempfile::tempdir().unwrap();
    let mini = fixture("mini.jsonl");
    let lines: Vec<&str> = include_str!("fixtures/mini.jsonl").lines().collect();
    let first = dir.path().join("first.jsonl");
    let second = dir.path().join("second.jsonl");
    std::fs::write(&first, lines[..8].join("\n")).unwrap();
    std::fs::write(&second, lines[8..].join("\n")).unwrap();
    let hnsw = ["--hnsw-threshold", "5", "--embedder", "hash"];
    let add = |lib: &Path, files: &[&Path]| {
        let mut args: Vec<&str> = hnsw.to_vec();
        args.push("add");
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        papermap(lib, &args)
    };
    // Grown in two adds: the second extends every derived file.
    let grown = dir.path().join("grown");
    ok(&add(&grown, &[&first]));
    let out = add(&grown, &[&second]);
    ok(&out);
    assert!(
        stderr(&out).contains("index extended from 8 to 12 papers"),
        "{}",
        stderr(&out)
    );
    // Built at once from the same papers in the same order.
    let whole = dir.path().join("whole");
    ok(&add(&whole, &[&mini]));
    for f in ["vectors.f32", "lexical.bin"] {
        assert!(
            std::fs::read(grown.join("derived").join(f)).unwrap()
                == std::fs::read(whole.join("derived").join(f)).unwrap(),
            "{f} extended differs from {f} built at once"
        );
    }
    let status = ok(&papermap(&grown, &["--hnsw-threshold", "5", "status"]));
    assert!(status.contains("HNSW index: current"), "{status}");
    assert!(!ok(&papermap(&grown, &["check"])).contains("stale"));
    // The papers added second are found through the extended graph.
    let mut related: Vec<&str> = hnsw.to_vec();
    related.extend(["related", "--mode", "dense", "-k", "11", "quant-1"]);
    let a = ok(&papermap(&grown, &related));
    assert!(a.contains("hnsw search over 12 papers"), "{a}");
    for line in &lines[8..] {
        let id = serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            a.contains(&format!(" {id} ")) || a.contains(&id),
            "{id} not found:\n{a}"
        );
    }
    // Editing a paper (not an append) rebuilds.
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(
        &edited,
        lines[0].replace("Key-Value (KV) Caching", "Key-value caching"),
    )
    .unwrap();
    let out = add(&grown, &[&edited]);
    ok(&out);
    assert!(stderr(&out).contains("index"), "{}", stderr(&out));
}

#[test]
fn small_adds_grow_the_lexical_index_by_segments_that_answer_as_one_index() {
    // 400 generated papers; 20 more added in two small adds write segments
    // beside lexical.bin (it is not rewritten), then a removal folds them.
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let words = [
        "graph",
        "kernel",
        "diffusion",
        "bandit",
        "regret",
        "spectral",
        "sparse",
        "neural",
        "quantum",
        "bayesian",
        "causal",
        "robust",
        "federated",
        "contrastive",
        "token",
        "memory",
    ];
    let line = |i: usize| {
        let w = |k: usize| words[(i * 7 + k * 5 + i / 16) % words.len()];
        serde_json::json!({
            "id": format!("p{i}"),
            "title": format!("{} {} for {} {}, part {i}", w(0), w(1), w(2), w(3)),
            "abstract": format!("We study {} {} and {} {} with {} {} methods.",
                w(4), w(5), w(1), w(2), w(6), w(0)),
            "year": 2000 + i % 20,
        })
        .to_string()
    };
    let file = |name: &str, range: std::ops::Range<usize>| {
        let p = dir.path().join(name);
        std::fs::write(&p, range.map(line).collect::<Vec<_>>().join("\n")).unwrap();
        p
    };
    let g = ["--hnsw-threshold", "1"];
    let run = |args: &[&str]| papermap_hash(&lib, &[&g[..], args].concat());
    let add = |f: &Path| {
        let o = run(&["add", f.to_str().unwrap()]);
        ok(&o);
        stderr(&o)
    };
    add(&file("a.jsonl", 0..400));
    let lexical = lib.join("derived/lexical.bin");
    let delta = lib.join("derived/lexical.bin.delta");
    let base = std::fs::read(&lexical).unwrap();
    assert!(!delta.exists());
    let e = add(&file("b.jsonl", 400..410));
    assert!(e.contains("index extended from 400 to 410 papers"), "{e}");
    add(&file("c.jsonl", 410..420));
    assert!(delta.exists());
    assert_eq!(
        std::fs::read(&lexical).unwrap(),
        base,
        "lexical.bin was rewritten"
    );
    let c = ok(&run(&["check"]));
    assert!(!c.contains("stale") && !c.contains("damaged"), "{c}");
    let status = ok(&run(&["status"]));
    assert!(status.contains("420"), "{status}");
    // A new paper shares words with old and new ones alike.
    answers_match_rebuilt_files(&lib, &["p415", "p3", "spectral kernel regret"], &[]);
    add(&file("d.jsonl", 420..430));
    // A removal drops rows from the merged index and writes it whole.
    let r = run(&["remove", "p2", "p412"]);
    ok(&r);
    assert!(
        stderr(&r).contains("index updated for 2 removed paper(s)"),
        "{}",
        stderr(&r)
    );
    assert!(!delta.exists());
    answers_match_rebuilt_files(&lib, &["p415", "p3"], &["p2", "p412"]);
}

#[test]
fn batch_mode_answers_each_line_and_reports_bad_ones_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    let queries = dir.path().join("q.jsonl");
    std::fs::write(
        &queries,
        [
            r#"{"id": "bandit-1", "k": 3}"#,
            "Fixed Point Diffusion Models",
            "",
            r#"{"paper": "quant-2"}"#,
            r#"{"title": "no such paper at all, just words", "k": 2}"#,
            r#"{"positive": ["quant-1", "quant-3"], "negative": ["bandit-2"]}"#,
            r#"{"positive": ["not-a-paper"]}"#,
            r#"{"k": 3}"#,
            "{broken json",
            r#"{"text": "Fixed Point Diffusion Models", "k": 4}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = ok(&papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "related",
            "--batch",
            queries.to_str().unwrap(),
            "-k",
            "5",
        ],
    ));
    let answers: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One answer per non-empty line, in order, each naming its line.
    let lines: Vec<u64> = answers
        .iter()
        .map(|a| a["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![1, 2, 4, 5, 6, 7, 8, 9, 10]);
    let ids = |a: &serde_json::Value| -> Vec<String> {
        a["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&answers[0]).len(), 3);
    assert!(!ids(&answers[0]).contains(&"bandit-1".to_string()));
    assert!(!ids(&answers[1]).contains(&"diffusion-1".to_string()));
    assert_eq!(ids(&answers[1]).len(), 5);
    assert!(!ids(&answers[2]).contains(&"quant-2".to_string()));
    assert_eq!(ids(&answers[3]).len(), 2);
    let set = ids(&answers[4]);
    for own in ["quant-1", "quant-3", "bandit-2"] {
        assert!(!set.contains(&own.to_string()), "{set:?}");
    }
    for (a, needle) in [
        (&answers[5], "not-a-paper"),
        (&answers[6], "needs"),
        (&answers[7], "invalid JSON"),
    ] {
        let e = a["error"].as_str().unwrap_or_default();
        assert!(e.contains(needle), "{a}");
    }
    // A title given as "text" stays free text: the paper itself may answer.
    assert_eq!(answers[1]["query"]["kind"], "paper");
    assert_eq!(answers[8]["query"]["kind"], "text");
    assert_eq!(ids(&answers[8])[0], "diffusion-1");
}

/// A library of papers with arXiv ids (dated by them) and one undated paper.
fn add_dated(dir: &Path) -> PathBuf {
    let lib = dir.join("lib");
    let file = dir.join("dated.jsonl");
    let rows = [
        (
            "1905.00001",
            "Graph networks for molecules",
            "Message passing on molecular graphs predicts properties.",
        ),
        (
            "2001.00002",
            "Molecular graph learning",
            "Graph neural networks learn molecular representations by message passing.",
        ),
        (
            "2106.00003",
            "Message passing for molecular property prediction",
            "We predict molecular properties with graph neural networks.",
        ),
        (
            "2203.00004",
            "Equivariant graph networks for molecules",
            "Equivariant message passing on molecular graphs.",
        ),
        (
            "2305.00005",
            "Scaling molecular graph models",
            "Large graph neural networks for molecules and message passing.",
        ),
    ];
    let mut text: String = rows
        .iter()
        .map(|(id, t, a)| {
            serde_json::json!({"id": id, "title": t, "abstract": a}).to_string() + "\n"
        })
        .collect();
    text.push_str(
        &(serde_json::json!({"id": "undated-1", "title": "Molecular graphs without a date", "abstract": "Graph neural networks and message passing for molecules."})
            .to_string()
            + "\n"),
    );
    std::fs::write(&file, text).unwrap();
    ok(&papermap(
        &lib,
        &["--embedder", "hash", "add", file.to_str().unwrap()],
    ));
    lib
}

fn result_ids(v: &serde_json::Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn prior_and_later_split_by_publication_month_and_keep_undated_papers() {
    let dir = tempfile::tempdir().unwrap();
    let lib = add_dated(dir.path());
    let run = |flags: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "--embedder",
            "hash",
            "related",
            "2106.00003",
            "--json",
            "-k",
            "10",
        ];
        args.extend_from_slice(flags);
        serde_json::from_str(&ok(&papermap(&lib, &args))).unwrap()
    };
    let prior = run(&["--prior"]);
    let ids = result_ids(&prior);
    assert_eq!(prior["direction"], "prior");
    for id in ["1905.00001", "2001.00002", "undated-1"] {
        assert!(ids.contains(&id.to_string()), "{ids:?}");
    }
    assert!(
        !ids.iter()
            .any(|i| i.starts_with("22") || i.starts_with("23")),
        "{ids:?}"
    );
    let undated = prior["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "undated-1")
        .unwrap();
    assert_eq!(undated["undated"], true);
    assert!(undated["date"].is_null());
    let later = result_ids(&run(&["--later"]));
    for id in ["2203.00004", "2305.00005", "undated-1"] {
        assert!(later.contains(&id.to_string()), "{later:?}");
    }
    assert!(
        !later
            .iter()
            .any(|i| i.starts_with("19") || i.starts_with("20")),
        "{later:?}"
    );
    // Either way: everything but the query itself.
    assert_eq!(result_ids(&run(&[])).len(), 5);
    // The table marks dates and undated papers.
    let table = ok(&papermap(
        &lib,
        &["--embedder", "hash", "related", "2106.00003", "--prior"],
    ));
    assert!(
        table.contains("only earlier work")
            && table.contains("2019-05")
            && table.contains("undated"),
        "{table}"
    );
    // Time needs a paper to measure from.
    fails_with(
        &papermap(
            &lib,
            &[
                "--embedder",
                "hash",
                "related",
                "molecules and graphs",
                "--prior",
            ],
        ),
        "need a paper",
    );
    fails_with(
        &papermap(
            &lib,
            &["--embedder", "hash", "related", "undated-1", "--later"],
        ),
        "no publication date",
    );
    // Batch: a line may carry its own direction.
    let q = dir.path().join("q.jsonl");
    std::fs::write(&q, "{\"id\": \"2106.00003\", \"direction\": \"later\"}\n{\"id\": \"2106.00003\", \"direction\": \"sideways\"}\n").unwrap();
    let out = ok(&papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "related",
            "--batch",
            q.to_str().unwrap(),
        ],
    ));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(result_ids(&lines[0]).len(), 3, "{}", lines[0]);
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("unknown direction")
    );
}

#[test]
fn an_unknown_id_is_an_error_not_a_free_text_search() {
    let dir = tempfile::tempdir().unwrap();
    let lib = add_dated(dir.path());
    let o = papermap(&lib, &["--embedder", "hash", "related", "2401.99999"]);
    fails_with(&o, "no paper with arXiv id 2401.99999 in the library");
    assert_eq!(o.status.code(), Some(1));
    fails_with(
        &papermap(&lib, &["--embedder", "hash", "related", "10.1000/xyz123"]),
        "no paper with DOI",
    );
    fails_with(
        &papermap(&lib, &["--embedder", "hash", "related", "smith2020graphs"]),
        "no paper with id",
    );
    // A typo in a title still finds the paper; real free text says so.
    let typo = ok(&papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "related",
            "Message pasing for molecular property predictions",
        ],
    ));
    assert!(
        typo.contains("[2106.00003] (matched by fuzzy title)"),
        "{typo}"
    );
    let text = ok(&papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "related",
            "molecules and message passing",
        ],
    ));
    assert!(text.contains("taken as free text"), "{text}");
    // Absurd options are clear errors in every front end.
    fails_with(
        &papermap(
            &lib,
            &[
                "--embedder",
                "hash",
                "related",
                "2106.00003",
                "-k",
                "99999999999",
            ],
        ),
        "k must be between",
    );
    fails_with(
        &papermap(
            &lib,
            &["--embedder", "hash", "related", "2106.00003", "--ef", "0"],
        ),
        "--ef must be between",
    );
    let q = dir.path().join("q.jsonl");
    std::fs::write(&q, "{\"id\": \"2106.00003\", \"k\": 0}\n").unwrap();
    let out = ok(&papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "related",
            "--batch",
            q.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("k must be between"), "{out}");
}

#[test]
fn eval_related_agrees_with_batch_answers_and_eval_topics_reports_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let lib = add_dated(dir.path());
    let judged = dir.path().join("judged.jsonl");
    std::fs::write(
        &judged,
        "{\"id\": \"2106.00003\", \"relevant\": [\"2001.00002\", \"1905.00001\"]}\n{\"id\": \"2305.00005\", \"cites\": [\"2203.00004\", \"not-in-library\"]}\n",
    )
    .unwrap();
    let out = ok(&papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "eval",
            "related",
            "--queries",
            judged.to_str().unwrap(),
            "--json",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = &v[0]["metrics"];
    assert_eq!(m["queries"], 2);
    // P@1 by hand from the batch answers of the same settings.
    let q = dir.path().join("q.jsonl");
    std::fs::write(&q, "{\"id\": \"2106.00003\"}\n{\"id\": \"2305.00005\"}\n").unwrap();
    let batch = ok(&papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "related",
            "--batch",
            q.to_str().unwrap(),
        ],
    ));
    let firsts: Vec<String> = batch
        .lines()
        .map(|l| result_ids(&serde_json::from_str(l).unwrap())[0].clone())
        .collect();
    let p1 = [
        ["2001.00002", "1905.00001"].contains(&firsts[0].as_str()),
        firsts[1] == "2203.00004",
    ]
    .iter()
    .filter(|x| **x)
    .count() as f64
        / 2.0;
    assert!((m["p1"].as_f64().unwrap() - p1).abs() < 1e-9, "{m} vs {p1}");
    let sweep = ok(&papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "eval",
            "related",
            "--queries",
            judged.to_str().unwrap(),
            "--sweep",
        ],
    ));
    assert_eq!(
        sweep
            .lines()
            .filter(|l| l.trim_start().starts_with("hybrid"))
            .count(),
        22,
        "{sweep}"
    );

    let labels = dir.path().join("labels.jsonl");
    std::fs::write(
        &labels,
        [
            "1905.00001",
            "2001.00002",
            "2106.00003",
            "2203.00004",
            "2305.00005",
            "undated-1",
        ]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                "{{\"id\": \"{id}\", \"label\": \"{}\"}}\n",
                if i < 3 { "a" } else { "b" }
            )
        })
        .collect::<String>(),
    )
    .unwrap();
    let t = ok(&papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "eval",
            "topics",
            "--labels",
            labels.to_str().unwrap(),
        ],
    ));
    assert!(
        t.contains("6 labelled papers, 2 labels, k=2") && t.contains("V-measure"),
        "{t}"
    );
    std::fs::write(&labels, "{\"id\": \"1905.00001\"}\n").unwrap();
    fails_with(
        &papermap(
            &lib,
            &[
                "--embedder",
                "hash",
                "eval",
                "topics",
                "--labels",
                labels.to_str().unwrap(),
            ],
        ),
        "labels.jsonl:1: needs \"id\" and \"label\"",
    );
}

#[test]
fn papers_not_embedded_yet_are_found_by_words_and_the_reader_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    let extra = dir.path().join("extra.jsonl");
    std::fs::write(
        &extra,
        "{\"id\": \"late-1\", \"title\": \"Fixed point iterations for diffusion samplers\", \"abstract\": \"Diffusion models sampled by fixed point iterations.\"}\n",
    )
    .unwrap();
    ok(&papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "add",
            "--no-embed",
            extra.to_str().unwrap(),
        ],
    ));
    let o = papermap(
        &lib,
        &[
            "--embedder",
            "hash",
            "related",
            "diffusion-1",
            "--json",
            "-k",
            "12",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(v["not_embedded"], 1);
    assert!(result_ids(&v).contains(&"late-1".to_string()), "{v}");
    let late = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "late-1")
        .unwrap();
    assert_eq!(late["dense"], 0.0);
    assert!(
        stderr(&o).contains("1 paper(s) added since the last index are not embedded yet"),
        "{}",
        stderr(&o)
    );
    // The unembedded paper itself can be a query: answered by its words.
    let v: serde_json::Value = serde_json::from_str(&ok(&papermap(
        &lib,
        &["--embedder", "hash", "related", "late-1", "--json"],
    )))
    .unwrap();
    assert!(result_ids(&v).contains(&"diffusion-1".to_string()), "{v}");
    // Only `--no-embed` so far: a library with no vectors at all answers too.
    let lib2 = dir.path().join("lib2");
    ok(&papermap(
        &lib2,
        &[
            "--embedder",
            "hash",
            "add",
            "--no-embed",
            fixture("mini.jsonl").to_str().unwrap(),
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&ok(&papermap(
        &lib2,
        &[
            "--embedder",
            "hash",
            "related",
            "bandit-1",
            "--json",
            "-k",
            "3",
        ],
    )))
    .unwrap();
    assert_eq!(v["not_embedded"], 12);
    assert!(result_ids(&v)[0].starts_with("bandit-"), "{v}");
}

#[test]
fn related_answers_every_time_while_an_add_embeds_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    // Enough papers that the writer is busy for a while (hashing embedder).
    let big = dir.path().join("big.jsonl");
    let words = [
        "graph",
        "diffusion",
        "bandit",
        "regret",
        "quantization",
        "token",
        "kernel",
        "policy",
        "sparse",
        "image",
    ];
    let text: String = (0..30_000)
        .map(|i| {
            let t: Vec<&str> = (0..8).map(|j| words[(i * 7 + j * 3) % words.len()]).collect();
            serde_json::json!({"id": format!("g{i}"), "title": format!("{} {i}", t.join(" ")), "abstract": t.repeat(6).join(" ")}).to_string() + "\n"
        })
        .collect();
    std::fs::write(&big, text).unwrap();
    let mut writer = Command::new(env!("CARGO_BIN_EXE_papermap"))
        .arg("--library")
        .arg(&lib)
        .args([
            "--embedder",
            "hash",
            "--quiet",
            "add",
            big.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let (mut reads, mut failures) = (0, Vec::new());
    loop {
        let done = writer.try_wait().unwrap().is_some();
        let o = papermap(
            &lib,
            &[
                "--embedder",
                "hash",
                "related",
                "bandit-1",
                "--json",
                "-k",
                "3",
            ],
        );
        reads += 1;
        if !o.status.success() {
            failures.push(stderr(&o));
        }
        if done {
            break;
        }
    }
    assert!(writer.wait().unwrap().success());
    assert!(
        reads >= 3,
        "the writer finished before the readers could overlap it ({reads} reads)"
    );
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {:?}",
        failures.len(),
        failures.first()
    );
}

/// Issue 18: on the first run there is no stored report to compare with, so
/// no topic is labelled new (or anything else); later runs compare.
#[test]
fn the_first_topics_run_labels_no_topic_as_new() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    let first = ok(&papermap(&lib, &["topics", "--json"]));
    let r: serde_json::Value = serde_json::from_str(&first).unwrap();
    let topics = r["topics"].as_array().unwrap();
    assert!(!topics.is_empty());
    assert!(topics.iter().all(|t| t.get("change").is_none()), "{first}");
    let text = ok(&papermap(&lib, &["topics"]));
    assert!(!text.contains("New") && !text.contains("Grown"), "{text}");
    let md = dir.path().join("t.md");
    ok(&papermap(
        &lib,
        &["report", "--format", "md", "--out", md.to_str().unwrap()],
    ));
    let md = std::fs::read_to_string(md).unwrap();
    assert!(!md.contains("New"), "{md}");
    // The same library again: still nothing to report.
    assert_eq!(ok(&papermap(&lib, &["topics", "--json"])), first);
    // Pinning k on a new library is its first run too (no hidden run first).
    let lib2 = dir.path().join("lib2");
    add_mini(&lib2);
    let text = ok(&papermap(&lib2, &["topics", "pin", "3"]));
    for label in ["New", "Kept", "Merged", "Split", "Grown", "Shrunk"] {
        assert!(!text.contains(label), "{text}");
    }
    let pinned = ok(&papermap(&lib2, &["topics", "--json"]));
    let r: serde_json::Value = serde_json::from_str(&pinned).unwrap();
    let topics = r["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 3);
    assert!(topics.iter().all(|t| t.get("change").is_none()), "{pinned}");
}

/// Issue 18: `topics-state.json` is written under the library's writer
/// lock: the CLI waits and then fails naming the writer (nothing written);
/// an exploratory run writes no state and needs no lock; the library API
/// with no wait (what `serve` uses) answers and skips the write.
#[test]
fn the_topic_state_is_written_under_the_writer_lock() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    let state = lib.join("topics-state.json");
    let held = papermap::store::LockFile::acquire(&lib, std::time::Duration::from_secs(1)).unwrap();
    fails_with(
        &papermap(&lib, &["--lock-wait", "1", "topics"]),
        "is being written by another papermap process",
    );
    assert!(!state.exists());
    fails_with(
        &papermap(&lib, &["--lock-wait", "0", "topics", "pin", "3"]),
        "is being written by another papermap process",
    );
    assert!(!state.exists());
    ok(&papermap(&lib, &["--lock-wait", "0", "topics", "-k", "3"]));
    assert!(!state.exists());
    let (_, report) = papermap::app::topics(&lib, &Default::default()).unwrap();
    assert!(!report.topics.is_empty());
    assert!(
        !state.exists(),
        "written while another process held the lock"
    );
    drop(held);
    let (_, again) = papermap::app::topics(&lib, &Default::default()).unwrap();
    assert!(state.exists());
    assert_eq!(
        serde_json::to_string(&report).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
    ok(&papermap(&lib, &["--lock-wait", "1", "topics", "pin", "3"]));
}
