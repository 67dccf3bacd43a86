//! Per-topic BibTeX, one file per topic named by id and name
//! (`topic-12-diffusion-models.bib`). Papers that came from BibTeX are given
//! back exactly as they were read; others get an entry generated from their
//! fields, written so that pdflatex compiles it: LaTeX's special characters
//! escaped, accented letters as accent commands (`{\'e}`), Greek and common
//! symbols as math or text commands, anything else without an ASCII
//! spelling dropped. Identifiers (DOI, URL, eprint) stay verbatim.

use unicode_normalization::UnicodeNormalization;

use super::{TopicReport, TopicView};
use crate::paper::Paper;

/// `topic-<id>-<name as a slug>.bib` (ASCII letters and digits, `-`).
pub fn file_name(t: &TopicView) -> String {
    let mut slug = String::new();
    for c in t.name.nfd().filter(char::is_ascii) {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        format!("topic-{:02}.bib", t.id)
    } else {
        format!("topic-{:02}-{slug}.bib", t.id)
    }
}

/// Text as pdflatex-safe LaTeX.
pub fn latex(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.nfd().peekable();
    while let Some(c) = chars.next() {
        // A base letter followed by combining accents: {\'e}, {\v{c}}.
        let mut accents = Vec::new();
        while let Some(&m) = chars.peek() {
            match accent(m) {
                Some(a) => {
                    accents.push(a);
                    chars.next();
                }
                None if ('\u{300}'..='\u{36f}').contains(&m) => {
                    chars.next();
                }
                None => break,
            }
        }
        let base = match c {
            '\\' => "\\textbackslash{}".to_string(),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => format!("\\{c}"),
            '~' => "\\textasciitilde{}".into(),
            '^' => "\\textasciicircum{}".into(),
            '<' => "\\textless{}".into(),
            '>' => "\\textgreater{}".into(),
            '|' => "\\textbar{}".into(),
            '\n' | '\r' | '\t' => " ".into(),
            c if c.is_ascii() => c.to_string(),
            c => symbol(c).map(str::to_string).unwrap_or_default(),
        };
        if accents.is_empty() {
            out.push_str(&base);
        } else if c.is_ascii_alphabetic() {
            let mut x = if c == 'i' {
                "\\i".to_string()
            } else {
                c.to_string()
            };
            for a in accents {
                x = format!("\\{a}{{{x}}}");
            }
            out.push('{');
            out.push_str(&x);
            out.push('}');
        } else {
            out.push_str(&base);
        }
    }
    out
}

fn accent(m: char) -> Option<&'static str> {
    Some(match m {
        '\u{300}' => "`",
        '\u{301}' => "'",
        '\u{302}' => "^",
        '\u{303}' => "~",
        '\u{304}' => "=",
        '\u{306}' => "u",
        '\u{307}' => ".",
        '\u{308}' => "\"",
        '\u{30a}' => "r",
        '\u{30b}' => "H",
        '\u{30c}' => "v",
        '\u{327}' => "c",
        '\u{328}' => "k",
        _ => return None,
    })
}

/// LaTeX for characters with no decomposition into ASCII + accents.
fn symbol(c: char) -> Option<&'static str> {
    const GREEK: &[(char, &str)] = &[
        ('α', "$\\alpha$"),
        ('β', "$\\beta$"),
        ('γ', "$\\gamma$"),
        ('δ', "$\\delta$"),
        ('ε', "$\\epsilon$"),
        ('ϵ', "$\\epsilon$"),
        ('ζ', "$\\zeta$"),
        ('η', "$\\eta$"),
        ('θ', "$\\theta$"),
        ('ι', "$\\iota$"),
        ('κ', "$\\kappa$"),
        ('λ', "$\\lambda$"),
        ('μ', "$\\mu$"),
        ('ν', "$\\nu$"),
        ('ξ', "$\\xi$"),
        ('π', "$\\pi$"),
        ('ρ', "$\\rho$"),
        ('σ', "$\\sigma$"),
        ('τ', "$\\tau$"),
        ('υ', "$\\upsilon$"),
        ('φ', "$\\phi$"),
        ('ϕ', "$\\phi$"),
        ('χ', "$\\chi$"),
        ('ψ', "$\\psi$"),
        ('ω', "$\\omega$"),
        ('Γ', "$\\Gamma$"),
        ('Δ', "$\\Delta$"),
        ('Θ', "$\\Theta$"),
        ('Λ', "$\\Lambda$"),
        ('Π', "$\\Pi$"),
        ('Σ', "$\\Sigma$"),
        ('Φ', "$\\Phi$"),
        ('Ψ', "$\\Psi$"),
        ('Ω', "$\\Omega$"),
        ('ℓ', "$\\ell$"),
        ('∞', "$\\infty$"),
        ('≤', "$\\leq$"),
        ('≥', "$\\geq$"),
        ('≈', "$\\approx$"),
        ('≠', "$\\neq$"),
        ('±', "$\\pm$"),
        ('×', "$\\times$"),
        ('→', "$\\rightarrow$"),
        ('←', "$\\leftarrow$"),
        ('∈', "$\\in$"),
        ('∑', "$\\sum$"),
        ('√', "$\\surd$"),
        ('·', "$\\cdot$"),
        ('∼', "$\\sim$"),
        ('−', "-"),
        ('–', "--"),
        ('—', "---"),
        ('‐', "-"),
        ('‑', "-"),
        ('“', "``"),
        ('”', "''"),
        ('‘', "`"),
        ('’', "'"),
        ('…', "\\ldots{}"),
        ('°', "\\textdegree{}"),
        ('ß', "{\\ss}"),
        ('ø', "{\\o}"),
        ('Ø', "{\\O}"),
        ('æ', "{\\ae}"),
        ('Æ', "{\\AE}"),
        ('œ', "{\\oe}"),
        ('Œ', "{\\OE}"),
        ('ł', "{\\l}"),
        ('Ł', "{\\L}"),
        ('đ', "d"),
        ('ı', "{\\i}"),
        ('\u{a0}', "~"),
        ('«', "<<"),
        ('»', ">>"),
        ('€', "EUR"),
        ('£', "\\pounds{}"),
        ('©', "\\textcopyright{}"),
        ('®', "\\textregistered{}"),
        ('™', "\\texttrademark{}"),
        ('§', "\\S{}"),
        ('¶', "\\P{}"),
        ('†', "\\dag{}"),
        ('‡', "\\ddag{}"),
    ];
    GREEK.iter().find(|(g, _)| *g == c).map(|(_, l)| *l)
}

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

/// One entry: the original BibTeX record, or one generated from the fields.
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
    let mut fields: Vec<(&str, String)> = vec![("title", latex(&p.title))];
    if !p.authors.is_empty() {
        let names: Vec<String> = p.authors.iter().map(|a| latex(a)).collect();
        fields.push(("author", names.join(" and ")));
    }
    if let Some(y) = p.year {
        fields.push(("year", y.to_string()));
    }
    if let Some(v) = &p.venue {
        fields.push(("journal", latex(v)));
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
        fields.push(("abstract", latex(&p.abs)));
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
    let name: String = latex(&t.name);
    let mut s = format!(
        "% papermap topic {}: {} ({} papers)\n\n",
        t.id, name, t.size
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latex_escapes_specials_and_spells_unicode_in_ascii() {
        assert_eq!(latex("R&D 50% $x_1$ #1"), "R\\&D 50\\% \\$x\\_1\\$ \\#1");
        assert_eq!(
            latex("ℓ1 with ε-greedy"),
            "$\\ell$1 with $\\epsilon$-greedy"
        );
        assert_eq!(
            latex("Gödel, Erdős, Čech, naïve"),
            "G{\\\"{o}}del, Erd{\\H{o}}s, {\\v{C}}ech, na{\\\"{\\i}}ve"
        );
        assert_eq!(
            latex("a<b>{c}~^\\"),
            "a\\textless{}b\\textgreater{}\\{c\\}\\textasciitilde{}\\textasciicircum{}\\textbackslash{}"
        );
        assert!(latex("日本 ok").is_ascii());
    }

    #[test]
    fn file_names_carry_id_and_name() {
        let t = TopicView {
            id: 12,
            name: "Diffusion models / score matching".into(),
            named_by_user: false,
            keywords: vec![],
            weights: vec![],
            size: 0,
            change: Some(crate::cluster::stable::Change::New),
            years: vec![],
            trend: None,
            representatives: vec![],
            papers: vec![],
            similar: vec![],
        };
        assert_eq!(
            file_name(&t),
            "topic-12-diffusion-models-score-matching.bib"
        );
    }
}
