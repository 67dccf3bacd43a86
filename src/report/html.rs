//! A self-contained HTML page (no network): a 2-D map of the papers coloured
//! by topic with hover titles, the topic list with keywords, and a search box.
//! The data is embedded as JSON; the drawing code is inline.

use super::TopicReport;

const TEMPLATE: &str = include_str!("report.html");

fn escape_script(json: &str) -> String {
    // JSON inside <script>: stop "</script>" and HTML comments from ending it.
    json.replace("</", "<\\/").replace("<!--", "<\\!--")
}

pub fn render(r: &TopicReport) -> String {
    let titles: std::collections::HashMap<&str, &str> = r
        .topics
        .iter()
        .flat_map(|t| &t.papers)
        .map(|m| (m.id.as_str(), m.title.as_str()))
        .collect();
    let data = serde_json::json!({
        "papers": r.library.papers,
        "k": r.params.k,
        "seed": r.params.seed,
        "model": r.library.model,
        "topics": r.topics.iter().map(|t| serde_json::json!({
            "id": t.id, "name": t.name, "keywords": t.keywords, "size": t.size,
            "reps": t.representatives.iter().map(|m| &m.title).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "points": r.map.iter().map(|p| {
            let title = titles.get(p.id.as_str()).copied().unwrap_or("");
            serde_json::json!([p.x, p.y, p.topic, p.id, title])
        }).collect::<Vec<_>>(),
    });
    TEMPLATE.replace("/*DATA*/null", &escape_script(&data.to_string()))
}
