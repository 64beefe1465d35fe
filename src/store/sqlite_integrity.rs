//! The SQLite store's integrity: `scanbridge store check` and `scanbridge store backup`
//! ([`super::Store::check`], `backup`).
//!
//! The check is SQLite's `PRAGMA integrity_check` (pages, b-trees, indexes against their tables)
//! and then the store's own invariants, each one query: every outbox row, dead letter and digest
//! member has its event; no attempt count is negative; a delivery is in one place only (outbox, dead
//! letters, a digest group); every digest member's group exists and a group with members has a flush
//! time (else they would wait forever); alert marks are whole; events are JSON. It runs in one read
//! transaction, so beside a running daemon it sees one consistent state.
//!
//! The backup is `VACUUM INTO` a temporary file beside the destination, renamed into place once
//! complete: a consistent, compact copy taken in one read transaction, which a running daemon does
//! not wait for (WAL readers never block the writer). The copy is then opened and quick-checked.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use super::{Backup, Problem, StoreError};

/// The invariants: (what is wrong, the query listing the ids at fault).
const INVARIANTS: &[(&str, &str)] = &[
    (
        "outbox deliveries whose event is missing",
        "SELECT id FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = o.event_id)",
    ),
    (
        "dead letters whose event is missing",
        "SELECT id FROM dead_letters d WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = d.event_id)",
    ),
    (
        "digest members whose event is missing",
        "SELECT delivery_id FROM group_members m WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = m.event_id)",
    ),
    (
        "delivery records (delivered, or sent in a digest) whose event is missing",
        "SELECT id FROM delivered r WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = r.event_id)",
    ),
    (
        "digest members whose group is missing",
        "SELECT delivery_id FROM group_members m WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.id = m.group_id)",
    ),
    (
        "digest groups with members but no flush time (they would never be sent)",
        "SELECT id FROM groups g WHERE flush_at IS NULL AND EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.id)",
    ),
    (
        "deliveries with a negative attempt count",
        "SELECT id FROM outbox WHERE attempts < 0 UNION ALL SELECT id FROM dead_letters WHERE attempts < 0",
    ),
    (
        "deliveries both in the outbox and in the dead letters",
        "SELECT o.id FROM outbox o JOIN dead_letters d ON d.id = o.id",
    ),
    (
        "deliveries both in the outbox and delivered",
        "SELECT o.id FROM outbox o JOIN delivered r ON r.event_id = o.event_id AND r.id = o.id",
    ),
    (
        "deliveries both in the outbox and in a digest group",
        "SELECT o.id FROM outbox o JOIN group_members m ON m.delivery_id = o.id",
    ),
    (
        "deliveries with a broken alert mark (unknown kind, or no key)",
        "SELECT id FROM outbox WHERE alert_kind IS NOT NULL AND (alert_kind NOT IN ('trigger', 'resolve') OR alert_key IS NULL)
         UNION ALL
         SELECT id FROM dead_letters WHERE alert_kind IS NOT NULL AND (alert_kind NOT IN ('trigger', 'resolve') OR alert_key IS NULL)",
    ),
    (
        "events whose body is not JSON",
        "SELECT id FROM events WHERE NOT json_valid(body)",
    ),
];

/// How many example ids a problem shows.
const EXAMPLES: usize = 5;

/// SQLite's integrity check, then the invariants, in one read transaction.
pub fn check(c: &mut Connection) -> Result<Vec<Problem>, StoreError> {
    let tx = c.transaction()?;
    let mut problems = Vec::new();
    let messages: Vec<String> = tx
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if messages != ["ok"] {
        problems.push(Problem {
            what: "SQLite's integrity check failed (restore from a backup, or recover the file with sqlite3's .recover)".into(),
            count: messages.len() as u64,
            examples: messages.into_iter().take(EXAMPLES).collect(),
        });
    }
    for (what, sql) in INVARIANTS {
        let ids: Vec<String> = tx
            .prepare(sql)?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !ids.is_empty() {
            problems.push(Problem {
                what: (*what).to_owned(),
                count: ids.len() as u64,
                examples: ids.into_iter().take(EXAMPLES).collect(),
            });
        }
    }
    tx.commit()?;
    Ok(problems)
}

/// Copies the store in `c` to `dest` (which must not exist) and checks the copy.
pub fn backup(c: &Connection, dest: &Path) -> Result<Backup, StoreError> {
    let tmp = super::backup_file::staging(dest)?;
    let made = c
        .execute("VACUUM INTO ?1", params![tmp.to_string_lossy()])
        .map_err(StoreError::from)
        .and_then(|_| summary(&tmp));
    super::backup_file::land(&tmp, dest, made)
}

/// Opens a copy read-only, quick-checks it and counts what it holds.
fn summary(path: &Path) -> Result<Backup, StoreError> {
    let copy = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let ok: String = copy.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if ok != "ok" {
        return Err(StoreError::NotAStore {
            path: path.display().to_string(),
            why: format!("failed its check after the copy ({ok})"),
        });
    }
    let count = |table: &str| -> Result<u64, StoreError> {
        Ok(
            copy.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })? as u64,
        )
    };
    Ok(Backup {
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        events: count("events")?,
        pending: count("outbox")?,
        dead_letters: count("dead_letters")?,
    })
}
