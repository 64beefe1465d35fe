//! The data directory's owner: one `scanbridge serve` at a time.
//!
//! The daemon that serves a data directory clears every lease at start-up and then treats the outbox
//! as its own, so a second daemon on the same directory would clear the first one's leases (duplicate
//! sends) and dead-letter deliveries for targets it does not know. [`DataDirLock::acquire`] takes an
//! exclusive advisory lock (`flock`, through std's `File::try_lock`) on `scanbridge.lock` in the
//! directory and writes the holder's pid into it; a second daemon gets [`StoreError::InUse`] naming the
//! directory and that pid, and `serve` exits 2.
//!
//! Promises: the lock is held for as long as the value lives and released by the kernel when the
//! process ends, however it ends (a `kill -9` leaves no stale lock, only a stale pid in the file, which
//! the next holder overwrites). The file is opened without truncation and rewritten only once the lock
//! is held, so a refused daemon never erases the holder's pid. Only `serve` takes the lock: the CLI tools
//! that read or queue work (`dlq`, `silence`, `suppressed`, `route`) open the store beside the daemon.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use super::StoreError;

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "scanbridge.lock";

/// An exclusive hold on a data directory (released on drop or process exit).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` (which must exist) or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, StoreError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| StoreError::Lock {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(StoreError::InUse {
                    path: data_dir.display().to_string(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file, so a second open in this process conflicts too.
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        let StoreError::InUse { holder, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*holder, Some(std::process::id()));
        assert!(err.to_string().contains(&dir.path().display().to_string()));
        drop(first);
        DataDirLock::acquire(dir.path()).expect("released on drop");
    }
}
