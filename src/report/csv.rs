//! CSV: one row per paper: paper id, title, year, DOI, arXiv id, authors
//! (`; `-separated), topic id, topic name, cosine distance to the topic
//! centroid.

use super::TopicReport;
use crate::paper::Paper;

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn render(r: &TopicReport, papers: &[Paper]) -> String {
    let mut s =
        String::from("paper_id,title,year,doi,arxiv,authors,topic_id,topic_name,distance\n");
    for t in &r.topics {
        for m in &t.papers {
            let p = papers.get(m.row).filter(|p| p.id == m.id);
            let opt = |f: fn(&Paper) -> Option<&String>| p.and_then(f).map_or("", |v| v.as_str());
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{:.4}\n",
                field(&m.id),
                field(&m.title),
                m.year.map(|y| y.to_string()).unwrap_or_default(),
                field(opt(|p| p.doi.as_ref())),
                field(opt(|p| p.arxiv.as_ref())),
                field(&p.map(|p| p.authors.join("; ")).unwrap_or_default()),
                t.id,
                field(&t.name),
                m.distance
            ));
        }
    }
    s
}
