//! `scanbridge store restore FILE`, what both backends share: what a restore put back
//! ([`Restored`], per table or stream) and every way one is refused ([`RestoreError`]).
//!
//! The promise, whatever the backend: a refused restore wrote nothing. The SQLite backend
//! (`sqlite_restore.rs`) checks the copy and the data directory before it moves the copy into
//! place; the JetStream backend (`jetstream/restore.rs`) reads the whole file and looks at the
//! target's streams before its first publish. A store that already holds data is replaced only when
//! the user says so (`--replace`): a restore never adds a backup's records to live ones by accident.

use super::StoreError;

/// What a restore put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Where: the database file, or the cluster and prefix.
    pub into: String,
    /// One line per table (SQLite) or stream (JetStream), in the order they were restored.
    pub parts: Vec<Part>,
    /// What else the restore did that the user should know (one sentence each).
    pub notes: Vec<String>,
}

/// One table or stream put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// Rows, messages or bucket values.
    pub count: u64,
    /// Of a bucket: its delete (or purge) markers, restored as deletes.
    pub deletes: u64,
}

/// Why a restore was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the backup {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not a backup this backend and build can restore (another backend's, a newer
    /// format, not a backup at all).
    #[error("{path} {why}; nothing was restored")]
    NotABackup { path: String, why: String },
    /// One line of a JetStream backup is at fault (1-based, the header being line 1).
    #[error("{path} line {line}: {why}; nothing was restored")]
    Line {
        path: String,
        line: u64,
        why: String,
    },
    /// The copy failed the store's own check (`store check`).
    #[error("the backup {path} failed its check ({problems}); nothing was restored")]
    Damaged { path: String, problems: String },
    /// The target already holds data, and `--replace` was not given.
    #[error(
        "{target} already holds data ({holds}); nothing was restored. Restore into an empty store, or pass --replace to replace what is there with the backup"
    )]
    NotEmpty { target: String, holds: String },
    /// A daemon holds the data directory (SQLite).
    #[error(
        "data directory {path} is in use by `scanbridge serve` ({}); stop the daemon before restoring; nothing was restored",
        match holder { Some(pid) => format!("pid {pid}"), None => "pid unknown".to_owned() }
    )]
    InUse { path: String, holder: Option<u32> },
}

impl RestoreError {
    /// A store error, with the data directory's lock told as a restore's refusal.
    pub fn from_store(e: StoreError) -> RestoreError {
        match e {
            StoreError::InUse { path, holder } => RestoreError::InUse { path, holder },
            e => RestoreError::Store(e),
        }
    }
}

/// The first bytes of an SQLite database file.
pub const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// The first bytes of `path` (up to `n`), to tell the two backends' backups apart.
pub fn sniff(path: &std::path::Path, n: usize) -> Result<Vec<u8>, RestoreError> {
    use std::io::Read;
    let read = |source| RestoreError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(read)?;
    let mut buf = vec![0; n];
    let mut got = 0;
    while got < n {
        match f.read(&mut buf[got..]).map_err(read)? {
            0 => break,
            k => got += k,
        }
    }
    buf.truncate(got);
    Ok(buf)
}
