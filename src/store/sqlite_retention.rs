//! The SQLite store's retention: deleting expired rows in bounded batches, making room near the size
//! limit, and measuring the room there is ([`super::Store::prune`], `prune_oldest`, `space`).
//!
//! Every delete is `DELETE ... WHERE rowid IN (SELECT ... ORDER BY age LIMIT n)` on an index by age,
//! so one call touches at most `n` rows of each kind and holds the database for milliseconds. An
//! event goes only when nothing needs it any more: no delivery of it in the outbox, no dead letter,
//! no digest member ([`KEEP_EVENT`]); the records of its delivered deliveries go with it. Pending
//! deliveries, dead letters, silences, open alerts and
//! digest groups with members are never deleted here.
//!
//! Under `store.max_db_bytes` the database's pages get 7/8 of the limit (the WAL the rest,
//! [`wal_budget`]); new events are refused a twentieth below that ([`room_for_accept`]: after the
//! oldest archived events were pruned to make room, inside the accept), so that the writes that keep
//! delivery going always find pages.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::{Pruned, Retention, StoreError};

/// The condition under which an event row (`events`) may go: nothing still needs its body.
const KEEP_EVENT: &str = "NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = events.id)
     AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.event_id = events.id)
     AND NOT EXISTS (SELECT 1 FROM group_members m WHERE m.event_id = events.id)";

/// Deletes up to `limit` events of one class (`matched` 0 or 1) accepted before `before`, oldest
/// first, with the records of their delivered deliveries (`delivered`).
fn prune_events(
    tx: &Connection,
    matched: i64,
    before: i64,
    limit: usize,
) -> Result<u64, StoreError> {
    let gone: Vec<(i64, String)> = tx
        .prepare_cached(&format!(
            "SELECT rowid, id FROM events WHERE matched = ?1 AND received_at < ?2 AND {KEEP_EVENT}
             ORDER BY received_at LIMIT ?3"
        ))?
        .query_map(params![matched, before, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut records = tx.prepare_cached("DELETE FROM delivered WHERE event_id = ?1")?;
    let mut event = tx.prepare_cached("DELETE FROM events WHERE rowid = ?1")?;
    for (rowid, id) in &gone {
        records.execute(params![id])?;
        event.execute(params![rowid])?;
    }
    Ok(gone.len() as u64)
}

/// One batch of each kind of expired row (inside the caller's transaction).
pub fn prune(tx: &Connection, r: &Retention) -> Result<Pruned, StoreError> {
    let limit = r.limit.max(1);
    let mut p = Pruned::default();
    let lim = limit as i64;
    let mut full_batch = false;
    for (class, cutoff) in [(0, r.unmatched_before_ms), (1, r.matched_before_ms)] {
        if let Some(before) = cutoff {
            let n = prune_events(tx, class, before, limit)?;
            full_batch |= n >= limit as u64;
            p.events += n;
        }
    }
    let by_age = |sql: &str, before: Option<i64>| -> Result<u64, StoreError> {
        match before {
            Some(b) => Ok(tx.prepare_cached(sql)?.execute(params![b, lim])? as u64),
            None => Ok(0),
        }
    };
    p.suppressed = by_age(
        "DELETE FROM suppressed WHERE rowid IN (
             SELECT rowid FROM suppressed WHERE at < ?1 ORDER BY at LIMIT ?2)",
        r.suppressed_before_ms,
    )?;
    p.history = by_age(
        "DELETE FROM scan_history WHERE rowid IN (
             SELECT rowid FROM scan_history WHERE updated_at < ?1 ORDER BY updated_at LIMIT ?2)",
        r.history_before_ms,
    )?;
    p.dedup = by_age(
        "DELETE FROM dedup WHERE rowid IN (
             SELECT rowid FROM dedup WHERE at < ?1 ORDER BY at LIMIT ?2)",
        r.dedup_before_ms,
    )?;
    // Resolved alerts (an open one is never pruned: its resolve must still be sent).
    p.alerts = by_age(
        "DELETE FROM alert_state WHERE rowid IN (
             SELECT rowid FROM alert_state a WHERE open = 0 AND updated_at < ?1
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.alert_key = a.key
                               AND o.rule = a.rule AND o.target = a.target)
             LIMIT ?2)",
        r.history_before_ms,
    )?;
    // Digest groups with no member waiting and no flush due.
    p.groups = by_age(
        "DELETE FROM groups WHERE rowid IN (
             SELECT rowid FROM groups g WHERE flush_at IS NULL
               AND COALESCE(last_flush_at, first_at) < ?1
               AND NOT EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.id)
             LIMIT ?2)",
        r.history_before_ms,
    )?;
    p.more = full_batch
        || [p.suppressed, p.history, p.dedup, p.alerts, p.groups]
            .iter()
            .any(|&n| n >= limit as u64);
    Ok(p)
}

/// Deletes the oldest archived events that nothing needs, whatever their age (unmatched first), and
/// as many of the oldest suppressed records (inside the caller's transaction).
pub fn prune_oldest(tx: &Connection, limit: usize) -> Result<u64, StoreError> {
    let limit = limit.max(1);
    let mut n = prune_events(tx, 0, i64::MAX, limit)?;
    if (n as usize) < limit {
        n += prune_events(tx, 1, i64::MAX, limit - n as usize)?;
    }
    n += tx
        .prepare_cached(
            "DELETE FROM suppressed WHERE rowid IN (
                 SELECT rowid FROM suppressed ORDER BY at LIMIT ?1)",
        )?
        .execute(params![limit as i64])? as u64;
    Ok(n)
}

/// Pages: (size, in the file, free).
fn pages(c: &Connection) -> Result<(u64, u64, u64), StoreError> {
    let page: i64 = c.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let count: i64 = c.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let free: i64 = c.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    Ok((page.max(1) as u64, count.max(0) as u64, free.max(0) as u64))
}

/// The database's pages under `max_bytes` (`max_page_count`): the limit less the WAL's part.
pub fn max_pages(max_bytes: u64, page: u64) -> u64 {
    ((max_bytes - wal_budget(max_bytes)) / page.max(1)).max(1)
}

/// The pages in use past which new events are refused: a twentieth of the pages (at least 8) stays
/// free for the writes that keep delivery going (leases, retries, dead letters, alert state).
fn soft_pages(max_bytes: u64, page: u64) -> u64 {
    let hard = max_pages(max_bytes, page);
    hard.saturating_sub((hard / 20).max(8))
}

/// Room for an accept under `max_bytes` (0: no limit), inside its transaction: past the soft limit
/// the oldest archived events go first ([`prune_oldest`], a few batches at most); when nothing is
/// left to prune, pending work fills the store and the accept is refused ([`StoreError::Full`]).
/// Returns how many rows it pruned.
pub fn room_for_accept(tx: &Connection, max_bytes: u64) -> Result<u64, StoreError> {
    let mut pruned = 0;
    if max_bytes == 0 {
        return Ok(pruned);
    }
    for _ in 0..20 {
        let (page, count, free) = pages(tx)?;
        if count - free.min(count) < soft_pages(max_bytes, page) {
            return Ok(pruned);
        }
        match prune_oldest(tx, 50)? {
            0 => return Err(full(max_bytes, (count - free.min(count)) * page)),
            n => pruned += n,
        }
    }
    Ok(pruned)
}

fn full(max_bytes: u64, used: u64) -> StoreError {
    StoreError::Full(format!(
        "database or disk is full: pending deliveries fill store.max_db_bytes ({used} of {max_bytes} bytes); they are being delivered"
    ))
}

/// Whether new events are refused under `max_bytes` now: the pages in use past the soft limit, or
/// the pages and the WAL past the limit.
pub fn at_limit(c: &Connection, max_bytes: u64, used: u64) -> Result<bool, StoreError> {
    if max_bytes == 0 {
        return Ok(false);
    }
    let (page, count, free) = pages(c)?;
    Ok(count - free.min(count) >= soft_pages(max_bytes, page) || used >= max_bytes)
}

/// Bytes the store occupies: the pages in use (not the free ones, which SQLite reuses) and the WAL.
pub fn used_bytes(c: &Connection, db_path: &Path) -> Result<u64, StoreError> {
    let (page, count, free) = pages(c)?;
    let mut wal = db_path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    Ok((count - free.min(count)) * page + wal)
}

/// The part of `store.max_db_bytes` left to the write-ahead log: an eighth, between 32 KiB and
/// 4 MiB, at most half. The database's pages get the rest (`max_page_count`); the WAL is kept to
/// its part by checkpoints every half of it and `journal_size_limit`.
pub fn wal_budget(max_bytes: u64) -> u64 {
    (max_bytes / 8).clamp(32 << 10, 4 << 20).min(max_bytes / 2)
}

/// Checkpoints the WAL into the database and truncates it, without waiting: when a reader or writer
/// is busy it does nothing now (the next look tries again). Keeps the WAL inside its part of
/// `store.max_db_bytes` after big transactions and pruning.
pub fn shrink_wal(c: &Connection) -> Result<(), StoreError> {
    c.busy_timeout(Duration::ZERO)?;
    let done = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    c.busy_timeout(BUSY_TIMEOUT)?;
    match done {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            Ok(())
        }
        other => Ok(other?),
    }
}

/// How long a store call waits for the database when another connection writes.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
