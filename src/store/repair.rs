//! `check --repair`: salvage every intact record of a damaged library.
//!
//! - A damaged or missing manifest is rebuilt from the logs, which describe
//!   themselves (magic header, checksummed frames): each log's committed
//!   length is taken as the end of its last intact record, the vector
//!   dimension from the vector records, and the model id is the candidate
//!   (known models, whatever the damaged manifest or the topics cache still
//!   say) under which the most papers find their vector by content key.
//!   Every assumption is stated in the report. The damaged manifest is kept
//!   as `MANIFEST.json.damaged`.
//! - A damaged papers log is rewritten, through the resynchronising scan of
//!   `log`, into the next file name, and the original is kept as
//!   `papers-N.log.damaged` until the user removes it. The report lists each
//!   lost byte range with the ids that can still be read in it.
//! - A damaged vector log (a cache) is rewritten from its intact records.
//! - Temp files of dead processes are removed.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::log::{self, Appender, Scan};
use super::manifest::{self, Read};
use super::{
    LockFile, LogState, MANIFEST, Manifest, ModelStamp, PAPERS_MAGIC, Record, VECTORS_MAGIC,
    VecKey, is_paper_record, is_removal, is_vector, next_log_name, vec_key,
};
use crate::error::{Error, IoContext, Result};
use crate::paper::Paper;

/// Options for `repair`.
#[derive(Debug, Clone)]
pub struct RepairOptions {
    /// How long to wait for another writer. Default: 30 s.
    pub lock_wait: Duration,
    /// Model ids to try when the manifest must be rebuilt (the one whose
    /// content keys match the most papers is taken). Default: none.
    pub known_models: Vec<String>,
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions {
            lock_wait: Duration::from_secs(30),
            known_models: Vec::new(),
        }
    }
}

/// A stretch of a log that could not be read back: nothing in it was kept.
#[derive(Debug, Clone, PartialEq)]
pub struct LostRange {
    pub file: String,
    pub record: u64,
    pub offset: u64,
    pub end: u64,
    pub reason: String,
    /// Paper ids still legible in the damaged bytes (papers log only), each
    /// with whether another intact record of that id was kept.
    pub ids: Vec<(String, bool)>,
    /// Ids of removal records legible in the damaged bytes: those papers
    /// may be back in the library (when no later removal of them was kept).
    pub removals: Vec<String>,
}

/// What `repair` found and did.
#[derive(Debug, Default)]
pub struct RepairReport {
    /// Set when the manifest was rebuilt: why, and what was assumed.
    pub manifest_rebuilt: Option<String>,
    pub manifest_notes: Vec<String>,
    /// Papers log: records kept in the rewritten log (None: left as it was).
    pub papers_rewritten: Option<(String, u64)>,
    /// Damaged places that cost nothing (a header, a recovered frame).
    pub recovered: Vec<String>,
    /// Byte ranges lost, papers and vectors logs.
    pub lost: Vec<LostRange>,
    /// Vector log rewritten: (new file, records kept, records lost).
    pub vectors_rewritten: Option<(String, u64, u64)>,
    pub removed_temp_files: Vec<PathBuf>,
    /// Log bytes past the commit cut off: (file, bytes).
    pub cut_tails: Vec<(String, u64)>,
    /// Damaged originals kept for the user (renamed).
    pub kept_originals: Vec<PathBuf>,
    /// Dead records (replaced, removed) dropped from the papers log.
    pub compacted: Option<super::compact::Compacted>,
    /// Logs a compaction replaced that a crash had left on disk, deleted.
    pub deleted_retired: Vec<PathBuf>,
    /// Older papers logs a compaction had replaced, kept because the current
    /// log lost records they may still hold.
    pub older_logs: Vec<PathBuf>,
}

impl RepairReport {
    pub fn nothing_done(&self) -> bool {
        self.manifest_rebuilt.is_none()
            && self.papers_rewritten.is_none()
            && self.vectors_rewritten.is_none()
            && self.removed_temp_files.is_empty()
            && self.cut_tails.is_empty()
            && self.compacted.is_none()
            && self.deleted_retired.is_empty()
    }

    /// Lost paper records (ranges of the papers log).
    pub fn lost_papers(&self) -> impl Iterator<Item = &LostRange> {
        self.lost.iter().filter(|l| l.file.starts_with("papers"))
    }

    /// The report as lines for the user.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(why) = &self.manifest_rebuilt {
            out.push(format!("rebuilt {MANIFEST} from the logs ({why}):"));
            out.extend(self.manifest_notes.iter().map(|n| format!("  {n}")));
        }
        for r in &self.recovered {
            out.push(format!("recovered: {r}"));
        }
        if let Some((file, kept)) = &self.papers_rewritten {
            let lost = self.lost_papers().count();
            out.push(format!(
                "rewrote the papers log as {file}: {kept} intact record(s) kept, {lost} damaged range(s) lost{}",
                if lost == 0 { " (nothing lost)" } else { ":" }
            ));
            for l in self.lost_papers() {
                out.push(format!(
                    "  {} bytes {}..{} (from record {}): {}",
                    l.file, l.offset, l.end, l.record, l.reason
                ));
                if l.ids.is_empty() && l.removals.is_empty() {
                    out.push("    no paper id is legible in these bytes".into());
                } else {
                    out.push("    ids as they read in the damaged bytes:".into());
                }
                for (id, kept) in &l.ids {
                    out.push(format!(
                        "    lost a record of paper {id:?}{}",
                        if *kept {
                            " (another intact record of this paper is kept)"
                        } else {
                            ""
                        }
                    ));
                }
                for id in &l.removals {
                    out.push(format!(
                        "    lost the removal of paper {id:?}: if it is listed again, `papermap remove {id}` removes it again"
                    ));
                }
            }
            if lost > 0 {
                out.push("  add the files they came from again to restore them".into());
            }
        }
        if let Some((file, kept, lost)) = &self.vectors_rewritten {
            out.push(format!(
                "rewrote the vector cache as {file}: {kept} intact record(s) kept, {lost} damaged range(s) dropped (`papermap embed` embeds those papers again)"
            ));
            for l in self.lost.iter().filter(|l| l.file.starts_with("vectors")) {
                out.push(format!(
                    "  {} bytes {}..{}: {}",
                    l.file, l.offset, l.end, l.reason
                ));
            }
        }
        for p in &self.kept_originals {
            out.push(format!(
                "kept the damaged original as {} (remove it when you no longer need it)",
                p.display()
            ));
        }
        for (file, n) in &self.cut_tails {
            out.push(format!(
                "cut {n} byte(s) an interrupted write left past the last commit of {file}"
            ));
        }
        if let Some(c) = &self.compacted {
            out.push(c.line());
        }
        for p in &self.older_logs {
            out.push(format!(
                "kept {}: an older papers log a compaction had replaced; it may still hold the lost records (papermap does not read it; remove it when you no longer need it)",
                p.display()
            ));
        }
        for p in &self.deleted_retired {
            out.push(format!(
                "deleted {}: a log a compaction had replaced (an interrupted one left it)",
                p.display()
            ));
        }
        if !self.removed_temp_files.is_empty() {
            out.push(format!(
                "removed {} temp file(s) left by papermap processes that are gone:",
                self.removed_temp_files.len()
            ));
            out.extend(
                self.removed_temp_files
                    .iter()
                    .map(|p| format!("  {}", p.display())),
            );
        }
        out
    }
}

/// `stem-N.log` files in `root`, by N.
pub(crate) fn log_files(root: &Path, stem: &str) -> Vec<(u64, String)> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut v: Vec<(u64, String)> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let n = name
                .strip_prefix(stem)?
                .strip_prefix('-')?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((n, name))
        })
        .collect();
    v.sort();
    v
}

/// Removes temp files of dead processes from the library and its derived
/// folder; returns what was removed.
pub(crate) fn remove_stale_temp_files(root: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for dir in [root.to_path_buf(), root.join("derived")] {
        for p in manifest::stale_temp_files(&dir) {
            if fs::remove_file(&p).is_ok() {
                removed.push(p);
            }
        }
    }
    removed
}

/// Salvages a damaged library: see the module header. Never drops an intact
/// record; keeps damaged originals.
pub fn repair(root: &Path, opts: &RepairOptions) -> Result<RepairReport> {
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::NoLibrary {
                path: root.to_path_buf(),
                reason: "not a directory".into(),
            });
        }
        Err(_) => {
            return Err(Error::NoLibrary {
                path: root.to_path_buf(),
                reason: "no such directory".into(),
            });
        }
    }
    let _lock = LockFile::acquire(root, opts.lock_wait)?;
    let mut report = RepairReport {
        removed_temp_files: remove_stale_temp_files(root),
        ..Default::default()
    };
    let manifest_path = root.join(MANIFEST);
    let mut m = match Manifest::inspect(root, &manifest_path)? {
        Read::Intact(m) => m,
        Read::Missing => {
            if !super::logs_hold_records(root) {
                return Err(Error::NoLibrary {
                    path: root.to_path_buf(),
                    reason: "no MANIFEST.json and no records in it".into(),
                });
            }
            report.manifest_rebuilt = Some(format!("{MANIFEST} was missing"));
            rebuild_manifest(root, None, opts, &mut report)?
        }
        Read::Damaged(reason) => {
            let text = fs::read(&manifest_path).at(&manifest_path)?;
            report.manifest_rebuilt = Some(format!("{MANIFEST} was damaged: {reason}"));
            let m = rebuild_manifest(root, Some(&text), opts, &mut report)?;
            let kept = keep_original(root, MANIFEST)?;
            report.kept_originals.push(kept);
            m
        }
    };
    if report.manifest_rebuilt.is_some() {
        m.write(&manifest_path)?;
    }
    repair_papers(root, &mut m, &mut report)?;
    repair_vectors(root, &mut m, &mut report)?;
    // What an interrupted write left past the commit (the lock is held, so
    // no writer is appending).
    for state in [&m.papers, &m.vectors] {
        let path = root.join(&state.file);
        let keep = state.bytes.max(log::HEADER_LEN);
        if let Ok(meta) = fs::metadata(&path)
            && meta.len() > keep
        {
            let f = fs::OpenOptions::new().write(true).open(&path).at(&path)?;
            f.set_len(keep).at(&path)?;
            f.sync_all().at(&path)?;
            report
                .cut_tails
                .push((state.file.clone(), meta.len() - keep));
        }
    }
    // Reclaim dead records (the lock is held; everything is committed).
    let mut lib = super::Library::<super::Lean>::open_mode(root)?;
    if super::compact::dead_records(&lib) > 0 {
        report.compacted = Some(super::compact::compact_papers(&mut lib)?);
    }
    report.deleted_retired = super::compact::delete_retired(root, &lib.manifest);
    Ok(report)
}

/// Renames a damaged file to `NAME.damaged` (or `NAME.damaged.2`, ...).
fn keep_original(root: &Path, name: &str) -> Result<PathBuf> {
    let from = root.join(name);
    let mut to = root.join(format!("{name}.damaged"));
    let mut n = 2;
    while to.exists() {
        to = root.join(format!("{name}.damaged.{n}"));
        n += 1;
    }
    fs::rename(&from, &to).at(&from)?;
    manifest::sync_dir(root)?;
    Ok(to)
}

/// The papers read from a scan (removal records and payloads that are not
/// records are skipped).
fn papers_of(scan: &Scan) -> Vec<Paper> {
    scan.payloads
        .iter()
        .filter_map(|(_, p)| match Record::parse(p) {
            Some(Record::Paper(paper)) => Some(*paper),
            _ => None,
        })
        .collect()
}

/// Paper ids legible in damaged bytes: each record starts `{"id":"`, and
/// inside a JSON string a quote is escaped, so `"id":"` is always the key.
fn ids_in(bytes: &[u8]) -> Vec<String> {
    strings_after(bytes, b"\"id\":\"")
}

/// Ids of removal records (`{"remove":"ID"}`) legible in damaged bytes.
fn removals_in(bytes: &[u8]) -> Vec<String> {
    strings_after(bytes, b"{\"remove\":\"")
}

/// The JSON strings that follow each occurrence of `key` in `bytes`.
fn strings_after(bytes: &[u8], key: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    let mut i = 0;
    while let Some(at) = bytes[i..].windows(key.len()).position(|w| w == key) {
        let start = i + at + key.len();
        let mut end = start;
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        let raw = String::from_utf8_lossy(&bytes[start..end.min(bytes.len())]);
        let id = serde_json::from_str::<String>(&format!("\"{raw}\"")).unwrap_or(raw.into());
        if !id.is_empty() {
            ids.push(id);
        }
        i = end.min(bytes.len());
    }
    ids
}

/// The whole of a log file as a scan (for a manifest rebuilt from it).
fn scan_whole(root: &Path, name: &str, magic: &[u8; 8], accept: log::Accept) -> Result<Scan> {
    let path = root.join(name);
    let len = fs::metadata(&path).at(&path)?.len();
    log::scan(&path, magic, len, accept)
}

/// Picks the log of `stem` with the most intact records (the newest on a
/// tie) and returns (name, scan); the others are noted and left in place.
fn pick_log(
    root: &Path,
    stem: &str,
    magic: &[u8; 8],
    accept: log::Accept,
    notes: &mut Vec<String>,
) -> Result<Option<(String, Scan)>> {
    let mut best: Option<(String, Scan)> = None;
    let files = log_files(root, stem);
    for (_, name) in &files {
        let scan = scan_whole(root, name, magic, accept)?;
        if best.as_ref().is_none_or(|(_, b)| scan.records >= b.records) {
            if let Some((old, _)) = best.take() {
                notes.push(format!(
                    "{old} left in place, not used (fewer intact records)"
                ));
            }
            best = Some((name.clone(), scan));
        } else {
            notes.push(format!(
                "{name} left in place, not used (fewer intact records)"
            ));
        }
    }
    Ok(best)
}

fn rebuild_manifest(
    root: &Path,
    damaged: Option<&[u8]>,
    opts: &RepairOptions,
    report: &mut RepairReport,
) -> Result<Manifest> {
    let notes = &mut report.manifest_notes;
    // Whatever the damaged manifest still says (not trusted: only used as
    // candidates that the logs must confirm).
    let old: serde_json::Value = damaged
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(t).ok())
        .map(|v| v["manifest"].clone())
        .unwrap_or_default();
    let mut m = Manifest::new();
    m.generation = old["generation"].as_u64().map_or(1, |g| g + 1);
    notes.push(format!(
        "format version {} assumed (the logs' headers are version-1 headers)",
        manifest::FORMAT_VERSION
    ));

    let (pname, pscan) = pick_log(root, "papers", PAPERS_MAGIC, &is_paper_record, notes)?
        .ok_or_else(|| Error::NoLibrary {
            path: root.to_path_buf(),
            reason: "no papers log to rebuild the manifest from".into(),
        })?;
    let plen = fs::metadata(root.join(&pname)).at(root.join(&pname))?.len();
    m.papers = LogState {
        file: pname.clone(),
        bytes: pscan.valid_end,
        records: pscan.records,
    };
    notes.push(format!(
        "papers: {pname}, {} record(s), committed length {} bytes (the end of its last intact record)",
        pscan.records, pscan.valid_end
    ));
    if pscan.payloads.iter().any(|(_, p)| is_removal(p)) {
        m.min_reader_version = super::REMOVAL_MIN_READER;
        notes.push(format!(
            "papers: the log holds removal records, so papermap format {} or later is needed to read it",
            super::REMOVAL_MIN_READER
        ));
    }
    if plen > pscan.valid_end {
        notes.push(format!(
            "  {} byte(s) after that in {pname} are not a complete record (an unfinished write) and are ignored",
            plen - pscan.valid_end
        ));
    }

    let vectors = pick_log(
        root,
        "vectors",
        VECTORS_MAGIC,
        &|p: &[u8]| is_vector(p, 0),
        notes,
    )?;
    let papers = papers_of(&pscan);
    match vectors {
        None => {
            m.vectors.file = next_free_log(root, "vectors");
            notes.push("vectors: no vector log; every paper will be embedded".into());
            if let Some(id) = old["model"]["id"].as_str()
                && let Some(dim) = old["model"]["dim"].as_u64()
            {
                m.model = Some(ModelStamp {
                    id: id.into(),
                    dim: dim as usize,
                });
                notes.push(format!(
                    "model {id} ({dim}-d) as the damaged manifest says (nothing to confirm it)"
                ));
            }
        }
        Some((vname, vscan)) => {
            let vlen = fs::metadata(root.join(&vname)).at(root.join(&vname))?.len();
            // The dimension most vector records have.
            let mut sizes: std::collections::HashMap<usize, u64> = Default::default();
            for (_, p) in &vscan.payloads {
                *sizes.entry(p.len()).or_default() += 1;
            }
            let size = sizes
                .iter()
                .max_by_key(|(s, n)| (**n, **s))
                .map(|(s, _)| *s);
            m.vectors = LogState {
                file: vname.clone(),
                bytes: vscan.valid_end,
                records: vscan.records,
            };
            notes.push(format!(
                "vectors: {vname}, {} record(s), committed length {} bytes",
                vscan.records, vscan.valid_end
            ));
            if vlen > vscan.valid_end {
                notes.push(format!(
                    "  {} byte(s) after that in {vname} are not a complete record and are ignored",
                    vlen - vscan.valid_end
                ));
            }
            if let Some(size) = size {
                let dim = (size - 16) / 4;
                let keys: HashSet<VecKey> = vscan
                    .payloads
                    .iter()
                    .filter(|(_, p)| p.len() == size)
                    .map(|(_, p)| p[..16].try_into().expect("16 bytes"))
                    .collect();
                let mut candidates: Vec<String> = opts.known_models.clone();
                candidates.extend(old["model"]["id"].as_str().map(String::from));
                candidates.extend(topics_model(root));
                let texts: Vec<String> = papers.iter().map(Paper::embed_text).collect();
                let (best, hits) = candidates
                    .iter()
                    .map(|c| {
                        let hits = texts
                            .iter()
                            .filter(|t| keys.contains(&vec_key(c, t)))
                            .count();
                        (c.clone(), hits)
                    })
                    .max_by_key(|(_, h)| *h)
                    .unwrap_or_default();
                let id = if hits > 0 {
                    notes.push(format!(
                        "model {best} ({dim}-d): {hits} of {} papers find their vector under it",
                        papers.len()
                    ));
                    best
                } else {
                    let id = old["model"]["id"]
                        .as_str()
                        .unwrap_or("unknown (manifest rebuilt)")
                        .to_string();
                    notes.push(format!(
                        "model: no candidate matched any vector key; recorded as {id:?} ({dim}-d); the next embed re-embeds papers under its own model (cached vectors are kept)"
                    ));
                    id
                };
                m.model = Some(ModelStamp { id, dim });
            }
        }
    }
    notes.push(format!("generation set to {}", m.generation));
    Ok(m)
}

/// A `stem-N.log` name not yet used.
fn next_free_log(root: &Path, stem: &str) -> String {
    let n = log_files(root, stem).last().map_or(1, |(n, _)| n + 1);
    format!("{stem}-{n}.log")
}

/// The model id the topics cache recorded, if it is intact.
fn topics_model(root: &Path) -> Option<String> {
    let v: serde_json::Value =
        manifest::read_checked_json(&root.join("derived").join("topics.json"))?;
    v["report"]["library"]["model"].as_str().map(String::from)
}

/// Writes the payloads of `scan` that `keep` accepts into the new log
/// `next`, then switches the manifest to it (`set` names which log):
/// the same commit protocol as a writer's. Returns the records kept.
fn rewrite_log(
    root: &Path,
    m: &mut Manifest,
    next: &str,
    magic: &[u8; 8],
    scan: &Scan,
    keep: impl Fn(&[u8]) -> bool,
    set: impl FnOnce(&mut Manifest, LogState),
) -> Result<u64> {
    let mut app = Appender::open(&root.join(next), magic, 0)?;
    let mut kept = 0u64;
    for (_, payload) in &scan.payloads {
        if keep(payload) {
            app.append(payload)?;
            kept += 1;
        }
    }
    let len = app.sync()?;
    let mut new = m.clone();
    set(
        &mut new,
        LogState {
            file: next.to_string(),
            bytes: len,
            records: kept,
        },
    );
    new.generation += 1;
    new.write(&root.join(MANIFEST))?;
    app.mark_committed(len);
    *m = new;
    Ok(kept)
}

fn repair_papers(root: &Path, m: &mut Manifest, report: &mut RepairReport) -> Result<()> {
    let name = m.papers.file.clone();
    let path = root.join(&name);
    let scan = log::scan(&path, PAPERS_MAGIC, m.papers.bytes, &is_paper_record)?;
    let bad_json: Vec<u64> = scan
        .payloads
        .iter()
        .filter(|(_, p)| !is_paper_record(p))
        .map(|(r, _)| *r)
        .collect();
    if scan.damage.is_empty() && bad_json.is_empty() {
        return Ok(());
    }
    // An older papers log a compaction retired may hold intact copies of
    // what is lost here: it is no longer retired (no writer deletes it),
    // and the report names it.
    let loses = scan.lost().next().is_some() || !bad_json.is_empty();
    let (older, still): (Vec<String>, Vec<String>) = std::mem::take(&mut m.retired)
        .into_iter()
        .partition(|f| loses && f.starts_with("papers-") && root.join(f).exists());
    m.retired = still;
    report.older_logs.extend(older.iter().map(|f| root.join(f)));
    let kept_ids: HashSet<String> = papers_of(&scan).into_iter().map(|p| p.id).collect();
    let bytes = if scan.lost().next().is_some() {
        fs::read(&path).at(&path)?
    } else {
        Vec::new()
    };
    for d in &scan.damage {
        if d.recovered {
            report.recovered.push(format!(
                "{name} bytes {}..{} (record {}): {}",
                d.offset, d.end, d.record, d.reason
            ));
            continue;
        }
        let range = bytes
            .get(d.offset as usize..(d.end as usize).min(bytes.len()))
            .unwrap_or_default();
        report.lost.push(LostRange {
            file: name.clone(),
            record: d.record,
            offset: d.offset,
            end: d.end,
            reason: d.reason.clone(),
            ids: ids_in(range)
                .into_iter()
                .map(|id| {
                    let kept = kept_ids.contains(&id);
                    (id, kept)
                })
                .collect(),
            removals: removals_in(range),
        });
    }
    for r in bad_json {
        report.lost.push(LostRange {
            file: name.clone(),
            record: r,
            offset: 0,
            end: 0,
            reason: "checksum intact but neither a paper nor a removal record".into(),
            ids: Vec::new(),
            removals: Vec::new(),
        });
    }
    let next = next_log_name("papers", &name);
    // Removal records are kept: dropping one would bring its paper back.
    let kept = rewrite_log(
        root,
        m,
        &next,
        PAPERS_MAGIC,
        &scan,
        is_paper_record,
        |m, s| m.papers = s,
    )?;
    report.papers_rewritten = Some((next, kept));
    report.kept_originals.push(keep_original(root, &name)?);
    Ok(())
}

fn repair_vectors(root: &Path, m: &mut Manifest, report: &mut RepairReport) -> Result<()> {
    let name = m.vectors.file.clone();
    let path = root.join(&name);
    let dim = m.model.as_ref().map_or(0, |s| s.dim);
    let scan = log::scan(&path, VECTORS_MAGIC, m.vectors.bytes, &|p: &[u8]| {
        is_vector(p, dim)
    })?;
    let wrong_size = scan
        .payloads
        .iter()
        .filter(|(_, p)| !is_vector(p, dim))
        .count() as u64;
    if scan.damage.is_empty() && wrong_size == 0 {
        return Ok(());
    }
    for d in &scan.damage {
        if d.recovered {
            report.recovered.push(format!(
                "{name} bytes {}..{} (record {}): {}",
                d.offset, d.end, d.record, d.reason
            ));
        } else {
            report.lost.push(LostRange {
                file: name.clone(),
                record: d.record,
                offset: d.offset,
                end: d.end,
                reason: d.reason.clone(),
                ids: Vec::new(),
                removals: Vec::new(),
            });
        }
    }
    let next = next_log_name("vectors", &name);
    let kept = rewrite_log(
        root,
        m,
        &next,
        VECTORS_MAGIC,
        &scan,
        |p| is_vector(p, dim),
        |m, s| {
            m.retired.push(name.clone());
            m.vectors = s
        },
    )?;
    let lost = scan.lost().count() as u64 + wrong_size;
    report.vectors_rewritten = Some((next, kept, lost));
    // A cache: every intact record is in the new file.
    let _ = fs::remove_file(&path);
    Ok(())
}
