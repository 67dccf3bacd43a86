//! Issue 16, the topics half: `topics` and `report` answer from the
//! embedded papers while others are not embedded yet, and a grown library's
//! topics are extended (new papers join their nearest topic; ids, names and
//! members kept) instead of clustered again, unless asked (`--recluster`),
//! the library drifted, or papers were edited or removed. The real binary
//! in a temp dir, with the hashing embedder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{fixture, papermap, papermap_hash, stderr};

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "papermap failed: {}\nstdout: {}",
        stderr(o),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("JSON output")
}

/// The 100-paper arXiv snapshot fixture split in two files: the first
/// `n` papers and the rest.
fn split(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(fixture("arxiv-oai-snapshot.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    std::fs::write(&a, lines[..n].join("\n")).unwrap();
    std::fs::write(&b, lines[n..].join("\n")).unwrap();
    (a, b)
}

/// Paper ids of the library, in order.
fn ids(lib: &Path) -> Vec<String> {
    ok(&papermap(lib, &["list"]))
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

/// Topic id -> (name, member ids) of a `topics --json` answer.
fn topics(r: &serde_json::Value) -> BTreeMap<u64, (String, BTreeSet<String>)> {
    r["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_u64().unwrap(),
                (
                    t["name"].as_str().unwrap().to_string(),
                    t["papers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["id"].as_str().unwrap().to_string())
                        .collect(),
                ),
            )
        })
        .collect()
}

fn all_members(r: &serde_json::Value) -> BTreeSet<String> {
    topics(r).into_values().flat_map(|t| t.1).collect()
}

/// A library of the first 90 papers with its topics computed, and the file
/// of the other 10.
fn clustered_library(dir: &Path) -> (PathBuf, PathBuf) {
    let lib = dir.join("lib");
    let (a, b) = split(dir, 90);
    ok(&papermap_hash(&lib, &["add", a.to_str().unwrap()]));
    let o = papermap(&lib, &["topics"]);
    ok(&o);
    assert!(
        stderr(&o).contains("clustered: 90 papers (no stored clustering)"),
        "{}",
        stderr(&o)
    );
    (lib, b)
}

#[test]
fn topics_and_reports_leave_out_papers_not_embedded_yet() {
    let dir = tempfile::tempdir().unwrap();
    let (lib, b) = clustered_library(dir.path());
    let before = ids(&lib);
    ok(&papermap_hash(
        &lib,
        &["add", "--no-embed", b.to_str().unwrap()],
    ));
    let new: BTreeSet<String> = ids(&lib)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(new.len(), 10);

    // Exit 0, one note, no unembedded paper in any topic or on the map.
    let o = papermap(&lib, &["topics", "--json"]);
    let r = json(&ok(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "10 papers added since the last index are not embedded yet: left out of the topics"
        ),
        "{err}"
    );
    assert_eq!(err.matches("not embedded yet").count(), 1, "{err}");
    assert_eq!(r["not_embedded"], 10);
    let members = all_members(&r);
    assert_eq!(members.len(), 90);
    assert!(members.is_disjoint(&new), "{members:?}");
    let map = r["map"].as_array().unwrap();
    assert_eq!(map.len(), 90);
    for p in map {
        assert!(!new.contains(p["id"].as_str().unwrap()));
        for j in p["related"].as_array().unwrap() {
            assert!((j.as_u64().unwrap() as usize) < map.len(), "{p}");
        }
    }
    // The text output counts the papers in topics.
    let text = papermap(&lib, &["topics"]);
    assert!(ok(&text).contains(" topics in 90 papers"), "{}", ok(&text));

    // Every report format is written and names none of them.
    let out = dir.path().join("report");
    let o = papermap(&lib, &["report", "--out", out.to_str().unwrap()]);
    ok(&o);
    assert!(stderr(&o).contains("not embedded yet"), "{}", stderr(&o));
    for f in ["topics.json", "topics.csv", "topics.md", "topics.html"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(!text.is_empty(), "{f}");
        for id in &new {
            assert!(!text.contains(&format!("\"{id}\"")), "{f} names {id}");
            assert!(!text.contains(&format!("{id},")), "{f} names {id}");
        }
    }
    let html = std::fs::read_to_string(out.join("topics.html")).unwrap();
    // The map's titles are found although rows and map indices differ.
    let first_title = ok(&papermap(&lib, &["list"]))
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .nth(3)
        .unwrap()
        .to_string();
    assert!(html.contains(&first_title[..20]), "map titles missing");
    let bibs = std::fs::read_dir(out.join("bibtex")).unwrap();
    for f in bibs {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        for id in &new {
            assert!(!text.contains(id.as_str()), "a .bib file names {id}");
        }
    }

    // Once embedded, they join their nearest topics.
    ok(&papermap_hash(&lib, &["embed"]));
    let o = papermap(&lib, &["topics", "--json"]);
    let r = json(&ok(&o));
    assert!(
        stderr(&o).contains("topics extended: 10 new papers joined"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("not embedded"), "{}", stderr(&o));
    assert!(r.get("not_embedded").is_none());
    assert_eq!(all_members(&r).len(), 100);
}

#[test]
fn nothing_embedded_yet_is_an_empty_answer_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let (a, _) = split(dir.path(), 90);
    ok(&papermap_hash(
        &lib,
        &["add", "--no-embed", a.to_str().unwrap()],
    ));
    let o = papermap(&lib, &["topics", "--json"]);
    let r = json(&ok(&o));
    assert!(stderr(&o).contains("90 papers added"), "{}", stderr(&o));
    assert_eq!(r["topics"].as_array().unwrap().len(), 0);
    assert_eq!(r["not_embedded"], 90);
    // Nothing was stored: the first real run is still the first.
    ok(&papermap_hash(&lib, &["embed"]));
    let o = papermap(&lib, &["topics"]);
    ok(&o);
    assert!(
        stderr(&o).contains("clustered: 90 papers (no stored clustering)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn new_papers_join_the_topics_they_are_nearest_and_old_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (lib, b) = clustered_library(dir.path());
    let first = json(&ok(&papermap(&lib, &["topics", "--json"])));
    let old = topics(&first);
    let renamed = *old.keys().next().unwrap();
    ok(&papermap(
        &lib,
        &["topics", "rename", &renamed.to_string(), "my topic"],
    ));
    let before = ids(&lib);
    ok(&papermap_hash(&lib, &["add", b.to_str().unwrap()]));
    let new: BTreeSet<String> = ids(&lib)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();

    let o = papermap(&lib, &["topics", "--json"]);
    let out = ok(&o);
    let r = json(&out);
    let err = stderr(&o);
    assert!(
        err.contains("topics extended: 10 new papers joined"),
        "{err}"
    );
    let grown = topics(&r);
    // Same ids, same names (the user's and the automatic ones), every old
    // member where it was, every new paper in a topic.
    assert_eq!(
        grown.keys().collect::<Vec<_>>(),
        old.keys().collect::<Vec<_>>()
    );
    for (id, (name, members)) in &old {
        let (now_name, now) = &grown[id];
        if *id == renamed {
            assert_eq!(now_name, "my topic");
        } else {
            assert_eq!(now_name, name, "topic {id}");
        }
        assert!(members.is_subset(now), "topic {id} lost members");
        for m in now.difference(members) {
            assert!(new.contains(m), "{m} moved into topic {id}");
        }
    }
    assert!(new.is_subset(&all_members(&r)));
    // Grown topics say so against the stored run.
    let changed: Vec<&serde_json::Value> = r["topics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["change"] == "grown")
        .collect();
    assert!(!changed.is_empty(), "{out}");

    // The same state again: the stored extension as it was, no update line.
    let o = papermap(&lib, &["topics", "--json"]);
    assert!(ok(&o) == out, "a second run differs from the extension");
    assert!(!stderr(&o).contains("extended"), "{}", stderr(&o));

    // On request, a full clustering.
    let o = papermap(&lib, &["topics", "--recluster", "--json"]);
    let r = json(&ok(&o));
    assert!(
        stderr(&o).contains("re-clustered: 100 papers (requested with --recluster)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(all_members(&r).len(), 100);
    // ... after which the next run uses it as it is.
    let o = papermap(&lib, &["topics"]);
    ok(&o);
    assert!(!stderr(&o).contains("clustered"), "{}", stderr(&o));
}

#[test]
fn many_new_papers_or_a_removal_cluster_again() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let (a, b) = split(dir.path(), 70);
    ok(&papermap_hash(&lib, &["add", a.to_str().unwrap()]));
    ok(&papermap(&lib, &["topics"]));
    // 30 of 100 papers would not have been clustered: over the 20% drift.
    ok(&papermap_hash(&lib, &["add", b.to_str().unwrap()]));
    let o = papermap(&lib, &["topics"]);
    ok(&o);
    assert!(
        stderr(&o).contains("re-clustered: 100 papers (drift: 30 of 100 papers"),
        "{}",
        stderr(&o)
    );
    // A removed paper: the stored clustering is not a prefix any more.
    let gone = ids(&lib)[3].clone();
    ok(&papermap_hash(&lib, &["remove", &gone]));
    let o = papermap(&lib, &["topics", "--json"]);
    let r = json(&ok(&o));
    assert!(
        stderr(&o).contains("re-clustered: 99 papers (papers were edited or removed"),
        "{}",
        stderr(&o)
    );
    assert!(!all_members(&r).contains(&gone));
}

#[test]
fn a_kill_between_the_topics_cache_and_the_topic_state_changes_nothing() {
    // A run saves the clustering (derived/topics.json) and then the topic
    // state (ids, names; topics-state.json). A kill between the two leaves
    // the new clustering beside the old state: the next run must store and
    // show exactly what the killed run would have.
    let dir = tempfile::tempdir().unwrap();
    let (lib, b) = clustered_library(dir.path());
    let first = topics(&json(&ok(&papermap(&lib, &["topics", "--json"]))));
    let named = *first.keys().last().unwrap();
    ok(&papermap(
        &lib,
        &["topics", "rename", &named.to_string(), "kept name"],
    ));
    ok(&papermap_hash(&lib, &["add", b.to_str().unwrap()]));
    let state = lib.join("topics-state.json");
    for args in [
        &["topics", "--json"][..],
        &["topics", "--recluster", "--json"][..],
    ] {
        let old_state = std::fs::read(&state).unwrap();
        let whole = json(&ok(&papermap(&lib, args)));
        let new_state = std::fs::read(&state).unwrap();
        assert_ne!(old_state, new_state, "{args:?} stored nothing new");
        // The disk as a kill after the clustering was saved leaves it.
        std::fs::write(&state, &old_state).unwrap();
        let again = json(&ok(&papermap(&lib, &["topics", "--json"])));
        assert_eq!(std::fs::read(&state).unwrap(), new_state, "{args:?}");
        assert_eq!(again["topics"], whole["topics"], "{args:?}");
        if args.len() == 2 {
            assert_eq!(topics(&again)[&named].0, "kept name");
        }
    }
}
