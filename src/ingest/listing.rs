//! The scraped listing format of the sample corpus: page chrome ("new",
//! "Subscribe", "Get trending papers...", dates), then title line and
//! abstract line pairs, blank lines optional. Chrome glued to a title
//! ("SubscribeFixed Point Diffusion Models") is cut off.

use super::Parsed;
use crate::paper::Paper;

/// Lines that are page furniture, never titles.
const CHROME: &[&str] = &[
    "new",
    "subscribe",
    "byak and the research community",
    "get trending papers in your email inbox!",
    "get trending papers in your email inbox once a day!",
];
const GLUED: &[&str] = &["Subscribe"];

/// A title is short; an abstract is a paragraph. Lines between the two are
/// judged by length relative to the next line.
const MAX_TITLE: usize = 300;

fn is_chrome(line: &str) -> bool {
    let lower = line.to_lowercase();
    CHROME.contains(&lower.as_str()) || is_date(line)
}

/// "Jun 6", "Mar 11", "Mar 11, 2024".
fn is_date(line: &str) -> bool {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = line.split([' ', ',']).filter(|p| !p.is_empty());
    let (Some(m), Some(d)) = (parts.next(), parts.next()) else {
        return false;
    };
    let rest: Vec<&str> = parts.collect();
    MONTHS.contains(&m)
        && d.len() <= 2
        && d.chars().all(|c| c.is_ascii_digit())
        && rest.len() <= 1
        && rest
            .iter()
            .all(|y| y.len() == 4 && y.chars().all(|c| c.is_ascii_digit()))
}

fn strip_glued(line: &str) -> &str {
    for g in GLUED {
        if let Some(rest) = line.strip_prefix(g)
            && rest
                .chars()
                .next()
                .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit())
        {
            return rest;
        }
    }
    line
}

pub fn parse(text: &str, sink: &mut dyn FnMut(Parsed)) {
    let lines: Vec<(u64, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !is_chrome(l))
        .map(|(n, l)| (n, strip_glued(l)))
        .collect();
    let mut i = 0;
    while i < lines.len() {
        let (line, title) = lines[i];
        let next = lines.get(i + 1).map(|(_, l)| *l);
        match next {
            Some(abs) if title.len() <= MAX_TITLE && abs.len() > title.len() => {
                sink(Parsed::Record {
                    line,
                    paper: Paper {
                        title: title.to_string(),
                        abs: abs.to_string(),
                        ..Default::default()
                    },
                });
                i += 2;
            }
            _ if title.len() <= MAX_TITLE => {
                sink(Parsed::Record {
                    line,
                    paper: Paper {
                        title: title.to_string(),
                        ..Default::default()
                    },
                });
                i += 1;
            }
            _ => {
                sink(Parsed::Problem {
                    line,
                    reason: format!(
                        "a {}-character paragraph with no title line before it; skipped",
                        title.len()
                    ),
                });
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chrome_is_dropped_and_pairs_are_read() {
        let text = "new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nMar 11\n\n\
            SubscribeFixed Point Diffusion Models\nWe introduce the Fixed Point Diffusion Model, a novel approach.\n\n\
            Second Title\n\nA long enough abstract for the second title here.\n";
        let mut got = Vec::new();
        parse(text, &mut |p| got.push(p));
        let titles: Vec<_> = got
            .iter()
            .map(|p| match p {
                Parsed::Record { paper, line } => (paper.title.clone(), *line),
                Parsed::Problem { reason, .. } | Parsed::Warning { reason, .. } => {
                    panic!("{reason}")
                }
            })
            .collect();
        assert_eq!(
            titles,
            vec![
                ("Fixed Point Diffusion Models".to_string(), 9),
                ("Second Title".to_string(), 12)
            ]
        );
    }
}
