//! CSV and TSV with a header row. Columns are matched case-insensitively
//! against common synonyms (Zotero, Scopus, Web of Science, IEEE, Google
//! Scholar exports) or named explicitly with `--columns title=...,abstract=...`.
//! Quoted multi-line fields are handled by the `csv` crate.

use super::Parsed;
use crate::error::{Error, Result};
use crate::paper::Paper;

/// Explicit column names, overriding the synonyms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnMap {
    pub entries: Vec<(String, String)>,
}

impl std::str::FromStr for ColumnMap {
    type Err = Error;
    /// `title=Article Title,abstract=Summary`.
    fn from_str(s: &str) -> Result<Self> {
        let mut entries = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (field, col) = part.split_once('=').ok_or_else(|| {
                Error::Invalid(format!("--columns: '{part}' is not FIELD=COLUMN"))
            })?;
            let field = field.trim().to_ascii_lowercase();
            if !FIELDS.iter().any(|(f, _)| *f == field) {
                return Err(Error::Invalid(format!(
                    "--columns: unknown field '{field}' (known: {})",
                    FIELDS
                        .iter()
                        .map(|(f, _)| *f)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            entries.push((field, col.trim().to_string()));
        }
        Ok(ColumnMap { entries })
    }
}

/// Paper fields and the header names that mean them, most specific first.
const FIELDS: &[(&str, &[&str])] = &[
    (
        "title",
        &[
            "title",
            "article title",
            "document title",
            "paper title",
            "ti",
            "primary title",
        ],
    ),
    (
        "abstract",
        &[
            "abstract",
            "summary",
            "abstract note",
            "ab",
            "description",
            "abstracttext",
            "abstract_text",
            "paperabstract",
            "text",
        ],
    ),
    (
        "id",
        &[
            "id",
            "key",
            "paper id",
            "paperid",
            "paper_id",
            "_id",
            "doc_id",
            "docid",
            "corpus_id",
            "corpusid",
            "eid",
            "ut (unique wos id)",
            "ut",
            "citation key",
            "arxiv id",
        ],
    ),
    ("doi", &["doi", "di"]),
    ("year", &["year", "publication year", "py", "pubyear"]),
    (
        "date",
        &[
            "date",
            "publication date",
            "publication_date",
            "published",
            "pubdate",
            "date published",
            "coverdate",
            "cover date",
        ],
    ),
    (
        "authors",
        &[
            "authors",
            "author",
            "author full names",
            "au",
            "author names",
            "creators",
        ],
    ),
    (
        "venue",
        &[
            "source title",
            "journal",
            "venue",
            "publication title",
            "so",
            "publication",
            "booktitle",
            "conference",
        ],
    ),
    ("url", &["url", "link", "pdf url"]),
    ("arxiv", &["arxiv", "arxiv_id", "eprint"]),
];

pub fn parse(text: &str, delim: u8, map: &ColumnMap, sink: &mut dyn FnMut(Parsed)) -> Result<()> {
    let text = text.trim_start_matches('\u{feff}');
    // Semicolon-separated "CSV" from European locales.
    let delim = if delim == b',' {
        let first = text.lines().next().unwrap_or("");
        if first.matches(';').count() > first.matches(',').count() {
            b';'
        } else {
            b','
        }
    } else {
        delim
    };
    let mut rdr = ::csv::ReaderBuilder::new()
        .delimiter(delim)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => {
            sink(Parsed::Problem {
                line: 1,
                reason: format!("cannot read the header row: {e}"),
            });
            return Ok(());
        }
    };
    let col = |field: &str| -> Option<usize> {
        if let Some((_, name)) = map.entries.iter().find(|(f, _)| f == field) {
            return headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        }
        let syn = FIELDS.iter().find(|(f, _)| *f == field)?.1;
        syn.iter()
            .find_map(|s| headers.iter().position(|h| h.eq_ignore_ascii_case(s)))
    };
    for (field, name) in &map.entries {
        if col(field).is_none() {
            return Err(Error::Invalid(format!(
                "--columns: no column named '{name}' for {field} (header: {})",
                headers.join(", ")
            )));
        }
    }
    let Some(title_col) = col("title") else {
        sink(Parsed::Problem {
            line: 1,
            reason: format!(
                "no title column in the header ({}); name it with --columns title=NAME",
                headers.join(", ")
            ),
        });
        return Ok(());
    };
    let cols: Vec<(&str, Option<usize>)> = FIELDS.iter().map(|(f, _)| (*f, col(f))).collect();
    // The arXiv snapshot saved through pandas: its `id` column is an arXiv id
    // that may have been read as a float ("704.001" for 0704.0010).
    let has = |n: &str| headers.iter().any(|h| h.eq_ignore_ascii_case(n));
    let arxiv_snapshot = has("id")
        && has("categories")
        && ["submitter", "versions", "update_date", "authors_parsed"]
            .iter()
            .any(|n| has(n));
    let get = |rec: &::csv::StringRecord, f: &str| -> Option<String> {
        let i = cols.iter().find(|(n, _)| *n == f)?.1?;
        rec.get(i)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    for rec in rdr.records() {
        match rec {
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                sink(Parsed::Problem {
                    line,
                    reason: format!("malformed row ({e}); skipped"),
                });
            }
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                let authors = get(&r, "authors")
                    .map(|a| super::normalize::split_author_list(&a))
                    .unwrap_or_default();
                let date = super::normalize::best_date([
                    get(&r, "year").as_deref(),
                    get(&r, "date").as_deref(),
                ]);
                let mut id = get(&r, "id").unwrap_or_default();
                let mut arxiv = get(&r, "arxiv");
                if arxiv_snapshot
                    && arxiv.is_none()
                    && let Some(ax) = super::normalize::restore_float_arxiv(&id)
                {
                    id = ax.clone();
                    arxiv = Some(ax);
                }
                let paper = Paper {
                    id,
                    title: r.get(title_col).unwrap_or("").to_string(),
                    abs: get(&r, "abstract").unwrap_or_default(),
                    authors,
                    year: date.0,
                    month: date.1,
                    doi: get(&r, "doi"),
                    arxiv,
                    venue: get(&r, "venue"),
                    url: get(&r, "url"),
                    ..Default::default()
                };
                sink(Parsed::Record { line, paper });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, delim: u8, map: &ColumnMap) -> Vec<Parsed> {
        let mut out = Vec::new();
        parse(text, delim, map, &mut |p| out.push(p)).unwrap();
        out
    }

    #[test]
    fn synonyms_quoted_multiline_and_explicit_columns() {
        let text = "Key,Publication Year,Author,Title,Abstract Note,DOI\n\
            K1,2020,\"Doe, J.; Roe, R.\",\"A, quoted title\",\"first line\nsecond line\",10.1/x\n\
            K2,2021,,Second,,\n";
        let got = run(text, b',', &ColumnMap::default());
        let Parsed::Record { paper, line } = &got[0] else {
            panic!()
        };
        assert_eq!(*line, 2);
        assert_eq!(paper.title, "A, quoted title");
        assert_eq!(paper.abs, "first line\nsecond line");
        assert_eq!(paper.authors, vec!["Doe, J.", "Roe, R."]);
        assert_eq!(paper.year, Some(2020));
        let Parsed::Record { line, .. } = &got[1] else {
            panic!()
        };
        assert_eq!(*line, 4);

        let map: ColumnMap = "title=Heading,abstract=Body".parse().unwrap();
        let got = run("heading\tbody\nT\tB\n", b'\t', &map);
        let Parsed::Record { paper, .. } = &got[0] else {
            panic!()
        };
        assert_eq!((paper.title.as_str(), paper.abs.as_str()), ("T", "B"));
    }

    #[test]
    fn missing_title_column_is_a_clear_problem() {
        let got = run("a,b\n1,2\n", b',', &ColumnMap::default());
        let Parsed::Problem { reason, .. } = &got[0] else {
            panic!()
        };
        assert!(reason.contains("no title column"), "{reason}");
    }
}
