//! Reading paper records from the files researchers have: format detection,
//! decoding, one parser per format, normalisation, and the hand-over to the
//! store with a per-file summary.
//!
//! Parsers never fail a whole file for one bad record: they report a
//! `Problem` with its line and go on. `--strict` turns the first problem
//! into an error before anything from that file is stored.

pub mod bibtex;
mod csv;
mod decode;
mod json;
mod listing;
pub mod normalize;
mod ris;
mod tagged;
pub mod zotero;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::paper::{Paper, derived_id};
use crate::store::{Added, Mode, Writer};

pub use self::csv::ColumnMap;

/// Input formats papermap reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Bibtex,
    Ris,
    Csv,
    Tsv,
    /// A JSON array of objects, or one object per line (JSON lines).
    Json,
    /// The scraped listing of the sample corpus: title line, abstract line.
    Listing,
    /// Web of Science plain-text export (`PT J` .. `ER`).
    Wos,
    /// PubMed/MEDLINE (`.nbib`, `PMID- ` records).
    Medline,
    /// EndNote tagged (`.enw`, `%0` records).
    EndNote,
    /// The Zotero desktop database (`zotero.sqlite`).
    Zotero,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "bib" | "bibtex" | "biblatex" => Format::Bibtex,
            "ris" => Format::Ris,
            "csv" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            "json" | "jsonl" | "ndjson" | "jsonlines" => Format::Json,
            "listing" | "txt" | "text" => Format::Listing,
            "wos" | "webofscience" => Format::Wos,
            "medline" | "nbib" | "pubmed" => Format::Medline,
            "endnote" | "enw" => Format::EndNote,
            "zotero" | "sqlite" => Format::Zotero,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown format '{other}' (expected bibtex, ris, csv, tsv, json, wos, medline, endnote, listing, zotero)"
                )));
            }
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Bibtex => "bibtex",
            Format::Ris => "ris",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Listing => "listing",
            Format::Wos => "wos",
            Format::Medline => "medline",
            Format::EndNote => "endnote",
            Format::Zotero => "zotero",
        })
    }
}

/// What a parser yields: a record (with the line it starts on) or a problem.
// Each record is built once and moved once into the sink; boxing it would
// add an allocation per record for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    Record {
        line: u64,
        paper: Paper,
    },
    /// A record (or the whole file) that could not be read: counted as skipped.
    Problem {
        line: u64,
        reason: String,
    },
    /// Something worth knowing that cost no record (a decoding fallback, a
    /// record read without its end marker).
    Warning {
        line: u64,
        reason: String,
    },
}

/// Options for reading input files.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Force a format instead of detecting it.
    pub format: Option<Format>,
    /// Fail a file on its first bad record, storing nothing from it.
    pub strict: bool,
    /// CSV/TSV column names to use instead of the header synonyms.
    pub columns: ColumnMap,
    /// Zotero databases: only this collection path and its subcollections.
    pub collection: Option<String>,
    /// The files are re-read as they change (`add --watch`): a record whose
    /// id names a paper read from the same file replaces it.
    pub sync: bool,
}

/// Counts for one file, printed as the ingest summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileReport {
    pub path: PathBuf,
    pub format: String,
    pub read: usize,
    pub new: usize,
    pub duplicate: usize,
    pub updated: usize,
    pub skipped: usize,
    /// Records kept without an abstract (embedded from the title alone).
    pub no_abstract: usize,
    /// Problems and skips, each naming the file and line.
    pub warnings: Vec<String>,
    /// What else the user should know (a Zotero database's contents, papers
    /// deleted in Zotero).
    pub notes: Vec<String>,
    /// Why the file could not be read (to the end): the rest of the files are
    /// still read, and `add` fails at the end.
    pub error: Option<String>,
    /// With `IngestOptions::sync`: the ids of the stored papers the file's
    /// records are (so a watcher can tell which entries left the file).
    pub ids: Vec<String>,
    /// Papers removed because the file (a Zotero database, or a watched file
    /// with `IngestOptions::sync`) no longer holds them: their ids.
    pub removed: Vec<String>,
}

/// Detects the format of `path` from its extension, then its content.
pub fn detect(path: &Path, head: &str) -> Format {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("bib" | "bibtex") => return Format::Bibtex,
        Some("ris") => return Format::Ris,
        Some("nbib" | "medline") => return Format::Medline,
        Some("enw") => return Format::EndNote,
        Some("tsv" | "tab") => return Format::Tsv,
        Some("json" | "jsonl" | "ndjson") => return Format::Json,
        Some("csv") => return Format::Csv,
        _ => {}
    }
    sniff(head)
}

/// Content-based detection on the first few KB.
pub fn sniff(head: &str) -> Format {
    let t = head.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        return Format::Json;
    }
    match tagged::sniff(t) {
        Some(tagged::Dialect::WebOfScience) => return Format::Wos,
        Some(tagged::Dialect::Medline) => return Format::Medline,
        Some(tagged::Dialect::EndNote) => return Format::EndNote,
        None => {}
    }
    if t.lines().take(20).any(|l| {
        let l = l.trim_start();
        l.starts_with("TY  -") || l.starts_with("TY -")
    }) {
        return Format::Ris;
    }
    if t.lines().any(|l| {
        let l = l.trim_start().to_ascii_lowercase();
        [
            "@article",
            "@inproceedings",
            "@misc",
            "@book",
            "@incollection",
            "@techreport",
            "@phdthesis",
            "@string",
            "@preamble",
            "@comment",
            "@online",
            "@unpublished",
            "@mastersthesis",
            "@conference",
            "@report",
            "@thesis",
            "@inbook",
            "@proceedings",
            "@manual",
            "@software",
            "@dataset",
            "@electronic",
        ]
        .iter()
        .any(|k| l.starts_with(k))
    }) {
        return Format::Bibtex;
    }
    if let Some(first) = t.lines().next() {
        // A header row naming a title column (WoS tab-delimited calls it TI).
        let tab = first.contains('\t');
        let cols = first.split(if tab {
            '\t'
        } else if first.contains(',') {
            ','
        } else {
            ';'
        });
        let titled = cols
            .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
            .any(|c| c == "ti" || c.contains("title"));
        if titled && tab {
            return Format::Tsv;
        }
        if titled && (first.contains(',') || first.contains(';')) {
            return Format::Csv;
        }
    }
    Format::Listing
}

/// Parses one file, calling `sink` for every record and problem.
pub fn parse_file(
    path: &Path,
    opts: &IngestOptions,
    sink: &mut dyn FnMut(Parsed),
) -> Result<Format> {
    parse_source(decode::Source::open(path)?, path, opts, sink)
}

/// Parses bytes held in memory as if they were the file `name`.
pub fn parse_bytes(
    name: &Path,
    bytes: &[u8],
    opts: &IngestOptions,
    sink: &mut dyn FnMut(Parsed),
) -> Result<Format> {
    parse_source(decode::Source::from_bytes(name, bytes)?, name, opts, sink)
}

fn parse_source(
    mut src: decode::Source,
    path: &Path,
    opts: &IngestOptions,
    sink: &mut dyn FnMut(Parsed),
) -> Result<Format> {
    let format = opts.format.unwrap_or_else(|| detect(path, src.head()));
    if let Some(note) = src.note() {
        sink(Parsed::Warning {
            line: 0,
            reason: note.to_string(),
        });
    }
    match format {
        Format::Json => json::parse(&mut src, sink)?,
        Format::Bibtex => bibtex::parse(&src.read_all()?, sink),
        Format::Ris => ris::parse(&src.read_all()?, sink),
        Format::Csv => csv::parse(&src.read_all()?, b',', &opts.columns, sink)?,
        Format::Tsv => csv::parse(&src.read_all()?, b'\t', &opts.columns, sink)?,
        Format::Listing => listing::parse(&src.read_all()?, sink),
        Format::Wos => tagged::parse(tagged::Dialect::WebOfScience, &src.read_all()?, sink),
        Format::Medline => tagged::parse(tagged::Dialect::Medline, &src.read_all()?, sink),
        Format::EndNote => tagged::parse(tagged::Dialect::EndNote, &src.read_all()?, sink),
        Format::Zotero => {
            return Err(Error::Input {
                path: path.to_path_buf(),
                reason: "a Zotero database is read from its file, not from text".into(),
            });
        }
    }
    Ok(format)
}

/// For line-tagged formats (RIS, Web of Science, MEDLINE, EndNote): the
/// first non-empty value among `tags`, in the order the tags are given.
fn first_field(fields: &[(String, String)], tags: &[&str]) -> Option<String> {
    tags.iter().find_map(|t| {
        fields
            .iter()
            .find(|(k, v)| k == t && !v.is_empty())
            .map(|(_, v)| v.clone())
    })
}

/// Every value whose tag is among `tags`, in file order (e.g. authors).
fn all_fields(fields: &[(String, String)], tags: &[&str]) -> Vec<String> {
    fields
        .iter()
        .filter(|(k, _)| tags.contains(&k.as_str()))
        .map(|(_, v)| v.clone())
        .collect()
}

/// Longest title accepted: anything longer is a parsing accident.
const MAX_TITLE: usize = 1_000;
/// Longest abstract kept; the model reads 256 tokens and BM25 needs no more.
const MAX_ABSTRACT: usize = 50_000;

/// Finishes a parsed record: clean text, ids, and a verdict.
fn finish(mut p: Paper) -> std::result::Result<Paper, String> {
    if p.title.len() > 20 * MAX_TITLE {
        return Err(format!(
            "title of {} bytes is not a title; record skipped",
            p.title.len()
        ));
    }
    if p.abs.len() > 20 * MAX_ABSTRACT {
        // Cut before cleaning so a 10 MB field costs no more than 1 MB of work.
        let mut cut = 20 * MAX_ABSTRACT;
        while !p.abs.is_char_boundary(cut) {
            cut -= 1;
        }
        p.abs.truncate(cut);
    }
    p.title = normalize::clean_text(&p.title);
    p.title = p.title.trim_end_matches(['.', ' ']).to_string();
    p.abs = normalize::clean_abstract(&p.abs);
    if p.title.is_empty() {
        return Err(if p.abs.is_empty() {
            "record has neither title nor abstract".into()
        } else {
            "record has an abstract but no title".into()
        });
    }
    if p.title.chars().count() > MAX_TITLE {
        return Err(format!(
            "title of {} characters is not a title; record skipped",
            p.title.chars().count()
        ));
    }
    if let Some((cut, _)) = p.abs.char_indices().nth(MAX_ABSTRACT) {
        p.abs.truncate(cut);
    }
    p.doi = p.doi.as_deref().and_then(normalize::clean_doi);
    p.arxiv = p.arxiv.as_deref().and_then(normalize::clean_arxiv);
    if p.arxiv.is_none() {
        // arXiv DOIs (10.48550/arXiv.2003.02234), URLs and "arXiv preprint
        // arXiv:..." venues name the arXiv id.
        p.arxiv = [p.doi.as_deref(), p.url.as_deref(), p.venue.as_deref()]
            .into_iter()
            .flatten()
            .find_map(normalize::find_arxiv);
    }
    if p.year.is_none()
        && let Some(d) = p.arxiv.as_deref().and_then(crate::paper::arxiv_date)
    {
        (p.year, p.month) = (Some(d.year), d.month);
    }
    p.month = p.month.filter(|m| p.year.is_some() && (1..=12).contains(m));
    p.authors = p
        .authors
        .iter()
        .map(|a| normalize::clean_text(a))
        .filter(|a| !a.is_empty())
        .collect();
    p.venue = p
        .venue
        .map(|v| normalize::clean_text(&v))
        .filter(|v| !v.is_empty());
    p.id = normalize::collapse_ws(&p.id);
    if p.id.is_empty() {
        p.id = p.arxiv.clone().unwrap_or_else(|| derived_id(&p.title));
    }
    Ok(p)
}

/// Refuses, before anything is read or stored, any input that is not a
/// regular file: reading a device (`/dev/zero`) or a FIFO would never end or
/// block, a directory has no records. Symlinks to regular files are fine.
pub fn check_inputs(paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_file() {
            continue;
        }
        let t = meta.file_type();
        #[cfg(unix)]
        let kind = {
            use std::os::unix::fs::FileTypeExt;
            if t.is_dir() {
                "a directory"
            } else if t.is_char_device() {
                "a character device"
            } else if t.is_block_device() {
                "a block device"
            } else if t.is_fifo() {
                "a FIFO (named pipe)"
            } else if t.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            }
        };
        #[cfg(not(unix))]
        let kind = if t.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        // `add ~/Zotero` means the database in it.
        let hint = if t.is_dir() && path.join("zotero.sqlite").is_file() {
            format!(
                " (for the Zotero library in it, pass {})",
                path.join("zotero.sqlite").display()
            )
        } else {
            String::new()
        };
        return Err(Error::Input {
            path: path.clone(),
            reason: format!("is {kind}; papermap reads records only from regular files{hint}"),
        });
    }
    Ok(())
}

/// Reads `paths` into the library. Returns one report per file: a file that
/// cannot be read gets its `error` and the next file is read; only a failure
/// of the library itself (a full disk) stops everything.
pub fn ingest<M: Mode>(
    writer: &mut Writer<M>,
    paths: &[PathBuf],
    opts: &IngestOptions,
) -> Result<Vec<FileReport>> {
    check_inputs(paths)?;
    if opts.collection.is_some() && !paths.iter().any(|p| is_zotero(p, opts)) {
        return Err(Error::Invalid(
            "--collection selects a collection of a Zotero database (zotero.sqlite); none was given"
                .into(),
        ));
    }
    let mut reports = Vec::with_capacity(paths.len());
    for path in paths {
        let mut report = FileReport {
            path: path.clone(),
            ..Default::default()
        };
        let outcome = if is_zotero(path, opts) {
            ingest_zotero(writer, path, opts, &mut report)?
        } else {
            ingest_file(writer, path, opts, &mut report)?
        };
        if let Err(e) = outcome {
            report.error = Some(e.to_string());
        }
        // What was stored before a file failed is kept.
        writer.commit()?;
        reports.push(report);
    }
    if opts.sync && remove_left_entries(writer, &mut reports)? {
        writer.commit()?;
    }
    Ok(reports)
}

/// `add --watch`: entries that left a re-read file leave the library. A
/// paper is removed when its stored record was read from that file (its
/// `source`), the file was read to the end, and no file of this run holds
/// it any more. A paper first stored from another file, which this file
/// only merged into, keeps that file as its source and is never removed
/// here. Zotero databases do this themselves (`ingest_zotero`).
/// Returns whether anything was removed.
fn remove_left_entries<M: Mode>(
    writer: &mut Writer<M>,
    reports: &mut [FileReport],
) -> Result<bool> {
    let held: HashSet<String> = reports.iter().flat_map(|r| r.ids.iter().cloned()).collect();
    let mut any = false;
    for r in reports.iter_mut() {
        if r.error.is_some() || r.format == Format::Zotero.to_string() {
            continue;
        }
        let file = r.path.display().to_string();
        let mut gone: Vec<String> = writer
            .ids_from_source(&file)
            .filter(|id| !held.contains(*id))
            .map(str::to_string)
            .collect();
        if gone.is_empty() {
            continue;
        }
        gone.sort();
        writer.remove_papers(&gone)?;
        r.notes.push(format!(
            "{file}: {} entr(y/ies) no longer in the file removed from the library: {}",
            gone.len(),
            gone.join(", ")
        ));
        r.removed = gone;
        any = true;
    }
    Ok(any)
}

fn is_zotero(path: &Path, opts: &IngestOptions) -> bool {
    match opts.format {
        Some(f) => f == Format::Zotero,
        None => zotero::is_sqlite(path),
    }
}

/// The outer error is the library's (fatal), the inner one the file's.
type FileOutcome = Result<Result<()>>;

fn ingest_file<M: Mode>(
    writer: &mut Writer<M>,
    path: &Path,
    opts: &IngestOptions,
    report: &mut FileReport,
) -> FileOutcome {
    if opts.strict {
        let mut first: Option<(u64, String)> = None;
        let checked = parse_file(path, opts, &mut |p| {
            if first.is_some() {
                return;
            }
            match p {
                Parsed::Problem { line, reason } => first = Some((line, reason)),
                Parsed::Warning { .. } => {}
                Parsed::Record { line, paper } => {
                    if let Err(reason) = finish(paper) {
                        first = Some((line, reason));
                    }
                }
            }
        });
        if let Err(e) = checked {
            return Ok(Err(e));
        }
        if let Some((line, reason)) = first {
            return Ok(Err(Error::Parse {
                path: path.to_path_buf(),
                line,
                reason: format!("{reason} (--strict: nothing from this file was stored)"),
            }));
        }
    }
    let mut failure: Option<Error> = None;
    let display = path.display().to_string();
    let parsed = parse_file(path, opts, &mut |parsed| {
        if failure.is_some() {
            return;
        }
        match parsed {
            Parsed::Warning { line, reason } => {
                report.warnings.push(location(&display, line, &reason));
            }
            Parsed::Problem { line, reason } => {
                report.warnings.push(location(&display, line, &reason));
                report.read += 1;
                report.skipped += 1;
            }
            Parsed::Record { line, mut paper } => {
                report.read += 1;
                paper.source = format!("{display}:{line}");
                let long = paper.abs.len() > MAX_ABSTRACT;
                match finish(paper) {
                    Err(reason) => {
                        report.skipped += 1;
                        report.warnings.push(location(&display, line, &reason));
                    }
                    Ok(paper) => {
                        if long && paper.abs.chars().count() == MAX_ABSTRACT {
                            report.warnings.push(location(
                                &display,
                                line,
                                &format!("abstract cut to its first {MAX_ABSTRACT} characters"),
                            ));
                        }
                        let no_abs = !paper.has_abstract();
                        let added = if opts.sync {
                            writer.sync_paper(paper, &display)
                        } else {
                            writer.add_paper(paper)
                        };
                        match count(report, added, no_abs) {
                            Ok(id) if opts.sync => report.ids.push(id),
                            Ok(_) => {}
                            Err(e) => failure = Some(e),
                        }
                        // Large files commit as they go: a crash loses at
                        // most one chunk, and a re-run skips what is stored.
                        if failure.is_none()
                            && report.read.is_multiple_of(20_000)
                            && let Err(e) = writer.commit()
                        {
                            failure = Some(e);
                        }
                    }
                }
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    match parsed {
        Ok(format) => {
            report.format = format.to_string();
            Ok(Ok(()))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// Counts one stored record in the file's report.
fn count(report: &mut FileReport, added: Result<Added>, no_abs: bool) -> Result<String> {
    Ok(match added? {
        Added::New(id) => {
            report.new += 1;
            report.no_abstract += usize::from(no_abs);
            id
        }
        Added::Duplicate(id) => {
            report.duplicate += 1;
            id
        }
        Added::Updated(id) => {
            report.updated += 1;
            id
        }
    })
}

/// A Zotero database: every regular item stored under its item key
/// (re-adding replaces what changed), then the papers deleted in Zotero
/// since the last add are reported.
fn ingest_zotero<M: Mode>(
    writer: &mut Writer<M>,
    path: &Path,
    opts: &IngestOptions,
    report: &mut FileReport,
) -> FileOutcome {
    report.format = Format::Zotero.to_string();
    let display = path.display().to_string();
    let zopts = zotero::ZoteroOptions {
        collection: opts.collection.clone(),
    };
    let mut records: Vec<Paper> = Vec::new();
    let summary = match zotero::read(path, &zopts, &mut |p| match p {
        Parsed::Record { paper, .. } => records.push(paper),
        Parsed::Problem { reason, .. } | Parsed::Warning { reason, .. } => {
            report.warnings.push(location(&display, 0, &reason));
        }
    }) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let mut finished = Vec::with_capacity(records.len());
    for paper in records {
        report.read += 1;
        let id = paper.id.clone();
        match finish(paper) {
            Ok(p) => finished.push(p),
            Err(reason) => {
                let reason = format!("item {id}: {reason}");
                if opts.strict {
                    return Ok(Err(Error::Input {
                        path: path.to_path_buf(),
                        reason: format!("{reason} (--strict: nothing from this file was stored)"),
                    }));
                }
                report.skipped += 1;
                report.warnings.push(location(&display, 0, &reason));
            }
        }
    }
    for paper in finished {
        let no_abs = !paper.has_abstract();
        let added = writer.put_paper(paper);
        let id = count(report, added, no_abs)?;
        if opts.sync {
            report.ids.push(id);
        }
    }
    report.notes.push(format!(
        "{display}: {}: {} regular item(s) read; not read: {} attachment(s)/note(s)/annotation(s), {} in the trash{}{}; {} collection(s)",
        summary.schema,
        summary.regular,
        summary.not_papers,
        summary.trashed,
        if summary.feed_items > 0 {
            format!(", {} feed item(s)", summary.feed_items)
        } else {
            String::new()
        },
        if opts.collection.is_some() {
            format!(", {} outside the collection", summary.outside_collection)
        } else {
            String::new()
        },
        summary.collections,
    ));
    if opts.collection.is_none() {
        // Deletions: papers stored from this database earlier that it no
        // longer holds (or holds in its trash) are removed. Only papers read
        // from this file (as the path was given) count: another Zotero
        // database's papers in the same library stay.
        let seen: HashSet<&str> = summary.ids.iter().map(String::as_str).collect();
        let mut gone: Vec<String> = writer
            .ids_from_source(&display)
            .filter(|id| id.starts_with("zotero:") && !seen.contains(id))
            .map(str::to_string)
            .collect();
        gone.sort();
        if !gone.is_empty() {
            let mut named = Vec::new();
            for id in &gone {
                let title = writer.paper_by_id(id)?.map(|p| p.title).unwrap_or_default();
                named.push(format!("{id} \"{title}\""));
            }
            writer.remove_papers(&gone)?;
            report.notes.push(format!(
                "{display}: removed {} paper(s) deleted in Zotero (or moved to its trash) since the last add: {}. The library holds {} paper(s)",
                gone.len(),
                named.join(", "),
                writer.len()
            ));
            report.removed = gone;
        }
    }
    Ok(Ok(()))
}

fn location(file: &str, line: u64, reason: &str) -> String {
    if line == 0 {
        format!("{file}: {reason}")
    } else {
        format!("{file}:{line}: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_recognises_each_format() {
        assert_eq!(sniff("\u{feff}TY  - JOUR\nTI  - x"), Format::Ris);
        assert_eq!(sniff("% comment\n@Article{key,\n"), Format::Bibtex);
        assert_eq!(sniff("[{\"title\": 1}]"), Format::Json);
        assert_eq!(sniff("{\"title\": 1}\n{\"title\": 2}"), Format::Json);
        assert_eq!(sniff("Title,Abstract\nA,B"), Format::Csv);
        assert_eq!(sniff("id\ttitle\n1\tA"), Format::Tsv);
        assert_eq!(sniff("new\n\nSome Title\n\nSome abstract"), Format::Listing);
        assert_eq!(
            sniff("FN Clarivate Analytics Web of Science\nVR 1.0\nPT J"),
            Format::Wos
        );
        assert_eq!(sniff("PMID- 1\nTI  - x"), Format::Medline);
        assert_eq!(sniff("%0 Journal Article\n%T x"), Format::EndNote);
        assert_eq!(sniff("PT\tAU\tTI\tSO\nJ\tx\ty\tz"), Format::Tsv);
    }

    #[test]
    fn finish_cleans_and_derives_ids() {
        let p = finish(Paper {
            title: "{Deep} Learning.".into(),
            doi: Some("https://doi.org/10.48550/arXiv.2003.02234".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.title, "Deep Learning");
        assert_eq!(p.arxiv.as_deref(), Some("2003.02234"));
        assert_eq!(p.year, Some(2020));
        assert_eq!(p.id, "2003.02234");
        assert!(finish(Paper::default()).is_err());
    }
}
