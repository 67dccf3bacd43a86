//! `papermap serve`: the router called in-process (no socket) on a library
//! built by the real binary, the real binary answering on a port, and a
//! property test that no query string makes the API fail with a 5xx.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use papermap::app::EmbedderKind;
use papermap::serve::{ServeOptions, State, router};
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn papermap(lib: &Path, args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_papermap"))
        .arg("--library")
        .arg(lib)
        .args(["--embedder", "hash"])
        .args(args)
        .output()
        .expect("runs papermap");
    assert!(
        o.status.success(),
        "papermap {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A BibTeX file whose fields try to inject HTML (as entities: ingest
/// strips literal tags, decodes entities, so these reach the store as
/// `<script>` text) and a script URL.
const HOSTILE_BIB: &str = r#"@article{evil2021,
  title = {Attention &lt;script&gt;alert(1)&lt;/script&gt; and KV cache quantization},
  author = {Mallory, Eve and Doe, Jane},
  abstract = {We quantize the key value cache of large language models &lt;img src=x onerror=alert(2)&gt; with mixed precision and importance aware eviction.},
  year = {2021},
  url = {javascript:alert(3)},
}
"#;

fn library(dir: &Path) -> PathBuf {
    let lib = dir.join("lib");
    papermap(&lib, &["add", fixture("mini.jsonl").to_str().unwrap()]);
    let bib = dir.join("hostile.bib");
    std::fs::write(&bib, HOSTILE_BIB).unwrap();
    papermap(&lib, &["add", bib.to_str().unwrap()]);
    lib
}

fn options(lib: &Path) -> ServeOptions {
    ServeOptions {
        root: lib.to_path_buf(),
        addr: "127.0.0.1:0".parse().unwrap(),
        search: Default::default(),
        ef: 64,
        embedder: EmbedderKind::Hash,
        poll: Duration::from_millis(100),
        workers: 2,
    }
}

struct Server {
    state: Arc<State>,
    rt: tokio::runtime::Runtime,
}

impl Server {
    fn new(lib: &Path) -> Server {
        Server {
            state: Arc::new(State::open(options(lib)).unwrap()),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn request(&self, method: &str, uri: &str) -> (StatusCode, String, String) {
        let app = router(self.state.clone());
        self.rt.block_on(async move {
            let r = app
                .oneshot(
                    Request::builder()
                        .method(method)
                        .uri(uri)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = r.status();
            let ctype = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let body = r.into_body().collect().await.unwrap().to_bytes();
            (status, ctype, String::from_utf8_lossy(&body).into_owned())
        })
    }

    fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (s, ctype, body) = self.request("GET", uri);
        assert!(
            ctype.starts_with("application/json"),
            "{uri}: {ctype}: {body}"
        );
        (s, serde_json::from_str(&body).unwrap())
    }

    fn ok(&self, uri: &str) -> Value {
        let (s, v) = self.get(uri);
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
        v
    }

    /// Waits out the 503 of topics being computed.
    fn ok_eventually(&self, uri: &str) -> Value {
        for _ in 0..600 {
            let (s, v) = self.get(uri);
            if s != StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(s, StatusCode::OK, "{uri}: {v}");
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{uri} stayed unavailable");
    }
}

fn ids(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn api_answers_related_paper_search_and_reading_lists() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let s = Server::new(&lib);

    let st = s.ok("/api/status");
    assert_eq!(st["papers"], 13);
    assert_eq!(st["not_embedded"], 0);

    // The same answer as the CLI's `related --json`.
    let v = s.ok("/api/related?q=quant-1&k=5");
    assert_eq!(v["query"]["paper"]["id"], "quant-1");
    let cli: Value = serde_json::from_slice(
        &papermap(&lib, &["related", "quant-1", "-k", "5", "--json"]).stdout,
    )
    .unwrap();
    assert_eq!(ids(&v), ids(&cli));
    assert_eq!(ids(&v).len(), 5);
    assert!(!ids(&v).contains(&"quant-1".to_string()));

    // Free text, filters and modes go through the same checked options.
    let v = s.ok("/api/related?q=mixed%20precision%20cache%20quantization&mode=lexical&k=3");
    assert_eq!(v["query"]["kind"], "text");
    assert_eq!(v["mode"], "lexical");
    assert!(ids(&v).len() <= 3 && !ids(&v).is_empty());

    // A reading list: more like these, never the listed papers themselves.
    let v = s.ok("/api/related?positive=quant-1&positive=evil2021&k=20");
    let got = ids(&v);
    assert!(!got.contains(&"quant-1".to_string()) && !got.contains(&"evil2021".to_string()));
    assert_eq!(got.len(), 11);

    // Search by words: the paper the words name comes first.
    let v = s.ok("/api/search?q=quant-1");
    assert_eq!(v["exact"]["id"], "quant-1");
    assert_eq!(v["results"][0]["id"], "quant-1");

    // A paper page: fields, related, and prior/later only with a date.
    let p = s.ok("/api/paper?id=evil2021&k=3");
    assert_eq!(p["authors"][0], "Mallory, Eve");
    assert_eq!(p["related"].as_array().unwrap().len(), 3);
    assert!(p["prior"].is_array() && p["later"].is_array());
    // The `javascript:` URL is not offered as a link.
    assert!(p["links"].get("url").is_none(), "{}", p["links"]);

    // The reading list as BibTeX.
    let (status, ctype, bib) = s.request("GET", "/api/export.bib?id=quant-1&id=evil2021");
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("application/x-bibtex"));
    assert_eq!(bib.matches('@').count(), 2, "{bib}");
    assert!(bib.contains("evil2021"));
}

#[test]
fn bad_requests_are_clear_4xx_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let s = Server::new(&lib);
    for (uri, code, needle) in [
        ("/api/related", 400, "give 'q'"),
        (
            "/api/related?q=quant-1&k=0",
            400,
            "k must be between 1 and 10000",
        ),
        (
            "/api/related?q=quant-1&k=99999999999999999999999",
            400,
            "'k' must be",
        ),
        ("/api/related?q=quant-1&k=1000000", 400, "k must be between"),
        (
            "/api/related?q=quant-1&weight=2",
            400,
            "weight must be between 0 and 1",
        ),
        (
            "/api/related?q=quant-1&weight=NaN",
            400,
            "weight must be between 0 and 1",
        ),
        ("/api/related?q=quant-1&mode=magic", 400, "unknown mode"),
        (
            "/api/related?q=quant-1&direction=sideways",
            400,
            "unknown direction",
        ),
        ("/api/related?q=quant-1&since=2020&until=2010", 400, "after"),
        ("/api/related?q=quant-1&k=1&k=2", 400, "more than once"),
        (
            "/api/related?q=quant-1&colour=red",
            400,
            "unknown parameter 'colour'",
        ),
        ("/api/related?q=quant-1&positive=quant-1", 400, "not both"),
        (
            "/api/related?negative=quant-1",
            400,
            "at least one 'positive'",
        ),
        (
            "/api/related?q=arXiv:2401.99999",
            404,
            "no paper with arXiv id",
        ),
        (
            "/api/related?q=mixed%20precision&direction=prior",
            400,
            "need a paper",
        ),
        ("/api/related?positive=nope-404", 404, "no paper 'nope-404'"),
        ("/api/paper", 400, "'id' is required"),
        ("/api/paper?id=nope-404", 404, "no paper 'nope-404'"),
        ("/api/search?q=", 400, "'q' is empty"),
        ("/api/topic?id=abc", 400, "'id' must be"),
        ("/api/export.bib", 400, "give the papers"),
        ("/api/nothing", 404, "no such page"),
        ("/assets/../Cargo.toml", 404, "no such page"),
        ("/assets/%2e%2e/%2e%2e/Cargo.toml", 404, "no such page"),
        ("/%2e%2e/%2e%2e/etc/passwd", 404, "no such page"),
    ] {
        let (status, v) = s.get(uri);
        assert_eq!(status.as_u16(), code, "{uri}: {v}");
        assert_eq!(v["status"], code, "{uri}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{uri}: {msg}");
    }
    let long = format!("/api/related?q={}", "a".repeat(20_000));
    assert_eq!(s.get(&long).0, StatusCode::URI_TOO_LONG);
    let text = format!("/api/related?q={}", "word%20".repeat(2_000));
    let (status, v) = s.get(&text);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // Read-only: nothing but GET.
    for m in ["POST", "PUT", "DELETE"] {
        let (status, _, _) = s.request(m, "/api/related?q=quant-1");
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{m}");
    }
}

#[test]
fn pages_escape_paper_fields_and_load_nothing_from_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let s = Server::new(&lib);
    let (status, ctype, html) = s.request("GET", "/");
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/html"));
    for asset in ["/assets/app.js", "/assets/app.css"] {
        assert!(html.contains(asset));
        assert_eq!(s.request("GET", asset).0, StatusCode::OK);
    }
    // No page refers to another host.
    let js = s.request("GET", "/assets/app.js").2;
    for text in [&html, &js] {
        assert!(!text.contains("src=\"http") && !text.contains("href=\"http"));
    }
    // The live map escapes the hostile title: no tag survives as markup.
    let _ = s.ok_eventually("/api/topics");
    let (status, ctype, map) = s.request("GET", "/map");
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/html"));
    assert!(map.contains("evil2021"));
    assert!(
        !map.contains("<script>alert(1)"),
        "raw script tag in the map"
    );
    assert!(!map.contains("<img src=x"), "raw img tag in the map");
    let (_, headers_ok, _) = s.request("GET", "/map");
    assert!(!headers_ok.is_empty());
}

#[test]
fn topics_are_computed_in_the_background_then_served() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let s = Server::new(&lib);
    let (status, v) = s.get("/api/topics");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["retry_after"], 2);
    let t = s.ok_eventually("/api/topics");
    let topics = t["topics"].as_array().unwrap();
    assert!(!topics.is_empty());
    assert!(t.get("map").is_none());
    assert!(topics.iter().all(|x| x.get("papers").is_none()));
    // A topic page lists its members; all topics together hold every paper.
    let mut members = 0;
    for x in topics {
        let id = x["id"].as_u64().unwrap();
        let page = s.ok(&format!("/api/topic?id={id}&limit=1000"));
        assert_eq!(page["total_papers"], x["size"]);
        members += page["papers"].as_array().unwrap().len();
    }
    assert_eq!(members, 13);
    let (status, _) = s.get("/api/topic?id=999");
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The paper page now names its topic.
    let p = s.ok("/api/paper?id=quant-1");
    assert!(p["topic"]["name"].is_string(), "{}", p["topic"]);
}

/// Issue 16: a paper not embedded yet (`add --no-embed`) is in no topic;
/// the server's topics answer without it and count it.
#[test]
fn topics_leave_out_papers_not_embedded_yet() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let more = dir.path().join("more.bib");
    std::fs::write(
        &more,
        "@article{late2024, title={Speculative decoding with a draft cache}, abstract={Draft models propose tokens that a large model verifies.}, year={2024}}\n",
    )
    .unwrap();
    papermap(&lib, &["add", "--no-embed", more.to_str().unwrap()]);
    let s = Server::new(&lib);
    let t = s.ok_eventually("/api/topics");
    assert_eq!(t["not_embedded"], 1, "{t}");
    let mut members = 0;
    for x in t["topics"].as_array().unwrap() {
        let id = x["id"].as_u64().unwrap();
        let page = s.ok(&format!("/api/topic?id={id}&limit=1000"));
        for p in page["papers"].as_array().unwrap() {
            assert_ne!(p["id"], "late2024");
            members += 1;
        }
    }
    assert_eq!(members, 13);
    // Its page answers, with no topic.
    let p = s.ok("/api/paper?id=late2024");
    assert!(p.get("topic").is_none_or(Value::is_null), "{}", p["topic"]);
}

#[test]
fn a_library_changed_by_another_process_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let s = Server::new(&lib);
    let before = s.ok("/api/status")["generation"].as_u64().unwrap();
    assert!(!s.state.refresh().unwrap(), "nothing changed yet");
    let more = dir.path().join("more.bib");
    std::fs::write(
        &more,
        "@article{late2024, title={Speculative decoding with a draft cache}, abstract={Draft models propose tokens that a large model verifies.}, year={2024}}\n",
    )
    .unwrap();
    papermap(&lib, &["add", more.to_str().unwrap()]);
    // Until the check, the old state answers; after it, the new one.
    assert_eq!(s.get("/api/paper?id=late2024").0, StatusCode::NOT_FOUND);
    assert!(s.state.refresh().unwrap());
    let st = s.ok("/api/status");
    assert!(st["generation"].as_u64().unwrap() > before);
    assert_eq!(st["papers"], 14);
    s.ok("/api/paper?id=late2024");
}

#[test]
fn the_binary_serves_on_loopback_and_says_where() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_papermap"))
        .arg("--library")
        .arg(&lib)
        .args(["--embedder", "hash", "serve", "--port", "0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in: {line}"))
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "GET /api/related?q=quant-1&k=2 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 2);
}

#[test]
fn the_openapi_file_describes_every_api_route() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let s = Server::new(&lib);
    let doc = s.ok("/api/openapi.json");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    // Every documented route exists (not a 404), and every parameter it
    // documents is accepted (not "unknown parameter").
    for p in &paths {
        let (status, _, body) = s.request("GET", p);
        assert_ne!(status, StatusCode::NOT_FOUND, "{p}: {body}");
        for param in doc["paths"][p.as_str()]["get"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = param["name"].as_str().unwrap();
            let (_, _, body) = s.request("GET", &format!("{p}?{name}=1"));
            assert!(!body.contains("unknown parameter"), "{p}?{name}: {body}");
        }
    }
    // Every API route the server has is documented.
    let src = include_str!("../src/serve/api.rs");
    for route in src.split(".route(\"").skip(1) {
        let route = route.split('"').next().unwrap();
        if route.starts_with("/api/") {
            assert!(
                paths.iter().any(|p| p.as_str() == route),
                "{route} undocumented"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    /// No query string makes the API fail with a 5xx or a non-JSON answer.
    #[test]
    fn no_query_string_breaks_the_api(
        route in prop::sample::select(vec!["related", "search", "paper", "topic", "export.bib", "status"]),
        pairs in prop::collection::vec(
            (prop::sample::select(vec!["q", "k", "mode", "weight", "direction", "since", "until",
                "positive", "negative", "exclude", "id", "offset", "limit", "earlier_lean", "age_lean", "x"]),
             prop::string::string_regex("(quant-1|evil2021|-?[0-9]{1,25}|[0-9.eE+-]{1,12}|NaN|inf|prior|later|dense|hybrid|[ -~]{0,12}|%[0-9A-Fa-f]{2}|%..|\u{e9}\u{1F600})").unwrap()),
            0..5),
    ) {
        let s = fuzz_server();
        let qs: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(' ', "+").replace('#', "%23").replace('&', "%26")))
            .collect();
        let uri = format!("/api/{route}?{}", qs.join("&"));
        if let Ok(uri) = uri.parse::<axum::http::Uri>() {
            let (status, ctype, body) = s.request("GET", &uri.to_string());
            prop_assert!(status.as_u16() < 500 || status == StatusCode::SERVICE_UNAVAILABLE && route == "topic",
                "{uri}: {status} {body}");
            if ctype.starts_with("application/json") {
                prop_assert!(serde_json::from_str::<Value>(&body).is_ok(), "{uri}: {body}");
            } else {
                prop_assert!(route == "export.bib" && status == StatusCode::OK, "{uri}: {ctype}");
            }
        }
    }
}

/// One server (and library) for every fuzz case.
fn fuzz_server() -> &'static Server {
    static SERVER: std::sync::OnceLock<(tempfile::TempDir, Server)> = std::sync::OnceLock::new();
    let (_, s) = SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let lib = library(dir.path());
        let s = Server::new(&lib);
        (dir, s)
    });
    s
}

#[test]
fn show_prints_the_same_paper_page_as_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let s = Server::new(&lib);
    let out = papermap(&lib, &["show", "evil2021", "-k", "3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("Attention <script>alert(1)</script> and KV cache"),
        "{text}"
    );
    assert!(text.contains("Mallory, Eve, Doe, Jane") && text.contains("2021 · evil2021"));
    assert!(text.contains("Related:") && text.contains("Earlier work (--prior):"));
    assert!(!text.contains("javascript:"), "{text}");
    let json: Value =
        serde_json::from_slice(&papermap(&lib, &["show", "evil2021", "-k", "3", "--json"]).stdout)
            .unwrap();
    let api = s.ok("/api/paper?id=evil2021&k=3");
    for key in ["related", "prior", "later"] {
        assert_eq!(json[key], api[key], "{key}");
    }
    let undated =
        String::from_utf8_lossy(&papermap(&lib, &["show", "quant-1"]).stdout).into_owned();
    assert!(
        undated.contains("Earlier work (--prior): the paper has no date"),
        "{undated}"
    );
}
