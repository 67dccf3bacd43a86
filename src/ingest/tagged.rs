//! The other line-tagged exports: Web of Science plain text (`PT J` ..
//! `ER`, two-letter tags, continuation lines indented by three spaces),
//! PubMed/MEDLINE (`.nbib`: `PMID- ` starts a record, four-character tags
//! padded before `- `, continuation lines indented by six spaces) and
//! EndNote tagged (`.enw`: `%0` starts a record, `%T title`, `%A author`).

use super::{Parsed, all_fields, first_field, normalize};
use crate::paper::Paper;

/// Which tagged dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    WebOfScience,
    Medline,
    EndNote,
}

/// Recognises a dialect from the first lines of a file.
pub fn sniff(head: &str) -> Option<Dialect> {
    let lines: Vec<&str> = head
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .take(5)
        .collect();
    let first = lines.first()?;
    if first.starts_with("FN ") || lines.contains(&"VR 1.0") || first.starts_with("PT ") {
        return Some(Dialect::WebOfScience);
    }
    if first.starts_with("PMID-") {
        return Some(Dialect::Medline);
    }
    if first.starts_with("%0 ") {
        return Some(Dialect::EndNote);
    }
    None
}

/// Splits a line into (tag, value) for the dialect; None for continuations.
fn tag(d: Dialect, line: &str) -> Option<(&str, &str)> {
    match d {
        Dialect::WebOfScience => {
            let b = line.as_bytes();
            (b.len() >= 2
                && b[0].is_ascii_uppercase()
                && (b[1].is_ascii_uppercase() || b[1].is_ascii_digit())
                && (b.len() == 2 || b[2] == b' '))
                .then(|| (&line[..2], line.get(3..).unwrap_or("")))
        }
        Dialect::Medline => {
            let (t, v) = line
                .split_once("- ")
                .or_else(|| line.strip_suffix('-').map(|t| (t, "")))?;
            let t = t.trim_end();
            (!t.is_empty()
                && t.len() <= 4
                && line.len() >= 5
                && line.as_bytes()[4] == b'-'
                && t.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
            .then_some((t, v))
        }
        Dialect::EndNote => {
            let rest = line.strip_prefix('%')?;
            let mut chars = rest.chars();
            let t = chars.next()?;
            Some((&rest[..t.len_utf8()], rest[t.len_utf8()..].trim_start()))
        }
    }
}

pub fn parse(d: Dialect, text: &str, sink: &mut dyn FnMut(Parsed)) {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut start = 0u64;
    let flush = |fields: &mut Vec<(String, String)>, start: u64, sink: &mut dyn FnMut(Parsed)| {
        if !fields.is_empty() {
            sink(Parsed::Record {
                line: start,
                paper: to_paper(d, fields),
            });
            fields.clear();
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r').trim_start_matches('\u{feff}');
        let n = i as u64 + 1;
        let starts = |t: &str| match d {
            Dialect::WebOfScience => t == "PT",
            Dialect::Medline => t == "PMID",
            Dialect::EndNote => t == "0",
        };
        if line.trim().is_empty() {
            // MEDLINE and EndNote separate records by blank lines.
            if d != Dialect::WebOfScience {
                flush(&mut fields, start, sink);
            }
            continue;
        }
        match tag(d, line) {
            Some((t, v)) if starts(t) => {
                flush(&mut fields, start, sink);
                start = n;
                fields.push((t.to_string(), v.trim().to_string()));
            }
            Some(("ER", _)) if d == Dialect::WebOfScience => flush(&mut fields, start, sink),
            Some(("FN" | "VR" | "EF", _)) if d == Dialect::WebOfScience => {}
            Some((t, v)) if !fields.is_empty() => {
                fields.push((t.to_string(), v.trim().to_string()))
            }
            Some(_) => {}
            None => {
                if let Some((t, v)) = fields.last_mut() {
                    // WoS repeats the tag for each author on a continuation line.
                    if d == Dialect::WebOfScience && matches!(t.as_str(), "AU" | "AF") {
                        let t = t.clone();
                        fields.push((t, line.trim().to_string()));
                    } else {
                        v.push(' ');
                        v.push_str(line.trim());
                    }
                }
            }
        }
    }
    flush(&mut fields, start, sink);
}

fn to_paper(d: Dialect, fields: &[(String, String)]) -> Paper {
    let get = |tags: &[&str]| first_field(fields, tags);
    let all = |tags: &[&str]| all_fields(fields, tags);
    match d {
        Dialect::WebOfScience => Paper {
            id: get(&["UT"]).unwrap_or_default(),
            title: get(&["TI"]).unwrap_or_default(),
            abs: get(&["AB"]).unwrap_or_default(),
            authors: {
                let af = all(&["AF"]);
                if af.is_empty() { all(&["AU"]) } else { af }
            },
            year: get(&["PY", "EA"])
                .as_deref()
                .and_then(normalize::parse_year),
            month: {
                // PD holds the month ("MAY 12", "SPR"); EA an early-access date.
                let pd =
                    get(&["PD"]).map(|pd| format!("{} {pd}", get(&["PY"]).unwrap_or_default()));
                normalize::best_date([pd.as_deref(), get(&["EA"]).as_deref()]).1
            },
            doi: get(&["DI"]),
            venue: get(&["SO", "SE"]),
            ..Default::default()
        },
        Dialect::Medline => Paper {
            id: get(&["PMID"])
                .map(|p| format!("pmid:{p}"))
                .unwrap_or_default(),
            title: get(&["TI", "BTI"]).unwrap_or_default(),
            abs: get(&["AB"]).unwrap_or_default(),
            authors: {
                let fau = all(&["FAU"]);
                if fau.is_empty() { all(&["AU"]) } else { fau }
            },
            year: get(&["DP", "DEP"])
                .as_deref()
                .and_then(normalize::parse_year),
            month: normalize::best_date([get(&["DP"]).as_deref(), get(&["DEP"]).as_deref()]).1,
            doi: all(&["LID", "AID"])
                .into_iter()
                .find(|v| v.contains("[doi]"))
                .map(|v| v.replace("[doi]", "").trim().to_string()),
            venue: get(&["JT", "TA"]),
            ..Default::default()
        },
        Dialect::EndNote => Paper {
            title: get(&["T"]).unwrap_or_default(),
            abs: get(&["X"]).unwrap_or_default(),
            authors: all(&["A"]),
            year: get(&["D"]).as_deref().and_then(normalize::parse_year),
            month: normalize::best_date([get(&["D"]).as_deref(), get(&["8"]).as_deref()]).1,
            doi: get(&["R"]),
            venue: get(&["J", "B"]),
            url: get(&["U"]),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(d: Dialect, text: &str) -> Vec<(u64, Paper)> {
        let mut out = Vec::new();
        parse(d, text, &mut |p| {
            if let Parsed::Record { line, paper } = p {
                out.push((line, paper));
            }
        });
        out
    }

    #[test]
    fn web_of_science_plain_text() {
        let text = "FN Clarivate Analytics Web of Science\nVR 1.0\nPT J\nAU Smith, J\n   Doe, A\nAF Smith, John\n   Doe, Anna\nTI Deep learning for\n   protein folding\nSO NATURE\nAB We fold proteins.\n   Second line.\nPY 2021\nDI 10.1038/x\nUT WOS:000123\nER\n\nPT J\nTI Second paper\nER\n\nEF\n";
        assert_eq!(sniff(text), Some(Dialect::WebOfScience));
        let got = run(Dialect::WebOfScience, text);
        assert_eq!(got.len(), 2);
        let p = &got[0].1;
        assert_eq!(
            (got[0].0, p.title.as_str()),
            (3, "Deep learning for protein folding")
        );
        assert_eq!(p.abs, "We fold proteins. Second line.");
        assert_eq!(p.authors, vec!["Smith, John", "Doe, Anna"]);
        assert_eq!(
            (p.year, p.doi.as_deref(), p.id.as_str()),
            (Some(2021), Some("10.1038/x"), "WOS:000123")
        );
    }

    #[test]
    fn medline_nbib() {
        let text = "PMID- 12345\nTI  - A study of\n      things.\nAB  - Abstract text\n      continues.\nFAU - Doe, Jane\nAU  - Doe J\nDP  - 2019 Mar\nLID - 10.1000/abc [doi]\nJT  - Journal of Things\n\nPMID- 67890\nTI  - Another\n";
        assert_eq!(sniff(text), Some(Dialect::Medline));
        let got = run(Dialect::Medline, text);
        assert_eq!(got.len(), 2);
        let p = &got[0].1;
        assert_eq!(p.title, "A study of things.");
        assert_eq!(p.abs, "Abstract text continues.");
        assert_eq!(
            (p.year, p.doi.as_deref(), p.id.as_str()),
            (Some(2019), Some("10.1000/abc"), "pmid:12345")
        );
        assert_eq!(p.authors, vec!["Doe, Jane"]);
        assert_eq!(got[1].0, 12);
    }

    #[test]
    fn endnote_tagged() {
        let text = "%0 Journal Article\n%T Graph networks\n%A Doe, Jane\n%A Roe, R.\n%D 2020\n%X An abstract.\n%R 10.1/x\n\n%0 Book\n%T A book\n";
        assert_eq!(sniff(text), Some(Dialect::EndNote));
        let got = run(Dialect::EndNote, text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.authors, vec!["Doe, Jane", "Roe, R."]);
        assert_eq!(got[0].1.abs, "An abstract.");
        assert_eq!(got[1].1.title, "A book");
    }
}
