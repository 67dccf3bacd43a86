//! Append-only record logs: a file header, then frames of
//! `[u32 payload length][u32 crc32 of payload][payload]`, little-endian.
//!
//! The manifest records how many bytes of each log are committed; bytes past
//! that point are a crashed writer's leftovers and are ignored by readers and
//! cut off by the next writer.
//!
//! Damage inside the committed range never costs more than the bytes it
//! touches. After a frame fails, the scan resynchronises the way
//! log-structured stores do: it moves forward one byte at a time until a
//! position holds a whole frame whose checksum matches (and that the caller
//! accepts as a record), and reads on from there. The bytes skipped are then
//! tried as one frame with a damaged length field (its stored checksum must
//! match the skipped payload) or a damaged checksum field (the stored and the
//! computed checksums differ in one byte only, which a change of the payload
//! produces with a probability of about 2e-7); only if both fail are they
//! reported lost, as a byte range. A damaged file header costs nothing.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Size of the file header: 8 magic bytes.
pub const HEADER_LEN: u64 = 8;
/// Largest payload a frame may claim; anything bigger is damage, not data.
pub const MAX_FRAME: u32 = 64 << 20;

/// Damage found by a scan: a byte range and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    /// Number of the (first) record in the range, counting records as found.
    pub record: u64,
    /// The damaged bytes: `[offset, end)`.
    pub offset: u64,
    pub end: u64,
    pub reason: String,
    /// True when nothing was lost: a damaged header, or a frame whose
    /// payload was recovered (only its length or checksum field was hit).
    pub recovered: bool,
}

/// What a scan of a log found: intact payloads and, if any, the damage.
#[derive(Debug, Default)]
pub struct Scan {
    pub payloads: Vec<(u64, Vec<u8>)>,
    pub damage: Vec<Damage>,
    /// Bytes of the file actually present (may be less than committed).
    pub file_len: u64,
    /// Records read (intact or recovered).
    pub records: u64,
    /// End of the last record read: the committed length a manifest rebuilt
    /// from this log records.
    pub valid_end: u64,
}

impl Scan {
    /// Damage that cost records (not a header or a recovered frame).
    pub fn lost(&self) -> impl Iterator<Item = &Damage> {
        self.damage.iter().filter(|d| !d.recovered)
    }
}

/// Decides whether a payload whose checksum matches is a record of this log
/// (used only while resynchronising, to rule out chance matches).
pub type Accept<'a> = &'a dyn Fn(&[u8]) -> bool;

/// Accepts every non-empty payload.
pub fn any_payload(p: &[u8]) -> bool {
    !p.is_empty()
}

/// Reads every frame in `[HEADER_LEN, committed)` into memory (small logs,
/// repair, tests). See `scan_with` for the streaming form.
pub fn scan(path: &Path, magic: &[u8; 8], committed: u64, accept: Accept) -> Result<Scan> {
    let mut payloads = Vec::new();
    let mut scan = scan_with(path, magic, committed, accept, &mut |record, _, payload| {
        payloads.push((record, payload.to_vec()));
        Ok(())
    })?;
    scan.payloads = payloads;
    Ok(scan)
}

/// Called with (record number, byte offset, payload) for each intact frame.
pub type FrameVisitor<'a> = dyn FnMut(u64, u64, &[u8]) -> Result<()> + 'a;

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"))
}

/// Calls `f(record, offset, payload)` for every intact (or recovered) frame
/// in `[HEADER_LEN, committed)`. Undamaged logs are streamed one frame at a
/// time; from the first damaged frame on, the rest of the committed range is
/// memory-mapped and resynchronised (see the module header).
pub fn scan_with(
    path: &Path,
    magic: &[u8; 8],
    committed: u64,
    accept: Accept,
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
    let end = committed.min(scan.file_len);
    let mut r = BufReader::with_capacity(1 << 20, &file);
    let mut header = [0u8; 8];
    if end < HEADER_LEN || r.read_exact(&mut header).is_err() {
        scan.damage.push(Damage {
            record: 0,
            offset: 0,
            end,
            reason: "file header is missing".into(),
            recovered: end == 0,
        });
        return Ok(finish(scan, committed));
    }
    if &header != magic {
        scan.damage.push(Damage {
            record: 0,
            offset: 0,
            end: HEADER_LEN,
            reason: format!(
                "file header is damaged (expected {:?})",
                String::from_utf8_lossy(magic)
            ),
            recovered: true,
        });
    }
    scan.valid_end = HEADER_LEN;
    let mut payload = Vec::new();
    let mut offset = HEADER_LEN;
    let mut record = 0u64;
    // Fast path: stream frames while they are intact.
    while offset < end {
        if end - offset < 8 {
            break;
        }
        let mut head = [0u8; 8];
        r.read_exact(&mut head).at(path)?;
        let len = u32_at(&head, 0);
        let crc = u32_at(&head, 4);
        if len == 0 || len > MAX_FRAME || offset + 8 + u64::from(len) > end {
            break;
        }
        payload.resize(len as usize, 0);
        r.read_exact(&mut payload).at(path)?;
        if crc32fast::hash(&payload) != crc {
            break;
        }
        f(record, offset, &payload)?;
        offset += 8 + u64::from(len);
        record += 1;
        scan.valid_end = offset;
    }
    scan.records = record;
    if offset < end {
        drop(r);
        // SAFETY: the committed range of a log is never rewritten or cut
        // (writers append past it, and cut only what no manifest counts), so
        // the mapped bytes do not change under us.
        let map = unsafe { memmap2::Mmap::map(&file) }.at(path)?;
        resync(&map[..end as usize], offset, &mut scan, accept, f)?;
    }
    Ok(finish(scan, committed))
}

fn finish(mut scan: Scan, committed: u64) -> Scan {
    if scan.file_len < committed {
        scan.damage.push(Damage {
            record: scan.records,
            offset: scan.file_len,
            end: committed,
            reason: format!(
                "file is {} bytes but {committed} are committed (truncated)",
                scan.file_len
            ),
            recovered: false,
        });
    }
    scan
}

/// The length of the intact frame at `p`, if there is one.
fn frame_at(data: &[u8], p: usize, accept: Accept) -> Option<usize> {
    let head = data.get(p..p.checked_add(8)?)?;
    let len = u32_at(head, 0);
    if len == 0 || len > MAX_FRAME {
        return None;
    }
    let payload = data.get(p + 8..p + 8 + len as usize)?;
    (crc32fast::hash(payload) == u32_at(head, 4) && accept(payload)).then_some(len as usize)
}

/// Reads `data` (the file up to the committed end) from `start`, where a
/// frame failed, resynchronising after each damaged stretch.
fn resync(
    data: &[u8],
    start: u64,
    scan: &mut Scan,
    accept: Accept,
    f: &mut FrameVisitor,
) -> Result<()> {
    let mut p = start as usize;
    let mut record = scan.records;
    while p < data.len() {
        if let Some(len) = frame_at(data, p, &|_| true) {
            f(record, p as u64, &data[p + 8..p + 8 + len])?;
            p += 8 + len;
            record += 1;
            scan.valid_end = p as u64;
            continue;
        }
        // The next intact frame after the damage (or the end).
        let next = (p + 1..data.len().saturating_sub(8))
            .find(|&q| frame_at(data, q, accept).is_some())
            .unwrap_or(data.len());
        for piece in salvage(&data[p..next], accept) {
            let (from, to) = (p + piece.from, p + piece.to);
            let recovered = piece.recovered.is_some();
            if recovered {
                f(record, from as u64, &data[from + 8..to])?;
                scan.valid_end = to as u64;
            }
            scan.damage.push(Damage {
                record,
                offset: from as u64,
                end: to as u64,
                reason: piece.recovered.unwrap_or_else(|| describe(&data[from..to])),
                recovered,
            });
            record += 1;
        }
        p = next;
    }
    scan.records = record;
    Ok(())
}

/// Part of the bytes between two intact frames: `[from, to)` of the gap,
/// recovered as one record (with the reason) or lost.
struct Piece {
    from: usize,
    to: usize,
    recovered: Option<String>,
}

/// Splits the bytes between two intact frames into recovered records and
/// lost stretches: the whole gap, or a prefix of it, may be one frame whose
/// length or checksum field was damaged; a damaged frame's own length is
/// trusted only if what follows it is then recovered.
fn salvage(gap: &[u8], accept: Accept) -> Vec<Piece> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut at = 0;
    'outer: while at < gap.len() {
        let rest = &gap[at..];
        let push = |pieces: &mut Vec<Piece>, len: usize, recovered: Option<String>| {
            pieces.push(Piece {
                from: at,
                to: at + len,
                recovered,
            });
            len
        };
        if let Some(reason) = recover(rest, accept) {
            at += push(&mut pieces, rest.len(), Some(reason));
            continue;
        }
        if let Some(k) = prefix_frame(rest, accept) {
            let reason = format!(
                "length field damaged (says {}, the record is {} bytes); record recovered by its checksum",
                u32_at(rest, 0),
                k - 8
            );
            at += push(&mut pieces, k, Some(reason));
            continue;
        }
        if rest.len() > 8 {
            let own = 8 + u32_at(rest, 0) as usize;
            if own < rest.len() {
                if let Some(reason) = recover(&rest[..own], accept) {
                    at += push(&mut pieces, own, Some(reason));
                    continue;
                }
                if salvage(&rest[own..], accept)
                    .iter()
                    .any(|p| p.recovered.is_some())
                {
                    at += push(&mut pieces, own, None);
                    continue 'outer;
                }
            }
        }
        push(&mut pieces, rest.len(), None);
        break;
    }
    // Adjacent lost stretches are one range.
    let mut merged: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match merged.last_mut() {
            Some(last) if last.recovered.is_none() && p.recovered.is_none() => last.to = p.to,
            _ => merged.push(p),
        }
    }
    merged
}

/// The shortest prefix of `gap` (shorter than all of it) that is a frame
/// whose stored checksum matches its payload, whatever its length field
/// says: a frame with a damaged length field followed by more damage.
fn prefix_frame(gap: &[u8], accept: Accept) -> Option<usize> {
    if gap.len() <= 9 {
        return None;
    }
    let stored = u32_at(gap, 4);
    let limit = gap.len().min(8 + MAX_FRAME as usize);
    let mut h = crc32fast::Hasher::new();
    for k in 9..limit {
        h.update(&gap[k - 1..k]);
        if h.clone().finalize() == stored && accept(&gap[8..k]) {
            return Some(k);
        }
    }
    None
}

/// Tries `gap` as one frame whose length or checksum field was damaged;
/// returns what was repaired.
fn recover(gap: &[u8], accept: Accept) -> Option<String> {
    if gap.len() <= 8 {
        return None;
    }
    let payload = &gap[8..];
    let (len, stored) = (u32_at(gap, 0), u32_at(gap, 4));
    let computed = crc32fast::hash(payload);
    let diff = computed ^ stored;
    let reason = if diff == 0 {
        format!(
            "length field damaged (says {len}, the record is {} bytes); record recovered by its checksum",
            payload.len()
        )
    } else if len as usize == payload.len() && (0..4).any(|i| diff & !(0xffu32 << (8 * i)) == 0) {
        format!(
            "checksum field damaged (stored {stored:08x}, the payload's is {computed:08x}: one byte apart); record kept"
        )
    } else {
        return None;
    };
    accept(payload).then_some(reason)
}

fn describe(gap: &[u8]) -> String {
    if gap.len() < 8 {
        return "truncated frame header".into();
    }
    let len = u32_at(gap, 0) as usize;
    if len == gap.len() - 8 {
        "checksum mismatch (payload damaged)".into()
    } else if len + 8 > gap.len() {
        format!(
            "frame length {len} runs past the next intact record or the committed end ({} bytes skipped)",
            gap.len()
        )
    } else {
        format!("unreadable frame ({} bytes skipped)", gap.len())
    }
}

/// Reads the one frame that starts at `offset`, checking its checksum.
pub fn read_at(path: &Path, offset: u64) -> Result<Vec<u8>> {
    let mut f = File::open(path).at(path)?;
    f.seek(SeekFrom::Start(offset)).at(path)?;
    let mut head = [0u8; 8];
    f.read_exact(&mut head).at(path)?;
    let len = u32_at(&head, 0);
    let crc = u32_at(&head, 4);
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
///
/// Bytes appended but not committed are cut off again when the appender is
/// dropped (an error, e.g. a full disk, ended the write) and, should the
/// process die first, by the next writer's `open`: a retry always starts
/// from the last commit.
pub struct Appender {
    path: PathBuf,
    w: BufWriter<File>,
    len: u64,
    committed: u64,
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
            committed,
        })
    }

    pub fn append(&mut self, payload: &[u8]) -> Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_FRAME && *l > 0)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "record of {} bytes cannot be stored (1 byte to {MAX_FRAME})",
                    payload.len()
                ))
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

    /// Records that a manifest now counts `len` bytes (what `sync` returned).
    pub fn mark_committed(&mut self, len: u64) {
        self.committed = len;
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        if self.len == self.committed {
            return;
        }
        // Throw the buffer away rather than flush it, then cut the file back
        // to the commit point. Best effort: the next `open` cuts it anyway.
        let Ok(spare) = self.w.get_ref().try_clone() else {
            return;
        };
        let w = std::mem::replace(&mut self.w, BufWriter::with_capacity(0, spare));
        let (file, _unwritten) = w.into_parts();
        let _ = file.set_len(self.committed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"TESTLOG1";

    fn ten(p: &[u8]) -> bool {
        p.len() == 10
    }

    /// A log of five 10-byte records `[i; 10]`; returns (path, committed).
    fn five(dir: &Path) -> (PathBuf, u64) {
        let p = dir.join("x.log");
        let mut a = Appender::open(&p, MAGIC, 0).unwrap();
        for i in 0..5u8 {
            a.append(&[i + 1; 10]).unwrap();
        }
        let committed = a.sync().unwrap();
        a.mark_committed(committed);
        (p, committed)
    }

    fn kept(s: &Scan) -> Vec<u8> {
        s.payloads.iter().map(|(_, p)| p[0]).collect()
    }

    #[test]
    fn appended_frames_scan_back_and_uncommitted_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let mut a = Appender::open(&p, MAGIC, 0).unwrap();
        a.append(b"one").unwrap();
        a.append(b"two").unwrap();
        let committed = a.sync().unwrap();
        a.mark_committed(committed);
        a.append(b"uncommitted").unwrap();
        a.sync().unwrap();
        let s = scan(&p, MAGIC, committed, &any_payload).unwrap();
        assert!(s.damage.is_empty());
        let got: Vec<_> = s.payloads.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(got, vec![b"one".as_slice(), b"two".as_slice()]);
        // Dropping the appender cuts what no manifest counts.
        drop(a);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), committed);
        let mut a = Appender::open(&p, MAGIC, committed).unwrap();
        a.append(b"three").unwrap();
        let c2 = a.sync().unwrap();
        assert_eq!(scan(&p, MAGIC, c2, &any_payload).unwrap().payloads.len(), 3);
    }

    #[test]
    fn a_crashed_writers_tail_is_cut_by_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let (p, committed) = five(dir.path());
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[9u8; 13]).unwrap(); // half a frame, as a full disk leaves it
        drop(f);
        let mut a = Appender::open(&p, MAGIC, committed).unwrap();
        a.append(&[7; 10]).unwrap();
        let c2 = a.sync().unwrap();
        let s = scan(&p, MAGIC, c2, &ten).unwrap();
        assert!(s.damage.is_empty(), "{:?}", s.damage);
        assert_eq!(kept(&s), vec![1, 2, 3, 4, 5, 7]);
    }

    /// Every byte of the log flipped with several masks: every record whose
    /// payload was not touched is kept, in order, and only a record whose
    /// payload was hit is lost, reported by a byte range holding the flip.
    #[test]
    fn every_single_byte_flip_costs_at_most_the_record_it_hits() {
        let dir = tempfile::tempdir().unwrap();
        let (p, committed) = five(dir.path());
        let clean = std::fs::read(&p).unwrap();
        for i in 0..clean.len() {
            for mask in [0x01u8, 0x10, 0x80, 0xff, 0x5a] {
                let mut b = clean.clone();
                b[i] ^= mask;
                std::fs::write(&p, &b).unwrap();
                let s = scan(&p, MAGIC, committed, &ten).unwrap();
                let hit = (i >= 8).then(|| (i - 8) / 18);
                let in_payload = i >= 8 && (i - 8) % 18 >= 8;
                let want: Vec<u8> = (0..5u8)
                    .filter(|r| !(in_payload && hit == Some(*r as usize)))
                    .map(|r| r + 1)
                    .collect();
                assert_eq!(kept(&s), want, "byte {i} mask {mask:#x}: {:?}", s.damage);
                assert!(!s.damage.is_empty(), "byte {i} mask {mask:#x} not detected");
                for d in s.lost() {
                    assert!(
                        d.offset as usize <= i && i < d.end as usize,
                        "byte {i}: {d:?}"
                    );
                }
                assert_eq!(s.lost().count(), usize::from(in_payload), "byte {i}");
                let last_lost = in_payload && hit == Some(4);
                assert_eq!(s.valid_end, if last_lost { 8 + 4 * 18 } else { committed });
            }
        }
    }

    #[test]
    fn damage_in_several_places_is_each_resynchronised() {
        let dir = tempfile::tempdir().unwrap();
        let (p, committed) = five(dir.path());
        let mut b = std::fs::read(&p).unwrap();
        b[2] ^= 0x40; // header
        b[8 + 18 + 1] ^= 0x01; // record 1's length field
        b[8 + 2 * 18 + 8 + 3] ^= 0x40; // record 2's payload
        b[8 + 4 * 18 + 5] ^= 0x02; // record 4's checksum field
        std::fs::write(&p, &b).unwrap();
        let s = scan(&p, MAGIC, committed, &ten).unwrap();
        assert_eq!(kept(&s), vec![1, 2, 4, 5]);
        let lost: Vec<_> = s.lost().collect();
        assert_eq!(lost.len(), 1);
        assert_eq!((lost[0].offset, lost[0].end), (8 + 2 * 18, 8 + 3 * 18));
        assert_eq!(lost[0].reason, "checksum mismatch (payload damaged)");
        assert_eq!(s.damage.len(), 4, "{:?}", s.damage);
    }

    #[test]
    fn truncation_is_reported_as_a_lost_range() {
        let dir = tempfile::tempdir().unwrap();
        let (p, committed) = five(dir.path());
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() - 5]).unwrap();
        let s = scan(&p, MAGIC, committed, &ten).unwrap();
        assert_eq!(kept(&s), vec![1, 2, 3, 4]);
        assert!(
            s.lost().any(|d| d.reason.contains("truncated")),
            "{:?}",
            s.damage
        );
        assert_eq!(s.valid_end, 8 + 4 * 18);
    }
}
