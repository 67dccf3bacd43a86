//! JSON arrays and JSON lines of paper objects from any source: generic
//! `{id, title, abstract}`, the Kaggle arXiv OAI snapshot, arXiv API records
//! (`summary`), Semantic Scholar papers (`paperId`, `externalIds`), OpenAlex
//! works (`abstract_inverted_index`, `authorships`) and Crossref items
//! (`title` as a list, `DOI`, JATS abstracts). JSON lines are streamed.

use serde_json::Value;

use super::decode::Source;
use super::{Parsed, normalize};
use crate::error::Result;
use crate::paper::Paper;

pub fn parse(src: &mut Source, sink: &mut dyn FnMut(Parsed)) -> Result<()> {
    if src
        .head()
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('[')
    {
        let text = src.read_all()?;
        return {
            parse_array(&text, sink);
            Ok(())
        };
    }
    src.for_each_line(&mut |line, text, recoded| {
        let t = text.trim();
        if t.is_empty() {
            return;
        }
        if recoded {
            sink(Parsed::Warning {
                line,
                reason: "not valid UTF-8; decoded as Windows-1252".into(),
            });
        }
        match serde_json::from_str::<Value>(t) {
            Ok(v) => emit(line, &v, sink),
            Err(e) => sink(Parsed::Problem {
                line,
                reason: format!("invalid JSON ({e}); record skipped"),
            }),
        }
    })
}

fn parse_array(text: &str, sink: &mut dyn FnMut(Parsed)) {
    let t = text.trim_start_matches('\u{feff}');
    match serde_json::from_str::<Value>(t) {
        Ok(Value::Array(items)) => {
            let lines = element_lines(t);
            for (i, v) in items.iter().enumerate() {
                let line = lines.get(i).copied().unwrap_or(1);
                emit_indexed(line, i as u64 + 1, v, sink);
            }
        }
        Ok(other) => emit(1, &other, sink),
        Err(e) => sink(Parsed::Problem {
            line: e.line() as u64,
            reason: format!("invalid JSON ({e}); the file could not be read"),
        }),
    }
}

fn emit_indexed(line: u64, index: u64, v: &Value, sink: &mut dyn FnMut(Parsed)) {
    match to_paper(v) {
        Some(p) => sink(Parsed::Record { line, paper: p }),
        None => sink(Parsed::Problem {
            line,
            reason: format!("array element {index} is not an object; skipped"),
        }),
    }
}

/// The line each top-level element of a JSON array starts on (serde_json
/// does not report positions of values it has parsed).
fn element_lines(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let (mut depth, mut line, mut in_str, mut esc, mut expect) = (0u32, 1u64, false, false, false);
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        if depth == 1 && expect && !c.is_whitespace() && c != ',' && c != ']' {
            out.push(line);
            expect = false;
        }
        match c {
            '"' => in_str = true,
            '[' | '{' => {
                depth += 1;
                if depth == 1 {
                    expect = true;
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => expect = true,
            _ => {}
        }
    }
    out
}

fn emit(line: u64, v: &Value, sink: &mut dyn FnMut(Parsed)) {
    // Wrapped responses: {"data": [...]}, {"results": [...]}, {"message": {"items": [...]}}.
    for key in ["data", "results", "items", "papers"] {
        if let Some(Value::Array(items)) = v.get(key) {
            for item in items {
                emit_one(line, item, sink);
            }
            return;
        }
    }
    if let Some(Value::Array(items)) = v.get("message").and_then(|m| m.get("items")) {
        for item in items {
            emit_one(line, item, sink);
        }
        return;
    }
    emit_one(line, v, sink);
}

fn emit_one(line: u64, v: &Value, sink: &mut dyn FnMut(Parsed)) {
    match to_paper(v) {
        Some(p) => sink(Parsed::Record { line, paper: p }),
        None => sink(Parsed::Problem {
            line,
            reason: "not a JSON object; skipped".into(),
        }),
    }
}

fn str_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.iter().find_map(|x| x.as_str().map(str::to_string)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn first<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter()
        .filter_map(|k| v.get(*k))
        .find(|x| !x.is_null() && x.as_str() != Some(""))
}

/// Maps any known JSON paper shape to a `Paper`; None when `v` is no object.
pub fn to_paper(v: &Value) -> Option<Paper> {
    let obj = v.as_object()?;
    let mut p = Paper {
        title: str_of(first(v, &["title", "display_name", "Title", "name"])).unwrap_or_default(),
        abs: str_of(first(
            v,
            &[
                "abstract",
                "summary",
                "abstractText",
                "paperAbstract",
                "Abstract",
                "description",
                // BEIR-style corpora (SciDocs, TREC-COVID): title + text.
                "text",
            ],
        ))
        .or_else(|| v.get("abstract_inverted_index").and_then(inverted_abstract))
        .unwrap_or_default(),
        ..Default::default()
    };

    let ext = v.get("externalIds").or_else(|| v.get("external_ids"));
    p.doi = str_of(first(v, &["doi", "DOI"])).or_else(|| ext.and_then(|e| str_of(e.get("DOI"))));
    let raw_id = str_of(first(
        v,
        &[
            "id",
            "paperId",
            "paper_id",
            "_id",
            "doc_id",
            "docid",
            "corpusId",
            "corpus_id",
            "arxiv_id",
            "arxivId",
            "key",
            "ID",
        ],
    ));
    p.arxiv = str_of(first(v, &["arxiv_id", "arxivId"]))
        .or_else(|| ext.and_then(|e| str_of(e.get("ArXiv"))))
        .or_else(|| raw_id.as_deref().and_then(normalize::clean_arxiv))
        .or_else(|| {
            str_of(v.get("abs"))
                .as_deref()
                .and_then(normalize::clean_arxiv)
        });
    p.id = match (&raw_id, &p.arxiv) {
        // arXiv records: the id is the bare arXiv id, version stripped.
        (Some(r), Some(ax)) if normalize::clean_arxiv(r).as_deref() == Some(ax.as_str()) => {
            ax.clone()
        }
        (Some(r), _) => r.rsplit('/').next().unwrap_or(r).to_string(),
        (None, _) => String::new(),
    };

    p.authors = authors(v);
    p.year = first(v, &["year", "publication_year"])
        .and_then(|y| {
            y.as_i64()
                .map(|n| n as i32)
                .or_else(|| y.as_str().and_then(normalize::parse_year))
        })
        .or_else(|| {
            v.get("versions")
                .and_then(|vs| vs.get(0))
                .and_then(|v0| str_of(v0.get("created")))
                .as_deref()
                .and_then(normalize::parse_year)
        })
        .or_else(|| {
            str_of(first(
                v,
                &[
                    "published",
                    "publication_date",
                    "date",
                    "update_date",
                    "created",
                ],
            ))
            .as_deref()
            .and_then(normalize::parse_year)
        })
        .or_else(|| {
            // Crossref: issued.date-parts[0][0]
            v.get("issued")
                .and_then(|i| i.get("date-parts"))
                .and_then(|d| d.get(0))
                .and_then(|d| d.get(0))
                .and_then(Value::as_i64)
                .map(|n| n as i32)
        });
    p.month = json_month(v, p.year);
    p.venue = str_of(first(
        v,
        &[
            "venue",
            "journal",
            "journal-ref",
            "container-title",
            "booktitle",
        ],
    ))
    .or_else(|| {
        v.get("primary_location")
            .and_then(|l| l.get("source"))
            .and_then(|s| str_of(s.get("display_name")))
    });
    p.url = str_of(first(v, &["url", "abs", "link", "URL"]));
    let _ = obj;
    // The source object is not kept: every field it has is mapped above, and
    // keeping it would double the library's size for large snapshots.
    Some(p)
}

fn authors(v: &Value) -> Vec<String> {
    if let Some(Value::Array(parsed)) = v.get("authors_parsed") {
        let names: Vec<String> = parsed
            .iter()
            .filter_map(|a| {
                let a = a.as_array()?;
                let last = a.first()?.as_str()?;
                let given = a.get(1).and_then(Value::as_str).unwrap_or("");
                Some(if given.is_empty() {
                    last.to_string()
                } else {
                    format!("{last}, {given}")
                })
            })
            .collect();
        if !names.is_empty() {
            return names;
        }
    }
    if let Some(Value::Array(ships)) = v.get("authorships") {
        return ships
            .iter()
            .filter_map(|s| str_of(s.get("author").and_then(|a| a.get("display_name"))))
            .collect();
    }
    match v.get("authors").or_else(|| v.get("author")) {
        Some(Value::String(s)) => split_authors(s),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|a| match a {
                Value::String(s) => Some(s.clone()),
                Value::Object(_) => str_of(a.get("name")).or_else(|| {
                    let family = str_of(a.get("family"))?;
                    Some(match str_of(a.get("given")) {
                        Some(g) => format!("{family}, {g}"),
                        None => family,
                    })
                }),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// "A. One, B. Two and C. Three" -> three names.
fn split_authors(s: &str) -> Vec<String> {
    normalize::split_author_list(s)
}

/// OpenAlex stores abstracts as {word: [positions]}; rebuild the text.
fn inverted_abstract(v: &Value) -> Option<String> {
    let map = v.as_object()?;
    let mut words: Vec<(u64, &str)> = Vec::new();
    for (word, positions) in map {
        for p in positions.as_array()? {
            words.push((p.as_u64()?, word));
        }
    }
    if words.len() > 100_000 {
        return None;
    }
    words.sort_unstable();
    Some(words.iter().map(|(_, w)| *w).collect::<Vec<_>>().join(" "))
}

/// The month of `year` from the date fields the formats use: a `month`
/// field, ISO dates (OpenAlex `publication_date`, arXiv API `published`), the
/// OAI snapshot's first version (`versions[0].created`), Crossref's
/// `issued.date-parts`. A date of another year is ignored.
fn json_month(v: &Value, year: Option<i32>) -> Option<u8> {
    let year = year?;
    if let Some(m) = v.get("month") {
        let m = m
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .or_else(|| m.as_str().and_then(normalize::parse_month));
        if m.is_some() {
            return m;
        }
    }
    let created = v
        .get("versions")
        .and_then(|vs| vs.get(0))
        .and_then(|v0| str_of(v0.get("created")));
    let dates = [
        "publication_date",
        "published",
        "date",
        "publicationDate",
        "created",
    ]
    .iter()
    .filter_map(|k| str_of(v.get(*k)))
    .chain(created);
    for d in dates {
        if let Some((y, Some(m))) = normalize::parse_date(&d)
            && y == year
        {
            return Some(m);
        }
    }
    let parts = v
        .get("issued")
        .and_then(|i| i.get("date-parts"))
        .and_then(|d| d.get(0))?;
    (parts.get(0).and_then(Value::as_i64) == Some(i64::from(year)))
        .then(|| parts.get(1).and_then(Value::as_u64))
        .flatten()
        .and_then(|m| u8::try_from(m).ok())
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_elements_get_their_line_numbers() {
        assert_eq!(
            element_lines("[\n {\"a\": \"x,]\"},\n 42,\n\n [1, 2]\n]"),
            vec![2, 3, 5]
        );
    }

    #[test]
    fn openalex_semantic_scholar_and_crossref_shapes() {
        let oa: Value = serde_json::from_str(
            r#"{"id":"https://openalex.org/W42","doi":"https://doi.org/10.1/ABC","display_name":"Graph nets",
                "publication_year":2021,"abstract_inverted_index":{"Graphs":[0],"are":[1],"fun":[2]},
                "authorships":[{"author":{"display_name":"Ada Lovelace"}}]}"#,
        )
        .unwrap();
        let p = to_paper(&oa).unwrap();
        assert_eq!(
            (p.id.as_str(), p.title.as_str(), p.abs.as_str()),
            ("W42", "Graph nets", "Graphs are fun")
        );
        assert_eq!(p.year, Some(2021));
        assert_eq!(p.authors, vec!["Ada Lovelace"]);

        let s2: Value = serde_json::from_str(
            r#"{"paperId":"abc123","title":"T","abstract":null,"year":2020,
                "externalIds":{"ArXiv":"2001.00001","DOI":"10.2/x"},"authors":[{"authorId":"1","name":"B. C"}]}"#,
        )
        .unwrap();
        let p = to_paper(&s2).unwrap();
        assert_eq!(p.arxiv.as_deref(), Some("2001.00001"));
        assert_eq!(p.doi.as_deref(), Some("10.2/x"));
        assert_eq!(p.abs, "");

        // BEIR corpus line (SciDocs) and the S2 open research corpus.
        let beir: Value =
            serde_json::from_str(r#"{"_id":"4983","title":"Cites","text":"Body text."}"#).unwrap();
        let p = to_paper(&beir).unwrap();
        assert_eq!((p.id.as_str(), p.abs.as_str()), ("4983", "Body text."));
        let s2orc: Value = serde_json::from_str(
            r#"{"corpusId":77,"title":"T2","paperAbstract":"Abs.","outCitations":["x"]}"#,
        )
        .unwrap();
        let p = to_paper(&s2orc).unwrap();
        assert_eq!((p.id.as_str(), p.abs.as_str()), ("77", "Abs."));

        let cr: Value = serde_json::from_str(
            r#"{"DOI":"10.3/y","title":["Crossref title"],"abstract":"<jats:p>Body</jats:p>",
                "author":[{"given":"Ann","family":"Bee"}],"issued":{"date-parts":[[2019,5]]}}"#,
        )
        .unwrap();
        let p = to_paper(&cr).unwrap();
        assert_eq!(p.title, "Crossref title");
        assert_eq!(p.authors, vec!["Bee, Ann"]);
        assert_eq!(p.year, Some(2019));
    }
}
