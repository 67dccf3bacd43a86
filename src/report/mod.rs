//! Topic reports: one view model (`TopicReport`), one renderer per format.
//! Output is a pure function of the library and the parameters (no clocks,
//! no hash-map order, fixed float formatting), so the same input and seed
//! give byte-identical files.

pub mod bibtex;
mod csv;
pub mod html;
mod markdown;

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cluster::KScore;
use crate::cluster::stable::Change;

/// A topic's change and trend for text output ("New, growing"), after
/// `open` and before `close`; empty when it has neither (a first run).
pub fn status_note(change: Option<Change>, trend: Option<&str>, open: &str, close: &str) -> String {
    let parts: Vec<String> = change
        .map(|c| format!("{c:?}"))
        .into_iter()
        .chain(trend.map(str::to_string))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{open}{}{close}", parts.join(", "))
    }
}
use crate::error::{Error, Result};
use crate::store::manifest::write_atomic;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicReport {
    pub generator: String,
    /// "main" (the stored report: ids, names and merges kept across runs)
    /// or "exploratory" (another k or seed; nothing stored).
    pub run: String,
    pub library: LibraryInfo,
    pub params: Params,
    /// Things to tell the reader (e.g. an automatic k at the edge of the
    /// range tried).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Papers of the library left out because they are not embedded yet
    /// (they are in no topic).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_embedded: usize,
    /// What this run did to the stored clustering (None: reused as it
    /// was). Not serialised: the report is a function of the library and
    /// the parameters, while this depends on what was stored before.
    #[serde(skip)]
    pub update: Option<TopicUpdate>,
    pub topics: Vec<TopicView>,
    /// Topic hierarchy: agglomerative joins of topic centroids, most
    /// similar first (leaves `tID`, inner nodes `nN`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hierarchy: Vec<Join>,
    /// 2-D map coordinates (neighbour-graph layout) per paper, for the HTML page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub map: Vec<MapPoint>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// How a run brought the clustering up to date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TopicUpdate {
    /// Papers added (or embedded) since joined their nearest topic; the
    /// topics kept their members, ids and names.
    /// `distance_ratio`: the new papers' mean distance to their topic over
    /// the clustered papers' (what the drift rule compares).
    Extended {
        papers: usize,
        topics: usize,
        #[serde(default)]
        distance_ratio: f32,
    },
    /// A full clustering of `papers` papers, and why; `first` when there
    /// was no clustering before.
    Clustered {
        papers: usize,
        reason: String,
        #[serde(default)]
        first: bool,
    },
}

impl TopicUpdate {
    /// One line for the user ("topics extended: 1,000 new papers joined 17
    /// topics").
    pub fn summary(&self) -> String {
        match self {
            TopicUpdate::Extended {
                papers,
                topics,
                distance_ratio,
            } => format!(
                "topics extended: {} new paper{} joined {} topic{} (mean distance to their topic {distance_ratio:.2}x the clustered papers'; a full re-clustering: `topics --recluster`)",
                thousands(*papers),
                if *papers == 1 { "" } else { "s" },
                thousands(*topics),
                if *topics == 1 { "" } else { "s" }
            ),
            TopicUpdate::Clustered {
                papers,
                reason,
                first,
            } => format!(
                "{}clustered: {} papers ({reason})",
                if *first { "" } else { "re-" },
                thousands(*papers)
            ),
        }
    }
}

/// `1234567` as "1,234,567".
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One step of the topic hierarchy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Join {
    pub node: String,
    pub a: String,
    pub b: String,
    /// Cosine of the two nodes' centroids.
    pub similarity: f32,
    pub size: usize,
}

/// The years a library spans, for per-topic counts and trends.
#[derive(Debug, Clone)]
pub struct YearSpan {
    /// Papers per year over the library, ascending.
    pub all: Vec<(i32, usize)>,
}

impl YearSpan {
    pub fn of(papers: &[crate::paper::Paper]) -> YearSpan {
        YearSpan {
            all: count_years(papers.iter().map(|p| p.year)),
        }
    }

    pub fn counts(&self, years: impl Iterator<Item = Option<i32>>) -> Vec<(i32, usize)> {
        count_years(years)
    }

    /// "growing" / "fading" when the topic's share of the papers of the last
    /// two years is at least 1.25x / at most 0.8x its share before them (at
    /// least 10 dated papers, three years in the library, each period at
    /// least 15% of it); else None.
    pub fn trend(&self, topic: &[(i32, usize)]) -> Option<String> {
        if self.all.len() < 3 || topic.iter().map(|x| x.1).sum::<usize>() < 10 {
            return None;
        }
        let cut = self.all[self.all.len() - 2].0;
        let split = |v: &[(i32, usize)]| {
            let recent: usize = v.iter().filter(|x| x.0 >= cut).map(|x| x.1).sum();
            let early: usize = v.iter().filter(|x| x.0 < cut).map(|x| x.1).sum();
            (recent as f64, early as f64)
        };
        let (tr, te) = split(topic);
        let (ar, ae) = split(&self.all);
        // Both periods must hold a real share of the library, or one
        // sparse year decides every topic's trend.
        if ar < 0.15 * (ar + ae) || ae < 0.15 * (ar + ae) {
            return None;
        }
        let ratio = ((tr + 1.0) / ar) / ((te + 1.0) / ae);
        if ratio >= 1.25 {
            Some("growing".into())
        } else if ratio <= 0.8 {
            Some("fading".into())
        } else {
            None
        }
    }
}

fn count_years(years: impl Iterator<Item = Option<i32>>) -> Vec<(i32, usize)> {
    let mut m = std::collections::BTreeMap::new();
    for y in years.flatten() {
        *m.entry(y).or_insert(0usize) += 1;
    }
    m.into_iter().collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibraryInfo {
    pub papers: usize,
    pub model: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub k: usize,
    pub seed: u64,
    /// "user" or "silhouette".
    pub k_chosen_by: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub k_scores: Vec<KScore>,
    pub inertia: f64,
    /// k was pinned with `topics pin`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicView {
    pub id: u32,
    pub name: String,
    /// The name was given with `topics rename`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub named_by_user: bool,
    pub keywords: Vec<String>,
    /// c-TF-IDF weight of each keyword.
    #[serde(default)]
    pub weights: Vec<f32>,
    pub size: usize,
    /// How the topic relates to the stored report before this one; none
    /// when there is no report before it (the first run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// Papers per year.
    #[serde(default)]
    pub years: Vec<(i32, usize)>,
    /// "growing" or "fading" (see `YearSpan::trend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<String>,
    /// Closest papers to the centroid, best first.
    pub representatives: Vec<Member>,
    /// Every member, closest first.
    pub papers: Vec<Member>,
    /// Most similar other topics: (topic id, cosine of centroids).
    pub similar: Vec<(u32, f32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    /// Cosine distance to the topic centroid.
    pub distance: f32,
    /// Index of the paper in the library (not serialised).
    #[serde(skip)]
    pub row: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapPoint {
    pub id: String,
    pub topic: u32,
    pub x: f32,
    pub y: f32,
    /// The most related papers, as indices into the report's `map` (the
    /// same as library rows when every paper is in the topics).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<u32>,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Markdown,
    Html,
    Bibtex,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "json" => Format::Json,
            "csv" => Format::Csv,
            "md" | "markdown" => Format::Markdown,
            "html" => Format::Html,
            "bib" | "bibtex" => Format::Bibtex,
            o => {
                return Err(Error::Invalid(format!(
                    "unknown report format '{o}' (json, csv, md, html, bibtex)"
                )));
            }
        })
    }
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Markdown => "md",
            Format::Html => "html",
            Format::Bibtex => "bib",
        }
    }
}

/// The name of topic `id` in this report ("topic 7" if it has none).
impl TopicReport {
    pub fn topic_name(&self, id: u32) -> String {
        self.topics
            .iter()
            .find(|t| t.id == id)
            .map_or_else(|| format!("topic {id}"), |t| t.name.clone())
    }
}

/// Rounds for stable, readable output.
pub(crate) fn round4(x: f32) -> f32 {
    (x * 10_000.0).round() / 10_000.0
}

/// Renders a report to text. BibTeX renders one file per topic, so it goes
/// through `write` instead.
pub fn render(r: &TopicReport, format: Format, papers: &[crate::paper::Paper]) -> Result<String> {
    Ok(match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(r).expect("report serialises");
            s.push('\n');
            s
        }
        Format::Csv => csv::render(r, papers),
        Format::Markdown => markdown::render(r),
        Format::Html => html::render(r, papers),
        Format::Bibtex => bibtex::render_all(r, papers),
    })
}

/// Writes a report. For BibTeX, `out` is a directory that receives one
/// `topic-<id>.bib` per topic; for the other formats it is a file.
pub fn write(
    r: &TopicReport,
    format: Format,
    papers: &[crate::paper::Paper],
    out: &Path,
) -> Result<Vec<std::path::PathBuf>> {
    if format == Format::Bibtex {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let mut written = Vec::new();
        for t in &r.topics {
            let p = out.join(bibtex::file_name(t));
            write_atomic(&p, bibtex::render_topic(t, papers).as_bytes())?;
            written.push(p);
        }
        return Ok(written);
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    write_atomic(out, render(r, format, papers)?.as_bytes())?;
    Ok(vec![out.to_path_buf()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trends_compare_recent_and_earlier_shares() {
        let span = YearSpan {
            all: vec![(2020, 100), (2021, 100), (2022, 100), (2023, 100)],
        };
        assert_eq!(
            span.trend(&[(2020, 2), (2021, 2), (2022, 10), (2023, 10)])
                .as_deref(),
            Some("growing")
        );
        assert_eq!(
            span.trend(&[(2020, 10), (2021, 10), (2022, 2), (2023, 2)])
                .as_deref(),
            Some("fading")
        );
        assert_eq!(
            span.trend(&[(2020, 5), (2021, 5), (2022, 5), (2023, 5)]),
            None
        );
        // A sparse early period decides nothing.
        let sparse = YearSpan {
            all: vec![(2020, 3), (2022, 500), (2023, 500)],
        };
        assert_eq!(sparse.trend(&[(2022, 10), (2023, 10)]), None);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
