//! The single-writer lock: an OS file lock on `LIB/LOCK` (released by the
//! kernel if the process dies, so a SIGKILL never leaves a library locked).
//! A second writer waits up to a deadline, then fails naming the holder.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

#[derive(Debug)]
pub struct LockFile {
    _file: File,
}

impl LockFile {
    pub fn acquire(root: &Path, wait: Duration) -> Result<LockFile> {
        let path: PathBuf = root.join("LOCK");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        let deadline = Instant::now() + wait;
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut pid = String::new();
                    let _ = file.read_to_string(&mut pid);
                    let _ = file.seek(SeekFrom::Start(0));
                    if Instant::now() >= deadline {
                        return Err(Error::Locked {
                            path: root.to_path_buf(),
                            pid: pid.trim().to_string(),
                            lock: path,
                        });
                    }
                    if !told {
                        eprintln!(
                            "papermap: waiting for another papermap (pid {}) to finish writing {}",
                            pid.trim(),
                            root.display()
                        );
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        file.set_len(0).at(&path)?;
        file.seek(SeekFrom::Start(0)).at(&path)?;
        write!(file, "{}", std::process::id()).at(&path)?;
        Ok(LockFile { _file: file })
    }
}

/// The pid of the process writing the library at `root` right now, if any
/// (it holds the lock). A momentary shared lock probes it; a writer that
/// tries in that instant simply retries.
pub fn active_writer(root: &Path) -> Option<String> {
    let path = root.join("LOCK");
    let mut file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Some(pid.trim().to_string())
        }
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_writer_is_seen_while_it_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(active_writer(dir.path()), None);
        let lock = LockFile::acquire(dir.path(), Duration::ZERO).unwrap();
        // flock locks belong to the open file: a second open sees the holder.
        assert_eq!(
            active_writer(dir.path()),
            Some(std::process::id().to_string())
        );
        drop(lock);
        assert_eq!(active_writer(dir.path()), None);
    }
}
