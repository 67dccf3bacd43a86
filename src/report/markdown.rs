//! Markdown: an overview table, then a section per topic with keywords,
//! representative papers and the full member list.

use std::fmt::Write;

use super::TopicReport;

fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render(r: &TopicReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Topics in {} papers\n", r.library.papers);
    let _ = writeln!(
        s,
        "{} topics by k-means (seed {}, k chosen by {}), model {}; {} run.\n",
        r.params.k, r.params.seed, r.params.k_chosen_by, r.library.model, r.run
    );
    for w in &r.warnings {
        let _ = writeln!(s, "> **Note:** {}\n", esc(w));
    }
    let _ = writeln!(s, "| id | topic | papers | change | trend | keywords |");
    let _ = writeln!(s, "|---:|---|---:|---|---|---|");
    for t in &r.topics {
        let _ = writeln!(
            s,
            "| {} | [{}](#topic-{}) | {} | {} | {} | {} |",
            t.id,
            esc(&t.name),
            t.id,
            t.size,
            t.change.map(|c| format!("{c:?}")).unwrap_or_default(),
            t.trend.as_deref().unwrap_or(""),
            esc(&t.keywords.join(", "))
        );
    }
    if !r.params.k_scores.is_empty() {
        let _ = writeln!(s, "\n## Choice of k\n");
        let _ = writeln!(s, "| k | stability (ARI) | silhouette |");
        let _ = writeln!(s, "|---:|---:|---:|");
        for k in &r.params.k_scores {
            let mark = if k.k == r.params.k { " **chosen**" } else { "" };
            let _ = writeln!(
                s,
                "| {}{} | {:.3} | {:.3} |",
                k.k, mark, k.stability, k.silhouette
            );
        }
    }
    if !r.hierarchy.is_empty() {
        let _ = writeln!(s, "\n## Topic hierarchy\n");
        let _ = writeln!(
            s,
            "Most similar topics are joined first (cosine of centroids).\n"
        );
        let label = |n: &str| match n.strip_prefix('t').and_then(|x| x.parse::<u32>().ok()) {
            Some(id) => format!("{} ({id})", esc(&r.topic_name(id))),
            None => format!("group {}", n.trim_start_matches('n')),
        };
        for j in &r.hierarchy {
            let _ = writeln!(
                s,
                "- group {} = {} + {} ({} papers, {:.2})",
                j.node.trim_start_matches('n'),
                label(&j.a),
                label(&j.b),
                j.size,
                j.similarity
            );
        }
    }
    for t in &r.topics {
        let _ = writeln!(s, "\n## Topic {}: {}\n", t.id, esc(&t.name));
        let _ = writeln!(s, "<a id=\"topic-{}\"></a>\n", t.id);
        let _ = writeln!(
            s,
            "**{} papers**{}. Keywords: {}.\n",
            t.size,
            super::status_note(t.change, t.trend.as_deref(), " (", ")"),
            t.keywords.join(", ")
        );
        if !t.years.is_empty() {
            let y: Vec<String> = t.years.iter().map(|(y, n)| format!("{y}: {n}")).collect();
            let _ = writeln!(s, "Papers per year: {}.\n", y.join(", "));
        }
        if !t.similar.is_empty() {
            let sim: Vec<String> = t
                .similar
                .iter()
                .map(|(id, c)| format!("[{}](#topic-{id}) ({c:.2})", esc(&r.topic_name(*id))))
                .collect();
            let _ = writeln!(s, "Closest topics: {}.\n", sim.join(", "));
        }
        let _ = writeln!(s, "Representative papers:\n");
        for m in &t.representatives {
            let year = m.year.map(|y| format!(" ({y})")).unwrap_or_default();
            let _ = writeln!(s, "1. **{}**{} `{}`", esc(&m.title), year, m.id);
        }
        if t.papers.len() > t.representatives.len() {
            let _ = writeln!(
                s,
                "\n<details><summary>All {} papers</summary>\n",
                t.papers.len()
            );
            for m in &t.papers {
                let year = m.year.map(|y| format!(" ({y})")).unwrap_or_default();
                let _ = writeln!(s, "- {}{} `{}`", esc(&m.title), year, m.id);
            }
            let _ = writeln!(s, "\n</details>");
        }
    }
    s
}
