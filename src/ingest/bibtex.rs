//! BibTeX as Zotero, Mendeley, JabRef and Google Scholar write it: nested
//! braces, quoted values, `#` concatenation, `@string` macros, month macros,
//! `@comment`/`@preamble`, text between entries. An entry with unbalanced
//! braces is reported and skipped; parsing resumes at the next entry.

use std::collections::HashMap;

use super::Parsed;
use crate::paper::{Original, Paper};

/// One parsed entry before mapping to a paper.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub kind: String,
    pub key: String,
    pub fields: Vec<(String, String)>,
    pub line: u64,
    pub raw: String,
}

impl Entry {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    line_starts: Vec<usize>,
    macros: HashMap<String, String>,
}

#[derive(Debug)]
struct Fail {
    reason: String,
    /// Where to resume scanning.
    resume: usize,
}

pub fn parse(text: &str, sink: &mut dyn FnMut(Parsed)) {
    for item in entries(text) {
        match item {
            Ok(e) => sink(Parsed::Record {
                line: e.line,
                paper: to_paper(&e),
            }),
            Err((line, reason)) => sink(Parsed::Problem { line, reason }),
        }
    }
}

/// All entries of a file, or (line, reason) for each that failed.
pub fn entries(text: &str) -> Vec<Result<Entry, (u64, String)>> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        macros: month_macros(),
    };
    let mut out = Vec::new();
    while let Some(at) = p.next_at() {
        let line = p.line_of(at);
        match p.entry(at) {
            Ok(Some(e)) => out.push(Ok(e)),
            Ok(None) => {}
            Err(f) => {
                out.push(Err((line, f.reason)));
                p.pos = f.resume.max(at + 1);
            }
        }
    }
    out
}

fn month_macros() -> HashMap<String, String> {
    [
        ("jan", "January"),
        ("feb", "February"),
        ("mar", "March"),
        ("apr", "April"),
        ("may", "May"),
        ("jun", "June"),
        ("jul", "July"),
        ("aug", "August"),
        ("sep", "September"),
        ("oct", "October"),
        ("nov", "November"),
        ("dec", "December"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.' | b'+' | b'/' | b'\'')
}

impl Parser<'_> {
    fn line_of(&self, pos: usize) -> u64 {
        self.line_starts.partition_point(|&s| s <= pos) as u64
    }

    /// Position of the next `@type{` or `@type(`.
    fn next_at(&mut self) -> Option<usize> {
        while self.pos < self.s.len() {
            let at = self.pos + self.s[self.pos..].iter().position(|b| *b == b'@')?;
            let mut i = at + 1;
            while i < self.s.len() && self.s[i].is_ascii_alphabetic() {
                i += 1;
            }
            let ident_len = i - at - 1;
            while i < self.s.len() && self.s[i].is_ascii_whitespace() {
                i += 1;
            }
            if ident_len > 0 && i < self.s.len() && matches!(self.s[i], b'{' | b'(') {
                self.pos = at;
                return Some(at);
            }
            self.pos = at + 1;
        }
        None
    }

    /// True if an entry start (`@ident{` at the start of a line) is at `i`.
    fn entry_start_at_line(&self, i: usize) -> bool {
        let mut j = i;
        while j < self.s.len() && matches!(self.s[j], b' ' | b'\t') {
            j += 1;
        }
        if self.s.get(j) != Some(&b'@') {
            return false;
        }
        let mut k = j + 1;
        while k < self.s.len() && self.s[k].is_ascii_alphabetic() {
            k += 1;
        }
        k > j + 1 && matches!(self.s.get(k), Some(b'{' | b'('))
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() {
            match self.s[self.pos] {
                b if b.is_ascii_whitespace() => self.pos += 1,
                // `%` comments are not BibTeX, but biber and many exports use them.
                b'%' => {
                    while self.pos < self.s.len() && self.s[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn fail(&self, reason: String) -> Fail {
        // Resume at the next line that starts an entry.
        let mut i = self.pos;
        while i < self.s.len() {
            if self.s[i] == b'\n' && self.entry_start_at_line(i + 1) {
                return Fail {
                    reason,
                    resume: i + 1,
                };
            }
            i += 1;
        }
        Fail {
            reason,
            resume: self.s.len(),
        }
    }

    fn entry(&mut self, at: usize) -> Result<Option<Entry>, Fail> {
        self.pos = at + 1;
        let start = self.pos;
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_alphabetic() {
            self.pos += 1;
        }
        let kind = self.text[start..self.pos].to_ascii_lowercase();
        self.skip_ws();
        let close = if self.s.get(self.pos) == Some(&b'(') {
            b')'
        } else {
            b'}'
        };
        self.pos += 1;
        match kind.as_str() {
            "comment" | "preamble" => {
                self.pos -= 1;
                self.balanced(close)?;
                return Ok(None);
            }
            "string" => {
                self.skip_ws();
                let name = self.ident();
                self.skip_ws();
                if self.s.get(self.pos) != Some(&b'=') {
                    return Err(self.fail(format!("@string '{name}' has no '='")));
                }
                self.pos += 1;
                let value = self.value(close)?;
                self.skip_ws();
                if self.s.get(self.pos) == Some(&close) {
                    self.pos += 1;
                }
                self.macros.insert(name.to_ascii_lowercase(), value);
                return Ok(None);
            }
            _ => {}
        }
        self.skip_ws();
        let key_start = self.pos;
        while self.pos < self.s.len() && !matches!(self.s[self.pos], b',' | b'}' | b')' | b'\n') {
            self.pos += 1;
        }
        let key = self.text[key_start..self.pos].trim().to_string();
        if key.contains('=') {
            return Err(self.fail(format!("@{kind} entry has no citation key")));
        }
        let mut fields = Vec::new();
        loop {
            self.skip_ws();
            match self.s.get(self.pos) {
                None => {
                    return Err(self.fail(format!(
                        "entry '{key}' is not closed (unbalanced braces); skipped"
                    )));
                }
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(&b) if b == close => {
                    self.pos += 1;
                    break;
                }
                Some(_) => {}
            }
            if self.entry_start_at_line(self.pos) && self.pos > 0 && self.s[self.pos - 1] == b'\n' {
                return Err(Fail {
                    reason: format!("entry '{key}' is not closed (unbalanced braces); skipped"),
                    resume: self.pos,
                });
            }
            let name = self.ident().to_ascii_lowercase();
            if name.is_empty() {
                let c = self.text[self.pos..].chars().next().unwrap_or(' ');
                return Err(self.fail(format!(
                    "entry '{key}': unexpected '{c}' where a field name should be; skipped"
                )));
            }
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b'=') {
                return Err(self.fail(format!("entry '{key}': field '{name}' has no '='; skipped")));
            }
            self.pos += 1;
            let value = self.value(close).map_err(|mut f| {
                f.reason = format!("entry '{key}', field '{name}': {}", f.reason);
                f
            })?;
            fields.push((name, value));
        }
        Ok(Some(Entry {
            kind,
            key,
            fields,
            line: self.line_of(at),
            raw: self.text[at..self.pos].to_string(),
        }))
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self.pos < self.s.len() && is_ident(self.s[self.pos]) {
            self.pos += 1;
        }
        self.text[start..self.pos].to_string()
    }

    /// A field value: parts joined by `#`.
    fn value(&mut self, close: u8) -> Result<String, Fail> {
        let mut out = String::new();
        loop {
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b'{') => {
                    let (a, b) = self.balanced(b'}')?;
                    out.push_str(&self.text[a..b]);
                }
                Some(b'"') => {
                    let (a, b) = self.quoted()?;
                    out.push_str(&self.text[a..b]);
                }
                Some(b) if b.is_ascii_digit() => {
                    let start = self.pos;
                    while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                        self.pos += 1;
                    }
                    out.push_str(&self.text[start..self.pos]);
                }
                Some(&b) if is_ident(b) => {
                    let name = self.ident();
                    match self.macros.get(&name.to_ascii_lowercase()) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&name),
                    }
                }
                Some(&b) if b == close || b == b',' => return Ok(out),
                None => return Err(self.fail("the file ends inside this value".into())),
                Some(_) => {
                    let c = self.text[self.pos..].chars().next().unwrap_or(' ');
                    return Err(self.fail(format!("unexpected '{c}' in a value")));
                }
            }
            self.skip_ws();
            if self.s.get(self.pos) == Some(&b'#') {
                self.pos += 1;
            } else {
                return Ok(out);
            }
        }
    }

    /// `{...}` with nesting; returns the inner byte range. A new entry at the
    /// start of a line inside the group means the braces never closed.
    fn balanced(&mut self, close: u8) -> Result<(usize, usize), Fail> {
        let open = self.s[self.pos];
        let start = self.pos + 1;
        let mut depth = 0usize;
        let mut i = self.pos;
        while i < self.s.len() {
            let b = self.s[i];
            if b == b'\\' {
                i += 2;
                continue;
            }
            if b == open {
                depth += 1;
            } else if b == close {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    self.pos = i + 1;
                    return Ok((start, i));
                }
            } else if b == b'\n' && self.entry_start_at_line(i + 1) {
                self.pos = i;
                return Err(Fail {
                    reason: "braces are not balanced before the next entry".into(),
                    resume: i + 1,
                });
            }
            i += 1;
        }
        self.pos = self.s.len();
        Err(Fail {
            reason: "braces are not balanced (the file ends inside this entry)".into(),
            resume: self.s.len(),
        })
    }

    /// `"..."` where quotes inside braces do not end the value.
    fn quoted(&mut self) -> Result<(usize, usize), Fail> {
        let start = self.pos + 1;
        let mut depth = 0usize;
        let mut i = start;
        while i < self.s.len() {
            match self.s[i] {
                b'\\' => {
                    i += 2;
                    continue;
                }
                b'{' => depth += 1,
                b'}' => depth = depth.saturating_sub(1),
                b'"' if depth == 0 => {
                    self.pos = i + 1;
                    return Ok((start, i));
                }
                b'\n' if self.entry_start_at_line(i + 1) => {
                    self.pos = i;
                    return Err(Fail {
                        reason: "a quoted value is not closed before the next entry".into(),
                        resume: i + 1,
                    });
                }
                _ => {}
            }
            i += 1;
        }
        self.pos = self.s.len();
        Err(Fail {
            reason: "a quoted value is not closed".into(),
            resume: self.s.len(),
        })
    }
}

/// Splits `author` on ` and ` outside braces.
pub fn split_names(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    let words: Vec<&str> = s.split_whitespace().collect();
    for w in words {
        if depth == 0 && w.eq_ignore_ascii_case("and") {
            out.push(std::mem::take(&mut cur));
            continue;
        }
        depth += w.matches('{').count() as i32 - w.matches('}').count() as i32;
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    out.push(cur);
    out.into_iter()
        .filter(|n| !n.trim().is_empty() && n != "others")
        .collect()
}

fn to_paper(e: &Entry) -> Paper {
    let get = |k: &str| {
        e.get(k)
            .map(str::to_string)
            .filter(|v| !v.trim().is_empty())
    };
    // Text fields are TeX: `~` is a tie (a space) there and only there.
    let text = |k: &str| get(k).map(|v| super::normalize::bibtex_ties(&v));
    let eprint_is_arxiv = e
        .get("archiveprefix")
        .or(e.get("eprinttype"))
        .is_none_or(|a| a.eq_ignore_ascii_case("arxiv"));
    // Exports put the arXiv id in `eprint`, in `note` ("arXiv: 2106.15831"),
    // in `journal` ("arXiv preprint arXiv:2103.07945"), in `url` or the DOI.
    let arxiv = get("eprint")
        .filter(|_| eprint_is_arxiv)
        .and_then(|v| {
            super::normalize::clean_arxiv(&v).or_else(|| super::normalize::find_arxiv(&v))
        })
        .or_else(|| {
            [
                "note",
                "journal",
                "journaltitle",
                "url",
                "howpublished",
                "doi",
                "annote",
                "annotation",
                "eprint",
            ]
            .iter()
            .filter_map(|k| e.get(k))
            .find_map(super::normalize::find_arxiv)
        });
    Paper {
        id: e.key.clone(),
        title: text("title").unwrap_or_default(),
        abs: text("abstract").unwrap_or_default(),
        authors: text("author").map(|a| split_names(&a)).unwrap_or_default(),
        year: get("year")
            .or_else(|| get("date"))
            .as_deref()
            .and_then(super::normalize::parse_year),
        month: get("month")
            .as_deref()
            .and_then(super::normalize::parse_month)
            .or_else(|| {
                super::normalize::best_date([get("year").as_deref(), get("date").as_deref()]).1
            }),
        doi: get("doi"),
        arxiv,
        venue: text("journal")
            .or_else(|| text("booktitle"))
            .or_else(|| text("journaltitle"))
            .or_else(|| text("publisher")),
        url: get("url"),
        original: Some(Original {
            format: "bibtex".into(),
            text: e.raw.clone(),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_braces_macros_and_concatenation() {
        let text = r#"
% a comment line
@string{ jmlr = "Journal of Machine Learning Research" }
@comment{ ignored {nested} }
@preamble{ "\newcommand{\x}{y}" }
Some stray text between entries.
@Article{smith2020,
  title = {{Deep} {Learning} of {\"O}bjects},
  author = "Smith, John and {Barnes and Noble}",
  journal = jmlr # " (special)",
  month = jan,
  year = 2020,
  abstract = {A "quoted" word and {nested {braces}}.}
}
@misc(paren2021, title = "Paren style {"}quotes{"}", year = {2021})
"#;
        let es: Vec<_> = entries(text).into_iter().map(Result::unwrap).collect();
        assert_eq!(es.len(), 2);
        let e = &es[0];
        assert_eq!(e.key, "smith2020");
        assert_eq!(e.line, 7);
        assert_eq!(
            e.get("journal"),
            Some("Journal of Machine Learning Research (special)")
        );
        assert_eq!(e.get("month"), Some("January"));
        assert_eq!(e.get("year"), Some("2020"));
        assert_eq!(
            split_names(e.get("author").unwrap()),
            vec!["Smith, John", "{Barnes and Noble}"]
        );
        assert!(e.raw.starts_with("@Article{smith2020") && e.raw.ends_with('}'));
        assert_eq!(es[1].get("title"), Some(r#"Paren style {"}quotes{"}"#));
    }

    #[test]
    fn unbalanced_entry_is_reported_and_next_entry_survives() {
        let text = "@article{bad,\n  title = {Broken {title},\n  year = 2020\n}\n@article{good,\n  title = {Fine}\n}\n";
        let items = entries(text);
        assert_eq!(items.len(), 2, "{items:?}");
        let (line, reason) = items[0].clone().unwrap_err();
        assert_eq!(line, 1);
        assert!(
            reason.contains("bad") || reason.contains("balanced"),
            "{reason}"
        );
        assert_eq!(items[1].clone().unwrap().key, "good");
    }

    #[test]
    fn eof_inside_entry_is_an_error_not_a_panic() {
        for text in [
            "@article{x, title = {abc",
            "@article{x, title = \"abc",
            "@article{x, title",
            "@article{",
            "@string{",
        ] {
            let items = entries(text);
            assert!(items.iter().all(Result::is_err), "{text}: {items:?}");
        }
    }
}
