//! `scanbridge store restore FILE --data-dir DIR` on SQLite: a backup (`store backup`'s checked
//! `VACUUM INTO` copy) put in place of the data directory's store, safely.
//!
//! The steps, each of which can refuse with nothing changed:
//! 1. the file must be an SQLite database (a JetStream backup is named as such);
//! 2. the data directory's lock is taken ([`super::lock::DataDirLock`]) and held to the end: a
//!    daemon serving the directory makes the restore refuse ([`RestoreError::InUse`]), and no daemon
//!    can start on it half way;
//! 3. a store already there that holds any row (in any table) is replaced only with `replace`
//!    (`--replace`); an empty one (a daemon started and stopped, nothing accepted) or none at all is
//!    fine. A file there that is not a scanbridge store counts as holding data;
//! 4. the backup is copied beside the store under a temporary name, brought to this build's schema
//!    (as opening it would) and checked with `store check`'s own code ([`super::sqlite_integrity`]:
//!    SQLite's integrity check and the outbox's invariants); a copy with any problem is removed;
//! 5. the copy is synced, the old store's `-wal` and `-shm` are removed (a stale WAL applied to
//!    another database would corrupt it), and the copy is renamed onto `scanbridge.db`, then the
//!    directory is synced.
//!
//! Step 3 opened the old store (and so checkpointed its WAL into it) before step 5 removes the WAL
//! files, so a crash between the two leaves the old store whole.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::lock::DataDirLock;
use super::restore::{Part, RestoreError, Restored, SQLITE_MAGIC, sniff};
use super::sqlite::DB_FILE;
use super::{StoreError, sqlite_integrity};

/// The Store's backup in `backup` restored into `data_dir` (module doc).
pub fn restore(backup: &Path, data_dir: &Path, replace: bool) -> Result<Restored, RestoreError> {
    let shown = backup.display().to_string();
    let head = sniff(backup, 64)?;
    if !head.starts_with(SQLITE_MAGIC) {
        let why = if String::from_utf8_lossy(&head).contains("scanbridge-jetstream-backup") {
            "is a JetStream backup (JSON lines): restore it with `[store] backend = \"jetstream\"` in --config"
        } else {
            "is not an SQLite database (a backup is what `scanbridge store backup` wrote)"
        };
        return Err(RestoreError::NotABackup {
            path: shown,
            why: why.into(),
        });
    }
    std::fs::create_dir_all(data_dir).map_err(|source| dir_error(data_dir, source))?;
    let _lock = DataDirLock::acquire(data_dir).map_err(RestoreError::from_store)?;
    let target = data_dir.join(DB_FILE);
    if let Some(holds) = held(&target)?
        && !replace
    {
        return Err(RestoreError::NotEmpty {
            target: target.display().to_string(),
            holds,
        });
    }
    let tmp = data_dir.join(format!(".{DB_FILE}.restore-{}", std::process::id()));
    remove_with_journal(&tmp);
    let parts = match checked_copy(backup, &tmp) {
        Ok(parts) => parts,
        Err(e) => {
            remove_with_journal(&tmp);
            return Err(e);
        }
    };
    for suffix in ["-wal", "-shm"] {
        let stale = sibling(&target, suffix);
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                remove_with_journal(&tmp);
                return Err(dir_error(&stale, source).into());
            }
        }
    }
    std::fs::rename(&tmp, &target).map_err(|source| dir_error(&target, source))?;
    // The rename is durable once the directory is.
    if let Ok(d) = std::fs::File::open(data_dir) {
        let _ = d.sync_all();
    }
    Ok(Restored {
        into: target.display().to_string(),
        parts,
        notes: vec![format!("checked like `store check`; from {shown}")],
    })
}

fn dir_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::DataDir {
        path: path.display().to_string(),
        source,
    }
}

/// `path` with `suffix` appended to its file name (`scanbridge.db-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_with_journal(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(sibling(path, suffix));
    }
}

/// What the store at `path` holds (None: no file, an empty file, or a store without rows).
fn held(path: &Path) -> Result<Option<String>, RestoreError> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(dir_error(path, source).into()),
    }
    let counted = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(StoreError::from)
        .and_then(|c| table_counts(&c));
    match counted {
        Ok(parts) => {
            let full: Vec<String> = parts
                .iter()
                .filter(|p| p.count > 0)
                .map(|p| format!("{} row(s) in {}", p.count, p.name))
                .collect();
            Ok((!full.is_empty()).then(|| full.join(", ")))
        }
        Err(e) => Ok(Some(format!("a file that is not a readable store: {e}"))),
    }
}

/// Every table of the database and its rows, by name.
fn table_counts(c: &Connection) -> Result<Vec<Part>, StoreError> {
    let tables: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    tables
        .into_iter()
        .map(|t| {
            let n: i64 = c.query_row(&format!("SELECT COUNT(*) FROM \"{t}\""), [], |r| r.get(0))?;
            Ok(Part {
                name: t,
                count: n as u64,
                deletes: 0,
            })
        })
        .collect()
}

/// Copies `backup` to `tmp`, brings it to this build's schema, checks it and syncs it; returns
/// what it holds.
fn checked_copy(backup: &Path, tmp: &Path) -> Result<Vec<Part>, RestoreError> {
    let shown = backup.display().to_string();
    std::fs::copy(backup, tmp).map_err(|source| RestoreError::Read {
        path: shown.clone(),
        source,
    })?;
    // The copy takes the backup's mode: a backup kept read-only still makes a store it can write.
    {
        use std::os::unix::fs::PermissionsExt;
        let mut mode = std::fs::metadata(tmp)
            .map_err(|source| dir_error(tmp, source))?
            .permissions();
        mode.set_mode(mode.mode() | 0o600);
        std::fs::set_permissions(tmp, mode).map_err(|source| dir_error(tmp, source))?;
    }
    let damaged = |e: StoreError| RestoreError::Damaged {
        path: shown.clone(),
        problems: e.to_string(),
    };
    let mut c = Connection::open(tmp).map_err(|e| damaged(e.into()))?;
    super::sqlite::adopt(&c, tmp).map_err(|e| match e {
        StoreError::NotAStore { why, .. } => RestoreError::NotABackup {
            path: shown.clone(),
            why: format!("{why}, not a scanbridge store"),
        },
        e => damaged(e),
    })?;
    let problems = sqlite_integrity::check(&mut c).map_err(damaged)?;
    if !problems.is_empty() {
        let text: Vec<String> = problems
            .iter()
            .map(|p| format!("{} ({})", p.what, p.count))
            .collect();
        return Err(RestoreError::Damaged {
            path: shown,
            problems: text.join("; "),
        });
    }
    let parts = table_counts(&c)?;
    // One self-contained file: no journal left beside the temporary name.
    c.pragma_update(None, "journal_mode", "DELETE")
        .map_err(StoreError::from)?;
    drop(c);
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|source| dir_error(tmp, source))?;
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    /// A store in `dir` with one silence (a row), closed.
    fn store_with_a_row(dir: &Path) {
        let s = SqliteStore::open(dir, false).unwrap();
        let c = Connection::open(dir.join(DB_FILE)).unwrap();
        c.execute(
            "INSERT INTO scan_history (key, record, updated_at) VALUES ('k', '{}', 1)",
            [],
        )
        .unwrap();
        drop(c);
        drop(s);
    }

    #[test]
    fn a_backup_goes_in_place_only_into_an_empty_store_or_with_replace() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("source");
        store_with_a_row(&source);
        let backup = tmp.path().join("copy.db");
        let c = Connection::open(source.join(DB_FILE)).unwrap();
        c.execute("VACUUM INTO ?1", [backup.to_string_lossy()])
            .unwrap();
        drop(c);
        // Kept read-only, as backups often are.
        let mut mode = std::fs::metadata(&backup).unwrap().permissions();
        mode.set_readonly(true);
        std::fs::set_permissions(&backup, mode).unwrap();

        // No store yet: restored, with its counts.
        let data = tmp.path().join("data");
        let r = restore(&backup, &data, false).unwrap();
        let history = r.parts.iter().find(|p| p.name == "scan_history").unwrap();
        assert_eq!(history.count, 1);
        let mode = std::fs::metadata(data.join(DB_FILE)).unwrap().permissions();
        assert_ne!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o200,
            0,
            "the store is writable"
        );
        assert!(!sibling(&data.join(DB_FILE), "-wal").exists());
        let leftovers: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("restore"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // Now it holds a row: refused, named; with replace, done.
        let err = restore(&backup, &data, false).unwrap_err();
        assert!(
            matches!(&err, RestoreError::NotEmpty { holds, .. } if holds.contains("1 row(s) in scan_history")),
            "{err}"
        );
        restore(&backup, &data, true).unwrap();
        // A daemon's lock: refused even with replace.
        let lock = DataDirLock::acquire(&data).unwrap();
        let err = restore(&backup, &data, true).unwrap_err();
        assert!(matches!(err, RestoreError::InUse { .. }), "{err}");
        drop(lock);

        // Not a backup, or a damaged one: refused, the store left as it was.
        let junk = tmp.path().join("junk.db");
        std::fs::write(&junk, "{\"format\":\"scanbridge-jetstream-backup\"}\n").unwrap();
        let err = restore(&junk, &data, true).unwrap_err();
        assert!(err.to_string().contains("is a JetStream backup"), "{err}");
        let mut bytes = std::fs::read(&backup).unwrap();
        let n = bytes.len();
        for b in &mut bytes[n / 2..] {
            *b = 0x55;
        }
        std::fs::write(&junk, bytes).unwrap();
        let err = restore(&junk, &data, true).unwrap_err();
        assert!(
            matches!(
                err,
                RestoreError::Damaged { .. } | RestoreError::NotABackup { .. }
            ),
            "{err}"
        );
        let s = SqliteStore::open_existing(&data).unwrap();
        drop(s);
        let c = Connection::open(data.join(DB_FILE)).unwrap();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM scan_history", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "the restored store is untouched");
    }
}
