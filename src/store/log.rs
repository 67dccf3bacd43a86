//! Append-only record logs: a file header, then frames of
//! `[u32 payload length][u32 crc32 of payload][payload]`, little-endian.
//!
//! The manifest records how many bytes of each log are committed; bytes past
//! that point are a crashed writer's leftovers and are ignored by readers and
//! cut off by the next writer. A frame whose checksum fails inside the
//! committed range is damage, reported with its record number and offset.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Size of the file header: 8 magic bytes.
pub const HEADER_LEN: u64 = 8;
/// Largest payload a frame may claim; anything bigger is damage, not data.
pub const MAX_FRAME: u32 = 64 << 20;

/// One frame that failed to read inside the committed range.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    pub record: u64,
    pub offset: u64,
    pub reason: String,
}

/// What a scan of a log found: intact payloads and, if any, where it broke.
#[derive(Debug, Default)]
pub struct Scan {
    pub payloads: Vec<(u64, Vec<u8>)>,
    pub damage: Vec<Damage>,
    /// Bytes of the file actually present (may be less than committed).
    pub file_len: u64,
}

/// Reads every frame in `[HEADER_LEN, committed)` into memory (small logs,
/// repair, tests). See `scan_with` for the streaming form.
pub fn scan(path: &Path, magic: &[u8; 8], committed: u64) -> Result<Scan> {
    let mut payloads = Vec::new();
    let mut scan = scan_with(path, magic, committed, &mut |record, _, payload| {
        payloads.push((record, payload.to_vec()));
        Ok(())
    })?;
    scan.payloads = payloads;
    Ok(scan)
}

/// Called with (record number, byte offset, payload) for each intact frame.
pub type FrameVisitor<'a> = dyn FnMut(u64, u64, &[u8]) -> Result<()> + 'a;

/// Calls `f(record, offset, payload)` for every intact frame in
/// `[HEADER_LEN, committed)`, one frame in memory at a time. Damaged frames
/// are listed in the result (whose `payloads` is empty), and scanning stops
/// at a frame whose length cannot be trusted.
pub fn scan_with(
    path: &Path,
    magic: &[u8; 8],
    committed: u64,
    f: &mut FrameVisitor,
) -> Result<Scan> {
    let mut scan = Scan::default();
    if committed == 0 {
        return Ok(scan);
    }
    let file = File::open(path).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!(
            "the manifest records {committed} bytes but the file cannot be opened: {e}"
        ),
    })?;
    scan.file_len = file.metadata().at(path)?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; 8];
    if r.read_exact(&mut header).is_err() || &header != magic {
        scan.damage.push(Damage {
            record: 0,
            offset: 0,
            reason: "file header is missing or wrong".into(),
        });
        return Ok(scan);
    }
    let end = committed.min(scan.file_len);
    let mut payload = Vec::new();
    let mut offset = HEADER_LEN;
    let mut record = 0u64;
    while offset < end {
        if end - offset < 8 {
            scan.damage.push(Damage {
                record,
                offset,
                reason: "truncated frame header".into(),
            });
            break;
        }
        let mut head = [0u8; 8];
        r.read_exact(&mut head).at(path)?;
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if len > MAX_FRAME || offset + 8 + u64::from(len) > end {
            scan.damage.push(Damage {
                record,
                offset,
                reason: format!("frame length {len} runs past the committed end {end}"),
            });
            break;
        }
        payload.resize(len as usize, 0);
        r.read_exact(&mut payload).at(path)?;
        if crc32fast::hash(&payload) == crc {
            f(record, offset, &payload)?;
        } else {
            scan.damage.push(Damage {
                record,
                offset,
                reason: "checksum mismatch".into(),
            });
        }
        offset += 8 + u64::from(len);
        record += 1;
    }
    if scan.file_len < committed {
        scan.damage.push(Damage {
            record,
            offset: scan.file_len,
            reason: format!(
                "file is {} bytes but {committed} are committed (truncated)",
                scan.file_len
            ),
        });
    }
    Ok(scan)
}

/// Reads the one frame that starts at `offset`, checking its checksum.
pub fn read_at(path: &Path, offset: u64) -> Result<Vec<u8>> {
    let mut f = File::open(path).at(path)?;
    f.seek(SeekFrom::Start(offset)).at(path)?;
    let mut head = [0u8; 8];
    f.read_exact(&mut head).at(path)?;
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    let bad = |reason: &str| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("frame at byte {offset}: {reason}"),
    };
    if len > MAX_FRAME {
        return Err(bad("implausible length"));
    }
    let mut payload = vec![0u8; len as usize];
    f.read_exact(&mut payload).at(path)?;
    if crc32fast::hash(&payload) != crc {
        return Err(bad("checksum mismatch"));
    }
    Ok(payload)
}

/// An open log positioned at its committed end, ready to append.
pub struct Appender {
    path: PathBuf,
    w: BufWriter<File>,
    len: u64,
}

impl Appender {
    /// Opens (creating if needed) and cuts the file back to `committed` bytes,
    /// dropping whatever a crashed writer left past the last commit.
    pub fn open(path: &Path, magic: &[u8; 8], committed: u64) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .at(path)?;
        let committed = if committed < HEADER_LEN {
            file.set_len(0).at(path)?;
            file.write_all(magic).at(path)?;
            HEADER_LEN
        } else {
            file.set_len(committed).at(path)?;
            committed
        };
        file.seek(SeekFrom::Start(committed)).at(path)?;
        Ok(Appender {
            path: path.to_path_buf(),
            w: BufWriter::with_capacity(1 << 20, file),
            len: committed,
        })
    }

    pub fn append(&mut self, payload: &[u8]) -> Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or_else(|| {
                Error::Invalid(format!("record of {} bytes is too large", payload.len()))
            })?;
        let crc = crc32fast::hash(payload);
        self.w.write_all(&len.to_le_bytes()).at(&self.path)?;
        self.w.write_all(&crc.to_le_bytes()).at(&self.path)?;
        self.w.write_all(payload).at(&self.path)?;
        self.len += 8 + u64::from(len);
        Ok(())
    }

    /// Bytes written so far, committed or not: the offset of the next frame.
    pub fn end(&self) -> u64 {
        self.len
    }

    /// Hands buffered frames to the OS so `read_at` can see them.
    pub fn flush(&mut self) -> Result<()> {
        self.w.flush().at(&self.path)
    }

    /// Flushes and fsyncs; returns the durable length to record in the manifest.
    pub fn sync(&mut self) -> Result<u64> {
        self.w.flush().at(&self.path)?;
        self.w.get_ref().sync_data().at(&self.path)?;
        Ok(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"TESTLOG1";

    #[test]
    fn appended_frames_scan_back_and_uncommitted_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let mut a = Appender::open(&p, MAGIC, 0).unwrap();
        a.append(b"one").unwrap();
        a.append(b"two").unwrap();
        let committed = a.sync().unwrap();
        a.append(b"uncommitted").unwrap();
        a.sync().unwrap();
        let s = scan(&p, MAGIC, committed).unwrap();
        assert!(s.damage.is_empty());
        let got: Vec<_> = s.payloads.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(got, vec![b"one".as_slice(), b"two".as_slice()]);
        // A new writer cuts the uncommitted tail.
        let mut a = Appender::open(&p, MAGIC, committed).unwrap();
        a.append(b"three").unwrap();
        let c2 = a.sync().unwrap();
        assert_eq!(scan(&p, MAGIC, c2).unwrap().payloads.len(), 3);
    }

    #[test]
    fn flipped_byte_and_truncation_are_reported_with_record_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let mut a = Appender::open(&p, MAGIC, 0).unwrap();
        for i in 0..5u8 {
            a.append(&[i; 10]).unwrap();
        }
        let committed = a.sync().unwrap();
        drop(a);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[8 + 2 * 18 + 8 + 3] ^= 0x40; // inside record 2's payload
        std::fs::write(&p, &bytes).unwrap();
        let s = scan(&p, MAGIC, committed).unwrap();
        assert_eq!(s.payloads.len(), 4);
        assert_eq!(s.damage[0].record, 2);
        assert_eq!(s.damage[0].reason, "checksum mismatch");

        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        let s = scan(&p, MAGIC, committed).unwrap();
        assert!(s.damage.iter().any(|d| d.reason.contains("truncated")));
    }
}
