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
        "{} topics by k-means (seed {}, k chosen by {}), model {}.\n",
        r.params.k, r.params.seed, r.params.k_chosen_by, r.library.model
    );
    let _ = writeln!(s, "| id | topic | papers | keywords |");
    let _ = writeln!(s, "|---:|---|---:|---|");
    for t in &r.topics {
        let _ = writeln!(
            s,
            "| {} | [{}](#topic-{}) | {} | {} |",
            t.id,
            esc(&t.name),
            t.id,
            t.size,
            esc(&t.keywords.join(", "))
        );
    }
    for t in &r.topics {
        let _ = writeln!(s, "\n## Topic {}: {}\n", t.id, esc(&t.name));
        let _ = writeln!(s, "<a id=\"topic-{}\"></a>\n", t.id);
        let _ = writeln!(
            s,
            "**{} papers** ({:?}). Keywords: {}.\n",
            t.size,
            t.change,
            t.keywords.join(", ")
        );
        if !t.similar.is_empty() {
            let sim: Vec<String> = t
                .similar
                .iter()
                .map(|(id, c)| format!("topic {id} ({c:.2})"))
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
