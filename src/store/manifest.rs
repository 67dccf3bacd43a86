//! The library manifest: format version, oldest version that can read it,
//! the embedding model, and the committed length of each log. It is the
//! commit point of every write: logs are appended and fsynced first, then the
//! manifest is replaced atomically (temp file, fsync, rename, fsync dir).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// Version written by this build.
pub const FORMAT_VERSION: u32 = 2;
/// Oldest version this build reads.
pub const OLDEST_READABLE: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// Oldest papermap format version able to read this library.
    pub min_reader_version: u32,
    pub writer: String,
    /// Bumped on every commit; derived files record the generation they saw.
    pub generation: u64,
    pub papers: LogState,
    pub vectors: LogState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelStamp>,
    /// Logs a compaction replaced. Every record they held that still
    /// counts is in the logs named above, so they are dead; a crash between
    /// the switch and their deletion leaves them on disk, and the next
    /// writer deletes them (`Writer::open`). Cleared once they are gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogState {
    /// File name inside the library; a repair writes a new file and switches
    /// the name here, so readers never see a log rewritten under them.
    pub file: String,
    pub bytes: u64,
    pub records: u64,
}

/// The model whose vectors the library holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelStamp {
    pub id: String,
    pub dim: usize,
}

/// What `Manifest::inspect` found.
#[derive(Debug, PartialEq)]
pub enum Read {
    Missing,
    Intact(Manifest),
    /// Unreadable or failing its checksum: the reason.
    Damaged(String),
}

/// JSON text without the whitespace between tokens (strings untouched): the
/// compact form the checksum is computed over.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[derive(Serialize)]
struct Envelope {
    manifest: Manifest,
    crc32: String,
}

impl Manifest {
    pub fn new() -> Self {
        Manifest {
            format: "papermap-library".into(),
            version: FORMAT_VERSION,
            min_reader_version: OLDEST_READABLE,
            writer: format!("papermap {}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        }
    }

    /// Reads and checks the manifest; `Ok(None)` when the library has none
    /// yet. A damaged one is an error that says how to rebuild it.
    pub fn read(lib: &Path, path: &Path) -> Result<Option<Manifest>> {
        match Self::inspect(lib, path)? {
            Read::Missing => Ok(None),
            Read::Intact(m) => Ok(Some(m)),
            Read::Damaged(reason) => Err(Error::Corrupt {
                path: lib.to_path_buf(),
                reason: format!(
                    "{}: {reason}. The logs describe themselves: `papermap check --repair` rebuilds the manifest from them",
                    path.display()
                ),
            }),
        }
    }

    /// Reads the manifest and tells damage (which `check --repair` can
    /// rebuild from the logs) from a format this build cannot read (an
    /// error) and from its absence. The checksum is verified before any
    /// field is trusted, so a flipped version digit reads as damage, not as
    /// a newer format: it is computed over the manifest object as written,
    /// with the pretty-printing whitespace removed, which needs no knowledge
    /// of the fields and so holds for any version.
    pub fn inspect(lib: &Path, path: &Path) -> Result<Read> {
        let bytes = match fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::Missing),
            Err(e) => return Err(Error::io(path, e)),
        };
        #[derive(Deserialize)]
        struct RawEnvelope<'a> {
            #[serde(borrow)]
            manifest: &'a serde_json::value::RawValue,
            crc32: String,
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Ok(Read::Damaged("not valid UTF-8".into()));
        };
        let env: RawEnvelope = match serde_json::from_str(text) {
            Ok(e) => e,
            Err(e) => return Ok(Read::Damaged(format!("not valid JSON ({e})"))),
        };
        let crc = format!(
            "{:08x}",
            crc32fast::hash(minify(env.manifest.get()).as_bytes())
        );
        if crc != env.crc32 {
            return Ok(Read::Damaged(format!(
                "checksum mismatch (stored {:?}, computed {crc})",
                env.crc32
            )));
        }
        let corrupt = |reason: String| Error::Corrupt {
            path: lib.to_path_buf(),
            reason: format!("{}: {reason}", path.display()),
        };
        // Check the version before the full shape, so that a newer format
        // gets a version message rather than a parse error.
        let raw: serde_json::Value = serde_json::from_str(env.manifest.get())
            .map_err(|e| corrupt(format!("not valid JSON ({e})")))?;
        let version = raw["version"].as_u64().unwrap_or(0) as u32;
        let min_reader = raw["min_reader_version"].as_u64().unwrap_or(0) as u32;
        if raw["format"] != "papermap-library" {
            return Err(corrupt("not a papermap manifest".into()));
        }
        if min_reader > FORMAT_VERSION || version < OLDEST_READABLE {
            return Err(Error::FormatVersion {
                path: lib.to_path_buf(),
                found: version,
                oldest: OLDEST_READABLE,
                current: FORMAT_VERSION,
                hint: if min_reader > FORMAT_VERSION {
                    "; upgrade papermap to open it"
                } else {
                    "; it is too old to open"
                },
            });
        }
        let m: Manifest = serde_json::from_value(raw)
            .map_err(|e| corrupt(format!("unexpected content ({e})")))?;
        Ok(Read::Intact(m))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let body = serde_json::to_string(self).expect("manifest serialises");
        let env = Envelope {
            manifest: self.clone(),
            crc32: format!("{:08x}", crc32fast::hash(body.as_bytes())),
        };
        let mut text = serde_json::to_string_pretty(&env).expect("manifest serialises");
        text.push('\n');
        replace_file(path, text.as_bytes())?;
        // The commit is visible from the rename on: an error now would make
        // the caller treat it as failed and cut log bytes this manifest
        // counts. A failed directory sync only means the commit may not
        // survive a power cut, and then the library is the previous commit,
        // intact (its logs' extra bytes are cut by the next writer).
        let _ = sync_dir(path.parent().unwrap_or(Path::new(".")));
        Ok(())
    }
}

/// Writes `value` as JSON inside an envelope with its CRC32, atomically.
/// For derived files: `read_checked_json` returns None for a damaged one,
/// which is then rebuilt instead of trusted.
pub fn write_checked_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let body = serde_json::to_string(value).expect("value serialises");
    let crc = format!("{:08x}", crc32fast::hash(body.as_bytes()));
    write_atomic(
        path,
        format!("{{\"crc32\":\"{crc}\",\"body\":{body}}}\n").as_bytes(),
    )
}

/// Reads what `write_checked_json` wrote; None when missing, malformed or
/// failing its checksum.
pub fn read_checked_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    #[derive(Deserialize)]
    struct Env<'a> {
        crc32: String,
        #[serde(borrow)]
        body: &'a serde_json::value::RawValue,
    }
    let text = fs::read_to_string(path).ok()?;
    let env: Env = serde_json::from_str(&text).ok()?;
    let body = env.body.get();
    (format!("{:08x}", crc32fast::hash(body.as_bytes())) == env.crc32)
        .then(|| serde_json::from_str(body).ok())
        .flatten()
}

/// Writes `bytes` to `path` so that readers see either the old or the new
/// content, never a mix: temp file in the same directory (named by
/// `temp_path`), fsync, rename, fsync the directory. On failure (a full
/// disk) the temp file is removed at once.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file(path, bytes)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// `write_atomic` without the directory sync: temp file, fsync, rename.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
        fs::rename(&tmp, path).at(path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// The temp file a write of `path` goes through: `.NAME.tmp.PID`, in the
/// same directory (a rename never crosses file systems). The pid lets the
/// next writer tell a dead process's leftover from a live one's file.
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    dir.join(format!(".{name}.tmp.{}", std::process::id()))
}

/// Temp files (`.NAME.tmp.PID`) in `dir` whose process is gone: what a
/// crash or a full disk left behind. A live process's file is never listed
/// (its pid is checked in /proc); nor is any file where liveness cannot be
/// checked (no /proc).
pub fn stale_temp_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let pid: u32 = name
                .strip_prefix('.')?
                .rsplit_once(".tmp.")?
                .1
                .parse()
                .ok()?;
            (e.file_type().ok()?.is_file() && !pid_alive(pid)).then(|| e.path())
        })
        .collect();
    out.sort();
    out
}

/// Whether process `pid` exists. Without /proc (not Linux) every process
/// counts as alive, so nothing is ever removed by mistake.
pub fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() || !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Makes a rename or file creation in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_detects_edits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("MANIFEST.json");
        let mut m = Manifest::new();
        m.generation = 7;
        m.papers.records = 3;
        m.write(&p).unwrap();
        assert_eq!(Manifest::read(dir.path(), &p).unwrap(), Some(m));
        let text = fs::read_to_string(&p)
            .unwrap()
            .replace("\"records\": 3", "\"records\": 4");
        fs::write(&p, text).unwrap();
        let err = Manifest::read(dir.path(), &p).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn checked_json_rejects_a_flipped_digit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.json");
        write_checked_json(&p, &vec![1.25f32, 2.5]).unwrap();
        assert_eq!(read_checked_json::<Vec<f32>>(&p), Some(vec![1.25, 2.5]));
        let text = fs::read_to_string(&p).unwrap().replace("1.25", "1.75");
        fs::write(&p, text).unwrap();
        assert_eq!(read_checked_json::<Vec<f32>>(&p), None);
    }

    #[test]
    fn newer_format_gets_a_version_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("MANIFEST.json");
        let mut m = Manifest::new();
        m.version = FORMAT_VERSION + 1;
        m.min_reader_version = FORMAT_VERSION + 1;
        m.write(&p).unwrap();
        let err = Manifest::read(dir.path(), &p).unwrap_err().to_string();
        assert!(err.contains("upgrade papermap"), "{err}");
    }

    /// Every single-byte flip of a manifest is either caught (damage) or
    /// harmless (the very same manifest reads back): a flipped version digit
    /// reads as damage, never as a newer format.
    #[test]
    fn no_flip_of_a_manifest_reads_as_a_different_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("MANIFEST.json");
        let mut m = Manifest::new();
        m.generation = 12;
        m.papers = LogState {
            file: "papers 1 \"x\".log".into(),
            bytes: 4096,
            records: 17,
        };
        m.model = Some(ModelStamp {
            id: "all-MiniLM-L6-v2".into(),
            dim: 384,
        });
        m.write(&p).unwrap();
        assert_eq!(Manifest::read(dir.path(), &p).unwrap(), Some(m.clone()));
        let clean = fs::read(&p).unwrap();
        for i in 0..clean.len() {
            for mask in [0x01u8, 0x02, 0x08, 0x20, 0x80] {
                let mut b = clean.clone();
                b[i] ^= mask;
                fs::write(&p, &b).unwrap();
                match Manifest::inspect(dir.path(), &p).unwrap() {
                    Read::Damaged(_) => {}
                    Read::Intact(got) => assert_eq!(got, m, "byte {i} mask {mask:#x}"),
                    Read::Missing => panic!("missing"),
                }
            }
        }
    }
}
