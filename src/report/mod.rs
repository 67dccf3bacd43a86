//! Topic reports: one view model (`TopicReport`), one renderer per format.
//! Output is a pure function of the library and the parameters (no clocks,
//! no hash-map order, fixed float formatting), so the same input and seed
//! give byte-identical files.

mod bibtex;
mod csv;
mod html;
mod markdown;

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cluster::KScore;
use crate::cluster::stable::Change;
use crate::error::{Error, Result};
use crate::store::manifest::write_atomic;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicReport {
    pub generator: String,
    pub library: LibraryInfo,
    pub params: Params,
    pub topics: Vec<TopicView>,
    /// 2-D map coordinates (PCA) per paper id, for the HTML page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub map: Vec<MapPoint>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicView {
    pub id: u32,
    pub name: String,
    pub keywords: Vec<String>,
    pub size: usize,
    pub change: Change,
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
        Format::Csv => csv::render(r),
        Format::Markdown => markdown::render(r),
        Format::Html => html::render(r),
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
            let p = out.join(format!("topic-{:02}.bib", t.id));
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
