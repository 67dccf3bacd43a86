//! `papermap match` (issue 20) on the real binary in a temporary directory,
//! with the deterministic hashing embedder (the model is not the point):
//! ranking against the library, papers already in it, filters, threshold
//! and `--add`, bad input, the JSON shape and the HTML digest.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;
use common::{fixture, papermap_hash as papermap};

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "papermap failed: {}\nstdout: {}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails_with(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A library of `mini.jsonl` (quantisation, bandits, diffusion: four each).
fn library(dir: &Path) -> PathBuf {
    let lib = dir.join("lib");
    ok(&papermap(
        &lib,
        &["add", fixture("mini.jsonl").to_str().unwrap()],
    ));
    lib
}

fn write(dir: &Path, name: &str, lines: &[Value]) -> PathBuf {
    let p = dir.join(name);
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&p, text.join("\n") + "\n").unwrap();
    p
}

/// A library paper of `mini.jsonl` by id.
fn mini(id: &str) -> Value {
    std::fs::read_to_string(fixture("mini.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["id"] == id)
        .unwrap()
}

fn near_diffusion() -> Value {
    serde_json::json!({
        "id": "new-diffusion",
        "title": "Faster sampling of diffusion models with probability flow ODEs",
        "abstract": "Diffusion models generate images by iterative denoising. We analyse the convergence of probability flow ODE samplers for diffusion models and propose a fixed point solver that needs fewer denoising steps for image generation."
    })
}

fn unrelated() -> Value {
    serde_json::json!({
        "id": "new-soil",
        "title": "Soil moisture and grazing in alpine meadows",
        "abstract": "We measured soil moisture, plant cover and sheep grazing intensity across forty alpine meadows over three summers and relate them to snowmelt timing."
    })
}

fn near_bandits() -> Value {
    serde_json::json!({
        "id": "new-bandit",
        "title": "Regret bounds for contextual bandits with delayed feedback",
        "abstract": "We study online contextual bandits where rewards arrive with delay and give regret bounds for neural and linear regression oracles with stochastic noise."
    })
}

fn run_json(lib: &Path, args: &[&str]) -> Value {
    let mut a = vec!["match", "--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(&papermap(lib, &a))).unwrap()
}

fn ids(r: &Value) -> Vec<String> {
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["paper"]["id"].as_str().unwrap().to_string())
        .collect()
}

fn result<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["paper"]["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {r}"))
}

#[test]
fn a_paper_near_a_library_topic_ranks_above_an_unrelated_one() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let f = write(
        dir.path(),
        "new.jsonl",
        &[unrelated(), near_diffusion(), near_bandits()],
    );
    let r = run_json(&lib, &[f.to_str().unwrap()]);
    let order = ids(&r);
    assert_eq!(order.len(), 3);
    assert_eq!(order[2], "new-soil", "{order:?}");
    // Each related paper's closest library papers are from its own topic,
    // and the "why" names terms both share.
    let d = result(&r, "new-diffusion");
    let closest: Vec<&str> = d["closest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        closest.iter().all(|c| c.starts_with("diffusion-")),
        "{closest:?}"
    );
    let text = format!(
        "{} {}",
        near_diffusion()["title"].as_str().unwrap(),
        near_diffusion()["abstract"].as_str().unwrap()
    )
    .to_lowercase();
    let why = d["why"].as_array().unwrap();
    assert!(!why.is_empty(), "{d}");
    for w in why {
        for word in w.as_str().unwrap().split(' ') {
            let stem: String = word.chars().take(4).collect();
            assert!(
                text.contains(&stem),
                "why term '{word}' is not in the paper: {d}"
            );
        }
    }
    let b = result(&r, "new-bandit");
    assert!(
        b["closest"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("bandit-")
    );
    // The score is the mean of the neighbours' fused similarities.
    let best = d["best"].as_f64().unwrap();
    let mean = d["mean"].as_f64().unwrap();
    assert!(best >= mean && d["score"].as_f64().unwrap() == mean, "{d}");
    // Ranks are 1.. in score order.
    let scores: Vec<f64> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

#[test]
fn papers_already_in_the_library_are_marked_not_scored() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    // Same title under another id (and a trailing period): the same paper.
    let mut twin = mini("bandit-3");
    twin["id"] = "someone-elses-key".into();
    twin["title"] = format!("{}.", twin["title"].as_str().unwrap()).into();
    let f = write(dir.path(), "new.jsonl", &[twin, near_diffusion()]);
    let r = run_json(&lib, &[f.to_str().unwrap()]);
    assert_eq!(ids(&r), vec!["new-diffusion"]);
    assert_eq!(r["counts"]["in_library"], 1);
    assert_eq!(r["in_library"][0]["library_id"], "bandit-3");
    // The table says so too.
    let table = ok(&papermap(&lib, &["match", f.to_str().unwrap()]));
    assert!(table.contains("already in the library") && table.contains("bandit-3"));
}

#[test]
fn keyword_filters_and_parts_of_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let f = write(
        dir.path(),
        "new.jsonl",
        &[unrelated(), near_diffusion(), near_bandits()],
    );
    let f = f.to_str().unwrap();
    let r = run_json(&lib, &[f, "--require", "denoising"]);
    assert_eq!(ids(&r), vec!["new-diffusion"]);
    assert_eq!(r["counts"]["filtered"], 2);
    // A phrase must occur as a phrase; every --require must hold.
    let r = run_json(
        &lib,
        &[f, "--require", "contextual bandits", "--require", "regret"],
    );
    assert_eq!(ids(&r), vec!["new-bandit"]);
    let r = run_json(&lib, &[f, "--require", "bandits contextual"]);
    assert!(ids(&r).is_empty());
    let r = run_json(&lib, &[f, "--exclude-terms", "diffusion model"]);
    assert!(!ids(&r).contains(&"new-diffusion".to_string()));
    assert_eq!(ids(&r).len(), 2);

    // --like: only these library papers are matched against.
    let r = run_json(&lib, &[f, "--like", "bandit-1", "quant-2"]);
    assert_eq!(r["counts"]["reference"], 2);
    for m in r["results"].as_array().unwrap() {
        for c in m["closest"].as_array().unwrap() {
            let id = c["id"].as_str().unwrap();
            assert!(id == "bandit-1" || id == "quant-2", "{id}");
        }
    }
    assert_eq!(ids(&r)[0], "new-bandit");
    // --not: closeness to these papers costs score.
    let plain = run_json(&lib, &[f]);
    let r = run_json(&lib, &[f, "--not", "diffusion-1"]);
    let d = result(&r, "new-diffusion");
    assert!(d["penalty"].as_f64().unwrap() > 0.0);
    assert!(
        d["score"].as_f64().unwrap() < result(&plain, "new-diffusion")["score"].as_f64().unwrap()
    );
    // Unknown papers and collections are errors naming what is missing.
    fails_with(
        &papermap(&lib, &["match", f, "--like", "no-such-paper-1234"]),
        "no-such-paper-1234",
    );
    fails_with(
        &papermap(&lib, &["match", f, "--collection", "Thesis"]),
        "no library paper is in collection 'Thesis'",
    );
}

#[test]
fn threshold_and_add_store_only_the_papers_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let f = write(dir.path(), "new.jsonl", &[unrelated(), near_diffusion()]);
    let f = f.to_str().unwrap();
    let manifest = std::fs::read(lib.join("MANIFEST.json")).unwrap();
    let r = run_json(&lib, &[f]);
    // Looking does not change the library (its vectors included).
    assert_eq!(std::fs::read(lib.join("MANIFEST.json")).unwrap(), manifest);
    let hi = result(&r, "new-diffusion")["score"].as_f64().unwrap();
    let lo = result(&r, "new-soil")["score"].as_f64().unwrap();
    let t = format!("{}", (hi + lo) / 2.0);
    let r = run_json(&lib, &[f, "--threshold", &t]);
    assert_eq!(ids(&r), vec!["new-diffusion"]);
    assert_eq!(r["counts"]["below_threshold"], 1);
    fails_with(&papermap(&lib, &["match", f, "--add"]), "--threshold");
    let o = papermap(&lib, &["match", f, "--threshold", &t, "--add"]);
    ok(&o);
    let list = ok(&papermap(&lib, &["list"]));
    assert!(list.contains("new-diffusion\t") && !list.contains("new-soil"));
    assert_eq!(list.lines().count(), 13);
    ok(&papermap(&lib, &["check"]));
    // Next time it is a library paper.
    let r = run_json(&lib, &[f]);
    assert_eq!(r["in_library"][0]["library_id"], "new-diffusion");
    assert_eq!(ids(&r), vec!["new-soil"]);
}

#[test]
fn bad_input_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{}\n{{\"title\": \"broken\n{}\n",
            near_diffusion(),
            unrelated()
        ),
    )
    .unwrap();
    let b = bad.to_str().unwrap();
    // Lenient: the bad record is skipped with file:line, the others scored.
    let o = papermap(&lib, &["match", b, "--json"]);
    let out = ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.jsonl:2"), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["counts"]["scored"], 2);
    // --strict: an error naming the file and line.
    fails_with(&papermap(&lib, &["match", b, "--strict"]), "bad.jsonl:2");
    fails_with(
        &papermap(&lib, &["match", "nothing-here.bib"]),
        "nothing-here.bib: no such file",
    );
    fails_with(
        &papermap(&lib, &["match", dir.path().to_str().unwrap()]),
        "is a directory",
    );
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    fails_with(
        &papermap(&lib, &["match", empty.to_str().unwrap()]),
        "no paper could be read",
    );
    let good = write(dir.path(), "good.jsonl", &[near_diffusion()]);
    let g = good.to_str().unwrap();
    fails_with(
        &papermap(&lib, &["match", g, "--top", "0"]),
        "--top must be between",
    );
    fails_with(
        &papermap(&lib, &["match", g, "--threshold", "NaN"]),
        "finite",
    );
    fails_with(
        &papermap(&lib, &["match", g, "--neighbours", "0"]),
        "--neighbours",
    );
    fails_with(
        &papermap(&lib, &["match", g, "--mode", "fancy"]),
        "invalid value 'fancy' for '--mode",
    );
    fails_with(
        &papermap(&dir.path().join("no-lib"), &["match", g]),
        "no library",
    );
}

#[test]
fn json_shape_topics_and_the_html_digest() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let mut hostile = near_bandits();
    // Ingest already drops tags; what is left must still be escaped.
    hostile["title"] = "Bandits <script>alert('x')</script> & \"friends\" a<b".into();
    hostile["url"] = "javascript:alert(1)".into();
    let f = write(dir.path(), "new.jsonl", &[near_diffusion(), hostile]);
    let f = f.to_str().unwrap();
    let r = run_json(&lib, &[f]);
    for key in [
        "settings",
        "counts",
        "engine",
        "topics",
        "results",
        "in_library",
        "notes",
    ] {
        assert!(r.get(key).is_some(), "{key} missing: {r}");
    }
    assert!(r["topics"].as_str().unwrap().contains("no topics computed"));
    let m = &r["results"][0];
    for key in [
        "rank", "paper", "score", "best", "mean", "penalty", "why", "closest", "topic",
    ] {
        assert!(m.get(key).is_some(), "{key} missing: {m}");
    }
    for key in [
        "id", "title", "abstract", "authors", "year", "date", "doi", "arxiv", "source",
    ] {
        assert!(m["paper"].get(key).is_some(), "paper.{key} missing: {m}");
    }
    assert!(
        m["paper"]["source"]
            .as_str()
            .unwrap()
            .contains("new.jsonl:")
    );
    assert!(m["topic"].is_null());
    for key in ["id", "title", "score", "dense", "lexical", "why"] {
        assert!(m["closest"][0].get(key).is_some(), "closest.{key}: {m}");
    }

    // With a stored topics run, each paper gets the topic of its neighbours.
    ok(&papermap(&lib, &["topics", "pin", "3"]));
    let topics: Value = serde_json::from_str(&ok(&papermap(&lib, &["topics", "--json"]))).unwrap();
    let topic_of = |paper: &str| {
        topics["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| {
                t["papers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["id"] == paper)
            })
            .map(|t| t["id"].as_u64().unwrap())
            .unwrap()
    };
    let r = run_json(&lib, &[f]);
    let d = result(&r, "new-diffusion");
    let guess = d["topic"]["id"].as_u64().unwrap();
    assert_eq!(guess, topic_of(d["closest"][0]["id"].as_str().unwrap()));
    assert!(!d["topic"]["name"].as_str().unwrap().is_empty());

    // The digest: self-contained, every field escaped, no javascript: link.
    let html = dir.path().join("digest.html");
    ok(&papermap(
        &lib,
        &["match", f, "--html", html.to_str().unwrap()],
    ));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("alert(&#39;x&#39;) &amp; &quot;friends&quot; a&lt;b"),
        "{page}"
    );
    assert!(!page.contains("<script"), "a script tag reached the page");
    assert!(!page.contains("javascript:"));
    assert!(page.contains("Faster sampling of diffusion models"));
    let md = ok(&papermap(&lib, &["match", f, "--markdown"]));
    assert!(md.starts_with("# What is new"), "{md}");
    assert!(md.contains("a\\<b"), "{md}");
}
