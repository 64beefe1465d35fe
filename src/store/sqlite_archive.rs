//! The SQLite store's archive: reading accepted events back with what became of their deliveries,
//! and queueing replays ([`super::Store::events`], `event_get`, `replay_enqueue`).
//!
//! An event row carries `matched` and `routed` (written by `accept`, see [`routed`]); a delivery's
//! state is read from where it is now: the outbox (pending), the dead letters, the suppressed list, a
//! digest group, or nowhere (done: it left the outbox by ack). Pages are ordered by `(received_at,
//! rowid)`, one query per class on the `(matched, received_at)` index, merged; the cursor is that
//! pair, so pages are stable while new events arrive.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{
    ArchivedEvent, DeliveryRecord, DeliveryState, EventPage, EventQuery, ReplayDelivery, StoreError,
};

/// What ingest routed for one event, as `events.routed` holds it: the rules, and each delivery as
/// `[id, rule, target]`, or `[id, rule, target, replay]` for one a replay added.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Routed<'a> {
    #[serde(borrow)]
    rules: Vec<&'a str>,
    #[serde(borrow)]
    deliveries: Vec<Vec<&'a str>>,
}

/// The `routed` JSON of an event: the rules it matched and its deliveries (id, rule, target).
pub fn routed<'a>(
    rules: &'a [String],
    deliveries: impl Iterator<Item = (&'a String, &'a String, &'a String)>,
) -> String {
    let r = Routed {
        rules: rules.iter().map(String::as_str).collect(),
        deliveries: deliveries
            .map(|(i, r, t)| vec![i.as_str(), r.as_str(), t.as_str()])
            .collect(),
    };
    serde_json::to_string(&r).unwrap_or_default()
}

/// The biggest page served at once.
const MAX_PAGE: usize = 1000;

/// Reads one page of the archive.
pub fn page(c: &Connection, q: &EventQuery) -> Result<EventPage, StoreError> {
    let limit = q.limit.clamp(1, MAX_PAGE);
    let after = match q.after.as_deref() {
        Some(text) => Some(parse_cursor(text)?),
        None => None,
    };
    let (since, until) = (
        q.since_ms.unwrap_or(i64::MIN),
        q.until_ms.unwrap_or(i64::MAX),
    );
    let sql = if q.newest_first {
        "SELECT received_at, rowid, id, matched, routed, CASE WHEN ?7 THEN body END FROM events
         WHERE matched = ?1 AND received_at >= ?2 AND received_at < ?3 AND (received_at, rowid) < (?4, ?5)
         ORDER BY received_at DESC, rowid DESC LIMIT ?6"
    } else {
        "SELECT received_at, rowid, id, matched, routed, CASE WHEN ?7 THEN body END FROM events
         WHERE matched = ?1 AND received_at >= ?2 AND received_at < ?3 AND (received_at, rowid) > (?4, ?5)
         ORDER BY received_at, rowid LIMIT ?6"
    };
    let start = after.unwrap_or(if q.newest_first {
        (i64::MAX, i64::MAX)
    } else {
        (i64::MIN, i64::MIN)
    });
    type Row = ((i64, i64), String, i64, Option<String>, Option<String>);
    let mut rows: Vec<Row> = Vec::new();
    let mut st = c.prepare_cached(sql)?;
    for class in [0i64, 1] {
        if q.matched.is_some_and(|m| m != (class == 1)) {
            continue;
        }
        let found = st.query_map(
            params![
                class,
                since,
                until,
                start.0,
                start.1,
                limit as i64,
                q.bodies
            ],
            |r| {
                Ok((
                    (r.get(0)?, r.get(1)?),
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )?;
        for row in found {
            rows.push(row?);
        }
    }
    rows.sort_by_key(|r| r.0);
    if q.newest_first {
        rows.reverse();
    }
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = match rows.last() {
        Some(r) if more || rows.len() == limit => Some(format!("{}:{}", r.0.0, r.0.1)),
        _ => None,
    };
    let mut events = Vec::with_capacity(rows.len());
    for ((received_at_ms, _), id, matched, routed, body) in rows {
        events.push(archived(c, id, received_at_ms, matched != 0, routed, body)?);
    }
    Ok(EventPage { events, next })
}

fn parse_cursor(text: &str) -> Result<(i64, i64), StoreError> {
    text.split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| StoreError::NotFound(format!("page position {text:?}")))
}

/// One archived event with its body.
pub fn get(c: &Connection, id: &str) -> Result<ArchivedEvent, StoreError> {
    let row: Option<(i64, i64, Option<String>, String)> = c
        .query_row(
            "SELECT received_at, matched, routed, body FROM events WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let (at, matched, routed, body) = row.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    archived(c, id.to_owned(), at, matched != 0, routed, Some(body))
}

/// An event row with the states of its deliveries: those routed at ingest, then the others still in
/// the store (resolves, replays).
fn archived(
    c: &Connection,
    id: String,
    received_at_ms: i64,
    matched: bool,
    routed: Option<String>,
    body: Option<String>,
) -> Result<ArchivedEvent, StoreError> {
    let parsed: Routed<'_> = routed
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let mut deliveries = Vec::new();
    for d in &parsed.deliveries {
        let [did, rule, target, rest @ ..] = d.as_slice() else {
            continue; // not written by this store
        };
        let (state, _) = state_of(c, did)?;
        deliveries.push(DeliveryRecord {
            id: (*did).to_owned(),
            rule: (*rule).to_owned(),
            target: (*target).to_owned(),
            replay: rest.first().map(|r| (*r).to_owned()),
            state,
        });
    }
    let mut others = c.prepare_cached(
        "SELECT id, rule, target FROM outbox WHERE event_id = ?1
         UNION SELECT id, rule, target FROM dead_letters WHERE event_id = ?1
         UNION SELECT id, rule, target FROM suppressed WHERE event_id = ?1
         UNION SELECT m.delivery_id, g.rule, g.target FROM group_members m
               JOIN groups g ON g.id = m.group_id WHERE m.event_id = ?1
         ORDER BY 2, 3, 1",
    )?;
    let rows = others.query_map(params![id], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
    })?;
    for row in rows {
        let (did, rule, target): (String, String, String) = row?;
        if deliveries.iter().any(|d| d.id == did) {
            continue;
        }
        let (state, replay) = state_of(c, &did)?;
        deliveries.push(DeliveryRecord {
            id: did,
            rule,
            target,
            replay,
            state,
        });
    }
    Ok(ArchivedEvent {
        id,
        received_at_ms,
        matched,
        rules: parsed.rules.iter().map(|r| (*r).to_owned()).collect(),
        deliveries,
        body,
    })
}

/// Where delivery `id` is now, and its replay id when it is still in the outbox or dead letters.
fn state_of(c: &Connection, id: &str) -> Result<(DeliveryState, Option<String>), StoreError> {
    let pending: Option<(u32, i64, Option<String>, Option<String>)> = c
        .prepare_cached(
            "SELECT attempts, next_attempt_at, last_error, replay FROM outbox WHERE id = ?1",
        )?
        .query_row(params![id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    if let Some((attempts, next_attempt_at_ms, last_error, replay)) = pending {
        let state = DeliveryState::Pending {
            attempts,
            next_attempt_at_ms,
            last_error,
        };
        return Ok((state, replay));
    }
    let dead: Option<(u32, String, Option<String>)> = c
        .prepare_cached("SELECT attempts, reason, replay FROM dead_letters WHERE id = ?1")?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if let Some((attempts, reason, replay)) = dead {
        return Ok((DeliveryState::DeadLetter { attempts, reason }, replay));
    }
    let held: Option<(String, String)> = c
        .prepare_cached("SELECT reason, detail FROM suppressed WHERE id = ?1")?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((reason, detail)) = held {
        return Ok((DeliveryState::Suppressed { reason, detail }, None));
    }
    let grouped = c
        .prepare_cached("SELECT 1 FROM group_members WHERE delivery_id = ?1")?
        .exists(params![id])?;
    Ok((
        if grouped {
            DeliveryState::Grouped
        } else {
            DeliveryState::Done
        },
        None,
    ))
}

/// Queues replayed deliveries (see the Store contract), inside the caller's transaction; returns how
/// many were new.
pub fn enqueue(
    tx: &Connection,
    deliveries: &[ReplayDelivery],
    now: i64,
) -> Result<u64, StoreError> {
    let mut added = 0;
    {
        let mut put = tx.prepare_cached(
            "INSERT OR IGNORE INTO outbox (id, event_id, rule, target, input, created_at, next_attempt_at, replay)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7
             WHERE EXISTS (SELECT 1 FROM events WHERE id = ?2)
               AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE id = ?1)
               AND NOT EXISTS (SELECT 1 FROM suppressed WHERE id = ?1)",
        )?;
        // An event a current rule matches is kept as long as matched events are, and its record
        // lists the replayed delivery (so `events show` tells what became of it once sent).
        let mut keep = tx.prepare_cached(
            "UPDATE events SET matched = 1,
                 routed = json_insert(COALESCE(routed, '{\"rules\":[],\"deliveries\":[]}'),
                                      '$.deliveries[#]', json_array(?2, ?3, ?4, ?5))
             WHERE id = ?1",
        )?;
        for d in deliveries {
            let n = put.execute(params![
                d.id, d.event_id, d.rule, d.target, d.input, now, d.replay
            ])?;
            if n > 0 {
                keep.execute(params![d.event_id, d.id, d.rule, d.target, d.replay])?;
                added += 1;
            }
        }
    }
    Ok(added)
}
