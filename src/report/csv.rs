//! CSV: one row per paper: paper id, title, topic id, topic name, distance.

use super::TopicReport;

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn render(r: &TopicReport) -> String {
    let mut s = String::from("paper_id,title,topic_id,topic_name,distance\n");
    for t in &r.topics {
        for m in &t.papers {
            s.push_str(&format!(
                "{},{},{},{},{:.4}\n",
                field(&m.id),
                field(&m.title),
                t.id,
                field(&t.name),
                m.distance
            ));
        }
    }
    s
}
