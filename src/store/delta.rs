//! Segments appended beside a derived file (`NAME.delta`), so that adding a
//! few papers to a large library writes in proportion to those papers, not
//! to the library: the file itself (the base) stays as it was built, and
//! each add appends one checksummed segment that takes the state from the
//! last one (`from` rows) to the next (`to`: fingerprint and rows). What a
//! segment holds is the derived file's business ([`DerivedFile::append`]);
//! this module owns the framing, the chaining and the crash rules:
//!
//! - The delta names the base it extends (fingerprint and rows). A delta
//!   whose base is not the file's current header is ignored (a new base
//!   was written since) and replaced by the next append.
//! - Segments are read in order up to the first that fails its checksum or
//!   does not chain: a segment torn by a crash is invisible, and the next
//!   append cuts it off before writing.
//! - A new delta is written atomically (temp file, rename); an append writes
//!   one frame after the last good one and syncs it. Readers that read the
//!   file during an append see the segments before it.
//!
//! The owner folds the segments into a new base when they grow past a share
//! of it (the lexical index: an eighth of its bytes), as Lucene merges
//! segments: the cost per paper stays bounded and a reader never merges
//! more than that share.
//!
//! [`DerivedFile::append`]: super::derived::DerivedFile::append

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::codec::{Reader, put_bytes, put_u32};
use super::derived::Built;
use super::manifest::write_atomic;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"PMDELTA1";

/// One appended segment: rows `from..to.rows` of the library.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub from: usize,
    pub to: Built,
    pub body: Vec<u8>,
}

/// The segments beside a derived file, in order, and the base they extend.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub base: Built,
    pub segments: Vec<Segment>,
    /// Bytes up to the end of the last good segment.
    len: u64,
}

/// The delta file of the derived file at `file`: `NAME.delta` beside it.
pub fn path_of(file: &Path) -> PathBuf {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    file.with_file_name(format!("{name}.delta"))
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(payload.len() + 8);
    put_u32(&mut b, payload.len() as u32);
    put_u32(&mut b, crc32fast::hash(payload));
    b.extend_from_slice(payload);
    b
}

fn next_frame<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let len = r.u32()? as usize;
    let crc = r.u32()?;
    let payload = r.take(len)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

fn put_built(b: &mut Vec<u8>, built: &Built) {
    put_bytes(b, built.fingerprint.as_bytes());
    b.extend_from_slice(&(built.rows as u64).to_le_bytes());
}

fn read_built(r: &mut Reader<'_>) -> Option<Built> {
    let fingerprint = String::from_utf8(r.bytes()?.to_vec()).ok()?;
    let rows = usize::try_from(r.u64()?).ok()?;
    Some(Built { fingerprint, rows })
}

impl Delta {
    /// The delta beside `file` (`None` when there is none or its header is
    /// damaged), with its segments up to the first bad one.
    pub fn read(file: &Path) -> Option<Delta> {
        let b = fs::read(path_of(file)).ok()?;
        let mut r = Reader::new(&b);
        if r.take(8)? != MAGIC {
            return None;
        }
        let base = read_built(&mut Reader::new(next_frame(&mut r)?))?;
        let mut delta = Delta {
            base,
            segments: Vec::new(),
            len: r.pos() as u64,
        };
        while let Some(payload) = next_frame(&mut r) {
            let mut p = Reader::new(payload);
            let Some((to, from)) = read_built(&mut p).zip(p.u64()) else {
                break;
            };
            let from = from as usize;
            if from != delta.state().rows || to.rows <= from {
                break;
            }
            let body = payload[p.pos()..].to_vec();
            delta.segments.push(Segment { from, to, body });
            delta.len = r.pos() as u64;
        }
        Some(delta)
    }

    /// The state the base and every segment make.
    pub fn state(&self) -> &Built {
        self.segments.last().map_or(&self.base, |s| &s.to)
    }

    /// Bytes of the good segments (and header).
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// The bytes of `delta` (none: a new one for `base`) once a segment
    /// to `to` with a body of `body` bytes is appended.
    pub fn bytes_after(delta: Option<&Delta>, base: &Built, to: &Built, body: usize) -> u64 {
        let built = |b: &Built| 4 + b.fingerprint.len() as u64 + 8;
        let head = delta.map_or(MAGIC.len() as u64 + 8 + built(base), |d| d.len);
        head + 8 + built(to) + 8 + body as u64
    }

    /// The segments that take the base to `want`, or `None` when no prefix
    /// of them ends there.
    pub fn segments_to(&self, want: &Built) -> Option<&[Segment]> {
        if &self.base == want {
            return Some(&[]);
        }
        let end = self.segments.iter().position(|s| &s.to == want)?;
        Some(&self.segments[..=end])
    }

    /// Appends a segment taking rows `from..to.rows` to the delta beside
    /// `file`, whose base is `base`: after the delta's last good segment
    /// when it extends `base` and ends at `from`, else as a new delta.
    pub fn append(file: &Path, base: &Built, from: usize, to: &Built, body: &[u8]) -> Result<()> {
        let mut payload = Vec::with_capacity(body.len() + 64);
        put_built(&mut payload, to);
        payload.extend_from_slice(&(from as u64).to_le_bytes());
        payload.extend_from_slice(body);
        let path = path_of(file);
        match Delta::read(file) {
            Some(d) if &d.base == base && d.state().rows == from => {
                let at = |e| Error::io(&path, e);
                let mut f = OpenOptions::new().write(true).open(&path).map_err(at)?;
                f.set_len(d.len).map_err(at)?;
                f.seek(SeekFrom::Start(d.len)).map_err(at)?;
                f.write_all(&frame(&payload)).map_err(at)?;
                f.sync_data().map_err(at)
            }
            _ => {
                let mut head = Vec::new();
                put_built(&mut head, base);
                let mut b = MAGIC.to_vec();
                b.extend_from_slice(&frame(&head));
                b.extend_from_slice(&frame(&payload));
                write_atomic(&path, &b)
            }
        }
    }

    /// Removes the delta beside `file` (after a new base was written).
    pub fn remove(file: &Path) {
        let _ = fs::remove_file(path_of(file));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(fp: &str, rows: usize) -> Built {
        Built {
            fingerprint: fp.into(),
            rows,
        }
    }

    #[test]
    fn segments_chain_and_a_torn_one_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.bin");
        let base = built("a", 10);
        assert_eq!(Delta::read(&file), None);
        Delta::append(&file, &base, 10, &built("b", 12), b"one").unwrap();
        let one = Delta::read(&file).unwrap();
        let after = Delta::bytes_after(Some(&one), &base, &built("c", 15), 3);
        Delta::append(&file, &base, 12, &built("c", 15), b"two").unwrap();
        let d = Delta::read(&file).unwrap();
        assert_eq!(d.bytes(), after);
        assert_eq!(fs::metadata(path_of(&file)).unwrap().len(), after);
        assert_eq!(
            Delta::bytes_after(None, &base, &built("b", 12), 3),
            one.bytes()
        );
        assert_eq!(d.base, base);
        assert_eq!(d.state(), &built("c", 15));
        assert_eq!(d.segments_to(&built("b", 12)).unwrap().len(), 1);
        assert_eq!(d.segments_to(&base).unwrap().len(), 0);
        assert_eq!(d.segments_to(&built("z", 12)), None);
        assert_eq!(d.segments[1].body, b"two");
        // A torn third segment is invisible, and the next append replaces it.
        let good = fs::metadata(path_of(&file)).unwrap().len();
        let mut f = OpenOptions::new()
            .append(true)
            .open(path_of(&file))
            .unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
        assert_eq!(Delta::read(&file).unwrap().segments.len(), 2);
        assert_eq!(Delta::read(&file).unwrap().bytes(), good);
        Delta::append(&file, &base, 15, &built("d", 16), b"three").unwrap();
        let d = Delta::read(&file).unwrap();
        assert_eq!(d.segments.len(), 3);
        assert_eq!(d.state(), &built("d", 16));
        // A flipped byte in the second segment hides it and the third.
        let mut b = fs::read(path_of(&file)).unwrap();
        let at = b.windows(3).position(|w| w == b"two").unwrap();
        b[at] ^= 1;
        fs::write(path_of(&file), &b).unwrap();
        assert_eq!(Delta::read(&file).unwrap().state(), &built("b", 12));
        // An append for another base starts a new delta.
        Delta::append(&file, &built("n", 20), 20, &built("o", 21), b"x").unwrap();
        let d = Delta::read(&file).unwrap();
        assert_eq!((d.base.rows, d.segments.len()), (20, 1));
        Delta::remove(&file);
        assert_eq!(Delta::read(&file), None);
    }
}
