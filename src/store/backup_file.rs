//! How a backup file lands, for every backend: the destination must not exist (a backup never
//! overwrites one), the copy is written to a partial file beside it, and only a copy that was
//! written and checked is renamed onto the destination; a failed one leaves nothing behind.

use std::path::{Path, PathBuf};

use super::{Backup, StoreError};

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::DataDir {
        path: path.display().to_string(),
        source,
    }
}

/// The partial file to write the copy of `dest` to (a stale one of this process is removed), or
/// the error when `dest` exists already.
pub fn staging(dest: &Path) -> Result<PathBuf, StoreError> {
    if dest.exists() {
        return Err(io(
            dest,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the backup file exists already; name a new one",
            ),
        ));
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    let tmp = dest.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    Ok(tmp)
}

/// Lands the copy written to `tmp`: renamed onto `dest` when `made` (the writing and the check of
/// the copy) succeeded, removed when it did not.
pub fn land(
    tmp: &Path,
    dest: &Path,
    made: Result<Backup, StoreError>,
) -> Result<Backup, StoreError> {
    match made {
        Ok(b) => {
            std::fs::rename(tmp, dest).map_err(|e| io(dest, e))?;
            Ok(b)
        }
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
    }
}
