//! A match report as Markdown and as one self-contained HTML digest (inline
//! CSS, no script, no network): per paper its title linked to arXiv, the DOI
//! or its own http(s) URL, score, date, authors, why (shared terms), the
//! topic it would join, the closest library papers and the abstract folded.
//! Every paper field is HTML-escaped ([`escape_html`]); links are built
//! from checked identifiers, or an http(s) URL, never from other text.

use std::fmt::Write;

use super::{Match, MatchReport};

/// Text made safe for HTML element content and quoted attribute values
/// (the report's escaping, shared).
pub use crate::report::html::escape as escape_html;

/// Markdown text with the characters that would start markup escaped.
fn esc_md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#'
        ) {
            out.push('\\');
        }
        out.push(if c == '\n' { ' ' } else { c });
    }
    out
}

/// The link of an incoming paper: arXiv abstract page, DOI, or its own URL
/// when that is http(s). Identifiers are percent-encoded where they could
/// break out of the URL.
pub fn link(m: &Match) -> Option<String> {
    let enc = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-._~/:;()".contains(c) {
                    c.to_string()
                } else {
                    let mut b = [0u8; 4];
                    c.encode_utf8(&mut b)
                        .bytes()
                        .map(|x| format!("%{x:02X}"))
                        .collect()
                }
            })
            .collect::<String>()
    };
    let p = &m.paper;
    if let Some(a) = &p.arxiv {
        return Some(format!("https://arxiv.org/abs/{}", enc(a)));
    }
    if let Some(d) = &p.doi {
        return Some(format!("https://doi.org/{}", enc(d)));
    }
    p.url
        .as_deref()
        .filter(|u| {
            let l = u.to_ascii_lowercase();
            (l.starts_with("https://") || l.starts_with("http://"))
                && !u.chars().any(|c| c.is_whitespace() || c == '"' || c == '<')
        })
        .map(str::to_string)
}

fn authors(a: &[String]) -> String {
    let mut s = a.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if a.len() > 5 {
        s.push_str(" et al.");
    }
    s
}

fn summary(r: &MatchReport) -> String {
    let c = &r.counts;
    format!(
        "{} incoming paper(s): {} scored, {} already in the library, {} left out by keyword filters, {} below the threshold; {} listed. Matched against {} of {} library paper(s) ({} mode, {} neighbour(s) averaged).",
        c.incoming,
        c.scored,
        c.in_library,
        c.filtered,
        c.below_threshold,
        c.listed,
        c.reference,
        c.library,
        serde_json::to_value(r.settings.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        r.settings.neighbours
    )
}

/// The report as Markdown.
pub fn markdown(r: &MatchReport) -> String {
    let mut s = String::from("# What is new for this library\n\n");
    let _ = writeln!(s, "{}\n", esc_md(&summary(r)));
    let _ = writeln!(s, "Topics: {}\n", esc_md(&r.topics));
    for n in &r.notes {
        let _ = writeln!(s, "> {}\n", esc_md(n));
    }
    for m in &r.results {
        let title = esc_md(&m.paper.title);
        let head = match link(m) {
            Some(u) => format!("[{title}](<{}>)", u.replace('>', "%3E")),
            None => title,
        };
        let _ = writeln!(s, "## {}. {head}\n", m.rank);
        let _ = writeln!(
            s,
            "score {:.3} (best {:.3}{}) · {} · {}{}\n",
            m.score,
            m.best,
            if m.penalty > 0.0 {
                format!(", --not penalty {:.3}", m.penalty)
            } else {
                String::new()
            },
            m.paper.date.as_deref().unwrap_or("undated"),
            esc_md(&m.paper.id),
            if m.paper.authors.is_empty() {
                String::new()
            } else {
                format!(" · {}", esc_md(&authors(&m.paper.authors)))
            }
        );
        if !m.why.is_empty() {
            let _ = writeln!(s, "- why: {}", esc_md(&m.why.join(", ")));
        }
        if let Some(t) = &m.topic {
            let _ = writeln!(
                s,
                "- would join topic {} \"{}\" ({:.0}% of its neighbours' similarity)",
                t.id,
                esc_md(&t.name),
                t.share * 100.0
            );
        }
        for c in &m.closest {
            let _ = writeln!(
                s,
                "- close to {} \"{}\" ({:.3}{})",
                esc_md(&c.id),
                esc_md(&c.title),
                c.score,
                if c.why.is_empty() {
                    String::new()
                } else {
                    format!("; shared: {}", esc_md(&c.why.join(", ")))
                }
            );
        }
        s.push('\n');
    }
    if !r.in_library.is_empty() {
        s.push_str("## Already in the library\n\n");
        for p in &r.in_library {
            let _ = writeln!(
                s,
                "- {} (library: {})",
                esc_md(&p.paper.title),
                esc_md(&p.library_id)
            );
        }
    }
    s
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2329;background:#fbfbfa}\
h1{font-size:1.5rem;margin-bottom:.3rem}.sum{color:#555}\
article{background:#fff;border:1px solid #e2e2e0;border-radius:8px;padding:.9rem 1.1rem;margin:1rem 0}\
article h2{font-size:1.1rem;margin:.1rem 0 .35rem}article h2 a{color:#0b4f8a;text-decoration:none}\
.rank{color:#888;margin-right:.4rem}.meta{color:#555;font-size:.88rem}\
.bar{display:inline-block;height:.55rem;background:#3b7dd8;border-radius:3px;vertical-align:middle;margin-right:.4rem}\
.chip{display:inline-block;background:#eef3fa;border:1px solid #d5e2f3;border-radius:10px;padding:0 .5rem;margin:.15rem .2rem 0 0;font-size:.85rem}\
.topic{font-size:.9rem;margin:.35rem 0}ul.close{margin:.3rem 0 .2rem;padding-left:1.2rem;font-size:.9rem}\
ul.close .s{color:#777}details{margin-top:.3rem;font-size:.92rem}summary{cursor:pointer;color:#0b4f8a}\
.note{background:#fff7e0;border-left:3px solid #e0b000;padding:.3rem .6rem}";

/// The report as one self-contained HTML page.
pub fn html(r: &MatchReport) -> String {
    let e = escape_html;
    let mut s = String::with_capacity(4096 + r.results.len() * 2048);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    s.push_str("<title>papermap: what is new for this library</title><style>");
    s.push_str(STYLE);
    s.push_str("</style></head><body>\n<h1>What is new for this library</h1>\n");
    let _ = writeln!(s, "<p class=\"sum\">{}</p>", e(&summary(r)));
    let _ = writeln!(s, "<p class=\"sum\">Topics: {}</p>", e(&r.topics));
    for n in &r.notes {
        let _ = writeln!(s, "<p class=\"note\">{}</p>", e(n));
    }
    let top = r
        .results
        .iter()
        .map(|m| m.score)
        .fold(f32::EPSILON, f32::max);
    for m in &r.results {
        s.push_str("<article>");
        let title = e(&m.paper.title);
        let title = match link(m) {
            Some(u) => format!("<a href=\"{}\">{title}</a>", e(&u)),
            None => title,
        };
        let _ = write!(s, "<h2><span class=\"rank\">{}.</span>{title}</h2>", m.rank);
        let width = (m.score.max(0.0) / top * 8.0).clamp(0.1, 8.0);
        let _ = write!(
            s,
            "<div class=\"meta\"><span class=\"bar\" style=\"width:{width:.2}rem\"></span>score {:.3} (best {:.3}{}) · {} · {}{}</div>",
            m.score,
            m.best,
            if m.penalty > 0.0 {
                format!(", --not penalty {:.3}", m.penalty)
            } else {
                String::new()
            },
            e(m.paper.date.as_deref().unwrap_or("undated")),
            e(&m.paper.id),
            if m.paper.authors.is_empty() {
                String::new()
            } else {
                format!(" · {}", e(&authors(&m.paper.authors)))
            }
        );
        if !m.why.is_empty() {
            s.push_str("<div>");
            for w in &m.why {
                let _ = write!(s, "<span class=\"chip\">{}</span>", e(w));
            }
            s.push_str("</div>");
        }
        if let Some(t) = &m.topic {
            let _ = write!(
                s,
                "<div class=\"topic\">Would join topic {} <b>{}</b> ({:.0}% of its neighbours' similarity)</div>",
                t.id,
                e(&t.name),
                t.share * 100.0
            );
        }
        if !m.closest.is_empty() {
            s.push_str("<ul class=\"close\">");
            for c in &m.closest {
                let _ = write!(
                    s,
                    "<li>{} <span class=\"s\">({}{}, {:.3}{})</span></li>",
                    e(&c.title),
                    e(&c.id),
                    c.year.map(|y| format!(", {y}")).unwrap_or_default(),
                    c.score,
                    if c.why.is_empty() {
                        String::new()
                    } else {
                        format!("; shared: {}", e(&c.why.join(", ")))
                    }
                );
            }
            s.push_str("</ul>");
        }
        if !m.paper.abs.is_empty() {
            let _ = write!(
                s,
                "<details><summary>Abstract</summary><p>{}</p></details>",
                e(&m.paper.abs)
            );
        }
        s.push_str("</article>\n");
    }
    if r.results.is_empty() {
        s.push_str("<p>No incoming paper passed the filters and the threshold.</p>\n");
    }
    if !r.in_library.is_empty() {
        s.push_str("<h2>Already in the library</h2><ul>");
        for p in &r.in_library {
            let _ = write!(
                s,
                "<li>{} <span class=\"meta\">(library: {})</span></li>",
                e(&p.paper.title),
                e(&p.library_id)
            );
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape_html("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc_md("a|b *c* [d]"), "a\\|b \\*c\\* \\[d\\]");
    }
}
