//! Bytes to text: BOMs, UTF-16, Latin-1/Windows-1252 fallback, binary
//! rejection. Files up to `WHOLE_LIMIT` are decoded at once; larger ones are
//! streamed line by line so a multi-gigabyte snapshot needs bounded memory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use encoding_rs::{UTF_16BE, UTF_16LE, WINDOWS_1252};

use crate::error::{Error, IoContext, Result};

/// Files larger than this are streamed rather than read whole.
const WHOLE_LIMIT: u64 = 256 << 20;
const HEAD: usize = 64 << 10;

pub struct Source {
    path: PathBuf,
    head: String,
    note: Option<String>,
    body: Body,
}

enum Body {
    Text(String),
    Stream(BufReader<File>),
}

impl Source {
    pub fn open(path: &Path) -> Result<Source> {
        let mut file = File::open(path).at(path)?;
        let meta = file.metadata().at(path)?;
        if meta.is_dir() {
            return Err(Error::Input {
                path: path.into(),
                reason: "is a directory, not a file".into(),
            });
        }
        if meta.len() <= WHOLE_LIMIT {
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            file.read_to_end(&mut bytes).at(path)?;
            let (text, note) = decode(path, &bytes)?;
            let head = text[..floor_boundary(&text, HEAD)].to_string();
            return Ok(Source {
                path: path.into(),
                head,
                note,
                body: Body::Text(text),
            });
        }
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let buf = reader.fill_buf().at(path)?;
        let head_bytes = &buf[..buf.len().min(HEAD)];
        if head_bytes.starts_with(&[0xFF, 0xFE]) || head_bytes.starts_with(&[0xFE, 0xFF]) {
            return Err(Error::Input {
                path: path.into(),
                reason: "UTF-16 files larger than 256 MB are not supported; convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)".into(),
            });
        }
        check_binary(path, head_bytes)?;
        let head = String::from_utf8_lossy(head_bytes).into_owned();
        if head.starts_with('\u{feff}') {
            reader.consume(3);
        }
        Ok(Source {
            path: path.into(),
            head,
            note: None,
            body: Body::Stream(reader),
        })
    }

    /// A source over bytes already in memory (tests, fuzzing, stdin).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Source> {
        let (text, note) = decode(path, bytes)?;
        let head = text[..floor_boundary(&text, HEAD)].to_string();
        Ok(Source {
            path: path.into(),
            head,
            note,
            body: Body::Text(text),
        })
    }

    /// The start of the text, for format sniffing.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// A note on how the file was decoded, when it was not plain UTF-8.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The whole text (formats that need it: BibTeX, RIS, CSV, listings).
    pub fn read_all(&mut self) -> Result<String> {
        match std::mem::replace(&mut self.body, Body::Text(String::new())) {
            Body::Text(t) => Ok(t),
            Body::Stream(mut r) => {
                let mut bytes = Vec::new();
                r.read_to_end(&mut bytes).at(&self.path)?;
                Ok(decode(&self.path, &bytes)?.0)
            }
        }
    }

    /// Calls `f(line_number, line)` for every line, streaming large files.
    /// Lines that are not UTF-8 are decoded as Windows-1252 and flagged.
    pub fn for_each_line(&mut self, f: &mut dyn FnMut(u64, &str, bool)) -> Result<()> {
        match &mut self.body {
            Body::Text(t) => {
                for (i, line) in t.lines().enumerate() {
                    f(i as u64 + 1, line, false);
                }
            }
            Body::Stream(r) => {
                let mut buf = Vec::new();
                let mut n = 0u64;
                loop {
                    buf.clear();
                    if r.read_until(b'\n', &mut buf).at(&self.path)? == 0 {
                        break;
                    }
                    n += 1;
                    match std::str::from_utf8(&buf) {
                        Ok(s) => f(n, s.trim_end_matches(['\n', '\r']), false),
                        Err(_) => {
                            let (s, _, _) = WINDOWS_1252.decode(&buf);
                            f(n, s.trim_end_matches(['\n', '\r']), true);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Decodes a whole file. UTF-8 (with or without BOM) passes through; UTF-16
/// with a BOM is converted; other bytes are read as Windows-1252 (a superset
/// of Latin-1) with a note naming the first line that was not UTF-8.
fn decode(path: &Path, bytes: &[u8]) -> Result<(String, Option<String>)> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let (t, _, bad) = UTF_16LE.decode(rest);
        return Ok((
            t.into_owned(),
            bad.then(|| "invalid UTF-16 sequences were replaced".into()),
        ));
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let (t, _, bad) = UTF_16BE.decode(rest);
        return Ok((
            t.into_owned(),
            bad.then(|| "invalid UTF-16 sequences were replaced".into()),
        ));
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    check_binary(path, &bytes[..bytes.len().min(HEAD)])?;
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok((s.to_string(), None)),
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            let (t, _, _) = WINDOWS_1252.decode(bytes);
            Ok((
                t.into_owned(),
                Some(format!(
                    "not valid UTF-8 (first at line {line}); decoded as Latin-1/Windows-1252"
                )),
            ))
        }
    }
}

/// Rejects files that are not text: NUL bytes (UTF-16 without a BOM, or
/// binary data) or a high share of control characters.
fn check_binary(path: &Path, head: &[u8]) -> Result<()> {
    if head.is_empty() {
        return Ok(());
    }
    let nul = head.iter().filter(|b| **b == 0).count();
    let ctrl = head
        .iter()
        .filter(|b| **b < 0x20 && !matches!(**b, b'\n' | b'\r' | b'\t' | 0x0c))
        .count();
    if nul > 0 || ctrl * 20 > head.len() {
        let reason = if nul * 3 > head.len() {
            "looks like UTF-16 without a byte-order mark or a binary file; save it as UTF-8"
        } else {
            "is a binary file, not text (NUL or control bytes at the start)"
        };
        return Err(Error::Input {
            path: path.into(),
            reason: reason.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_utf16_latin1_and_rejects_binary() {
        let p = Path::new("x");
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "Café".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode(p, &utf16).unwrap().0, "Café");
        let (t, note) = decode(p, b"ok\nCaf\xe9").unwrap();
        assert_eq!(t, "ok\nCafé");
        assert!(note.unwrap().contains("line 2"));
        assert!(decode(p, b"\x7fELF\x00\x00\x01").is_err());
        assert_eq!(
            decode(p, b"\xEF\xBB\xBFTY  - JOUR").unwrap().0,
            "TY  - JOUR"
        );
    }
}
