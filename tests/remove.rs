//! `papermap remove` on the real binary in a temporary directory (hashing
//! embedder: the model is not the point): removed papers leave every
//! answer at once, unknown names remove nothing, a removed paper added
//! again comes back, and the space is reclaimed by the next writer.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{answers_match_rebuilt_files, fixture, papermap_hash as papermap, stderr};

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "papermap failed: {}\nstdout: {}",
        stderr(o),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails_with(o: &Output, needle: &str) {
    assert!(!o.status.success(), "succeeded: {}", stderr(o));
    assert!(stderr(o).contains(needle), "{}", stderr(o));
}

fn add_mini(lib: &Path) {
    ok(&papermap(
        lib,
        &["add", fixture("mini.jsonl").to_str().unwrap()],
    ));
}

fn listed(lib: &Path) -> Vec<String> {
    ok(&papermap(lib, &["list"]))
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

fn manifest(lib: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(lib.join("MANIFEST.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["manifest"].clone()
}

#[test]
fn removed_papers_leave_every_answer_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    let list = dir.path().join("gone.txt");
    std::fs::write(
        &list,
        "# papers to drop\n\ndiffusion-2   # a comment after the id\n  quant-3\n",
    )
    .unwrap();
    let r = papermap(
        &lib,
        &["remove", "bandit-1", "--file", list.to_str().unwrap()],
    );
    ok(&r);
    assert!(stderr(&r).contains("removed 3 paper(s)"), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("removed bandit-1\tContextual Bandits with Online Neural Regression"),
        "{}",
        stderr(&r)
    );
    let ids = listed(&lib);
    assert_eq!(ids.len(), 9, "{ids:?}");
    for gone in ["bandit-1", "diffusion-2", "quant-3"] {
        assert!(!ids.contains(&gone.to_string()), "{gone} still listed");
    }
    assert!(ok(&papermap(&lib, &["status"])).contains("papers: 9 "));

    // related: never a result, and no longer a query.
    let out = ok(&papermap(
        &lib,
        &["related", "bandit-2", "--json", "-k", "8"],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let got: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got.len(), 8, "{out}");
    assert!(
        !got.iter()
            .any(|id| ["bandit-1", "diffusion-2", "quant-3"].contains(id)),
        "{out}"
    );
    // Its id is no paper's any more: the query is read as free text.
    let out = ok(&papermap(&lib, &["related", "bandit-1", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["query"]["kind"], "text", "{out}");

    // topics and report (JSON and BibTeX exports) hold the 9 left.
    let out = ok(&papermap(&lib, &["topics", "-k", "3", "--json"]));
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    let members: usize = t["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["papers"].as_array().unwrap().len())
        .sum();
    assert_eq!(members, 9, "{out}");
    assert!(!out.contains("\"bandit-1\""), "{out}");
    let rep = dir.path().join("rep");
    ok(&papermap(
        &lib,
        &["report", "-k", "3", "--out", rep.to_str().unwrap()],
    ));
    let mut seen = 0;
    for e in walk(&rep) {
        let text = std::fs::read_to_string(&e).unwrap_or_default();
        seen += 1;
        for gone in ["bandit-1", "diffusion-2", "quant-3"] {
            assert!(!text.contains(gone), "{gone} in {}", e.display());
        }
    }
    assert!(seen > 2, "report wrote {seen} files");
    let c = papermap(&lib, &["check"]);
    ok(&c);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn an_unknown_name_removes_nothing_unless_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    let generation = manifest(&lib)["generation"].clone();
    fails_with(
        &papermap(&lib, &["remove", "quant-1", "nope-1234", "10.9999/none"]),
        "'nope-1234', '10.9999/none' in the library; nothing was removed",
    );
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "quant-1\n\n# fine\nquant-2 and more words\n").unwrap();
    fails_with(
        &papermap(&lib, &["remove", "--file", list.to_str().unwrap()]),
        &format!(
            "{}:4: \"quant-2 and more words\" is not one id",
            list.display()
        ),
    );
    std::fs::write(&list, "quant-1\nquant-9 # typo\n").unwrap();
    fails_with(
        &papermap(&lib, &["remove", "--file", list.to_str().unwrap()]),
        &format!("{}:2: 'quant-9'", list.display()),
    );
    fails_with(
        &papermap(&lib, &["remove", "--file", "/nonexistent/list"]),
        "/nonexistent/list: no such file",
    );
    fails_with(&papermap(&lib, &["remove"]), "nothing to remove");
    assert_eq!(listed(&lib).len(), 12);
    assert_eq!(
        manifest(&lib)["generation"],
        generation,
        "nothing was written"
    );

    let r = papermap(
        &lib,
        &[
            "remove",
            "--ignore-missing",
            "--file",
            list.to_str().unwrap(),
            "quant-1",
        ],
    );
    ok(&r);
    assert!(
        stderr(&r).contains("not found (ignored): "),
        "{}",
        stderr(&r)
    );
    assert!(stderr(&r).contains("'quant-9'"), "{}", stderr(&r));
    assert!(stderr(&r).contains("removed 1 paper(s)"), "{}", stderr(&r));
    assert!(stderr(&r).contains("1 name(s) repeated"), "{}", stderr(&r));
    assert_eq!(listed(&lib).len(), 11);

    // A path that is no library is an error, and none is created.
    let none = dir.path().join("none");
    fails_with(&papermap(&none, &["remove", "x"]), "no library");
    assert!(!none.exists());
}

#[test]
fn removed_by_doi_or_arxiv_id_and_added_again_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let bib = dir.path().join("t.bib");
    std::fs::write(
        &bib,
        "@article{alpha2020, title={Alpha Particles in Thin Films}, year={2020},\n  doi={10.1234/Alpha.5}, abstract={Alpha particles cross thin films.}}\n\
         @article{beta2021, title={Beta Decay Rates}, year={2021}, eprint={2101.00001},\n  archivePrefix={arXiv}, abstract={Beta decay rates measured.}}\n\
         @article{gamma2022, title={Gamma Rays From Stars}, year={2022}, abstract={Stars emit gamma rays.}}\n",
    )
    .unwrap();
    ok(&papermap(&lib, &["add", bib.to_str().unwrap()]));
    let r = papermap(
        &lib,
        &[
            "remove",
            "https://doi.org/10.1234/ALPHA.5",
            "arXiv:2101.00001",
        ],
    );
    ok(&r);
    assert!(stderr(&r).contains("removed alpha2020"), "{}", stderr(&r));
    assert!(stderr(&r).contains("removed beta2021"), "{}", stderr(&r));
    assert_eq!(listed(&lib), vec!["gamma2022"]);
    // The library now needs a reader that knows removal records.
    assert_eq!(manifest(&lib)["min_reader_version"], 2);
    // A title is never enough.
    fails_with(
        &papermap(&lib, &["remove", "Gamma Rays From Stars"]),
        "'Gamma Rays From Stars'",
    );

    // Added again: new again, under the same ids, vectors from the cache.
    let a = papermap(&lib, &["add", bib.to_str().unwrap()]);
    ok(&a);
    assert!(
        stderr(&a).contains("read 3, new 2, duplicate 1"),
        "{}",
        stderr(&a)
    );
    assert!(stderr(&a).contains("embedded 0 papers"), "{}", stderr(&a));
    assert_eq!(listed(&lib), vec!["gamma2022", "alpha2020", "beta2021"]);
    let out = ok(&papermap(&lib, &["related", "10.1234/alpha.5", "--json"]));
    assert!(out.contains("\"gamma2022\""), "{out}");
}

#[test]
fn the_space_of_removed_papers_is_reclaimed_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    add_mini(&lib);
    let before = std::fs::metadata(lib.join("papers-1.log")).unwrap().len();
    // 7 of 12 removed: 19 records, 14 of them dead.
    ok(&papermap(
        &lib,
        &[
            "remove", "quant-1", "quant-2", "quant-3", "quant-4", "bandit-1", "bandit-2",
            "bandit-3",
        ],
    ));
    assert_eq!(manifest(&lib)["papers"]["records"], 19);
    // Readers are not writers: nothing is compacted by them.
    ok(&papermap(&lib, &["status"]));
    assert!(lib.join("papers-1.log").exists());
    let r = papermap(&lib, &["remove", "diffusion-4"]);
    ok(&r);
    assert!(
        stderr(&r).contains("compacted the papers log into papers-2.log: 19 record(s) -> 5"),
        "{}",
        stderr(&r)
    );
    assert!(!lib.join("papers-1.log").exists());
    let after = std::fs::metadata(lib.join("papers-2.log")).unwrap().len();
    assert!(after * 2 < before, "{after} vs {before}");
    let m = manifest(&lib);
    assert_eq!(m["papers"]["file"], "papers-2.log");
    // Five live records, then the removal written after the compaction.
    assert_eq!(m["papers"]["records"], 6);
    assert_eq!(m["min_reader_version"], 2);
    assert_eq!(
        listed(&lib),
        vec!["bandit-4", "diffusion-1", "diffusion-2", "diffusion-3"]
    );
    // check --repair reclaims what is dead without waiting for a threshold.
    let c = papermap(&lib, &["check", "--repair"]);
    ok(&c);
    assert!(stderr(&c).contains("6 record(s) -> 4"), "{}", stderr(&c));
    assert_eq!(manifest(&lib)["min_reader_version"], 1);
    ok(&papermap(&lib, &["check"]));
    assert_eq!(listed(&lib).len(), 4);
}

#[test]
fn derived_files_drop_removed_rows_and_answer_as_rebuilt_ones() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let g = ["--hnsw-threshold", "1"];
    let run = |args: &[&str]| papermap(&lib, &[&g[..], args].concat());
    ok(&run(&["add", fixture("mini.jsonl").to_str().unwrap()]));
    assert!(lib.join("derived/hnsw.graph").exists());
    // Two removals in a row: each drops its rows from the graph and the
    // lexical index (no rebuild).
    let r = run(&["remove", "bandit-1"]);
    ok(&r);
    assert!(
        stderr(&r).contains("index updated for 1 removed paper(s)"),
        "{}",
        stderr(&r)
    );
    let r = run(&["remove", "diffusion-2", "quant-3"]);
    ok(&r);
    assert!(
        stderr(&r).contains("index updated for 2 removed paper(s)"),
        "{}",
        stderr(&r)
    );
    let c = ok(&run(&["check"]));
    assert!(!c.contains("stale") && !c.contains("damaged"), "{c}");
    answers_match_rebuilt_files(&lib, &["bandit-2"], &["bandit-1", "diffusion-2", "quant-3"]);
}

#[test]
fn search_files_from_before_two_removals_go_through_both() {
    // The search files as two killed `remove` runs leave them: still from
    // before the first removal, with both removals noted. The next writer
    // takes them through both steps instead of building them again, and
    // they answer as files built from scratch.
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let g = ["--hnsw-threshold", "1"];
    let run = |args: &[&str]| papermap(&lib, &[&g[..], args].concat());
    ok(&run(&["add", fixture("mini.jsonl").to_str().unwrap()]));
    let files = ["vectors.f32", "hnsw.graph", "lexical.bin"];
    let saved: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(lib.join("derived").join(f)).unwrap())
        .collect();
    ok(&run(&["remove", "bandit-1"]));
    ok(&run(&["remove", "quant-3", "diffusion-2"]));
    for (f, b) in files.iter().zip(&saved) {
        std::fs::write(lib.join("derived").join(f), b).unwrap();
    }
    let r = run(&["embed"]);
    ok(&r);
    assert!(
        stderr(&r).contains("index updated for 3 removed paper(s)"),
        "{}",
        stderr(&r)
    );
    answers_match_rebuilt_files(
        &lib,
        &["bandit-2", "diffusion-4"],
        &["bandit-1", "quant-3", "diffusion-2"],
    );
}
