//! The disk reserve: room kept in the data directory so that a full disk never stops delivery.
//!
//! On a full disk every write fails, and an ack (a delete) is a write too: the write-ahead log must
//! grow to record it. So the daemon's store keeps `store.reserve_bytes` of real, allocated space in a
//! file of its own (`scanbridge.reserve`, written with zeros: a sparse file would reserve nothing).
//! When the disk runs short (less than [`FLOOR`] free, seen by a failed write or by the periodic look
//! of [`Reserve::refresh`]) the file is deleted: its space is what acks, retries and dead letters use
//! while ingest is refused. When space returns (the reserve and the floor fit again) the file is made
//! again and the store is no longer full: ingest resumes without a restart. At start-up on a full disk
//! the reserve is released before anything else is written (the lock file, SQLite's `-shm` and WAL),
//! so `serve` starts and delivers.
//!
//! Only the daemon's store (opened with recovery) has a reserve; the CLI tools never touch it.
//! Concurrency: a mutex around the state; every method does file I/O, so call it on the blocking
//! pool (the store's calls are).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The reserve file's name in the data directory.
pub const RESERVE_FILE: &str = "scanbridge.reserve";

/// Below this much free space the disk counts as full (the reserve is released, ingest refused).
pub const FLOOR: u64 = 1 << 20;

/// The reserve of one data directory.
#[derive(Debug)]
pub struct Reserve {
    dir: PathBuf,
    bytes: u64,
    /// Whether the disk counts as full (the reserve is released, or could not be made).
    full: Mutex<bool>,
}

/// Bytes free for unprivileged writers on the file system holding `dir` (None if unknown).
pub fn available(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

impl Reserve {
    /// The reserve of `dir` (which exists): released at once if the disk is already short. A missing
    /// reserve is made by the first [`Reserve::refresh`] (the retention task's, off the start-up path).
    pub fn open(dir: &Path, bytes: u64) -> Reserve {
        let r = Reserve {
            dir: dir.to_owned(),
            bytes,
            full: Mutex::new(false),
        };
        let path = r.path();
        if bytes == 0 {
            let _ = std::fs::remove_file(&path);
        }
        if available(dir).is_some_and(|a| a < FLOOR) {
            let released = r.release();
            tracing::warn!(dir = %dir.display(), released,
                "disk full at start-up: reserve released; new events are refused (503) until space returns, deliveries go on");
            *r.full.lock().unwrap_or_else(|p| p.into_inner()) = true;
        }
        r
    }

    fn path(&self) -> PathBuf {
        self.dir.join(RESERVE_FILE)
    }

    /// Whether the disk counts as full.
    #[cfg(test)]
    pub fn is_full(&self) -> bool {
        *self.full.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A write failed for want of space: if the disk is short, releases the reserve and marks the
    /// disk full. Returns whether the reserve was released now (so a retry may succeed).
    pub fn on_full(&self) -> bool {
        let mut full = self.full.lock().unwrap_or_else(|p| p.into_inner());
        let short = available(&self.dir).is_none_or(|a| a < FLOOR);
        if !short {
            return false; // this write alone was too big (or it was the configured limit)
        }
        let released = self.release();
        if !*full {
            tracing::warn!(
                dir = %self.dir.display(),
                released,
                "disk full: new events are refused (503) until space returns; deliveries go on"
            );
        }
        *full = true;
        released > 0
    }

    /// Looks at the disk: releases the reserve when space ran short, makes it again (and clears the
    /// full state) when space has returned. Returns whether the disk counts as full.
    pub fn refresh(&self) -> bool {
        let mut full = self.full.lock().unwrap_or_else(|p| p.into_inner());
        let Some(avail) = available(&self.dir) else {
            return *full;
        };
        let held = std::fs::metadata(self.path()).map(|m| m.len()).unwrap_or(0);
        if avail < FLOOR {
            let released = self.release();
            if !*full {
                tracing::warn!(dir = %self.dir.display(), available = avail, released,
                    "disk full: new events are refused (503) until space returns; deliveries go on");
            }
            *full = true;
        } else if held < self.bytes || *full {
            // Room for the missing part of the reserve and the floor?
            let missing = self.bytes - held.min(self.bytes);
            if avail >= missing + FLOOR {
                match self.make() {
                    Ok(()) => {
                        if *full {
                            tracing::info!(dir = %self.dir.display(), available = avail,
                                "disk space is back: reserve restored, new events are accepted again");
                        }
                        *full = false;
                    }
                    Err(e) => {
                        tracing::warn!(dir = %self.dir.display(), error = %e, "cannot make the disk reserve");
                        let _ = std::fs::remove_file(self.path());
                        *full = true;
                    }
                }
            } else {
                *full = true;
            }
        }
        *full
    }

    /// Deletes the reserve file; returns the bytes freed.
    fn release(&self) -> u64 {
        let path = self.path();
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        match std::fs::remove_file(&path) {
            Ok(()) => len,
            Err(_) => 0,
        }
    }

    /// Writes the reserve file with zeros (real blocks, not a sparse file) and syncs it.
    fn make(&self) -> std::io::Result<()> {
        if self.bytes == 0 {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path())?;
        let mut left = self.bytes.saturating_sub(f.metadata()?.len());
        let zeros = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_made_with_real_bytes_and_released_only_when_the_disk_is_short() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reserve::open(dir.path(), 200_000);
        let path = dir.path().join(RESERVE_FILE);
        assert!(!path.exists(), "made by the first refresh, not at start-up");
        assert!(!r.refresh());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 200_000);
        assert!(!r.is_full());
        // The test disk is not short: a failed write is this write's own business.
        if available(dir.path()).is_some_and(|a| a > 2 * FLOOR) {
            assert!(!r.on_full());
            assert!(path.exists() && !r.is_full());
        }
        // A reserve of 0 removes the file.
        let r = Reserve::open(dir.path(), 0);
        assert!(!path.exists() && !r.is_full());
    }
}
