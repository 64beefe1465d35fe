//! The embedded store: one SQLite database (`scanbridge.db` in the data directory), WAL mode.
//!
//! Schema:
//! - `events(id PRIMARY KEY, body, received_at)`: every accepted event, as normalised JSON.
//! - `outbox(id PRIMARY KEY, event_id, rule, target, input, attempts, created_at, next_attempt_at,
//!   leased_until, last_error)`: one row per event × rule × target still to deliver; `id` is the
//!   deterministic delivery id. Index on `next_attempt_at` for leasing.
//! - `dead_letters(id PRIMARY KEY, event_id, rule, target, input, attempts, created_at, failed_at,
//!   reason)`: deliveries that gave up; redrive moves them back to the outbox.
//! - `events.previous`: the scan result the event replaced (JSON), stamped at accept.
//! - `scan_history(key PRIMARY KEY, record, updated_at)`: the last result per key (the alerting
//!   history's `digest:REPO@DIGEST`, `tag:REPO:TAG` and `finding:ARN`), written as handed in.
//! - `suppressed(id PRIMARY KEY, event_id, rule, target, reason, detail, at)`: deliveries not sent on
//!   purpose (silenced, duplicate, not news).
//! - `dedup(scope, key, delivery_id, at, PRIMARY KEY (scope, key))`: the delivery that claimed a dedup
//!   key for a rule and target, and when.
//! - `silences(id PRIMARY KEY, pattern, matchers, comment, created_by, created_at, expires_at)`.
//! - `groups(id PRIMARY KEY, rule, target, labels, first_at, flush_at, last_flush_at)` and
//!   `group_members(delivery_id PRIMARY KEY, group_id, event_id, added_at)`: pending digests.
//! - `outbox.alert_kind`, `alert_key`, `alert_time`, `alert_record` (and the same in
//!   `dead_letters`): the [`AlertMark`] of a trigger or resolve; the outbox `rowid` orders the marked
//!   deliveries of one alert (a new row's rowid exceeds every row present).
//! - `alert_state(rule, key, target, open, opened_at, resolved_at, trigger_event_id, record,
//!   trigger_time, resolve_time, episode, updated_at, PRIMARY KEY (rule, key, target))`: one alert
//!   per rule, key and target.
//! - `delivered(event_id, id, rule, target, attempts, at, digest_event_id, replay, PRIMARY KEY
//!   (event_id, id)) WITHOUT ROWID`: deliveries that left the outbox through `ack`, or (with
//!   `digest_event_id`) as members of a flushed digest. It lives as long as its event (retention
//!   deletes both together); the console reads what became of each delivery from here, the outbox,
//!   the dead letters, the suppressed list and the groups, all indexed by `event_id` (here by the key
//!   itself, so an ack writes one B-tree, not three). Events are listed newest first by rowid, which
//!   follows the order they were stored in: retention deletes the oldest, and SQLite gives a new row
//!   a rowid above every row present, so the listing needs no index of its own.
//!
//! - `events.matched` (1 when the event matched a rule or caused a delivery; older rows count as
//!   matched) and `events.routed` (JSON `{"rules": [...], "deliveries": [[id, rule, target], ...]}`,
//!   what ingest routed; NULL when nothing matched): the archive ([`super::sqlite_archive`]).
//!   `outbox.replay`, `dead_letters.replay` and `delivered.replay`: the replay a delivery belongs to
//!   (NULL: live).
//!   Indexes for retention ([`super::sqlite_retention`]): events by (matched, received_at), the
//!   outbox, dead letters, digest members and suppressed records by event, history and dedup by age.
//!
//! Migrations: tables are created if missing; columns added since the first release are added with
//! `ALTER TABLE` when absent, so a data directory from an older build opens unchanged.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`. In WAL mode NORMAL only syncs at checkpoints,
//! so a power loss can roll back the last commits — acceptable for a cache, not for a 202 that promises
//! the event is durable. FULL fsyncs the WAL on every commit; group commit ([`super::writer`]) puts
//! every write request waiting into one transaction, so the cost is one fsync per turn of the
//! writer, whatever the number of requests and events in it.
//!
//! Recovery: one data directory belongs to one daemon: [`SqliteStore::open`] with `recover = true`
//! (what `serve` does) first takes the directory's lock ([`super::lock`]; a second daemon is refused
//! with the holder's pid). So leases live in memory ([`super::leases`]), taken and dropped without a
//! write; a restart starts with none, and every pending delivery resumes at once. (`outbox.leased_until`
//! is kept for older databases and cleared at recovery; nothing reads it.) CLI tools (`dlq`,
//! `silence`, ...) open without recovery and without the lock, beside the daemon (WAL allows
//! concurrent readers; writes wait on a busy timeout); they never lease.
//!
//! Identity: a new store is created atomically (built under a temporary name, then linked into place)
//! and marked with `PRAGMA application_id`. An existing `scanbridge.db` that is empty (0 bytes), not
//! SQLite, or another application's database is refused ([`StoreError::NotAStore`]) instead of being
//! silently treated as an empty store; one from an older build (scanbridge's tables, no id) is adopted.
//!
//! Full or read-only disk: a failed write rolls the transaction back, so `accept` either commits
//! everything or returns the error (ingest answers 503, nothing acknowledged). `store.max_db_bytes`
//! caps the database through `max_page_count`, which fails writes with the same SQLITE_FULL a full disk
//! gives. Delivery goes on while ingest is refused (acks only delete rows).
//!
//! Concurrency: every write runs on the one write connection, owned by the writer thread
//! ([`super::writer`]: group commit; a write returns once its commit did). Reads run on a small pool
//! of read-only connections ([`super::readers`]) on tokio's blocking pool: in WAL mode they see the
//! last commit and neither wait for the writer nor hold it up. Lease reads are reads: the lease is
//! taken in memory ([`super::leases`]), and ended by the commit that records the attempt's outcome
//! (`ack`, `retry_later`, `dead_letter`, `postpone`, `suppress`, `group_add`). `accept_leasing` leases
//! the deliveries it stores as its commit completes, so the worker sends them without reading them
//! back. The writes that keep delivery going are the writer's `Delivery` requests: on a full disk the
//! reserve is released and they are committed again (ingest's are not). Checkpoints and pruning of
//! the oldest events run alone on the writer, between turns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::value::RawValue;

use super::leases::Leases;
use super::lock::DataDirLock;
use super::readers::Readers;
use super::reserve::Reserve;
use super::writer::{Kind, Writer};
use super::{
    AcceptedLeasing, AlertCheck, AlertKind, AlertMark, AlertState, ArchivedEvent, Backup,
    BoxFuture, Counts, DeadLetter, DueGroup, EventPage, EventQuery, EventRecord, GroupAdd,
    HistoryUpdate, Leased, Member, NewEvent, Problem, Pruned, ReplayDelivery, ResolveCheck,
    Retention, Silence, Space, Store, StoreError, Stored, Suppressed, sqlite_archive,
    sqlite_integrity, sqlite_retention,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    input TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    leased_until INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    input TEXT,
    attempts INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    failed_at INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scan_history (
    key TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS suppressed (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS suppressed_at ON suppressed (at);
CREATE INDEX IF NOT EXISTS suppressed_event ON suppressed (event_id);
CREATE TABLE IF NOT EXISTS delivered (
    event_id TEXT NOT NULL,
    id TEXT NOT NULL,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    at INTEGER NOT NULL,
    digest_event_id TEXT,
    PRIMARY KEY (event_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_event ON outbox (event_id);
CREATE INDEX IF NOT EXISTS dead_letters_event ON dead_letters (event_id);
CREATE TABLE IF NOT EXISTS dedup (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    pattern TEXT NOT NULL,
    matchers TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    labels TEXT NOT NULL,
    first_at INTEGER NOT NULL,
    flush_at INTEGER,
    last_flush_at INTEGER
);
CREATE TABLE IF NOT EXISTS group_members (
    delivery_id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS group_members_event ON group_members (event_id);
CREATE TABLE IF NOT EXISTS alert_state (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    target TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 0,
    opened_at INTEGER,
    resolved_at INTEGER,
    trigger_event_id TEXT,
    record TEXT,
    trigger_time INTEGER,
    resolve_time INTEGER,
    episode INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (rule, key, target)
);
CREATE INDEX IF NOT EXISTS alert_state_key ON alert_state (key);
";

/// The database file in the data directory.
pub const DB_FILE: &str = "scanbridge.db";

/// `PRAGMA application_id` of a scanbridge store ("SBRG"), so that another application's SQLite file
/// is never taken for one.
const APPLICATION_ID: i64 = 0x5342_5247;

fn not_a_store(path: &Path, why: String) -> StoreError {
    StoreError::NotAStore {
        path: path.display().to_string(),
        why,
    }
}

/// Creates an empty store at `path` atomically: built under a temporary name, then linked into place
/// (never replacing a file that appeared meanwhile), so a crash while creating leaves no half-made or
/// 0-byte `scanbridge.db` behind.
fn create(dir: &Path, path: &Path, max_bytes: u64) -> Result<(), StoreError> {
    let tmp = dir.join(format!(".{DB_FILE}.new-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let made = (|| -> Result<(), StoreError> {
        let conn = Connection::open(&tmp)?;
        cap(&conn, max_bytes)?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        Ok(())
    })();
    let linked = made.map(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked? {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()), // another process won
        Err(source) => Err(StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        }),
    }
}

/// Whether `err` is about the event being stored rather than the store (which fails the batch): a
/// value SQLite refuses (too big, a constraint, a type).
fn particular_to_the_event(err: &StoreError) -> bool {
    match err {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
            f.code,
            rusqlite::ErrorCode::TooBig
                | rusqlite::ErrorCode::ConstraintViolation
                | rusqlite::ErrorCode::TypeMismatch
        ),
        StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(_)) => true,
        _ => false,
    }
}

/// Caps the database and its WAL at about `max_bytes` (0: no cap): the WAL's part
/// ([`sqlite_retention::wal_budget`]) is kept by checkpoints and `journal_size_limit`, the pages get
/// the rest through `max_page_count`.
fn cap(conn: &Connection, max_bytes: u64) -> Result<(), StoreError> {
    if max_bytes > 0 {
        let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let wal = sqlite_retention::wal_budget(max_bytes);
        let pages = sqlite_retention::max_pages(max_bytes, page.max(1) as u64).min(i64::MAX as u64);
        conn.pragma_update(None, "max_page_count", pages as i64)?;
        conn.pragma_update(None, "journal_size_limit", wal as i64)?;
        let checkpoint = (wal / 2 / page.max(1) as u64).max(4) as i64;
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint)?;
    }
    Ok(())
}

/// Refuses a file that is not a scanbridge store; returns whether it still needs its application id
/// (a store made by an older build, or an SQLite file with no tables at all).
fn check_identity(conn: &Connection, path: &Path) -> Result<bool, StoreError> {
    let id: i64 = match conn.pragma_query_value(None, "application_id", |r| r.get(0)) {
        Ok(id) => id,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            return Err(not_a_store(path, "is not an SQLite database".into()));
        }
        Err(e) => return Err(e.into()),
    };
    if id == APPLICATION_ID {
        return Ok(false);
    }
    if id != 0 {
        return Err(not_a_store(
            path,
            format!("is the SQLite database of another application (application_id {id:#x})"),
        ));
    }
    let mut st =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let tables: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let ours = ["events", "outbox"]
        .iter()
        .all(|t| tables.iter().any(|x| x == t));
    if tables.is_empty() || ours {
        return Ok(true);
    }
    let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
    Err(not_a_store(
        path,
        format!(
            "is an SQLite database without scanbridge's tables (it holds {}{})",
            shown.join(", "),
            if tables.len() > 5 { ", ..." } else { "" }
        ),
    ))
}

/// Brings a copy of a store (a backup being restored, `sqlite_restore.rs`) to this build's schema,
/// as opening it would: refuses a file that is not a scanbridge store (an SQLite file without
/// tables included: that is no backup), then creates what is missing and marks it as ours.
pub(super) fn adopt(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let fresh = check_identity(conn, path)?;
    let has_events: bool = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'")?
        .exists([])?;
    if !has_events {
        return Err(not_a_store(
            path,
            "is an SQLite database without tables".into(),
        ));
    }
    conn.execute_batch(SCHEMA)?;
    migrate(conn)?;
    if fresh {
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    Ok(())
}

/// The columns of an [`AlertMark`], added to `outbox` and `dead_letters` after the first release.
const ALERT_COLUMNS: [(&str, &str); 4] = [
    ("alert_kind", "TEXT"),
    ("alert_key", "TEXT"),
    ("alert_time", "INTEGER"),
    ("alert_record", "TEXT"),
];

/// Adds columns introduced after the first schema when an older database lacks them.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let has_previous: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'previous'")?
        .exists([])?;
    if !has_previous {
        conn.execute("ALTER TABLE events ADD COLUMN previous TEXT", [])?;
    }
    for table in ["outbox", "dead_letters"] {
        for (column, ty) in ALERT_COLUMNS {
            let has: bool = conn
                .prepare(&format!(
                    "SELECT 1 FROM pragma_table_info('{table}') WHERE name = '{column}'"
                ))?
                .exists([])?;
            if !has {
                conn.execute(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"), [])?;
            }
        }
    }
    conn.execute(
        "CREATE INDEX IF NOT EXISTS outbox_alert ON outbox (alert_key) WHERE alert_key IS NOT NULL",
        [],
    )?;
    for (table, column, ty) in ARCHIVE_COLUMNS {
        let has: bool = conn
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = '{column}'"
            ))?
            .exists([])?;
        if !has {
            conn.execute(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"), [])?;
        }
    }
    conn.execute_batch(ARCHIVE_INDEXES)?;
    Ok(())
}

/// The columns of the archive and of replays (issue 13). Events stored by an older build count as
/// matched (kept the longer window) and have no routing record.
const ARCHIVE_COLUMNS: [(&str, &str, &str); 5] = [
    ("events", "matched", "INTEGER NOT NULL DEFAULT 1"),
    ("events", "routed", "TEXT"),
    ("outbox", "replay", "TEXT"),
    ("dead_letters", "replay", "TEXT"),
    ("delivered", "replay", "TEXT"),
];

/// The indexes retention and the archive read by: events by class and age; the rows that keep an
/// event (pending deliveries, dead letters, digest members) and its suppressed records by event; the
/// alerting state by age.
const ARCHIVE_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS events_archive ON events (matched, received_at);
CREATE INDEX IF NOT EXISTS outbox_event ON outbox (event_id);
CREATE INDEX IF NOT EXISTS dead_letters_event ON dead_letters (event_id);
CREATE INDEX IF NOT EXISTS group_members_event ON group_members (event_id);
CREATE INDEX IF NOT EXISTS suppressed_event ON suppressed (event_id);
CREATE INDEX IF NOT EXISTS scan_history_age ON scan_history (updated_at);
CREATE INDEX IF NOT EXISTS dedup_age ON dedup (at);
";

/// An [`AlertMark`] from its four columns (absent when the kind is NULL or unknown).
fn mark(
    kind: Option<String>,
    key: Option<String>,
    time_ms: Option<i64>,
    record: Option<String>,
) -> Option<AlertMark> {
    Some(AlertMark {
        kind: AlertKind::parse(kind.as_deref()?)?,
        key: key?,
        time_ms,
        record,
    })
}

/// Adds the resolve deliveries of `check` for event `event_id` (see the Store contract).
fn add_resolves(
    tx: &Connection,
    event_id: &str,
    check: &ResolveCheck,
    now: i64,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut found: Vec<(String, String, String)> = Vec::new();
    {
        let mut open = tx.prepare_cached(
            "SELECT rule, key, target FROM alert_state WHERE key = ?1 AND open = 1
             UNION SELECT rule, alert_key, target FROM outbox
                   WHERE alert_key = ?1 AND alert_kind = 'trigger'",
        )?;
        for key in &check.keys {
            let rows = open.query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            for row in rows {
                let row: (String, String, String) = row?;
                let resolves = check.clear.contains(&row.0) || !check.live.contains(&row.0);
                if resolves && !found.contains(&row) {
                    found.push(row);
                }
            }
        }
    }
    let mut put = tx.prepare_cached(
        "INSERT OR IGNORE INTO outbox (id, event_id, rule, target, input, created_at, next_attempt_at,
                                       alert_kind, alert_key, alert_time, alert_record)
         SELECT ?1, ?2, ?3, ?4, NULL, ?5, ?5, 'resolve', ?6, ?7, ?8
         WHERE NOT EXISTS (SELECT 1 FROM dead_letters WHERE id = ?1)",
    )?;
    let mut added = Vec::new();
    for (rule, key, target) in found {
        let id = super::delivery_id(event_id, &rule, &format!("{target}#resolve"));
        let n = put.execute(params![
            id,
            event_id,
            rule,
            target,
            now,
            key,
            check.time_ms,
            check.record
        ])?;
        if n > 0 {
            added.push((id, rule, target));
        }
    }
    Ok(added)
}

fn alert_state_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertState> {
    Ok(AlertState {
        rule: r.get(0)?,
        key: r.get(1)?,
        target: r.get(2)?,
        open: r.get::<_, i64>(3)? != 0,
        opened_at_ms: r.get(4)?,
        resolved_at_ms: r.get(5)?,
        trigger_event_id: r.get(6)?,
        record: r.get(7)?,
        trigger_time_ms: r.get(8)?,
        resolve_time_ms: r.get(9)?,
        episode: r.get(10)?,
    })
}

const ALERT_STATE_COLUMNS: &str = "rule, key, target, open, opened_at, resolved_at, trigger_event_id, \
     record, trigger_time, resolve_time, episode";

/// Records `h` in the scan history; returns the result it replaced (JSON `{"via", "record"}`), if any.
/// Records are the caller's JSON, copied as they are; one that is not JSON (a damaged row) is passed
/// over.
fn record_history(
    tx: &Connection,
    h: &HistoryUpdate,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let mut previous: Option<(&str, String)> = None;
    {
        let mut get =
            tx.prepare_cached("SELECT record, updated_at FROM scan_history WHERE key = ?1")?;
        let mut read = |key: &str| -> Result<Option<(String, i64)>, StoreError> {
            let row: Option<(String, i64)> = get
                .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(row.filter(|(text, _)| serde_json::from_str::<&RawValue>(text).is_ok()))
        };
        for key in &h.exact {
            if let Some((text, _)) = read(key)? {
                previous = Some((key, text));
                break;
            }
        }
        if previous.is_none() {
            let mut latest: Option<i64> = None;
            for key in &h.related {
                if let Some((text, at)) = read(key)?
                    && latest.is_none_or(|best| at > best)
                {
                    latest = Some(at);
                    previous = Some((key, text));
                }
            }
        }
    }
    let mut put = tx.prepare_cached(
        "INSERT INTO scan_history (key, record, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at",
    )?;
    for key in h.exact.iter().chain(&h.related) {
        put.execute(params![key, h.record, now])?;
    }
    #[derive(serde::Serialize)]
    struct Previous<'a> {
        via: &'a str,
        record: &'a RawValue,
    }
    Ok(previous.and_then(|(via, text)| {
        let record = serde_json::from_str::<&RawValue>(&text).ok()?;
        serde_json::to_string(&Previous { via, record }).ok()
    }))
}

fn silence_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Silence> {
    Ok(Silence {
        id: r.get(0)?,
        pattern: r.get(1)?,
        matchers: r.get(2)?,
        comment: r.get(3)?,
        created_by: r.get(4)?,
        created_at_ms: r.get(5)?,
        expires_at_ms: r.get(6)?,
    })
}

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    /// The database file (its WAL is beside it).
    path: PathBuf,
    /// `store.max_db_bytes` (0: none).
    max_bytes: u64,
    /// The daemon's disk reserve ([`super::reserve`]); none for the CLI tools.
    reserve: Option<Arc<Reserve>>,
    /// Archived events `accept` pruned to make room since the last `space` ([`Space::pruned`]).
    pruned_in_accept: Arc<std::sync::atomic::AtomicU64>,
}

struct Inner {
    /// The one write connection, on its own thread: group commit.
    writer: Writer,
    /// Read connections: reads never wait for the writer.
    readers: Readers,
    /// Which deliveries are being attempted (in memory: the directory is locked to this process).
    leases: Arc<Leases>,
    /// Lease reads of the outbox (`scanbridge_lease_reads_total`).
    lease_reads: AtomicU64,
    /// Held by the daemon's store (opened with recovery) for as long as any clone lives; dropped
    /// after the writer (field order), so the lock outlives the last write.
    _lock: Option<Arc<DataDirLock>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("leases", &self.inner.leases.len())
            .finish_non_exhaustive()
    }
}

/// How the daemon's store is opened, beyond the directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `store.max_db_bytes`: the database and its WAL together stay under it (0: no limit).
    pub max_bytes: u64,
    /// `store.reserve_bytes`: disk kept in reserve for deliveries on a full disk (0: none). Only a
    /// store opened with recovery (the daemon's) keeps one.
    pub reserve_bytes: u64,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`; `recover` clears stale leases.
    pub fn open(data_dir: &Path, recover: bool) -> Result<Self, StoreError> {
        Self::open_with_limit(data_dir, recover, 0)
    }

    /// Opens the store that exists in `data_dir`, without recovery, for the CLI tools: a directory
    /// without one is [`StoreError::Missing`], and nothing is created.
    pub fn open_existing(data_dir: &Path) -> Result<Self, StoreError> {
        if !data_dir.join(DB_FILE).is_file() {
            return Err(StoreError::Missing {
                path: data_dir.display().to_string(),
                file: DB_FILE.into(),
            });
        }
        Self::open(data_dir, false)
    }

    /// Like [`SqliteStore::open`], with the database and its WAL capped at about `max_bytes` (0: no
    /// cap) from the first write on. Writes that would grow the database further fail with SQLite's
    /// "database or disk is full", exactly as on a full disk: at start-up the daemon refuses to
    /// start, while running ingest answers 503.
    pub fn open_with_limit(
        data_dir: &Path,
        recover: bool,
        max_bytes: u64,
    ) -> Result<Self, StoreError> {
        let options = Options {
            max_bytes,
            reserve_bytes: 0,
        };
        Self::open_with(data_dir, recover, options)
    }

    /// Opens (creating if needed) the store in `data_dir` with `options`; `recover` (the daemon)
    /// takes the directory's lock, keeps the disk reserve and clears stale leases.
    pub fn open_with(data_dir: &Path, recover: bool, options: Options) -> Result<Self, StoreError> {
        let max_bytes = options.max_bytes;
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        // Before anything else is written: on a full disk the reserve makes room for the lock file,
        // SQLite's shared memory and its log.
        let reserve = recover.then(|| Arc::new(Reserve::open(data_dir, options.reserve_bytes)));
        // Recovery clears every lease: only the one daemon that owns the directory may do it.
        let lock = if recover {
            Some(Arc::new(DataDirLock::acquire(data_dir)?))
        } else {
            None
        };
        let path = data_dir.join(DB_FILE);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == 0 => {
                return Err(not_a_store(&path, "is empty (0 bytes)".into()));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create(data_dir, &path, max_bytes)?
            }
            Err(_) => {} // let SQLite say what is wrong with it
        }
        let conn = Connection::open(&path)?;
        conn.busy_timeout(sqlite_retention::BUSY_TIMEOUT)?;
        // The writer's statements (accept, the outcomes, the savepoints, alerting state) all stay
        // prepared: rusqlite's default cache of 16 would evict and parse them again under load.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let fresh = check_identity(&conn, &path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        cap(&conn, max_bytes)?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        if fresh {
            conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        }
        if recover {
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            if options.reserve_bytes > 0 {
                // Checkpoint often enough that the WAL fits in the reserve on a full disk.
                let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
                let pages = (options.reserve_bytes / 4 / page.max(1) as u64).clamp(16, 1000);
                if max_bytes == 0 {
                    conn.pragma_update(None, "wal_autocheckpoint", pages as i64)?;
                }
            }
            match conn.execute(
                "UPDATE outbox SET leased_until = 0 WHERE leased_until <> 0",
                [],
            ) {
                Ok(_) => {}
                Err(e) => {
                    let e = StoreError::from(e);
                    if !e.is_full() {
                        return Err(e);
                    }
                    // On a full disk the daemon still starts: leases of the crashed run expire.
                    tracing::warn!("disk full: stale leases are left to expire");
                }
            }
        }
        let on_full = reserve
            .clone()
            .map(|r| -> super::writer::OnFull { Box::new(move || r.on_full()) });
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: Writer::start_with(conn, on_full),
                readers: Readers::new(path.clone()),
                leases: Arc::default(),
                lease_reads: AtomicU64::new(0),
                _lock: lock,
            }),
            path,
            max_bytes,
            reserve,
            pruned_in_accept: Arc::default(),
        })
    }

    /// Runs `f` on a read connection, on the blocking pool.
    fn read<T, F>(&self, f: F) -> BoxFuture<'_, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.readers.with(f))
                .await
                .map_err(|e| StoreError::Join(e.to_string()))?
        })
    }

    /// Wraps a write so that a failure for want of space marks the disk full (the reserve).
    fn guarded<T, F>(
        &self,
        mut f: F,
    ) -> impl FnMut(&Connection) -> Result<T, StoreError> + Send + 'static
    where
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let reserve = self.reserve.clone();
        move |c: &Connection| {
            let result = f(c);
            if let (Err(e), Some(r)) = (&result, &reserve)
                && e.is_full()
            {
                r.on_full();
            }
            result
        }
    }

    /// Runs `f` in the writer's next commit ([`Writer`]); answers once it is durable.
    fn write<T, F>(&self, f: F) -> BoxFuture<'_, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Box::pin(self.inner.writer.submit(self.guarded(f), |t| t))
    }

    /// Runs `f` alone on the writer, between turns and outside any transaction.
    fn write_alone<T, F>(&self, f: F) -> BoxFuture<'_, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Box::pin(
            self.inner
                .writer
                .submit_as(Kind::Alone, self.guarded(f), |t| t),
        )
    }

    /// Like `write`, for the writes that keep delivery going (ack, retry, dead letter,
    /// suppression...): when the disk is full, the reserve is released and the write tried once
    /// more (in a savepoint of its own; a COMMIT that fails is retried by the writer).
    fn write_delivery<T, F>(&self, f: F) -> BoxFuture<'_, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Box::pin(
            self.inner
                .writer
                .submit_as(Kind::Delivery, self.delivery_work(f), |t| t),
        )
    }

    /// Like [`SqliteStore::write_delivery`], for a write that records the outcome of leased
    /// delivery `id`: its lease ends once the outcome is committed.
    fn write_outcome<T, F>(&self, id: &str, f: F) -> BoxFuture<'_, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (leases, id) = (self.inner.leases.clone(), id.to_owned());
        Box::pin(
            self.inner
                .writer
                .submit_as(Kind::Delivery, self.delivery_work(f), move |t| {
                    leases.release(&id);
                    t
                }),
        )
    }

    fn delivery_work<T, F>(
        &self,
        mut f: F,
    ) -> impl FnMut(&Connection) -> Result<T, StoreError> + Send + 'static
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let reserve = self.reserve.clone();
        move |c: &Connection| {
            cached(c, "SAVEPOINT delivery")?;
            let first = f(c);
            let result = match first {
                Err(e) if e.is_full() && !c.is_autocommit() => {
                    cached(c, "ROLLBACK TO delivery")?;
                    match &reserve {
                        Some(r) if r.on_full() => f(c),
                        _ => Err(e),
                    }
                }
                other => other,
            };
            if !c.is_autocommit() {
                cached(c, "RELEASE delivery")?;
            }
            result
        }
    }
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// Runs one statement without parameters (a savepoint's) from the connection's statement cache: the
/// per-event and per-delivery savepoints are not parsed again on every write.
fn cached(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn dead_letter_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: r.get(0)?,
        event_id: r.get(1)?,
        rule: r.get(2)?,
        target: r.get(3)?,
        attempts: r.get(4)?,
        created_at_ms: r.get(5)?,
        failed_at_ms: r.get(6)?,
        reason: r.get(7)?,
        event: None,
    })
}

/// A lease read (see [`Leases`]): the due deliveries, oldest first, on a read connection, leased in
/// memory without a write. Targets whose `room` is 0 are skipped in the query; of the others at most
/// `room` each (targets not listed: no bound), `limit` in all.
fn lease_read(
    inner: &Inner,
    limit: usize,
    lease: Duration,
    now: i64,
    room: &BTreeMap<String, usize>,
) -> Result<Vec<Leased>, StoreError> {
    inner.lease_reads.fetch_add(1, Ordering::Relaxed);
    let until = now.saturating_add(lease.as_millis() as i64);
    let full: Vec<&str> = room
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(t, _)| t.as_str())
        .collect();
    let full = serde_json::to_string(&full).unwrap_or_else(|_| "[]".into());
    // Rows held by a lease are read too (they are skipped below): read past them.
    let want = limit.saturating_add(inner.leases.len());
    let ticket = inner.leases.begin();
    let rows = inner.readers.with(|c| {
        let mut st = c.prepare_cached(
            "SELECT o.id, o.event_id, o.rule, o.target, o.input, o.attempts, o.created_at, e.body,
                    e.previous, o.alert_kind, o.alert_key, o.alert_time, o.alert_record, o.replay
             FROM outbox o LEFT JOIN events e ON e.id = o.event_id
             WHERE o.next_attempt_at <= ?1 AND o.target NOT IN (SELECT value FROM json_each(?2))
             ORDER BY o.next_attempt_at LIMIT ?3",
        )?;
        let rows = st.query_map(params![now, full, want as i64], |r| {
            Ok(Leased {
                id: r.get(0)?,
                event_id: r.get(1)?,
                rule: r.get(2)?,
                target: r.get(3)?,
                input: r.get(4)?,
                attempts: r.get(5)?,
                created_at_ms: r.get(6)?,
                body: r
                    .get::<_, Option<String>>(7)?
                    .unwrap_or_else(|| "{}".into()),
                previous: r.get(8)?,
                alert: mark(r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?),
                replay: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    });
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            inner.leases.claim(ticket, [], 0, until, now);
            return Err(e);
        }
    };
    // At most `room` per target, counting only rows nobody holds.
    let mut taken: BTreeMap<&str, usize> = BTreeMap::new();
    let candidates = rows.iter().filter(|d| {
        if inner.leases.held(&d.id, now) {
            return false;
        }
        let n = taken.entry(d.target.as_str()).or_default();
        if room.get(&d.target).is_some_and(|max| *n >= *max) {
            return false;
        }
        *n += 1;
        true
    });
    let ids: Vec<&str> = candidates.map(|d| d.id.as_str()).collect();
    let got: std::collections::HashSet<String> = inner
        .leases
        .claim(ticket, ids, limit, until, now)
        .into_iter()
        .collect();
    Ok(rows.into_iter().filter(|d| got.contains(&d.id)).collect())
}

/// Stores `events` (the body of [`Store::accept`]) on the writer's connection, inside its
/// transaction; also returns, unleased, up to `max_fresh` of the deliveries it added (in order),
/// for [`Store::accept_leasing`], and how many archived events it pruned to make room.
fn accept_in(
    tx: &Connection,
    events: &[NewEvent],
    now: i64,
    max_bytes: u64,
    max_fresh: usize,
) -> Result<(Vec<Stored>, Vec<Leased>, u64), StoreError> {
    // Near store.max_db_bytes the oldest archived events make room first.
    let pruned = sqlite_retention::room_for_accept(tx, max_bytes)?;
    let mut outcomes = Vec::with_capacity(events.len());
    let mut fresh: Vec<Leased> = Vec::new();
    {
        let mut ev = tx.prepare_cached(
            "INSERT OR IGNORE INTO events (id, body, received_at, matched, routed)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut ob = tx.prepare_cached(
            "INSERT OR IGNORE INTO outbox (id, event_id, rule, target, input, created_at, next_attempt_at,
                                           alert_kind, alert_key, alert_time, alert_record)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10
             WHERE NOT EXISTS (SELECT 1 FROM dead_letters WHERE id = ?1)",
        )?;
        for e in events {
            // Each event in its own savepoint: one that fails on its own is rolled back
            // alone; a failure of the store itself still fails the whole transaction.
            cached(tx, "SAVEPOINT one_event")?;
            // Deliveries of the events stored so far (a refused event's are dropped with it).
            let kept = fresh.len();
            let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                || -> Result<Stored, StoreError> {
                    let matched = !e.matched.is_empty() || !e.deliveries.is_empty();
                    let routes = e.deliveries.iter().map(|d| (&d.id, &d.rule, &d.target));
                    let routed =
                        matched.then(|| super::sqlite_archive::routed(&e.matched, routes.clone()));
                    if ev.execute(params![e.id, e.body, now, matched, routed])? == 0 {
                        return Ok(Stored::Duplicate); // already routed when first accepted
                    }
                    let mut previous = None;
                    if let Some(h) = &e.history {
                        previous = record_history(tx, h, now)?;
                        if let Some(p) = &previous {
                            tx.execute(
                                "UPDATE events SET previous = ?2 WHERE id = ?1",
                                params![e.id, p],
                            )?;
                        }
                    }
                    for d in &e.deliveries {
                        let a = d.alert.as_ref();
                        let added = ob.execute(params![
                            d.id,
                            e.id,
                            d.rule,
                            d.target,
                            d.input,
                            now,
                            a.map(|m| m.kind.as_str()),
                            a.map(|m| &m.key),
                            a.and_then(|m| m.time_ms),
                            a.and_then(|m| m.record.as_deref()),
                        ])?;
                        if added == 1 && fresh.len() < max_fresh {
                            fresh.push(Leased {
                                id: d.id.clone(),
                                event_id: e.id.clone(),
                                rule: d.rule.clone(),
                                target: d.target.clone(),
                                input: d.input.clone(),
                                body: e.body.clone(),
                                attempts: 0,
                                created_at_ms: now,
                                previous: previous.clone(),
                                alert: d.alert.clone(),
                                replay: None,
                            });
                        }
                    }
                    if let Some(check) = &e.resolve {
                        let added = add_resolves(tx, &e.id, check, now)?;
                        if !added.is_empty() {
                            // Resolves make the event part of the archive's matched class.
                            let all = routes.chain(added.iter().map(|(i, r, t)| (i, r, t)));
                            tx.execute(
                                "UPDATE events SET matched = 1, routed = ?2 WHERE id = ?1",
                                params![e.id, super::sqlite_archive::routed(&e.matched, all)],
                            )?;
                        }
                    }
                    Ok(Stored::New)
                },
            ));
            let refused = match stored {
                Ok(Ok(s)) => {
                    outcomes.push(s);
                    None
                }
                Ok(Err(err)) if particular_to_the_event(&err) => Some(err.to_string()),
                Ok(Err(err)) => return Err(err),
                Err(panic) => Some(format!(
                    "internal error while storing it: {}",
                    crate::compute::panic_message(&*panic)
                )),
            };
            match refused {
                None => cached(tx, "RELEASE one_event")?,
                Some(why) => {
                    tracing::error!(event = %e.id, error = %why, "storing one event failed; it alone is refused");
                    cached(tx, "ROLLBACK TO one_event")?;
                    cached(tx, "RELEASE one_event")?;
                    fresh.truncate(kept);
                    outcomes.push(Stored::Refused(why));
                }
            }
        }
    }
    Ok((outcomes, fresh, pruned))
}

impl Store for SqliteStore {
    fn accept(
        &self,
        events: Vec<NewEvent>,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<Stored>, StoreError>> {
        let (max_bytes, pruned_in_accept) = (self.max_bytes, self.pruned_in_accept.clone());
        Box::pin(self.inner.writer.submit(
            self.guarded(move |c: &Connection| accept_in(c, &events, now, max_bytes, 0)),
            move |(stored, _, pruned)| {
                pruned_in_accept.fetch_add(pruned, Ordering::Relaxed);
                stored
            },
        ))
    }

    fn accept_leasing(
        &self,
        events: Vec<NewEvent>,
        now: i64,
        lease: Duration,
        max: usize,
    ) -> BoxFuture<'_, Result<AcceptedLeasing, StoreError>> {
        let (max_bytes, pruned_in_accept) = (self.max_bytes, self.pruned_in_accept.clone());
        let leases = self.inner.leases.clone();
        let until = now.saturating_add(lease.as_millis() as i64);
        Box::pin(self.inner.writer.submit(
            self.guarded(move |c: &Connection| accept_in(c, &events, now, max_bytes, max)),
            // After the commit, before any later turn: nobody could have leased these yet
            // unless a lease read ran since the commit (then `claim_new` skips them).
            move |(stored, fresh, pruned)| {
                pruned_in_accept.fetch_add(pruned, Ordering::Relaxed);
                let fresh = fresh
                    .into_iter()
                    .filter(|d| leases.claim_new(&d.id, until, now))
                    .collect();
                (stored, fresh)
            },
        ))
    }

    fn lease(
        &self,
        limit: usize,
        lease: Duration,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<Leased>, StoreError>> {
        self.lease_within(limit, lease, now, BTreeMap::new())
    }

    fn lease_within(
        &self,
        limit: usize,
        lease: Duration,
        now: i64,
        room: BTreeMap<String, usize>,
    ) -> BoxFuture<'_, Result<Vec<Leased>, StoreError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || lease_read(&inner, limit, lease, now, &room))
                .await
                .map_err(|e| StoreError::Join(e.to_string()))?
        })
    }

    fn unlease(&self, id: &str) {
        self.inner.leases.release(id);
    }

    fn io_stats(&self) -> super::IoStats {
        let w = self.inner.writer.stats();
        super::IoStats {
            commits: w.commits.load(Ordering::Relaxed),
            writes: w.requests.load(Ordering::Relaxed),
            queued: w.queued.load(Ordering::Relaxed) as u64,
            lease_reads: self.inner.lease_reads.load(Ordering::Relaxed),
            leased: self.inner.leases.len() as u64,
        }
    }

    fn ack(&self, id: String, now: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write_outcome(&id.clone(), move |c: &Connection| {
            let tx = c;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO delivered (event_id, id, rule, target, attempts, at, replay)
                 SELECT event_id, id, rule, target, attempts + 1, ?2, replay FROM outbox WHERE id = ?1",
            )?
            .execute(params![id, now])?;
            type Row = (String, String, String, Option<String>, Option<String>, Option<i64>, Option<String>);
            let row: Option<Row> = tx
                .prepare_cached(
                    "DELETE FROM outbox WHERE id = ?1
                     RETURNING rule, target, event_id, alert_kind, alert_key, alert_time, alert_record",
                )?
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
                .optional()?;
            if let Some((rule, target, event_id, kind, key, time, record)) = row
                && let Some(m) = mark(kind, key, time, record)
            {
                match m.kind {
                    AlertKind::Trigger => tx.prepare_cached(
                        "INSERT INTO alert_state (rule, key, target, open, opened_at, trigger_event_id, record,
                                                  trigger_time, updated_at)
                         VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?4)
                         ON CONFLICT (rule, key, target) DO UPDATE SET
                           opened_at = CASE WHEN open = 1 THEN opened_at ELSE excluded.opened_at END,
                           open = 1, trigger_event_id = excluded.trigger_event_id,
                           record = excluded.record,
                           trigger_time = MAX(COALESCE(trigger_time, excluded.trigger_time),
                                              COALESCE(excluded.trigger_time, trigger_time)),
                           updated_at = excluded.updated_at",
                    )?
                    .execute(params![rule, m.key, target, now, event_id, m.record, m.time_ms])?,
                    AlertKind::Resolve => tx.prepare_cached(
                        "UPDATE alert_state SET open = 0, resolved_at = ?4, resolve_time = ?5,
                                episode = episode + 1, updated_at = ?4
                         WHERE rule = ?1 AND key = ?2 AND target = ?3",
                    )?
                    .execute(params![rule, m.key, target, now, m.time_ms])?,
                };
            }
            Ok(())
        })
    }

    fn retry_later(
        &self,
        id: String,
        delay: Duration,
        error: String,
        now: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write_outcome(&id.clone(), move |c: &Connection| {
            let at = now + delay.as_millis() as i64;
            c.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, leased_until = 0,
                 last_error = ?3 WHERE id = ?1",
            )?
            .execute(params![id, at, error])?;
            Ok(())
        })
    }

    fn dead_letter(
        &self,
        id: String,
        attempts: u32,
        reason: String,
        now: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write_outcome(&id.clone(), move |c: &Connection| {
            let tx = c;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO dead_letters
                   (id, event_id, rule, target, input, attempts, created_at, failed_at, reason,
                    alert_kind, alert_key, alert_time, alert_record, replay)
                 SELECT id, event_id, rule, target, input, ?2, created_at, ?3, ?4,
                        alert_kind, alert_key, alert_time, alert_record, replay FROM outbox WHERE id = ?1",
            )?
            .execute(params![id, attempts, now, reason])?;
            tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?.execute(params![id])?;
            Ok(())
        })
    }

    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.read(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))? as u64)
        })
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, StoreError>> {
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT id, event_id, rule, target, attempts, created_at, failed_at, reason
                 FROM dead_letters ORDER BY failed_at, id LIMIT ?1",
            )?;
            let rows = st.query_map(params![limit as i64], dead_letter_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn dead_letter_get(&self, id: String) -> BoxFuture<'_, Result<DeadLetter, StoreError>> {
        self.read(move |c| {
            let dl = c
                .query_row(
                    "SELECT id, event_id, rule, target, attempts, created_at, failed_at, reason
                     FROM dead_letters WHERE id = ?1",
                    params![id],
                    dead_letter_row,
                )
                .optional()?;
            let mut dl = dl.ok_or_else(|| StoreError::NotFound {
                what: "dead letter",
                id: id.clone(),
            })?;
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM events WHERE id = ?1",
                    params![dl.event_id],
                    |r| r.get(0),
                )
                .optional()?;
            dl.event = body.and_then(|b| serde_json::from_str(&b).ok());
            Ok(dl)
        })
    }

    fn redrive(&self, id: Option<String>, now: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.write(move |c: &Connection| {
            let tx = c;
            // `created_at` restarts too: max_age counts from the redrive, or a redriven delivery
            // older than max_age would be dead-lettered again at its first failure.
            let moved = tx.execute(
                "INSERT OR IGNORE INTO outbox (id, event_id, rule, target, input, attempts, created_at, next_attempt_at,
                                               alert_kind, alert_key, alert_time, alert_record, replay)
                 SELECT id, event_id, rule, target, input, 0, ?1, ?1,
                        alert_kind, alert_key, alert_time, alert_record, replay FROM dead_letters
                 WHERE ?2 IS NULL OR id = ?2",
                params![now, id],
            )?;
            tx.execute("DELETE FROM dead_letters WHERE ?1 IS NULL OR id = ?1", params![id])?;
            if moved == 0
                && let Some(id) = id.clone()
            {
                return Err(StoreError::NotFound {
                    what: "dead letter",
                    id,
                });
            }
            Ok(moved as u64)
        })
    }

    fn purge(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.write(|c: &Connection| Ok(c.execute("DELETE FROM dead_letters", [])? as u64))
    }

    fn postpone(
        &self,
        id: String,
        delay: Duration,
        now: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write_outcome(&id.clone(), move |c: &Connection| {
            let at = now + delay.as_millis() as i64;
            c.execute(
                "UPDATE outbox SET next_attempt_at = ?2, leased_until = 0 WHERE id = ?1",
                params![id, at],
            )?;
            Ok(())
        })
    }

    fn suppress(&self, s: Suppressed) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write_outcome(&s.id.clone(), move |c: &Connection| {
            let tx = c;
            tx.execute(
                "INSERT OR REPLACE INTO suppressed (id, event_id, rule, target, reason, detail, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.id, s.event_id, s.rule, s.target, s.reason, s.detail, s.at_ms
                ],
            )?;
            tx.execute("DELETE FROM outbox WHERE id = ?1", params![s.id])?;
            Ok(())
        })
    }

    fn suppressed(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Suppressed>, StoreError>> {
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT id, event_id, rule, target, reason, detail, at FROM suppressed
                 ORDER BY at DESC, id LIMIT ?1",
            )?;
            let rows = st.query_map(params![limit as i64], |r| {
                Ok(Suppressed {
                    id: r.get(0)?,
                    event_id: r.get(1)?,
                    rule: r.get(2)?,
                    target: r.get(3)?,
                    reason: r.get(4)?,
                    detail: r.get(5)?,
                    at_ms: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn dedup_claim(
        &self,
        scope: String,
        key: String,
        delivery_id: String,
        window_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        self.write_delivery(move |c: &Connection| {
            let tx = c;
            let held: Option<(String, i64)> = tx
                .query_row(
                    "SELECT delivery_id, at FROM dedup WHERE scope = ?1 AND key = ?2",
                    params![scope, key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let verdict = match held {
                Some((holder, _)) if holder == delivery_id => None,
                Some((holder, at)) if now_ms < at.saturating_add(window_ms) => Some(holder),
                _ => {
                    tx.execute(
                        "INSERT OR REPLACE INTO dedup (scope, key, delivery_id, at) VALUES (?1, ?2, ?3, ?4)",
                        params![scope, key, delivery_id, now_ms],
                    )?;
                    None
                }
            };
            Ok(verdict)
        })
    }

    fn silence_add(&self, s: Silence) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |c: &Connection| {
            c.execute(
                "INSERT INTO silences (id, pattern, matchers, comment, created_by, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.id,
                    s.pattern,
                    s.matchers,
                    s.comment,
                    s.created_by,
                    s.created_at_ms,
                    s.expires_at_ms
                ],
            )?;
            Ok(())
        })
    }

    fn silences(&self) -> BoxFuture<'_, Result<Vec<Silence>, StoreError>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, pattern, matchers, comment, created_by, created_at, expires_at
                 FROM silences ORDER BY created_at DESC, id",
            )?;
            let rows = st.query_map([], silence_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn silence_expire(&self, id: String, now_ms: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |c: &Connection| {
            let n = c.execute(
                "UPDATE silences SET expires_at = MIN(expires_at, ?2) WHERE id = ?1",
                params![id, now_ms],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: "silence",
                    id: id.clone(),
                });
            }
            Ok(())
        })
    }

    fn group_add(&self, g: GroupAdd) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write_outcome(&g.delivery_id.clone(), move |c: &Connection| {
            let tx = c;
            let event_id: Option<String> = tx
                .query_row(
                    "DELETE FROM outbox WHERE id = ?1 RETURNING event_id",
                    params![g.delivery_id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(event_id) = event_id else {
                return Ok(()); // not in the outbox (already grouped): nothing to do
            };
            let row: Option<(Option<i64>, Option<i64>)> = tx
                .query_row(
                    "SELECT flush_at, last_flush_at FROM groups WHERE id = ?1",
                    params![g.group_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match row {
                // Pending flush: join it.
                Some((Some(_), _)) => {}
                // Flushed recently: the next flush comes one interval after the last.
                Some((None, Some(last))) if g.now_ms < last + g.interval_ms => {
                    tx.execute(
                        "UPDATE groups SET flush_at = ?2 WHERE id = ?1",
                        params![g.group_id, last + g.interval_ms],
                    )?;
                }
                // New, or idle for a whole interval: start over and wait group_wait.
                _ => {
                    tx.execute(
                        "INSERT OR REPLACE INTO groups (id, rule, target, labels, first_at, flush_at, last_flush_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                        params![g.group_id, g.rule, g.target, g.labels, g.now_ms, g.now_ms + g.wait_ms],
                    )?;
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO group_members (delivery_id, group_id, event_id, added_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![g.delivery_id, g.group_id, event_id, g.now_ms],
            )?;
            Ok(())
        })
    }

    fn groups_due(&self, now_ms: i64) -> BoxFuture<'_, Result<Vec<DueGroup>, StoreError>> {
        self.read(move |c| {
            let mut groups: Vec<DueGroup> = {
                let mut st = c.prepare_cached(
                    "SELECT id, rule, target, labels FROM groups
                     WHERE flush_at IS NOT NULL AND flush_at <= ?1 ORDER BY flush_at",
                )?;
                st.query_map(params![now_ms], |r| {
                    Ok(DueGroup {
                        id: r.get(0)?,
                        rule: r.get(1)?,
                        target: r.get(2)?,
                        labels: r.get(3)?,
                        members: Vec::new(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?
            };
            let mut st = c.prepare_cached(
                "SELECT m.delivery_id, m.event_id, COALESCE(e.body, '{}'), m.added_at FROM group_members m
                 LEFT JOIN events e ON e.id = m.event_id
                 WHERE m.group_id = ?1 ORDER BY m.added_at, m.delivery_id",
            )?;
            for g in &mut groups {
                g.members = st
                    .query_map(params![g.id], |r| {
                        Ok(Member {
                            delivery_id: r.get(0)?,
                            event_id: r.get(1)?,
                            body: r.get(2)?,
                            added_at_ms: r.get(3)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
            }
            Ok(groups)
        })
    }

    fn alert_check(
        &self,
        delivery_id: String,
        now: i64,
    ) -> BoxFuture<'_, Result<AlertCheck, StoreError>> {
        let leases = self.inner.leases.clone();
        self.read(move |c| {
            let tx = c.transaction()?;
            type Row = (i64, String, String, Option<String>, Option<String>);
            let row: Option<Row> = tx
                .query_row(
                    "SELECT rowid, rule, target, alert_kind, alert_key FROM outbox WHERE id = ?1",
                    params![delivery_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            let Some((rowid, rule, target, Some(kind), Some(key))) = row else {
                return Ok(AlertCheck::default());
            };
            let opposite = match AlertKind::parse(&kind) {
                Some(AlertKind::Trigger) => AlertKind::Resolve,
                Some(AlertKind::Resolve) => AlertKind::Trigger,
                None => return Ok(AlertCheck::default()),
            };
            let waiting: Option<(String, i64)> = tx
                .query_row(
                    "SELECT id, next_attempt_at FROM outbox
                     WHERE alert_key = ?1 AND rule = ?2 AND target = ?3
                       AND alert_kind = ?4 AND rowid < ?5 ORDER BY rowid LIMIT 1",
                    params![key, rule, target, opposite.as_str(), rowid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            // 0 while it is being attempted (leased).
            let waiting = waiting.map(|(id, at)| {
                let at = if leases.held(&id, now) { 0 } else { at };
                (id, at)
            });
            let (waiting_for, waiting_until_ms) = waiting.unzip();
            let state = tx
                .query_row(
                    &format!(
                        "SELECT {ALERT_STATE_COLUMNS} FROM alert_state
                         WHERE rule = ?1 AND key = ?2 AND target = ?3"
                    ),
                    params![rule, key, target],
                    alert_state_row,
                )
                .optional()?;
            tx.commit()?;
            Ok(AlertCheck {
                state,
                waiting_for,
                waiting_until_ms,
            })
        })
    }

    fn alert_states(
        &self,
        keys: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<AlertState>, StoreError>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ALERT_STATE_COLUMNS} FROM alert_state WHERE key = ?1 ORDER BY rule, target"
            ))?;
            let mut out = Vec::new();
            for key in keys {
                for row in st.query_map(params![key], alert_state_row)? {
                    out.push(row?);
                }
            }
            Ok(out)
        })
    }

    fn group_flush(
        &self,
        group_id: String,
        members: Vec<String>,
        digest: NewEvent,
        now_ms: i64,
        interval_ms: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |c: &Connection| {
            let tx = c;
            if !members.is_empty() {
                let routes = digest.deliveries.iter().map(|d| (&d.id, &d.rule, &d.target));
                tx.execute(
                    "INSERT OR IGNORE INTO events (id, body, received_at, matched, routed)
                     VALUES (?1, ?2, ?3, 1, ?4)",
                    params![
                        digest.id,
                        digest.body,
                        now_ms,
                        super::sqlite_archive::routed(&digest.matched, routes)
                    ],
                )?;
                for d in &digest.deliveries {
                    tx.execute(
                        "INSERT OR IGNORE INTO outbox (id, event_id, rule, target, input, created_at, next_attempt_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                        params![d.id, digest.id, d.rule, d.target, d.input, now_ms],
                    )?;
                }
            }
            for m in &members {
                tx.execute(
                    "INSERT OR REPLACE INTO delivered (event_id, id, rule, target, attempts, at, digest_event_id)
                     SELECT m.event_id, m.delivery_id, g.rule, g.target, 0, ?2, ?3
                     FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.delivery_id = ?1",
                    params![m, now_ms, digest.id],
                )?;
                tx.execute("DELETE FROM group_members WHERE delivery_id = ?1", params![m])?;
            }
            // Members that arrived meanwhile wait for the next interval.
            let left: i64 = tx.query_row(
                "SELECT COUNT(*) FROM group_members WHERE group_id = ?1",
                params![group_id],
                |r| r.get(0),
            )?;
            let next = (left > 0).then_some(now_ms + interval_ms);
            tx.execute(
                "UPDATE groups SET flush_at = ?2, last_flush_at = ?3 WHERE id = ?1",
                params![group_id, next, now_ms],
            )?;
            Ok(())
        })
    }

    fn events(&self, query: EventQuery) -> BoxFuture<'_, Result<EventPage, StoreError>> {
        self.read(move |c| sqlite_archive::page(c, &query))
    }

    fn event_get(&self, id: String) -> BoxFuture<'_, Result<ArchivedEvent, StoreError>> {
        self.read(move |c| sqlite_archive::get(c, &id))
    }

    fn replay_enqueue(
        &self,
        deliveries: Vec<ReplayDelivery>,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.write(move |c: &Connection| {
            let tx = c;
            let n = sqlite_archive::enqueue(tx, &deliveries, now_ms)?;
            Ok(n)
        })
    }

    fn prune(&self, retention: Retention) -> BoxFuture<'_, Result<Pruned, StoreError>> {
        self.write(move |c: &Connection| {
            let tx = c;
            let p = sqlite_retention::prune(tx, &retention)?;
            Ok(p)
        })
    }

    fn prune_oldest(&self, limit: usize) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.write_alone(move |c: &Connection| {
            let tx = c.unchecked_transaction()?;
            let n = sqlite_retention::prune_oldest(&tx, limit)?;
            tx.commit()?;
            // Back to the WAL's part of the limit (never waiting for readers).
            sqlite_retention::shrink_wal(c)?;
            Ok(n)
        })
    }

    fn space(&self) -> BoxFuture<'_, Result<Space, StoreError>> {
        let (path, limit_bytes, reserve) =
            (self.path.clone(), self.max_bytes, self.reserve.clone());
        let pruned_in_accept = self.pruned_in_accept.clone();
        Box::pin(async move {
            // The reserve's file I/O runs without the connection.
            let disk_full = match reserve {
                Some(r) => tokio::task::spawn_blocking(move || r.refresh())
                    .await
                    .map_err(|e| StoreError::Join(e.to_string()))?,
                None => false,
            };
            let (used_bytes, at_limit) = self
                .write_alone(move |c: &Connection| {
                    let mut used = sqlite_retention::used_bytes(c, &path)?;
                    if limit_bytes > 0 && used >= limit_bytes / 2 {
                        // A big transaction may have grown the WAL past its part: shrink it first.
                        sqlite_retention::shrink_wal(c)?;
                        used = sqlite_retention::used_bytes(c, &path)?;
                    }
                    Ok((used, sqlite_retention::at_limit(c, limit_bytes, used)?))
                })
                .await?;
            Ok(Space {
                used_bytes,
                limit_bytes,
                disk_full,
                at_limit,
                pruned: pruned_in_accept.swap(0, std::sync::atomic::Ordering::Relaxed),
            })
        })
    }

    fn recent_events(
        &self,
        limit: usize,
        before: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, StoreError>> {
        self.read(move |c| {
            if let Some(b) = &before {
                let known = c
                    .prepare_cached("SELECT 1 FROM events WHERE id = ?1")?
                    .exists(params![b])?;
                if !known {
                    return Err(StoreError::NotFound {
                        what: "event",
                        id: b.clone(),
                    });
                }
            }
            let events: Vec<(String, i64, String)> = {
                let mut st = c.prepare_cached(
                    "SELECT id, received_at, body FROM events
                     WHERE ?2 IS NULL OR rowid < (SELECT rowid FROM events WHERE id = ?2)
                     ORDER BY rowid DESC LIMIT ?1",
                )?;
                st.query_map(params![limit as i64, before], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?
            };
            events
                .into_iter()
                .map(|(id, received_at_ms, body)| {
                    Ok(EventRecord {
                        deliveries: sqlite_archive::deliveries_of(c, &id)?,
                        id,
                        received_at_ms,
                        body,
                    })
                })
                .collect()
        })
    }

    fn event_record(&self, id: String) -> BoxFuture<'_, Result<EventRecord, StoreError>> {
        self.read(move |c| {
            let row: Option<(i64, String)> = c
                .prepare_cached("SELECT received_at, body FROM events WHERE id = ?1")?
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((received_at_ms, body)) = row else {
                return Err(StoreError::NotFound { what: "event", id });
            };
            Ok(EventRecord {
                deliveries: sqlite_archive::deliveries_of(c, &id)?,
                id,
                received_at_ms,
                body,
            })
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<Vec<Problem>, StoreError>> {
        self.read(|c| {
            let mut problems = sqlite_integrity::check(c)?;
            let id: i64 = c.pragma_query_value(None, "application_id", |r| r.get(0))?;
            if id != APPLICATION_ID {
                problems.push(Problem {
                    what: format!(
                        "the database is not marked as a scanbridge store (application_id {id:#x})"
                    ),
                    count: 1,
                    examples: Vec::new(),
                });
            }
            Ok(problems)
        })
    }

    fn backup(&self, path: PathBuf) -> BoxFuture<'_, Result<Backup, StoreError>> {
        // VACUUM INTO runs outside any transaction, on the writer (a read connection may not write).
        self.write_alone(move |c: &Connection| sqlite_integrity::backup(c, &path))
    }

    fn counts(&self) -> BoxFuture<'_, Result<Counts, StoreError>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT (SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM outbox WHERE attempts > 0),
                        (SELECT COUNT(*) FROM dead_letters), (SELECT COUNT(*) FROM suppressed),
                        (SELECT COUNT(*) FROM group_members)",
                [],
                |r| {
                    Ok(Counts {
                        outbox: r.get::<_, i64>(0)? as u64,
                        retrying: r.get::<_, i64>(1)? as u64,
                        dead_letters: r.get::<_, i64>(2)? as u64,
                        suppressed: r.get::<_, i64>(3)? as u64,
                        grouped: r.get::<_, i64>(4)? as u64,
                    })
                },
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DeliveryState;
    use crate::store::NewDelivery;
    use std::sync::Arc;

    /// The tests' "now": the store reads no clock, so any fixed time does.
    const NOW: i64 = 1_700_000_000_000;

    fn event(id: &str) -> NewEvent {
        NewEvent {
            id: id.into(),
            body: format!("{{\"id\":\"{id}\"}}"),
            matched: vec!["r".into()],
            deliveries: vec![NewDelivery {
                id: format!("d-{id}"),
                rule: "r".into(),
                target: "t".into(),
                input: None,
                alert: None,
            }],
            history: None,
            resolve: None,
        }
    }

    #[tokio::test]
    async fn lease_ack_retry_deadletter_redrive() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), true).unwrap();
        s.accept(vec![event("a"), event("b")], NOW).await.unwrap();
        s.accept(vec![event("a")], NOW).await.unwrap(); // duplicate: no-op
        assert_eq!(s.depth().await.unwrap(), 2);
        let leased = s.lease(10, Duration::from_secs(60), NOW).await.unwrap();
        assert_eq!(leased.len(), 2);
        assert_eq!(leased[0].body, "{\"id\":\"a\"}");
        assert!(
            s.lease(10, Duration::from_secs(60), NOW)
                .await
                .unwrap()
                .is_empty(),
            "leased rows are reserved"
        );
        s.ack("d-a".into(), NOW).await.unwrap();
        s.retry_later(
            "d-b".into(),
            Duration::from_secs(3600),
            "HTTP 500".into(),
            NOW,
        )
        .await
        .unwrap();
        assert!(
            s.lease(10, Duration::from_secs(60), NOW)
                .await
                .unwrap()
                .is_empty(),
            "not due yet"
        );
        s.dead_letter("d-b".into(), 1, "gave up".into(), NOW)
            .await
            .unwrap();
        assert_eq!(s.depth().await.unwrap(), 0);
        let dls = s.dead_letters(10).await.unwrap();
        assert_eq!(dls.len(), 1);
        assert_eq!(dls[0].reason, "gave up");
        let full = s.dead_letter_get("d-b".into()).await.unwrap();
        assert_eq!(full.event.unwrap()["id"], "b");
        assert_eq!(s.redrive(None, NOW).await.unwrap(), 1);
        let again = s.lease(10, Duration::from_secs(60), NOW).await.unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 0));
        assert!(matches!(
            s.redrive(Some("nope".into()), NOW).await,
            Err(StoreError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn an_event_the_database_refuses_is_refused_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), true).unwrap();
        // A trigger stands in for a value SQLite refuses (RAISE(ABORT) is a constraint failure).
        s.write(|c: &Connection| {
            Ok(c.execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.id = 'poison'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
            )?)
        })
        .await
        .unwrap();
        let got = s
            .accept(
                vec![event("a"), event("poison"), event("b"), event("a")],
                1_700_000_000_000,
            )
            .await
            .unwrap();
        assert_eq!(got[0], Stored::New);
        assert!(
            matches!(&got[1], Stored::Refused(why) if why.contains("refused by the test")),
            "{got:?}"
        );
        assert_eq!(got[2..], [Stored::New, Stored::Duplicate]);
        let leased: Vec<String> = s
            .lease(10, Duration::from_secs(60), 1_700_000_000_000)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.event_id)
            .collect();
        assert_eq!(leased, ["a", "b"], "the refused event left nothing behind");
    }

    #[tokio::test]
    async fn accepted_deliveries_are_leased_in_the_commit_and_targets_get_their_room() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), true).unwrap();
        let lease = Duration::from_secs(60);
        let (stored, fresh) = s
            .accept_leasing(vec![event("a"), event("b"), event("c")], NOW, lease, 2)
            .await
            .unwrap();
        assert_eq!(stored, [Stored::New, Stored::New, Stored::New]);
        let ids: Vec<&str> = fresh.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["d-a", "d-b"], "at most 2 leased at accept, in order");
        assert_eq!(fresh[0].body, "{\"id\":\"a\"}");
        // Only the third is left for a lease read; the first two are held.
        let read: Vec<String> = s
            .lease(10, lease, NOW)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(read, ["d-c"]);
        assert_eq!(s.io_stats().leased, 3);
        // Acked: the lease ends with the commit (and the row with it).
        s.ack("d-a".into(), NOW).await.unwrap();
        assert_eq!(s.io_stats().leased, 2);

        // Room per target: "t" may take one more, "u" none (not even read).
        let mut two = event("x");
        two.deliveries.push(NewDelivery {
            id: "d-x-u".into(),
            target: "u".into(),
            ..two.deliveries[0].clone()
        });
        s.accept(vec![two, event("y")], NOW).await.unwrap();
        let room = BTreeMap::from([("t".to_owned(), 1), ("u".to_owned(), 0)]);
        let got: Vec<String> = s
            .lease_within(10, lease, NOW, room)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(got, ["d-x"]);
        let rest: Vec<String> = s
            .lease(10, lease, NOW)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(rest, ["d-x-u", "d-y"]);
        // One commit per write request here (nothing was concurrent).
        let io = s.io_stats();
        assert_eq!(io.commits, io.writes);
    }

    #[tokio::test]
    async fn reopening_with_recovery_releases_leases() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(dir.path(), true).unwrap();
            s.accept(vec![event("a")], NOW).await.unwrap();
            assert_eq!(
                s.lease(10, Duration::from_secs(600), NOW)
                    .await
                    .unwrap()
                    .len(),
                1
            );
        }
        let s = SqliteStore::open(dir.path(), true).unwrap();
        assert_eq!(
            s.lease(10, Duration::from_secs(600), NOW)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn every_delivery_has_one_state_and_events_list_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), true).unwrap();
        let ids = ["a", "b", "c", "d", "e", "f"];
        s.accept(ids.iter().map(|i| event(i)).collect(), NOW)
            .await
            .unwrap();
        s.retry_later("d-a".into(), Duration::ZERO, "HTTP 500".into(), NOW)
            .await
            .unwrap();
        s.ack("d-a".into(), NOW).await.unwrap();
        s.retry_later("d-b".into(), Duration::from_secs(60), "timeout".into(), NOW)
            .await
            .unwrap();
        s.dead_letter("d-c".into(), 3, "HTTP 400".into(), NOW)
            .await
            .unwrap();
        s.suppress(Suppressed {
            id: "d-d".into(),
            event_id: "d".into(),
            rule: "r".into(),
            target: "t".into(),
            reason: "silenced".into(),
            detail: "silence s1 (c)".into(),
            at_ms: 5,
        })
        .await
        .unwrap();
        for d in ["d-e", "d-f"] {
            s.group_add(GroupAdd {
                group_id: "g".into(),
                rule: "r".into(),
                target: "t".into(),
                labels: "{}".into(),
                delivery_id: d.into(),
                now_ms: 7,
                wait_ms: 0,
                interval_ms: 1000,
            })
            .await
            .unwrap();
        }
        let digest = event("digest-1");
        s.group_flush("g".into(), vec!["d-f".into()], digest, 8, 1000)
            .await
            .unwrap();

        let state = |r: &EventRecord| {
            assert_eq!(r.deliveries.len(), 1, "{r:?}");
            r.deliveries[0].state.clone()
        };
        let all = s.recent_events(10, None).await.unwrap();
        let got: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(got[1..], ["f", "e", "d", "c", "b", "a"], "{got:?}");
        assert_eq!(got[0], "digest-1", "the digest came last");
        let by = |id: &str| all.iter().find(|e| e.id == id).unwrap();
        assert!(matches!(
            state(by("a")),
            DeliveryState::Delivered { attempts: 2, .. }
        ));
        assert!(
            matches!(state(by("b")), DeliveryState::Pending { attempts: 1, ref last_error, .. }
            if last_error.as_deref() == Some("timeout"))
        );
        assert!(
            matches!(state(by("c")), DeliveryState::DeadLettered { attempts: 3, ref reason, .. } if reason == "HTTP 400")
        );
        assert!(
            matches!(state(by("d")), DeliveryState::Suppressed { ref reason, .. } if reason == "silenced")
        );
        assert!(
            matches!(state(by("e")), DeliveryState::Grouped { ref group_id, at_ms: 7 } if group_id == "g")
        );
        assert!(
            matches!(state(by("f")), DeliveryState::InDigest { ref digest_event_id, .. } if digest_event_id == "digest-1")
        );
        assert!(matches!(
            state(by("digest-1")),
            DeliveryState::Pending { attempts: 0, .. }
        ));
        assert_eq!(by("a").body, "{\"id\":\"a\"}");

        let page = s.recent_events(2, Some("e".into())).await.unwrap();
        let got: Vec<&str> = page.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(got, ["d", "c"]);
        assert!(matches!(
            s.recent_events(2, Some("nope".into())).await,
            Err(StoreError::NotFound { what: "event", .. })
        ));
        assert_eq!(s.event_record("c".into()).await.unwrap().id, "c");
        assert!(s.event_record("zz".into()).await.is_err());
        let c = s.counts().await.unwrap();
        assert_eq!(
            (
                c.outbox,
                c.retrying,
                c.dead_letters,
                c.suppressed,
                c.grouped
            ),
            (2, 1, 1, 1, 1)
        );
    }

    fn trigger(id: &str, key: &str, time: i64) -> NewEvent {
        let mut e = event(id);
        e.deliveries[0].rule = "paged".into();
        e.deliveries[0].alert = Some(AlertMark {
            kind: AlertKind::Trigger,
            key: key.into(),
            time_ms: Some(time),
            record: Some(format!(
                "{{\"counts\":[2,0,0,0,0,0],\"event_id\":\"{id}\",\"time\":null}}"
            )),
        });
        e
    }

    fn clean(id: &str, keys: &[&str], clear: &[&str], live: &[&str], time: i64) -> NewEvent {
        NewEvent {
            id: id.into(),
            body: format!("{{\"id\":\"{id}\"}}"),
            matched: Vec::new(),
            deliveries: Vec::new(),
            history: None,
            resolve: Some(ResolveCheck {
                keys: keys.iter().map(|k| k.to_string()).collect(),
                clear: clear.iter().map(|k| k.to_string()).collect(),
                live: Arc::new(live.iter().map(|k| k.to_string()).collect()),
                time_ms: Some(time),
                record: None,
            }),
        }
    }

    async fn lease_all(s: &SqliteStore) -> Vec<Leased> {
        s.lease(100, Duration::from_secs(60), NOW).await.unwrap()
    }

    #[tokio::test]
    async fn alert_state_opens_on_delivered_triggers_and_closes_on_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), true).unwrap();
        // A clean scan before anything was open resolves nothing.
        s.accept(
            vec![clean("c0", &["img:v1"], &["paged"], &["paged"], 1)],
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(s.depth().await.unwrap(), 0);

        s.accept(vec![trigger("t1", "img:v1", 10)], NOW)
            .await
            .unwrap();
        // While the trigger is pending, a clean scan already queues a resolve (it will wait).
        s.accept(
            vec![clean(
                "c1",
                &["img:v1", "img@sha256:aa"],
                &["paged"],
                &["paged"],
                20,
            )],
            NOW,
        )
        .await
        .unwrap();
        let leased = lease_all(&s).await;
        assert_eq!(leased.len(), 2);
        let t = leased.iter().find(|d| d.id == "d-t1").unwrap();
        let r = leased.iter().find(|d| d.id != "d-t1").unwrap();
        assert_eq!(t.alert.as_ref().unwrap().kind, AlertKind::Trigger);
        let rm = r.alert.as_ref().unwrap();
        assert_eq!(
            (rm.kind, rm.key.as_str(), rm.time_ms),
            (AlertKind::Resolve, "img:v1", Some(20))
        );
        assert_eq!(r.id, crate::store::delivery_id("c1", "paged", "t#resolve"));
        assert_eq!(
            (r.rule.as_str(), r.target.as_str(), r.input.as_deref()),
            ("paged", "t", None)
        );

        let c = s.alert_check(r.id.clone(), NOW).await.unwrap();
        assert_eq!(
            c.waiting_for.as_deref(),
            Some("d-t1"),
            "the resolve waits for the trigger"
        );
        assert_eq!(c.state, None);
        let c = s.alert_check(t.id.clone(), NOW).await.unwrap();
        assert_eq!(c.waiting_for, None, "the trigger was first");

        s.ack("d-t1".into(), NOW).await.unwrap();
        let c = s.alert_check(r.id.clone(), NOW).await.unwrap();
        assert_eq!(c.waiting_for, None);
        let st = c.state.unwrap();
        assert!(st.open && st.opened_at_ms.is_some());
        assert_eq!((st.trigger_time_ms, st.episode), (Some(10), 0));
        assert_eq!(st.trigger_event_id.as_deref(), Some("t1"));
        assert!(st.record.unwrap().contains("\"event_id\":\"t1\""));

        s.ack(r.id.clone(), NOW).await.unwrap();
        let states = s.alert_states(vec!["img:v1".into()]).await.unwrap();
        assert_eq!(states.len(), 1);
        assert!(!states[0].open && states[0].resolved_at_ms.is_some());
        assert_eq!(
            (states[0].resolve_time_ms, states[0].episode),
            (Some(20), 1)
        );

        // Resolved: another clean scan queues nothing.
        s.accept(
            vec![clean("c2", &["img:v1"], &["paged"], &["paged"], 30)],
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(s.depth().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn only_clear_or_removed_rules_resolve_and_marks_survive_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), true).unwrap();
        s.accept(vec![trigger("t1", "img:v1", 10)], NOW)
            .await
            .unwrap();
        s.ack("d-t1".into(), NOW).await.unwrap();
        // The rule is live and still matches (not clear): nothing.
        s.accept(vec![clean("c1", &["img:v1"], &[], &["paged"], 20)], NOW)
            .await
            .unwrap();
        assert_eq!(s.depth().await.unwrap(), 0);
        // The rule was removed: any conclusive event resolves its open alerts.
        s.accept(vec![clean("c2", &["img:v1"], &[], &["other"], 30)], NOW)
            .await
            .unwrap();
        let r = lease_all(&s).await.remove(0);
        assert_eq!(r.alert.as_ref().unwrap().kind, AlertKind::Resolve);
        s.dead_letter(r.id.clone(), 1, "down".into(), NOW)
            .await
            .unwrap();
        s.redrive(None, NOW).await.unwrap();
        let again = lease_all(&s).await.remove(0);
        assert_eq!(
            again.alert, r.alert,
            "the mark survives dead letter and redrive"
        );
    }

    #[tokio::test]
    async fn older_databases_gain_the_alert_columns() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("scanbridge.db")).unwrap();
            c.execute_batch(
                "CREATE TABLE events (id TEXT PRIMARY KEY, body TEXT NOT NULL, received_at INTEGER NOT NULL);
                 CREATE TABLE outbox (id TEXT PRIMARY KEY, event_id TEXT NOT NULL, rule TEXT NOT NULL,
                   target TEXT NOT NULL, input TEXT, attempts INTEGER NOT NULL DEFAULT 0,
                   created_at INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL,
                   leased_until INTEGER NOT NULL DEFAULT 0, last_error TEXT);
                 INSERT INTO outbox (id, event_id, rule, target, created_at, next_attempt_at)
                   VALUES ('old', 'e', 'r', 't', 0, 0);",
            )
            .unwrap();
        }
        let s = SqliteStore::open(dir.path(), true).unwrap();
        let d = lease_all(&s).await.remove(0);
        assert_eq!((d.id.as_str(), d.alert), ("old", None));
    }
}
