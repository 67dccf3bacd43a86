//! RIS as Scopus, Web of Science, Zotero and EndNote export it: `TY  - `
//! starts a record, `ER  - ` ends it, untagged lines continue the previous
//! field. Title from TI/T1 (CT, BT as fallbacks), abstract from AB/N2,
//! authors from AU/A1, year from PY/Y1/DA, DOI from DO.

use super::{Parsed, all_fields, first_field, normalize};
use crate::paper::{Original, Paper};

/// A tag line: two upper-case letters or digits, two spaces (some exports
/// use one), a dash, then the value.
fn split_tag(line: &str) -> Option<(&str, &str)> {
    let b = line.as_bytes();
    if b.len() < 5
        || !b[0].is_ascii_uppercase()
        || !(b[1].is_ascii_uppercase() || b[1].is_ascii_digit())
    {
        return None;
    }
    let rest = &line[2..];
    let rest = rest
        .strip_prefix("  -")
        .or_else(|| rest.strip_prefix(" -"))?;
    Some((&line[..2], rest.strip_prefix(' ').unwrap_or(rest)))
}

pub fn parse(text: &str, sink: &mut dyn FnMut(Parsed)) {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut start_line = 0u64;
    let mut start_byte = 0usize;
    let mut in_record = false;
    let mut offset = 0usize;
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i as u64 + 1;
        let line_start = offset;
        offset += raw.len() + 1;
        let line = raw.trim_end_matches('\r').trim_start_matches('\u{feff}');
        match split_tag(line) {
            Some(("TY", _)) => {
                if in_record {
                    sink(Parsed::Warning {
                        line: start_line,
                        reason: "record has no ER line before the next TY; read up to there".into(),
                    });
                    emit(&fields, start_line, &text[start_byte..line_start], sink);
                }
                fields.clear();
                fields.push(("TY".into(), split_tag(line).map_or("", |t| t.1).to_string()));
                in_record = true;
                start_line = line_no;
                start_byte = line_start;
            }
            Some(("ER", _)) => {
                if in_record {
                    let end = offset.min(text.len());
                    emit(&fields, start_line, &text[start_byte..end], sink);
                } else {
                    sink(Parsed::Warning {
                        line: line_no,
                        reason: "ER without a TY before it; ignored".into(),
                    });
                }
                in_record = false;
                fields.clear();
            }
            Some((tag, value)) if in_record => {
                fields.push((tag.to_string(), value.trim().to_string()))
            }
            Some(_) => {}
            None if in_record && !line.trim().is_empty() => {
                // Continuation of a multi-line field.
                if let Some((_, v)) = fields.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            }
            None => {}
        }
    }
    if in_record {
        sink(Parsed::Warning {
            line: start_line,
            reason: "the file ends before this record's ER line; record read as far as it goes"
                .into(),
        });
        emit(&fields, start_line, &text[start_byte..], sink);
    }
}

fn emit(fields: &[(String, String)], line: u64, raw: &str, sink: &mut dyn FnMut(Parsed)) {
    let get = |tags: &[&str]| first_field(fields, tags);
    let paper = Paper {
        id: get(&["ID"]).unwrap_or_default(),
        title: get(&["TI", "T1", "CT", "BT"]).unwrap_or_default(),
        abs: get(&["AB", "N2"]).unwrap_or_default(),
        authors: all_fields(fields, &["AU", "A1"]),
        year: get(&["PY", "Y1", "DA", "Y2"])
            .as_deref()
            .and_then(normalize::parse_year),
        month: normalize::best_date([
            get(&["PY"]).as_deref(),
            get(&["Y1"]).as_deref(),
            get(&["DA"]).as_deref(),
        ])
        .1,
        doi: get(&["DO", "DI"]),
        venue: get(&["T2", "JO", "JF", "JA", "J2", "SE"]),
        url: get(&["UR", "L2"]),
        original: Some(Original {
            format: "ris".into(),
            text: raw.to_string(),
        }),
        ..Default::default()
    };
    sink(Parsed::Record { line, paper });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_fields_synonyms_and_missing_er() {
        let text = "\u{feff}TY  - JOUR\r\nT1  - First\r\nN2  - Line one\r\n  line two\r\nA1  - Doe, J.\r\nY1  - 2019/05/01\r\nER  - \r\n\r\nTY  - CONF\nTI  - Second\nAB  - Abs\nDO  - 10.1/abc\n";
        let mut got = Vec::new();
        parse(text, &mut |p| got.push(p));
        let recs: Vec<_> = got
            .iter()
            .filter_map(|p| match p {
                Parsed::Record { paper, line } => Some((paper, *line)),
                _ => None,
            })
            .collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].0.title, "First");
        assert_eq!(recs[0].0.abs, "Line one line two");
        assert_eq!(recs[0].0.year, Some(2019));
        assert_eq!(recs[1].1, 9);
        assert_eq!(recs[1].0.doi.as_deref(), Some("10.1/abc"));
        assert!(
            got.iter()
                .any(|p| matches!(p, Parsed::Warning { line: 9, .. }))
        );
    }
}
