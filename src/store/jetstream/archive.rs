//! Reading the archive back (`scanbridge events`, `scanbridge replay`, the Store contract's
//! `events` and `event_get`): pages of `P_EVENTS` with what became of each delivery (`records.rs`).
//!
//! Order: the archive's stream sequence, which is the order events were stored in (by every
//! daemon of the cluster). It is the order of acceptance times too, up to the clocks of different
//! daemons; the time window (`since`, `until`) is applied to each event's own acceptance time, and
//! a scan stops [`SKEW`] past the window's edge, so daemons whose clocks disagree by less than that
//! lose no event at a page's edge. The cursor of a page is the stream sequence of its last event,
//! so pages are stable while new events arrive (they get higher sequences) and while old ones are
//! pruned.
//!
//! Only committed events are listed (an archive record whose accept failed was answered 503).
//! Messages are read in chunks through short-lived ordered consumers ([`Cluster::scan`]), newest
//! first by reading the chunks from the end backwards.

use async_nats::jetstream::consumer::DeliverPolicy;
use futures_util::future::try_join_all;

use super::cluster::{Cluster, failed, from_json};
use super::outbox::Outbox;
use super::records::Records;
use super::wire::EventMsg;
use crate::store::{ArchivedEvent, EventPage, EventQuery, StoreError};

/// The biggest page served at once (as the SQLite backend).
const MAX_PAGE: usize = 1000;
/// Messages read per chunk.
const CHUNK: u64 = 256;
/// How far past the window's edge (in acceptance time) a scan goes before it stops.
pub const SKEW: i64 = 60_000;

/// One archive message: its sequence and the event, if it parses.
type Read = (u64, EventMsg);

/// The messages of `P_EVENTS` from `from` to `to` (inclusive), in stream order; unreadable ones
/// are logged and skipped (`store check` reports them).
pub async fn chunk(c: &Cluster, from: u64, to: u64) -> Result<Vec<Read>, StoreError> {
    if to < from {
        return Ok(Vec::new());
    }
    let raw = c
        .scan(
            &c.names.events_stream(),
            DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            (to - from + 1) as usize,
        )
        .await?;
    Ok(raw
        .into_iter()
        .filter(|(seq, _)| *seq <= to)
        .filter_map(
            |(seq, p)| match from_json::<EventMsg>("archived event", &p) {
                Ok(e) => Some((seq, e)),
                Err(e) => {
                    tracing::error!(seq, error = %e, "unreadable event in the archive; skipped");
                    None
                }
            },
        )
        .collect())
}

/// The archive's first and last sequence (None: empty).
pub async fn bounds(c: &Cluster) -> Result<Option<(u64, u64)>, StoreError> {
    let name = c.names.events_stream();
    let state = c
        .stream(&name)
        .await?
        .get_info()
        .await
        .map_err(|e| failed("reading the archive", e))?
        .state;
    Ok((state.messages > 0).then_some((state.first_sequence.max(1), state.last_sequence)))
}

/// The Store contract's `events`.
pub async fn page(
    c: &Cluster,
    records: &Records,
    outbox: &Outbox,
    q: &EventQuery,
) -> Result<EventPage, StoreError> {
    let limit = q.limit.clamp(1, MAX_PAGE);
    let after = match q.after.as_deref() {
        Some(text) => Some(text.parse::<u64>().map_err(|_| StoreError::NotFound {
            what: "page position",
            id: text.to_owned(),
        })?),
        None => None,
    };
    let Some((first, last)) = bounds(c).await? else {
        return Ok(EventPage::default());
    };
    let (since, until) = (
        q.since_ms.unwrap_or(i64::MIN),
        q.until_ms.unwrap_or(i64::MAX),
    );
    let mut found: Vec<(u64, EventMsg, bool)> = Vec::new();
    // The next chunk's edge, moving forwards or backwards.
    let mut at = match (q.newest_first, after) {
        (false, None) => first,
        (false, Some(a)) => a.saturating_add(1).max(first),
        (true, None) => last,
        (true, Some(a)) => a.saturating_sub(1).min(last),
    };
    'scan: while found.len() < limit && at >= first && at <= last && at > 0 {
        let (from, to) = if q.newest_first {
            (at.saturating_sub(CHUNK - 1).max(first), at)
        } else {
            (at, at.saturating_add(CHUNK - 1).min(last))
        };
        let mut read = chunk(c, from, to).await?;
        if q.newest_first {
            read.reverse();
        }
        // Committed, and the replays of each (they make an event matched).
        let checks = try_join_all(read.iter().map(|(_, e)| async move {
            let committed = records.committed(&e.id).await?;
            let (_, replays) = records.replays_of(&e.id).await?;
            Ok::<_, StoreError>((committed, !replays.deliveries.is_empty()))
        }))
        .await?;
        for ((seq, e), (committed, replayed)) in read.into_iter().zip(checks) {
            let past_edge = if q.newest_first {
                e.received_at < since.saturating_sub(SKEW)
            } else {
                e.received_at >= until.saturating_add(SKEW)
            };
            if past_edge {
                break 'scan;
            }
            let matched = e.is_matched(replayed);
            let wanted = committed
                && e.received_at >= since
                && e.received_at < until
                && q.matched.is_none_or(|m| m == matched);
            if wanted {
                found.push((seq, e, matched));
                if found.len() == limit {
                    break 'scan;
                }
            }
        }
        at = if q.newest_first {
            from.saturating_sub(1)
        } else {
            to.saturating_add(1)
        };
    }
    let next = (found.len() == limit)
        .then(|| found.last().map(|(seq, _, _)| seq.to_string()))
        .flatten();
    let events = try_join_all(
        found
            .into_iter()
            .map(|(_, e, matched)| archived(records, outbox, e, matched, q.bodies)),
    )
    .await?;
    Ok(EventPage { events, next })
}

/// The Store contract's `event_get`.
pub async fn get(
    records: &Records,
    outbox: &Outbox,
    id: &str,
) -> Result<ArchivedEvent, StoreError> {
    let (_, e) = records
        .find(id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "event",
            id: id.to_owned(),
        })?;
    let (_, replays) = records.replays_of(id).await?;
    let matched = e.is_matched(!replays.deliveries.is_empty());
    archived(records, outbox, e, matched, true).await
}

async fn archived(
    records: &Records,
    outbox: &Outbox,
    e: EventMsg,
    matched: bool,
    bodies: bool,
) -> Result<ArchivedEvent, StoreError> {
    let deliveries = records.deliveries(&e, outbox).await?;
    Ok(ArchivedEvent {
        received_at_ms: e.received_at,
        matched,
        rules: e.rules.clone(),
        deliveries,
        body: bodies.then(|| e.body.get().to_owned()),
        id: e.id,
    })
}
