//! The library manifest: format version, oldest version that can read it,
//! the embedding model, and the committed length of each log. It is the
//! commit point of every write: logs are appended and fsynced first, then the
//! manifest is replaced atomically (temp file, fsync, rename, fsync dir).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// Version written by this build.
pub const FORMAT_VERSION: u32 = 1;
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

#[derive(Serialize, Deserialize)]
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

    /// Reads and checks the manifest; `Ok(None)` when the library has none yet.
    pub fn read(lib: &Path, path: &Path) -> Result<Option<Manifest>> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let corrupt = |reason: String| Error::Corrupt {
            path: lib.to_path_buf(),
            reason: format!("{}: {reason}", path.display()),
        };
        // Check the version before the full shape, so that a newer format
        // gets a version message rather than a parse error.
        let raw: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(format!("not valid JSON ({e})")))?;
        let m = &raw["manifest"];
        let version = m["version"].as_u64().unwrap_or(0) as u32;
        let min_reader = m["min_reader_version"].as_u64().unwrap_or(0) as u32;
        if m["format"] != "papermap-library" {
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
        let env: Envelope = serde_json::from_value(raw)
            .map_err(|e| corrupt(format!("unexpected content ({e})")))?;
        let body = serde_json::to_string(&env.manifest).expect("manifest serialises");
        let crc = format!("{:08x}", crc32fast::hash(body.as_bytes()));
        if crc != env.crc32 {
            return Err(corrupt(format!(
                "checksum mismatch (stored {}, computed {crc})",
                env.crc32
            )));
        }
        Ok(Some(env.manifest))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let body = serde_json::to_string(self).expect("manifest serialises");
        let env = Envelope {
            manifest: self.clone(),
            crc32: format!("{:08x}", crc32fast::hash(body.as_bytes())),
        };
        let mut text = serde_json::to_string_pretty(&env).expect("manifest serialises");
        text.push('\n');
        write_atomic(path, text.as_bytes())
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
/// content, never a mix: temp file in the same directory, fsync, rename, fsync
/// the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    {
        let mut f = File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    fs::rename(&tmp, path).at(path)?;
    sync_dir(dir)
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
}
