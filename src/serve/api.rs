//! The routes: the web page's files, the live topic map, and the JSON API
//! under `/api/` (described in `openapi.json`). Query strings are parsed
//! strictly (unknown or repeated-where-single parameters are errors) into
//! the library's checked option structs; errors are JSON with a status
//! code: 400 bad input, 404 unknown paper or topic, 503 not ready yet.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State as Extract};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::State;
use crate::app::live::{Snapshot, reading_list_bibtex};
use crate::error::Error;
use crate::query::{Mode, RelatedOptions, Resolved, resolve};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const OPENAPI: &str = include_str!("openapi.json");

/// Longest query string accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Longest free-text query, in characters.
pub const MAX_TEXT_CHARS: usize = 4_000;
/// Most papers in a reading list (positive + negative) or an export.
pub const MAX_LIST: usize = 500;

/// The router over shared state (tests call it in-process).
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/map", get(map))
        .route(
            "/api/openapi.json",
            get(|| async { asset(OPENAPI, "application/json") }),
        )
        .route("/api/status", get(status))
        .route("/api/related", get(related))
        .route("/api/search", get(search))
        .route("/api/paper", get(paper))
        .route("/api/topics", get(topics))
        .route("/api/topic", get(topic))
        .route("/api/export.bib", get(export_bib))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(1024))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

fn asset(body: &'static str, mime: &'static str) -> Response {
    ([(header::CONTENT_TYPE, mime)], body).into_response()
}

/// No page may load anything from elsewhere or be framed.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// An API error: status and message, rendered as JSON.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.1, "status": self.0.as_u16()});
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            body["retry_after"] = json!(2);
        }
        (self.0, axum::Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::Query(_) | Error::Invalid(_) | Error::Empty(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::NotReady(_) | Error::Locked { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

type ApiResult = std::result::Result<Response, ApiError>;

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no such page: {}", uri.path()),
    )
}

/// A parsed query string: every key must be one the route knows; keys
/// marked single may appear once.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>, known: &[&str]) -> Result<Params, ApiError> {
        let raw = raw.unwrap_or_default();
        if raw.len() > MAX_QUERY_BYTES {
            return Err(ApiError(
                StatusCode::URI_TOO_LONG,
                format!("query string longer than {MAX_QUERY_BYTES} bytes"),
            ));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&raw)
            .map_err(|e| bad(format!("malformed query string: {e}")))?;
        for (k, _) in &pairs {
            if !known.contains(&k.as_str()) {
                return Err(bad(format!(
                    "unknown parameter '{}' (this route takes: {})",
                    clip(k, 40),
                    known.join(", ")
                )));
            }
        }
        Ok(Params(pairs))
    }

    fn one(&self, key: &str) -> Result<Option<&str>, ApiError> {
        let mut it = self.0.iter().filter(|(k, _)| k == key);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(bad(format!("'{key}' given more than once")));
        }
        Ok(first)
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn parsed<T: std::str::FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, ApiError> {
        self.one(key)?
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| bad(format!("'{key}' must be {what} (got '{}')", clip(v, 40))))
            })
            .transpose()
    }
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Runs CPU-bound work on the compute threads (`workers` of them), in the
/// order requests arrive, on the snapshot current when its turn comes.
async fn compute<T: Send + 'static>(
    state: &Arc<State>,
    f: impl FnOnce(Arc<Snapshot>) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = state.clone();
    state
        .work
        .run(move || f(s.snapshot()))
        .await
        .unwrap_or_else(|| {
            Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "request failed".into(),
            ))
        })
}

fn json_response(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// The related-papers options a query string gives, checked as the CLI's are.
fn related_options(p: &Params, snap: &Snapshot) -> Result<RelatedOptions, ApiError> {
    let mut o = RelatedOptions::default();
    if let Some(k) = p.parsed::<usize>("k", "a whole number from 1 to 10000")? {
        o.k = k;
    }
    if let Some(m) = p.one("mode")? {
        o.mode = m.parse::<Mode>()?;
    }
    if let Some(w) = p.parsed::<f32>("weight", "a number from 0 to 1")? {
        o.weight = w;
    }
    if let Some(d) = p.one("direction")? {
        o.direction = d.parse()?;
    }
    if let Some(x) = p.parsed::<f32>("earlier_lean", "a number from 0 to 1")? {
        o.earlier_lean = x;
    }
    if let Some(x) = p.parsed::<f32>("age_lean", "a number from 0 to 1")? {
        o.age_lean = x;
    }
    if let Some(x) = p.parsed::<f32>("title_lean", "a number from 0 to 1")? {
        o.title_lean = x;
    }
    o.year_from = p.parsed("since", "a year")?;
    o.year_to = p.parsed("until", "a year")?;
    let exclude = p.all("exclude");
    if exclude.len() > MAX_LIST {
        return Err(bad(format!("at most {MAX_LIST} papers in 'exclude'")));
    }
    for id in exclude {
        o.exclude.insert(snap.find(id)?);
    }
    o.check()?;
    Ok(o)
}

const RELATED_PARAMS: &[&str] = &[
    "q",
    "positive",
    "negative",
    "k",
    "mode",
    "weight",
    "direction",
    "earlier_lean",
    "age_lean",
    "title_lean",
    "since",
    "until",
    "exclude",
];

async fn related(Extract(state): Extract<Arc<State>>, RawQuery(raw): RawQuery) -> ApiResult {
    let p = Params::parse(raw, RELATED_PARAMS)?;
    let st = state.clone();
    compute(&state, move |snap| {
        let lib = snap.lib();
        let opts = related_options(&p, &snap)?;
        let positive = p.all("positive");
        let negative = p.all("negative");
        let q = match (p.one("q")?, positive.is_empty()) {
            (Some(_), false) => {
                return Err(bad(
                    "give either 'q' or a reading list ('positive'), not both",
                ));
            }
            (None, true) if !negative.is_empty() => {
                return Err(bad("a reading list needs at least one 'positive' paper"));
            }
            (None, true) => {
                return Err(bad(
                    "give 'q' (a paper id, DOI, arXiv id, title or text) or 'positive' papers",
                ));
            }
            (Some(q), true) => {
                let q = q.trim();
                if q.is_empty() {
                    return Err(bad("'q' is empty"));
                }
                if q.chars().count() > MAX_TEXT_CHARS {
                    return Err(bad(format!(
                        "'q' is longer than {MAX_TEXT_CHARS} characters"
                    )));
                }
                resolve(lib, q)?
            }
            (None, false) => {
                if positive.len() + negative.len() > MAX_LIST {
                    return Err(bad(format!("at most {MAX_LIST} papers in a reading list")));
                }
                let rows = |ids: &[&str]| -> Result<Vec<usize>, ApiError> {
                    ids.iter().map(|id| Ok(snap.find(id)?)).collect()
                };
                Resolved::Set {
                    positive: rows(&positive)?,
                    negative: rows(&negative)?,
                }
            }
        };
        let r = snap.engine().related(&q, &opts, &mut |t| {
            st.embedder.embed_dim(t, lib.dim().max(1))
        })?;
        let mut v = crate::app::answer_json(lib, &q, &r, &opts, snap.engine());
        v["generation"] = json!(snap.stamp.generation);
        Ok(json_response(v))
    })
    .await
}

async fn search(Extract(state): Extract<Arc<State>>, RawQuery(raw): RawQuery) -> ApiResult {
    let p = Params::parse(raw, &["q", "k"])?;
    compute(&state, move |snap| {
        let lib = snap.lib();
        let q = p.one("q")?.unwrap_or("").trim().to_string();
        if q.is_empty() {
            return Err(bad("'q' is empty"));
        }
        if q.chars().count() > MAX_TEXT_CHARS {
            return Err(bad(format!(
                "'q' is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        let k: usize = p.parsed("k", "a whole number from 1 to 100")?.unwrap_or(20);
        if !(1..=100).contains(&k) {
            return Err(bad(format!("'k' must be between 1 and 100 (got {k})")));
        }
        // The paper the text names, if any (an unknown id is no error here:
        // the words are still searched).
        let exact = match resolve(lib, &q) {
            Ok(Resolved::Paper { row, matched_by }) => Some((row, matched_by)),
            _ => None,
        };
        let opts = RelatedOptions {
            k,
            mode: Mode::Lexical,
            ..Default::default()
        };
        let hits =
            snap.engine()
                .related(&Resolved::Text { text: q.clone() }, &opts, &mut |_| {
                    Ok(Vec::new())
                })?;
        let brief = |row: usize| {
            let p = &lib.papers()[row];
            json!({"id": p.id, "title": p.title, "year": p.year,
                   "authors": p.authors.iter().take(3).collect::<Vec<_>>(),
                   "more_authors": p.authors.len().saturating_sub(3)})
        };
        let mut seen = HashSet::new();
        let mut results = Vec::new();
        if let Some((row, _)) = exact {
            seen.insert(row);
            results.push(brief(row));
        }
        for h in hits {
            if seen.insert(h.row) {
                results.push(brief(h.row));
            }
        }
        results.truncate(k);
        Ok(json_response(json!({
            "q": q,
            "exact": exact.map(|(row, by)| json!({"id": lib.papers()[row].id, "matched_by": by})),
            "results": results,
        })))
    })
    .await
}

async fn paper(Extract(state): Extract<Arc<State>>, RawQuery(raw): RawQuery) -> ApiResult {
    let p = Params::parse(raw, &["id", "k"])?;
    let st = state.clone();
    compute(&state, move |snap| {
        let id = p.one("id")?.map(str::trim).filter(|s| !s.is_empty());
        let id = id.ok_or_else(|| bad("'id' is required"))?;
        let k: usize = p.parsed("k", "a whole number from 1 to 100")?.unwrap_or(10);
        if !(1..=100).contains(&k) {
            return Err(bad(format!("'k' must be between 1 and 100 (got {k})")));
        }
        let row = snap.find(id)?;
        let mut v = snap.paper_page(row, k, &st.embedder)?;
        v["generation"] = json!(snap.stamp.generation);
        Ok(json_response(v))
    })
    .await
}

async fn status(Extract(state): Extract<Arc<State>>, RawQuery(raw): RawQuery) -> ApiResult {
    Params::parse(raw, &[])?;
    let snap = state.snapshot();
    let lib = snap.lib();
    let topics = match snap.topics() {
        None => json!("not computed yet"),
        Some(Ok(t)) => json!(t.report.topics.len()),
        Some(Err(e)) => json!(e),
    };
    Ok(json_response(json!({
        "library": lib.root().display().to_string(),
        "papers": lib.len(),
        "model": lib.manifest().model.as_ref().map(|m| m.id.clone()),
        "generation": snap.stamp.generation,
        "engine": snap.engine().searcher.engine(),
        "not_embedded": snap.engine().not_embedded(),
        "topics": topics,
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

/// The current snapshot's topics, starting their computation if needed.
fn ready_topics(
    state: &Arc<State>,
) -> Result<(Arc<Snapshot>, Arc<crate::app::live::Topics>), ApiError> {
    let snap = state.snapshot();
    match snap.topics() {
        Some(Ok(t)) => Ok((snap, t)),
        Some(Err(e)) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, e)),
        None => {
            state.start_topics();
            Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "topics are being computed for this library state; try again in a few seconds"
                    .into(),
            ))
        }
    }
}

async fn topics(Extract(state): Extract<Arc<State>>, RawQuery(raw): RawQuery) -> ApiResult {
    Params::parse(raw, &[])?;
    let (_, t) = ready_topics(&state)?;
    let mut v = serde_json::to_value(&t.report)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // The list view: members and the map are on the topic pages and /map.
    if let Some(o) = v.as_object_mut() {
        o.remove("map");
        if let Some(ts) = o.get_mut("topics").and_then(Value::as_array_mut) {
            for t in ts {
                if let Some(t) = t.as_object_mut() {
                    t.remove("papers");
                }
            }
        }
    }
    Ok(json_response(v))
}

async fn topic(Extract(state): Extract<Arc<State>>, RawQuery(raw): RawQuery) -> ApiResult {
    let p = Params::parse(raw, &["id", "offset", "limit"])?;
    let id: u32 = p
        .parsed("id", "a topic id (a whole number)")?
        .ok_or_else(|| bad("'id' is required"))?;
    let offset: usize = p.parsed("offset", "a whole number")?.unwrap_or(0);
    let limit: usize = p
        .parsed("limit", "a whole number from 1 to 1000")?
        .unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad(format!(
            "'limit' must be between 1 and 1000 (got {limit})"
        )));
    }
    let (_, t) = ready_topics(&state)?;
    let view = t
        .report
        .topics
        .iter()
        .find(|x| x.id == id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no topic {id}")))?;
    let mut v = serde_json::to_value(view)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let total = view.papers.len();
    v["papers"] = json!(
        view.papers
            .iter()
            .skip(offset)
            .take(limit)
            .collect::<Vec<_>>()
    );
    v["total_papers"] = json!(total);
    v["offset"] = json!(offset);
    v["similar"] = json!(
        view.similar
            .iter()
            .map(|(o, s)| json!({"id": o, "name": t.report.topic_name(*o), "similarity": s}))
            .collect::<Vec<_>>()
    );
    Ok(json_response(v))
}

async fn export_bib(Extract(state): Extract<Arc<State>>, RawQuery(raw): RawQuery) -> ApiResult {
    let p = Params::parse(raw, &["id"])?;
    compute(&state, move |snap| {
        let ids = p.all("id");
        if ids.is_empty() {
            return Err(bad("give the papers to export as 'id' parameters"));
        }
        if ids.len() > MAX_LIST {
            return Err(bad(format!("at most {MAX_LIST} papers per export")));
        }
        let rows = ids
            .iter()
            .map(|id| snap.find(id))
            .collect::<crate::Result<Vec<_>>>()?;
        Ok((
            [
                (header::CONTENT_TYPE, "application/x-bibtex; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"reading-list.bib\"",
                ),
            ],
            reading_list_bibtex(snap.lib(), &rows),
        )
            .into_response())
    })
    .await
}

/// The report's HTML map of the current topics, live.
async fn map(Extract(state): Extract<Arc<State>>, RawQuery(raw): RawQuery) -> Response {
    if let Err(e) = Params::parse(raw, &[]) {
        return e.into_response();
    }
    match ready_topics(&state) {
        Ok((_, t)) => Html(crate::report::html::render(&t.report, t.lib.papers())).into_response(),
        Err(ApiError(code, msg)) => (
            code,
            [(header::REFRESH, "3")],
            Html(format!(
                "<!doctype html><meta charset=utf-8><title>papermap map</title><p>{}</p><p>This page reloads by itself.</p>",
                crate::report::html::escape(&msg)
            )),
        )
            .into_response(),
    }
}
