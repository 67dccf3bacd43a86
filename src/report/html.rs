//! A self-contained HTML page (no network, no CDN): the neighbour-graph map
//! with topic names at their centres, zoom and pan, paper cards (authors,
//! year, abstract, arXiv/DOI links, five most related papers), search with
//! clickable hits, topic sizes and keyword weights, topics over time, the
//! topic hierarchy and the curve k was chosen by. The data is embedded as
//! JSON (columnar, so 100,000 papers stay a few tens of MB); every paper
//! field reaches the page through `textContent` or a URL built from a
//! checked identifier, never as HTML.

use super::TopicReport;
use crate::paper::Paper;

const TEMPLATE: &str = include_str!("report.html");

/// Text escaped for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn escape_script(json: &str) -> String {
    // JSON inside <script>: stop "</script>" and HTML comments from ending it.
    // Every `<`, `>` and `&` of the data as a JSON escape: inside JSON they
    // can only occur in strings, where `\u003c` means the same to the
    // script, and no tag, comment or entity of the data reaches the HTML
    // parser at all.
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// At most `n` characters, cut at a word boundary, with an ellipsis.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let cut: String = s.chars().take(n).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |x| x.0);
    format!("{cut}…")
}

pub fn render(r: &TopicReport, papers: &[Paper]) -> String {
    let topic_index: std::collections::HashMap<u32, usize> = r
        .topics
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id, i))
        .collect();
    // Abstracts are clipped so that 100k papers stay a page a browser opens.
    let abs_len = if r.map.len() > 20_000 { 240 } else { 600 };
    // A map point's index is its library row unless papers are left out
    // (not embedded yet): then it is found by id.
    let by_id: std::collections::HashMap<&str, &crate::paper::Paper> =
        if r.map.len() == papers.len() {
            Default::default()
        } else {
            papers.iter().map(|p| (p.id.as_str(), p)).collect()
        };
    let paper = |row: usize, id: &str| {
        papers
            .get(row)
            .filter(|p| p.id == id)
            .or_else(|| by_id.get(id).copied())
    };
    let mut cols: [Vec<serde_json::Value>; 11] = Default::default();
    for (row, p) in r.map.iter().enumerate() {
        let pp = paper(row, &p.id);
        let authors = pp.map_or(String::new(), |p| {
            let mut a = p
                .authors
                .iter()
                .take(4)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if p.authors.len() > 4 {
                a.push_str(" et al.");
            }
            a
        });
        let vals = [
            serde_json::json!(p.x),
            serde_json::json!(p.y),
            serde_json::json!(topic_index.get(&p.topic).copied().unwrap_or(0)),
            serde_json::json!(pp.map_or("", |p| p.title.as_str())),
            serde_json::json!(authors),
            serde_json::json!(pp.and_then(|p| p.year)),
            serde_json::json!(pp.and_then(|p| p.arxiv.clone()).unwrap_or_default()),
            serde_json::json!(pp.and_then(|p| p.doi.clone()).unwrap_or_default()),
            serde_json::json!(pp.map_or(String::new(), |p| clip(&p.abs, abs_len))),
            serde_json::json!(p.related),
            serde_json::json!(p.id),
        ];
        for (c, v) in cols.iter_mut().zip(vals) {
            c.push(v);
        }
    }
    let [x, y, t, title, authors, year, arxiv, doi, abs, rel, id] = cols;
    let data = serde_json::json!({
        "papers": r.library.papers,
        "k": r.params.k,
        "seed": r.params.seed,
        "model": r.library.model,
        "run": r.run,
        "chosenBy": r.params.k_chosen_by,
        "kScores": r.params.k_scores,
        "warnings": r.warnings,
        "hierarchy": r.hierarchy,
        "topics": r.topics.iter().map(|t| serde_json::json!({
            "id": t.id, "name": t.name, "keywords": t.keywords, "weights": t.weights,
            "size": t.size, "change": t.change, "trend": t.trend, "years": t.years,
            "similar": t.similar,
            "reps": t.representatives.iter().map(|m| &m.title).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "p": {"x": x, "y": y, "t": t, "title": title, "authors": authors, "year": year,
              "arxiv": arxiv, "doi": doi, "abs": abs, "rel": rel, "id": id},
    });
    TEMPLATE.replace("/*DATA*/null", &escape_script(&data.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_cannot_be_closed_by_data_and_long_abstracts_are_clipped() {
        let j = escape_script(r#"{"title":"</script><script>alert(1)</script><!--"}"#);
        assert!(!j.contains("</script"), "{j}");
        assert!(!j.contains("<!--"), "{j}");
        assert!(
            !j.contains('<') && !j.contains('>') && !j.contains('&'),
            "{j}"
        );
        let back: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back["title"], "</script><script>alert(1)</script><!--");
        assert_eq!(clip("one two three", 8), "one two…");
        assert_eq!(clip("short", 8), "short");
    }
}
