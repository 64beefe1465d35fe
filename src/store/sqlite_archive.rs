//! The SQLite store's archive: reading accepted events back with what became of their deliveries,
//! and queueing replays ([`super::Store::events`], `event_get`, `replay_enqueue`).
//!
//! An event row carries `matched` and `routed` (written by `accept`, see [`routed`]); a delivery's
//! state is read from where it is now: the outbox (pending), `delivered` (acked, or sent in a
//! digest), the dead letters, the suppressed list or a digest group. Pages are ordered by `(received_at,
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
        .ok_or_else(|| StoreError::NotFound {
            what: "page position",
            id: text.to_owned(),
        })
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
    let (at, matched, routed, body) = row.ok_or_else(|| StoreError::NotFound {
        what: "event",
        id: id.to_owned(),
    })?;
    archived(c, id.to_owned(), at, matched != 0, routed, Some(body))
}

/// An event row with the states of its deliveries ([`deliveries_of`]); a delivery
/// whose replay its row does not carry (a suppressed one) takes it from the routing record.
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
    let mut deliveries = deliveries_of(c, &id)?;
    for d in deliveries.iter_mut().filter(|d| d.replay.is_none()) {
        d.replay = parsed
            .deliveries
            .iter()
            .find(|r| r.first() == Some(&d.id.as_str()))
            .and_then(|r| r.get(3))
            .map(|r| (*r).to_owned());
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

/// What became of every delivery of `event_id` (see [`DeliveryState`]), by rule, target and id.
pub fn deliveries_of(c: &Connection, event_id: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
    type Make = fn(&rusqlite::Row<'_>) -> rusqlite::Result<DeliveryState>;
    let sources: [(&str, Make); 5] = [
        (
            "SELECT id, rule, target, attempts, next_attempt_at, last_error, replay FROM outbox
             WHERE event_id = ?1",
            |r| {
                Ok(DeliveryState::Pending {
                    attempts: r.get(3)?,
                    next_attempt_at_ms: r.get(4)?,
                    last_error: r.get(5)?,
                })
            },
        ),
        (
            "SELECT id, rule, target, attempts, at, digest_event_id, replay FROM delivered
             WHERE event_id = ?1",
            |r| {
                Ok(match r.get::<_, Option<String>>(5)? {
                    Some(digest_event_id) => DeliveryState::InDigest {
                        digest_event_id,
                        at_ms: r.get(4)?,
                    },
                    None => DeliveryState::Delivered {
                        attempts: r.get(3)?,
                        at_ms: r.get(4)?,
                    },
                })
            },
        ),
        (
            "SELECT m.delivery_id, g.rule, g.target, m.group_id, m.added_at, NULL AS replay
             FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.event_id = ?1",
            |r| {
                Ok(DeliveryState::Grouped {
                    group_id: r.get(3)?,
                    at_ms: r.get(4)?,
                })
            },
        ),
        (
            "SELECT id, rule, target, attempts, failed_at, reason, replay FROM dead_letters
             WHERE event_id = ?1",
            |r| {
                Ok(DeliveryState::DeadLettered {
                    attempts: r.get(3)?,
                    at_ms: r.get(4)?,
                    reason: r.get(5)?,
                })
            },
        ),
        (
            "SELECT id, rule, target, reason, detail, at, NULL AS replay FROM suppressed
             WHERE event_id = ?1",
            |r| {
                Ok(DeliveryState::Suppressed {
                    reason: r.get(3)?,
                    detail: r.get(4)?,
                    at_ms: r.get(5)?,
                })
            },
        ),
    ];
    let mut out = Vec::new();
    for (sql, make) in sources {
        let mut st = c.prepare_cached(sql)?;
        let rows = st.query_map(params![event_id], |r| {
            Ok(DeliveryRecord {
                id: r.get(0)?,
                rule: r.get(1)?,
                target: r.get(2)?,
                replay: r.get("replay")?,
                state: make(r)?,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    out.sort_by(|a, b| (&a.rule, &a.target, &a.id).cmp(&(&b.rule, &b.target, &b.id)));
    Ok(out)
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
