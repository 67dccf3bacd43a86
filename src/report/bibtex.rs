//! Per-topic BibTeX. Papers that came from BibTeX are given back exactly as
//! they were read; others get an entry generated from their fields.

use super::{TopicReport, TopicView};
use crate::paper::Paper;

fn braced(s: &str) -> String {
    // Keep braces balanced whatever the text holds.
    let depth_ok = s.chars().try_fold(0i32, |d, c| match c {
        '{' => Some(d + 1),
        '}' if d > 0 => Some(d - 1),
        '}' => None,
        _ => Some(d),
    }) == Some(0);
    if depth_ok {
        format!("{{{s}}}")
    } else {
        format!("{{{}}}", s.replace(['{', '}'], ""))
    }
}

pub fn entry(p: &Paper) -> String {
    if let Some(o) = p.original.as_ref().filter(|o| o.format == "bibtex") {
        return with_merged_fields(&o.text, p);
    }
    let key: String =
        p.id.chars()
            .map(|c| {
                if c.is_alphanumeric() || "-_:.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
    let kind = if p.arxiv.is_some() && p.venue.is_none() {
        "misc"
    } else {
        "article"
    };
    let mut fields: Vec<(&str, String)> = vec![("title", p.title.clone())];
    if !p.authors.is_empty() {
        fields.push(("author", p.authors.join(" and ")));
    }
    if let Some(y) = p.year {
        fields.push(("year", y.to_string()));
    }
    if let Some(v) = &p.venue {
        fields.push(("journal", v.clone()));
    }
    if let Some(d) = &p.doi {
        fields.push(("doi", d.clone()));
    }
    if let Some(a) = &p.arxiv {
        fields.push(("eprint", a.clone()));
        fields.push(("archiveprefix", "arXiv".into()));
    }
    if let Some(u) = &p.url {
        fields.push(("url", u.clone()));
    }
    if !p.abs.is_empty() {
        fields.push(("abstract", p.abs.clone()));
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("  {k} = {}", braced(v)))
        .collect();
    format!("@{kind}{{{key},\n{}\n}}", body.join(",\n"))
}

/// The original entry as read, plus the fields a merged duplicate brought
/// that it lacks (a paper read from two files keeps the richer entry; the
/// other's DOI or abstract is not lost on export). Unchanged when nothing
/// is missing.
fn with_merged_fields(raw: &str, p: &Paper) -> String {
    let Some(Ok(e)) = crate::ingest::bibtex::entries(raw).into_iter().next() else {
        return raw.to_string();
    };
    let lacks = |names: &[&str]| names.iter().all(|n| e.get(n).is_none());
    let mut add: Vec<(&str, String)> = Vec::new();
    if lacks(&["author"]) && !p.authors.is_empty() {
        add.push(("author", p.authors.join(" and ")));
    }
    if lacks(&["year", "date"])
        && let Some(y) = p.year
    {
        add.push(("year", y.to_string()));
    }
    if lacks(&["journal", "booktitle", "journaltitle", "publisher"])
        && let Some(v) = &p.venue
    {
        add.push(("journal", v.clone()));
    }
    if lacks(&["doi"])
        && let Some(d) = &p.doi
    {
        add.push(("doi", d.clone()));
    }
    if lacks(&["eprint"])
        && let Some(a) = &p.arxiv
    {
        add.push(("eprint", a.clone()));
        if lacks(&["archiveprefix", "eprinttype"]) {
            add.push(("archiveprefix", "arXiv".into()));
        }
    }
    if lacks(&["url"])
        && let Some(u) = &p.url
    {
        add.push(("url", u.clone()));
    }
    if lacks(&["abstract"]) && !p.abs.is_empty() {
        add.push(("abstract", p.abs.clone()));
    }
    let t = raw.trim_end();
    let Some(close) = t.chars().last().filter(|c| *c == '}' || *c == ')') else {
        return raw.to_string();
    };
    if add.is_empty() {
        return raw.to_string();
    }
    let body = t[..t.len() - close.len_utf8()].trim_end();
    let sep = if body.ends_with(',') { "" } else { "," };
    let fields: Vec<String> = add
        .iter()
        .map(|(k, v)| format!("  {k} = {}", braced(v)))
        .collect();
    format!("{body}{sep}\n{}\n{close}", fields.join(",\n"))
}

pub fn render_topic(t: &TopicView, papers: &[Paper]) -> String {
    let mut s = format!(
        "% papermap topic {}: {} ({} papers)\n\n",
        t.id, t.name, t.size
    );
    for m in &t.papers {
        s.push_str(&entry(&papers[m.row]));
        s.push_str("\n\n");
    }
    s
}

pub fn render_all(r: &TopicReport, papers: &[Paper]) -> String {
    r.topics
        .iter()
        .map(|t| render_topic(t, papers))
        .collect::<Vec<_>>()
        .join("")
}
