//! Compaction of the papers log: reclaims the space of dead records.
//!
//! A record is dead when a later record of the same id replaced it (an
//! edit read again from Zotero or a watched file, a duplicate that filled
//! fields), when its paper was removed, and every removal record is dead
//! once the paper it removed is gone from the log. The manifest counts all
//! records, the library its live papers, so the dead share costs nothing
//! to know.
//!
//! Compaction writes each live paper's latest record, in paper order (so
//! the fingerprint, and with it every derived file, stays valid), into the
//! next log file name, fsyncs it, switches the manifest to it (the commit
//! point, as for any write) and then deletes the old log. A crash before
//! the switch leaves an unused file the next compaction overwrites. The
//! switch names the old log in the manifest's `retired` list, so a crash
//! after it leaves a file the next writer deletes on open (`check` names it
//! until then); the list is cleared at the next commit once the files are
//! gone. The vector log's rewrites (`compact_vectors`, a repair) retire
//! their old file the same way. A reader that read the old manifest just
//! before the switch finds its log gone and reads again
//! (`Library::open_mode`).
//!
//! It runs when a writer opens a library whose dead records are more than
//! half of the papers log (so a compaction, which costs O(live records),
//! follows at least as many dead records: amortised O(1) per write), and on
//! `check --repair` whenever there is anything dead.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::log::{self, Appender};
use super::{Library, MANIFEST, Manifest, Mode, PAPERS_MAGIC, next_log_name};
use crate::error::{Error, IoContext, Result};

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// The new papers log.
    pub file: String,
    /// Records before and after.
    pub before: u64,
    pub after: u64,
    /// Bytes before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl Compacted {
    pub fn line(&self) -> String {
        format!(
            "compacted the papers log into {}: {} record(s) -> {} ({} -> {} bytes)",
            self.file, self.before, self.after, self.bytes_before, self.bytes_after
        )
    }
}

/// Records in the papers log that no longer count (see the module header).
pub(crate) fn dead_records<M: Mode>(lib: &Library<M>) -> u64 {
    lib.manifest.papers.records.saturating_sub(lib.len() as u64)
}

/// Whether a writer should compact on open: dead records are more than half
/// of the log.
pub(crate) fn worth_it<M: Mode>(lib: &Library<M>) -> bool {
    let dead = dead_records(lib);
    dead > 0 && dead * 2 > lib.manifest.papers.records
}

/// Rewrites the papers log with live records only and commits the switch.
/// The caller holds the writer lock and has nothing uncommitted.
pub(crate) fn compact_papers<M: Mode>(lib: &mut Library<M>) -> Result<Compacted> {
    let old = lib.manifest.papers.file.clone();
    let old_path = lib.root.join(&old);
    let next = next_log_name("papers", &old);
    let path = lib.root.join(&next);
    let file = File::open(&old_path).at(&old_path)?;
    // SAFETY: the committed range of a log is never rewritten or cut while
    // the lock is held by us, and only that range is read.
    let map = unsafe { memmap2::Mmap::map(&file) }.at(&old_path)?;
    let committed = (lib.manifest.papers.bytes as usize).min(map.len());
    let mut app = Appender::open(&path, PAPERS_MAGIC, 0)?;
    let mut offsets = Vec::with_capacity(lib.offsets.len());
    for &at in &lib.offsets {
        let payload = frame(&map[..committed], at as usize).ok_or_else(|| Error::Corrupt {
            path: old_path.clone(),
            reason: format!(
                "record at byte {at} cannot be read back for compaction; run `papermap check --repair`"
            ),
        })?;
        offsets.push(app.end());
        app.append(payload)?;
    }
    let bytes = app.sync()?;
    let mut m = lib.manifest.clone();
    let done = Compacted {
        file: next.clone(),
        before: m.papers.records,
        after: offsets.len() as u64,
        bytes_before: m.papers.bytes,
        bytes_after: bytes,
    };
    m.papers = super::LogState {
        file: next,
        bytes,
        records: offsets.len() as u64,
    };
    m.generation += 1;
    m.retired.push(old.clone());
    // No removal record is left: version-1 readers can read the log again.
    m.min_reader_version = super::manifest::OLDEST_READABLE;
    m.write(&lib.root.join(MANIFEST))?;
    app.mark_committed(bytes);
    lib.manifest = m;
    lib.offsets = offsets;
    lib.has_removals = false;
    drop(map);
    drop(file);
    // Every live record is in the new log; readers that still hold the old
    // one open keep reading it until they close it.
    let _ = fs::remove_file(&old_path);
    let _ = super::manifest::sync_dir(&lib.root);
    Ok(done)
}

/// Whether `name` is a log file name a manifest may retire: `papers-N.log`
/// or `vectors-N.log`, nothing with a path in it.
fn is_log_name(name: &str) -> bool {
    ["papers-", "vectors-"].iter().any(|stem| {
        name.strip_prefix(stem)
            .and_then(|s| s.strip_suffix(".log"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The retired logs of `m` still on disk (never one `m` names as current).
pub(crate) fn retired_on_disk(root: &Path, m: &Manifest) -> Vec<PathBuf> {
    m.retired
        .iter()
        .filter(|f| is_log_name(f) && **f != m.papers.file && **f != m.vectors.file)
        .map(|f| root.join(f))
        .filter(|p| p.exists())
        .collect()
}

/// Log files in `root` that `m` does not name as current (a retired one
/// still on disk is among them).
pub(crate) fn unnamed_logs(root: &Path, m: &Manifest) -> Vec<PathBuf> {
    ["papers", "vectors"]
        .iter()
        .flat_map(|stem| super::repair::log_files(root, stem))
        .filter(|(_, n)| *n != m.papers.file && *n != m.vectors.file)
        .map(|(_, n)| root.join(n))
        .collect()
}

/// Deletes the retired logs a crash left on disk; the caller holds the
/// writer lock. Returns the ones deleted.
pub(crate) fn delete_retired(root: &Path, m: &Manifest) -> Vec<PathBuf> {
    let gone: Vec<PathBuf> = retired_on_disk(root, m)
        .into_iter()
        .filter(|p| fs::remove_file(p).is_ok())
        .collect();
    if !gone.is_empty() {
        let _ = super::manifest::sync_dir(root);
    }
    gone
}

/// The payload of the intact frame at `at`, if there is one.
fn frame(data: &[u8], at: usize) -> Option<&[u8]> {
    let head = data.get(at..at.checked_add(8)?)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let payload = data.get(at + 8..at.checked_add(8 + len)?)?;
    (len > 0 && len <= log::MAX_FRAME as usize && crc32fast::hash(payload) == crc)
        .then_some(payload)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::paper::Paper;
    use crate::store::{
        Added, Record, RepairOptions, WriteOptions, Writer, manifest::OLDEST_READABLE, repair,
    };

    fn paper(id: &str, title: &str) -> Paper {
        Paper {
            id: id.into(),
            title: title.into(),
            abs: format!("about {title}"),
            ..Default::default()
        }
    }

    fn ids(lib: &Library) -> Vec<&str> {
        lib.papers().iter().map(|p| p.id.as_str()).collect()
    }

    fn library(root: &Path, n: usize) {
        let mut w = Writer::open(root, &WriteOptions::default()).unwrap();
        for i in 0..n {
            w.add_paper(paper(&format!("p{i}"), &format!("Title number {i}")))
                .unwrap();
        }
        w.commit().unwrap();
    }

    #[test]
    fn a_removal_record_is_neither_a_paper_nor_taken_for_one() {
        let r = Record::Remove("zotero:ABC\"x".into());
        let payload = r.to_payload();
        assert_eq!(payload, br#"{"remove":"zotero:ABC\"x"}"#);
        assert_eq!(Record::parse(&payload), Some(r));
        assert!(serde_json::from_slice::<Paper>(&payload).is_err());
        let p = Record::Paper(Box::new(paper("remove", "remove")));
        assert_eq!(Record::parse(&p.to_payload()), Some(p));
        assert_eq!(Record::parse(br#"{"remove":3}"#), None);
        assert_eq!(Record::parse(b"{}"), None);
    }

    #[test]
    fn removed_papers_are_gone_after_reopen_and_come_back_when_added_again() {
        let dir = tempfile::tempdir().unwrap();
        library(dir.path(), 5);
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        let err = w
            .remove_papers(&["p1".into(), "nope".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'nope'") && err.contains("nothing was removed"),
            "{err}"
        );
        assert_eq!(w.len(), 5);
        w.remove_papers(&["p1".into(), "p3".into()]).unwrap();
        assert_eq!(ids(&w), vec!["p0", "p2", "p4"]);
        // The identity keys of a removed paper no longer match.
        assert_eq!(w.find_same(&paper("x", "Title number 3")), None);
        assert_eq!(w.find_same(&paper("x", "Title number 4")), Some(2));
        // Uncommitted: a reader still sees all five.
        assert_eq!(Library::open(dir.path()).unwrap().len(), 5);
        w.commit().unwrap();
        assert_eq!(
            w.manifest().min_reader_version,
            crate::store::REMOVAL_MIN_READER
        );
        drop(w);
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(ids(&lib), vec!["p0", "p2", "p4"]);
        assert_eq!(lib.index_of("p4"), Some(2));
        assert_eq!(dead_records(&lib), 2 + 2);

        // Re-added (from another record with the same title): it is new
        // again under its old id, at the end.
        let mut w = Writer::open_for_ingest(dir.path(), &WriteOptions::default()).unwrap();
        assert_eq!(
            w.add_paper(paper("p3", "Title number 3")).unwrap(),
            Added::New("p3".into())
        );
        w.commit().unwrap();
        drop(w);
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(ids(&lib), vec!["p0", "p2", "p4", "p3"]);
    }

    #[test]
    fn a_writer_compacts_when_dead_records_are_most_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        library(dir.path(), 6);
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        assert!(w.compacted.is_none());
        w.remove_papers(&["p0".into(), "p5".into()]).unwrap();
        // An edit replaces a record: one more dead record.
        let mut edited = paper("p2", "Title number 2");
        edited.abs = "edited".into();
        w.put_paper(edited.clone()).unwrap();
        w.commit().unwrap();
        drop(w);
        let before = Library::open(dir.path()).unwrap();
        let fp = before.fingerprint();
        // 6 papers + 2 removals + 1 edit = 9 records, 4 live: 5 dead.
        assert_eq!(before.manifest().papers.records, 9);
        assert!(worth_it(&before));
        let w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        let c = w.compacted.clone().expect("compacted on open");
        assert_eq!((c.before, c.after, c.file.as_str()), (9, 4, "papers-2.log"));
        assert!(c.bytes_after < c.bytes_before);
        drop(w);
        assert!(!dir.path().join("papers-1.log").exists());
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(ids(&lib), vec!["p1", "p2", "p3", "p4"]);
        assert_eq!(lib.papers()[1], edited);
        assert_eq!(lib.fingerprint(), fp, "same papers, same order");
        assert_eq!(lib.manifest().min_reader_version, OLDEST_READABLE);
        assert_eq!(dead_records(&lib), 0);
        assert!(lib.leftovers().is_empty(), "{:?}", lib.leftovers());
    }

    /// Six papers, three removed, compacted by the next writer's open into
    /// `papers-2.log`, then `papers-1.log` put back: the state a kill
    /// between the manifest switch and the delete leaves. Returns its path.
    fn killed_after_the_switch(root: &Path) -> std::path::PathBuf {
        library(root, 6);
        let mut w = Writer::open(root, &WriteOptions::default()).unwrap();
        w.remove_papers(&["p0".into(), "p1".into(), "p2".into()])
            .unwrap();
        w.commit().unwrap();
        drop(w);
        let old = root.join("papers-1.log");
        let old_bytes = fs::read(&old).unwrap();
        let w = Writer::open(root, &WriteOptions::default()).unwrap();
        assert!(w.compacted.is_some());
        drop(w);
        fs::write(&old, &old_bytes).unwrap();
        old
    }

    /// Killed between the manifest switch and the old log's deletion: the
    /// old log is named as retired, `check` lists it, the next writer
    /// deletes it and its commit clears the list. A log the manifest does
    /// not name at all (a compaction killed before its switch) is listed
    /// but never deleted by a writer's open.
    #[test]
    fn a_log_a_killed_compaction_left_is_deleted_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let old = killed_after_the_switch(dir.path());
        let unnamed = dir.path().join("papers-7.log");
        fs::write(&unnamed, b"not a log").unwrap();
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(lib.manifest().retired, vec!["papers-1.log".to_string()]);
        assert_eq!(ids(&lib), vec!["p3", "p4", "p5"]);
        let left = lib.leftovers();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(
            left[0].contains("papers-1.log") && left[0].contains("replaced by a compaction"),
            "{left:?}"
        );
        assert!(
            left[1].contains("papers-7.log") && left[1].contains("does not name"),
            "{left:?}"
        );

        let mut w = Writer::open_for_ingest(dir.path(), &WriteOptions::default()).unwrap();
        assert!(w.compacted.is_none(), "nothing dead is left to compact");
        assert!(!old.exists(), "the retired log is deleted on open");
        assert!(
            unnamed.exists(),
            "an unnamed log is not the writer's to delete"
        );
        let warned = &w.library().warnings;
        assert!(
            warned.iter().any(|l| l.contains("papers-1.log")),
            "{warned:?}"
        );
        w.add_paper(paper("p9", "Another title")).unwrap();
        w.commit().unwrap();
        drop(w);
        let lib = Library::open(dir.path()).unwrap();
        assert!(lib.manifest().retired.is_empty(), "cleared at the commit");
        assert_eq!(ids(&lib), vec!["p3", "p4", "p5", "p9"]);
        assert_eq!(lib.leftovers().len(), 1, "{:?}", lib.leftovers());
    }

    /// A retired log is the only intact copy of what a later damage to the
    /// current log lost: `check --repair` keeps it (no longer retired, so
    /// no writer deletes it) and names it.
    #[test]
    fn repair_keeps_a_retired_log_when_the_current_one_lost_records() {
        let dir = tempfile::tempdir().unwrap();
        let old = killed_after_the_switch(dir.path());
        // Damage the middle of p4's record in the compacted log.
        let new = dir.path().join("papers-2.log");
        let mut b = fs::read(&new).unwrap();
        let at = b.windows(2).position(|w| w == b"p4").unwrap() + 12;
        b[at] ^= 0x55;
        fs::write(&new, &b).unwrap();
        assert!(Writer::open(dir.path(), &WriteOptions::default()).is_err());
        let r = repair(dir.path(), &RepairOptions::default()).unwrap();
        assert_eq!(r.lost_papers().count(), 1, "{:?}", r.lines());
        assert_eq!(r.older_logs, vec![old.clone()]);
        assert!(r.deleted_retired.is_empty());
        assert!(
            r.lines()
                .iter()
                .any(|l| l.contains("papers-1.log") && l.contains("lost records")),
            "{:?}",
            r.lines()
        );
        assert!(old.exists());
        let lib = Library::open(dir.path()).unwrap();
        assert!(
            lib.manifest()
                .retired
                .iter()
                .all(|f| !f.starts_with("papers-"))
        );
        drop(Writer::open(dir.path(), &WriteOptions::default()).unwrap());
        assert!(old.exists(), "no writer deletes it now");
    }

    /// A reader that read the manifest just before a compaction switched it
    /// finds its log gone: that error (and only that one) makes it read again.
    #[test]
    fn a_log_gone_under_a_reader_is_told_from_damage() {
        let dir = tempfile::tempdir().unwrap();
        library(dir.path(), 3);
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        w.remove_papers(&["p0".into(), "p1".into()]).unwrap();
        w.commit().unwrap();
        drop(w);
        let stale = Library::open(dir.path()).unwrap();
        let old_log = dir.path().join(&stale.manifest().papers.file);
        let w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        assert!(w.compacted.is_some());
        drop(w);
        // What scanning the old manifest's log now gives.
        let e = crate::store::log::scan(
            &old_log,
            PAPERS_MAGIC,
            stale.manifest().papers.bytes,
            &|_| true,
        )
        .unwrap_err();
        assert!(crate::store::log_switched(dir.path(), &e), "{e}");
        let damage = Error::Corrupt {
            path: dir.path().join("papers-2.log"),
            reason: "checksum".into(),
        };
        assert!(!crate::store::log_switched(dir.path(), &damage));
        assert_eq!(ids(&Library::open(dir.path()).unwrap()), vec!["p2"]);
    }

    #[test]
    fn repair_keeps_removal_records_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        library(dir.path(), 4);
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        w.remove_papers(&["p1".into()]).unwrap();
        w.commit().unwrap();
        w.add_paper(paper("p9", "Another title")).unwrap();
        w.commit().unwrap();
        drop(w);
        // Damage the last record (p9): the removal before it must survive
        // the rewrite, or p1 would come back.
        let log = dir.path().join("papers-1.log");
        let mut bytes = std::fs::read(&log).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x55;
        std::fs::write(&log, &bytes).unwrap();
        assert!(Library::open(dir.path()).is_err());
        let r = repair(dir.path(), &RepairOptions::default()).unwrap();
        assert_eq!(r.lost_papers().count(), 1, "{:?}", r.lines());
        let c = r.compacted.clone().expect("dead records reclaimed");
        assert_eq!((c.before, c.after), (5, 3), "{:?}", r.lines());
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(ids(&lib), vec!["p0", "p2", "p3"]);
    }

    #[test]
    fn a_lost_removal_record_is_named_by_repair() {
        let dir = tempfile::tempdir().unwrap();
        library(dir.path(), 3);
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        w.remove_papers(&["p2".into()]).unwrap();
        w.commit().unwrap();
        drop(w);
        let log = dir.path().join("papers-1.log");
        let mut bytes = std::fs::read(&log).unwrap();
        let n = bytes.len();
        // The removal record `{"remove":"p2"}` is the last frame: its
        // closing brace damaged, the id still legible.
        bytes[n - 1] ^= 0x01;
        std::fs::write(&log, &bytes).unwrap();
        let r = repair(dir.path(), &RepairOptions::default()).unwrap();
        let lines = r.lines().join("\n");
        assert!(
            lines.contains("lost the removal of paper \"p2\""),
            "{lines}"
        );
        // The paper is back (the removal is lost), and nothing else was.
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(ids(&lib), vec!["p0", "p1", "p2"]);
    }

    #[test]
    fn a_rebuilt_manifest_knows_the_log_holds_removals() {
        let dir = tempfile::tempdir().unwrap();
        library(dir.path(), 3);
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        w.remove_papers(&["p0".into()]).unwrap();
        w.commit().unwrap();
        drop(w);
        std::fs::remove_file(dir.path().join(MANIFEST)).unwrap();
        let r = repair(dir.path(), &RepairOptions::default()).unwrap();
        assert!(r.manifest_rebuilt.is_some());
        // Compacted right after: the removal is applied, then dropped.
        let lib = Library::open(dir.path()).unwrap();
        assert_eq!(ids(&lib), vec!["p1", "p2"]);
    }
}
