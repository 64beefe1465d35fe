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
//!
//! Migrations: tables are created if missing; columns added since the first release are added with
//! `ALTER TABLE` when absent, so a data directory from an older build opens unchanged.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`. In WAL mode NORMAL only syncs at checkpoints,
//! so a power loss can roll back the last commits — acceptable for a cache, not for a 202 that promises
//! the event is durable. FULL fsyncs the WAL on every commit; ingest batches many events into one
//! transaction, so the cost is one fsync per request, not per event.
//!
//! Recovery: leases are timestamps, so a crashed daemon's leases simply expire. Because one data
//! directory belongs to one daemon, [`SqliteStore::open`] with `recover = true` (what `serve` does) clears
//! all leases at start-up so that pending deliveries resume at once. CLI tools (`dlq`) open without
//! recovery and may run beside the daemon (WAL allows concurrent readers; writes wait on a busy timeout).
//!
//! Full or read-only disk: a failed write rolls the transaction back, so `accept` either commits
//! everything or returns the error (ingest answers 503, nothing acknowledged). `store.max_db_bytes`
//! caps the database through `max_page_count`, which fails writes with the same SQLITE_FULL a full disk
//! gives. Delivery goes on while ingest is refused (acks only delete rows).
//!
//! Concurrency: one connection behind a mutex; every call runs on tokio's blocking pool, never on an
//! async worker thread.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::value::RawValue;

use super::{
    BoxFuture, DeadLetter, DueGroup, GroupAdd, HistoryUpdate, Leased, Member, NewEvent, Silence,
    Store, StoreError, Suppressed,
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
";

/// Adds columns introduced after the first schema when an older database lacks them.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let has_previous: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'previous'")?
        .exists([])?;
    if !has_previous {
        conn.execute("ALTER TABLE events ADD COLUMN previous TEXT", [])?;
    }
    Ok(())
}

/// Records `h` in the scan history; returns the result it replaced (JSON `{"via", "record"}`), if any.
/// Records are the caller's JSON, copied as they are; one that is not JSON (a damaged row) is passed
/// over.
fn record_history(
    tx: &rusqlite::Transaction<'_>,
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
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`; `recover` clears stale leases.
    pub fn open(data_dir: &Path, recover: bool) -> Result<Self, StoreError> {
        Self::open_with_limit(data_dir, recover, 0)
    }

    /// Like [`SqliteStore::open`], with the database capped at about `max_bytes` (0: no cap) from the
    /// first write on. Writes that would grow it further fail with SQLite's "database or disk is full",
    /// exactly as on a full disk: at start-up the daemon refuses to start, while running ingest
    /// answers 503.
    pub fn open_with_limit(
        data_dir: &Path,
        recover: bool,
        max_bytes: u64,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let conn = Connection::open(data_dir.join("scanbridge.db"))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        if max_bytes > 0 {
            let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
            let pages = (max_bytes / page.max(1) as u64).clamp(1, i64::MAX as u64) as i64;
            conn.pragma_update(None, "max_page_count", pages)?;
        }
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        if recover {
            conn.execute(
                "UPDATE outbox SET leased_until = 0 WHERE leased_until <> 0",
                [],
            )?;
        }
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn run<T, F>(&self, f: F) -> BoxFuture<'_, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut guard)
            })
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
        })
    }
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

impl Store for SqliteStore {
    fn accept(
        &self,
        events: Vec<NewEvent>,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let mut fresh = Vec::with_capacity(events.len());
            {
                let mut ev = tx.prepare_cached(
                    "INSERT OR IGNORE INTO events (id, body, received_at) VALUES (?1, ?2, ?3)",
                )?;
                let mut ob = tx.prepare_cached(
                    "INSERT OR IGNORE INTO outbox (id, event_id, rule, target, input, created_at, next_attempt_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6
                     WHERE NOT EXISTS (SELECT 1 FROM dead_letters WHERE id = ?1)",
                )?;
                for e in &events {
                    let new = ev.execute(params![e.id, e.body, now])? > 0;
                    fresh.push(new);
                    if !new {
                        continue; // a duplicate event id: already routed when first accepted
                    }
                    if let Some(h) = &e.history
                        && let Some(previous) = record_history(&tx, h, now)?
                    {
                        tx.execute(
                            "UPDATE events SET previous = ?2 WHERE id = ?1",
                            params![e.id, previous],
                        )?;
                    }
                    for d in &e.deliveries {
                        ob.execute(params![d.id, e.id, d.rule, d.target, d.input, now])?;
                    }
                }
            }
            tx.commit()?;
            Ok(fresh)
        })
    }

    fn lease(
        &self,
        limit: usize,
        lease: Duration,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<Leased>, StoreError>> {
        self.run(move |c| {
            let until = now + lease.as_millis() as i64;
            let tx = c.transaction()?;
            let rows = {
                let mut st = tx.prepare_cached(
                    "UPDATE outbox SET leased_until = ?1
                     WHERE id IN (SELECT id FROM outbox WHERE next_attempt_at <= ?2 AND leased_until <= ?2
                                  ORDER BY next_attempt_at LIMIT ?3)
                     RETURNING id, event_id, rule, target, input, attempts, created_at,
                               (SELECT body FROM events WHERE events.id = outbox.event_id),
                               (SELECT previous FROM events WHERE events.id = outbox.event_id)",
                )?;
                let rows = st.query_map(params![until, now, limit as i64], |r| {
                    Ok(Leased {
                        id: r.get(0)?,
                        event_id: r.get(1)?,
                        rule: r.get(2)?,
                        target: r.get(3)?,
                        input: r.get(4)?,
                        attempts: r.get(5)?,
                        created_at_ms: r.get(6)?,
                        body: r.get::<_, Option<String>>(7)?.unwrap_or_else(|| "{}".into()),
                        previous: r.get(8)?,
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            tx.commit()?;
            Ok(rows)
        })
    }

    fn ack(&self, id: String) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| {
            c.execute("DELETE FROM outbox WHERE id = ?1", params![id])?;
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
        self.run(move |c| {
            let at = now + delay.as_millis() as i64;
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, leased_until = 0,
                 last_error = ?3 WHERE id = ?1",
                params![id, at, error],
            )?;
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
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO dead_letters
                   (id, event_id, rule, target, input, attempts, created_at, failed_at, reason)
                 SELECT id, event_id, rule, target, input, ?2, created_at, ?3, ?4 FROM outbox WHERE id = ?1",
                params![id, attempts, now, reason],
            )?;
            tx.execute("DELETE FROM outbox WHERE id = ?1", params![id])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.run(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))? as u64)
        })
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, StoreError>> {
        self.run(move |c| {
            let mut st = c.prepare(
                "SELECT id, event_id, rule, target, attempts, created_at, failed_at, reason
                 FROM dead_letters ORDER BY failed_at, id LIMIT ?1",
            )?;
            let rows = st.query_map(params![limit as i64], dead_letter_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn dead_letter_get(&self, id: String) -> BoxFuture<'_, Result<DeadLetter, StoreError>> {
        self.run(move |c| {
            let dl = c
                .query_row(
                    "SELECT id, event_id, rule, target, attempts, created_at, failed_at, reason
                     FROM dead_letters WHERE id = ?1",
                    params![id],
                    dead_letter_row,
                )
                .optional()?;
            let mut dl = dl.ok_or_else(|| StoreError::NotFound(id.clone()))?;
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
        self.run(move |c| {
            let tx = c.transaction()?;
            // `created_at` restarts too: max_age counts from the redrive, or a redriven delivery
            // older than max_age would be dead-lettered again at its first failure.
            let moved = tx.execute(
                "INSERT OR IGNORE INTO outbox (id, event_id, rule, target, input, attempts, created_at, next_attempt_at)
                 SELECT id, event_id, rule, target, input, 0, ?1, ?1 FROM dead_letters
                 WHERE ?2 IS NULL OR id = ?2",
                params![now, id],
            )?;
            tx.execute("DELETE FROM dead_letters WHERE ?1 IS NULL OR id = ?1", params![id])?;
            tx.commit()?;
            if moved == 0
                && let Some(id) = id
            {
                return Err(StoreError::NotFound(id));
            }
            Ok(moved as u64)
        })
    }

    fn purge(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.run(|c| Ok(c.execute("DELETE FROM dead_letters", [])? as u64))
    }

    fn postpone(
        &self,
        id: String,
        delay: Duration,
        now: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| {
            let at = now + delay.as_millis() as i64;
            c.execute(
                "UPDATE outbox SET next_attempt_at = ?2, leased_until = 0 WHERE id = ?1",
                params![id, at],
            )?;
            Ok(())
        })
    }

    fn suppress(&self, s: Suppressed) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO suppressed (id, event_id, rule, target, reason, detail, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.id, s.event_id, s.rule, s.target, s.reason, s.detail, s.at_ms
                ],
            )?;
            tx.execute("DELETE FROM outbox WHERE id = ?1", params![s.id])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn suppressed(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Suppressed>, StoreError>> {
        self.run(move |c| {
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
        self.run(move |c| {
            let tx = c.transaction()?;
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
            tx.commit()?;
            Ok(verdict)
        })
    }

    fn silence_add(&self, s: Silence) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| {
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
        self.run(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, pattern, matchers, comment, created_by, created_at, expires_at
                 FROM silences ORDER BY created_at DESC, id",
            )?;
            let rows = st.query_map([], silence_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn silence_expire(&self, id: String, now_ms: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| {
            let n = c.execute(
                "UPDATE silences SET expires_at = MIN(expires_at, ?2) WHERE id = ?1",
                params![id, now_ms],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(id));
            }
            Ok(())
        })
    }

    fn group_add(&self, g: GroupAdd) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| {
            let tx = c.transaction()?;
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
            tx.commit()?;
            Ok(())
        })
    }

    fn groups_due(&self, now_ms: i64) -> BoxFuture<'_, Result<Vec<DueGroup>, StoreError>> {
        self.run(move |c| {
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

    fn group_flush(
        &self,
        group_id: String,
        members: Vec<String>,
        digest: NewEvent,
        now_ms: i64,
        interval_ms: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            if !members.is_empty() {
                tx.execute(
                    "INSERT OR IGNORE INTO events (id, body, received_at) VALUES (?1, ?2, ?3)",
                    params![digest.id, digest.body, now_ms],
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
            tx.commit()?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewDelivery;

    /// The tests' "now": the store reads no clock, so any fixed time does.
    const NOW: i64 = 1_700_000_000_000;

    fn event(id: &str) -> NewEvent {
        NewEvent {
            id: id.into(),
            body: format!("{{\"id\":\"{id}\"}}"),
            deliveries: vec![NewDelivery {
                id: format!("d-{id}"),
                rule: "r".into(),
                target: "t".into(),
                input: None,
            }],
            history: None,
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
        s.ack("d-a".into()).await.unwrap();
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
            Err(StoreError::NotFound(_))
        ));
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
}
