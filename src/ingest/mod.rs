//! Ingest: turning request bodies into validated, routed, durably stored events.
//!
//! [`Ingestor::ingest`] is the one path every door uses (`POST /events`, AWS PutEvents, `--stdin`):
//! validate each event, route it with the live rule set, store the valid ones with their deliveries in
//! one transaction, then wake the worker. It returns only after the store has committed, so a caller
//! that answers "accepted" after it never acknowledges anything that is not durable. Invalid events
//! are rejected one by one (index-aligned results); a store failure fails the whole call. One event
//! whose processing fails inside scanbridge (a panic while routing it, a value the store refuses) is
//! rejected alone with the reason ([`Rejection::Internal`]); it never fails the events beside it.
//! While there is no room for new events ([`crate::room`]: the disk is full, or pending work fills
//! `store.max_db_bytes`) the whole call fails with [`StoreError::Full`] before anything is done, and a
//! store write that fails for want of room wakes the retention task.
//!
//! The doors: [`http`] (the plain door: `POST /events`, health, metrics), [`aws`] (the AWS JSON 1.1
//! door: PutEvents, TestEventPattern, SigV4 credentials), [`stdin`] (NDJSON on standard input). The HTTP
//! doors' parts: [`server`] (accept loop: connection limit, header timeout, TLS from [`tls`]),
//! [`rate`] (per-client limit), [`auth`] (tokens), [`body`] (bounded body reads).

use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::Notify;

use crate::alerting::{Fate, SharedClock};
use crate::event::{self, EnvelopeRules, Handoff, Incoming, Rejection};
use crate::inbox::Inbox;
use crate::metrics::Metrics;
use crate::room::Room;
use crate::router::RouterHandle;
use crate::store::{NewDelivery, NewEvent, Store, StoreError, Stored};

mod answer;
pub mod auth;
pub mod aws;
pub mod body;
pub mod http;
pub mod rate;
pub mod reports;
pub mod server;
pub mod sigv4;
pub mod sns;
pub mod stdin;
pub mod tls;

/// Shared by every ingest door.
#[derive(Clone)]
pub struct Ingestor {
    pub router: Arc<RouterHandle>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub envelope: EnvelopeRules,
    pub wake: Arc<Notify>,
    /// The daemon's clock: an event's acceptance time (and its `time` when it has none).
    pub clock: SharedClock,
    /// Where the parsed views of stored events go for the worker.
    pub handoff: Arc<Handoff>,
    /// Where the deliveries leased by the accepting commit go for the worker.
    pub inbox: Arc<Inbox>,
    /// Whether there is room for new events ([`crate::room`]): refused with 503 when there is not.
    pub room: Arc<Room>,
}

/// One event's fate: accepted (maybe as a duplicate of one accepted before), or why it was rejected.
pub type ItemResult = Result<Accepted, Rejection>;

/// An event stored durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    /// The id was accepted before: this copy was not routed again (client retries stay idempotent).
    pub duplicate: bool,
}

impl Ingestor {
    /// Validates, routes and durably stores `items` (raw JSON texts or events a door built, or
    /// already-known rejections). Each event is parsed once; its canonical bytes are routed and
    /// stored, and its parsed view is handed to the worker after the store committed it.
    ///
    /// Validation, matching and the history update are CPU work (seconds for thousands of wildcard
    /// rules against a large event): they run on the bounded compute pool ([`crate::compute`]), never
    /// on an async worker thread; only the store call is awaited here.
    pub async fn ingest(
        &self,
        items: Vec<Result<Incoming, Rejection>>,
    ) -> Result<Vec<ItemResult>, StoreError> {
        let now = self.clock.now_ms();
        self.metrics.received(items.len() as u64);
        if let Some(why) = self.room.refusal() {
            return Err(StoreError::Full(why.to_string()));
        }
        let (router, envelope, metrics) = (
            self.router.current(),
            self.envelope.clone(),
            self.metrics.clone(),
        );
        let (mut results, prepared) =
            crate::compute::run(move || prepare(items, &router, &envelope, &metrics, now))
                .await
                .map_err(|p| StoreError::Join(p.to_string()))?;
        // The deliveries the commit cannot lease at once (no free slot, or added by a resolve
        // check) wait for the worker's lease read: wake it for them.
        let mut unleased = prepared.iter().any(|(e, _)| e.resolve.is_some());
        if !prepared.is_empty() {
            let (batch, views): (Vec<NewEvent>, Vec<_>) = prepared.into_iter().unzip();
            // On a task of its own: a client that goes away cannot cancel it between the commit
            // and the handover (the leases and slots taken would be stranded).
            let me = self.clone();
            let (stored, more) = tokio::spawn(async move { me.commit(batch, views, now).await })
                .await
                .map_err(|e| StoreError::Join(e.to_string()))??;
            unleased |= more;
            let mut stored = stored.into_iter();
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                match stored.next() {
                    Some(Stored::Duplicate) => {
                        if let Ok(a) = r {
                            a.duplicate = true;
                            tracing::info!(event = %a.id, "event id accepted before; not routed again");
                        }
                    }
                    Some(Stored::Refused(why)) => *r = Err(Rejection::Internal(why)),
                    Some(Stored::New) | None => {}
                }
            }
        }
        let accepted = results.iter().filter(|r| r.is_ok()).count() as u64;
        self.metrics.accepted(accepted);
        self.metrics.rejected(results.len() as u64 - accepted);
        if unleased {
            self.wake.notify_one();
        }
        Ok(results)
    }
}

impl Ingestor {
    /// Stores `batch`, leasing as many of its deliveries as the worker has free slots for in the
    /// same commit, then hands the parsed views and the leased deliveries to the worker. Returns the
    /// outcomes and whether some deliveries were left for the worker's lease read.
    async fn commit(
        &self,
        batch: Vec<NewEvent>,
        views: Vec<Option<(Arc<Value>, usize)>>,
        now: i64,
    ) -> Result<(Vec<Stored>, bool), StoreError> {
        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
        let per_event: Vec<usize> = batch.iter().map(|e| e.deliveries.len()).collect();
        let deliveries: usize = per_event.iter().sum();
        let slots = self
            .inbox
            .reserve_waiting(deliveries, crate::inbox::PATIENCE)
            .await;
        let accepted = self
            .store
            .accept_leasing(batch, now, self.inbox.lease(), slots)
            .await;
        let (stored, fresh) = match accepted {
            Ok(got) => got,
            Err(e) => {
                self.inbox.free(slots);
                if e.is_full() {
                    self.room.hit_full(); // make room, or refuse until there is
                }
                return Err(e);
            }
        };
        self.inbox.free(slots - fresh.len());
        // Deliveries stored and not leased (a duplicate's were not stored) wait for a lease read.
        let new: usize = per_event
            .iter()
            .zip(&stored)
            .filter(|(_, s)| **s == Stored::New)
            .map(|(n, _)| n)
            .sum();
        let more = fresh.len() < new;
        if more {
            self.inbox.set_backlog(true);
        }
        for ((id, view), s) in ids.iter().zip(views).zip(&stored) {
            if let (Stored::New, Some((value, len))) = (s, view) {
                self.handoff.put(id, value, len);
            }
        }
        self.inbox.put(fresh);
        Ok((stored, more))
    }
}

/// An event ready to store, and its parsed view for the worker (when it has deliveries).
type Prepared = (NewEvent, Option<(Arc<Value>, usize)>);

/// Validates and routes every item: index-aligned results, and the events to store.
fn prepare(
    items: Vec<Result<Incoming, Rejection>>,
    router: &crate::router::Router,
    envelope: &EnvelopeRules,
    metrics: &Metrics,
    now: i64,
) -> (Vec<ItemResult>, Vec<Prepared>) {
    let mut results = Vec::with_capacity(items.len());
    let mut batch = Vec::new();
    for outcome in isolate(items, |it| one(it, router, envelope, now)) {
        match outcome {
            Ok(p) => {
                // Matches, not deliveries: a rule with three targets matched the event once.
                let mut rules: Vec<&str> = p.0.deliveries.iter().map(|d| d.rule.as_str()).collect();
                rules.sort_unstable();
                rules.dedup();
                for rule in rules {
                    metrics.rule_matched(rule);
                }
                results.push(Ok(Accepted {
                    id: p.0.id.clone(),
                    duplicate: false,
                }));
                batch.push(p);
            }
            Err(why) => results.push(Err(why)),
        }
    }
    (results, batch)
}

/// Runs `each` on every item, one at a time: an item whose processing panics is rejected alone
/// ([`Rejection::Internal`], with the panic's message), never the batch. This is the last line of
/// defence; the property test in `exercise.rs` looks for the panics themselves.
fn isolate<I, T>(
    items: Vec<Result<I, Rejection>>,
    each: impl Fn(I) -> Result<T, Rejection>,
) -> Vec<Result<T, Rejection>> {
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            item.and_then(|it| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| each(it))).unwrap_or_else(
                    |panic| {
                        let why = crate::compute::panic_message(&*panic);
                        tracing::error!(index, error = %why, "processing an event panicked; that event alone is rejected");
                        Err(Rejection::Internal(why))
                    },
                )
            })
        })
        .collect()
}

/// One event: validated, routed, its history update computed.
fn one(
    item: Incoming,
    router: &crate::router::Router,
    envelope: &EnvelopeRules,
    now: i64,
) -> Result<Prepared, Rejection> {
    let ev = event::accept(item, envelope, now)?;
    let (deliveries, matched) = router.route_matching(&ev);
    let history = crate::alerting::history_update(&ev.value);
    // Rules with notify_resolved: their deliveries trigger the event's alert, and the check says
    // which open alerts the store resolves with this event.
    let plan =
        crate::alerting::resolve_plan(router.tracking(), &ev.value, history.as_ref(), &matched);
    let deliveries: Vec<NewDelivery> = deliveries
        .into_iter()
        .filter_map(|d| {
            let alert = match plan.fate(&d.rule) {
                Fate::Plain => None,
                Fate::Trigger(mark) => Some(mark),
                Fate::Drop => return None,
            };
            Some(NewDelivery {
                id: d.id,
                rule: d.rule,
                target: d.target,
                input: d.input.map(|i| i.to_string()),
                alert,
            })
        })
        .collect();
    let view = (!deliveries.is_empty()).then(|| (Arc::new(ev.value), ev.body.len()));
    Ok((
        NewEvent {
            id: ev.id,
            body: ev.body,
            matched: matched.iter().map(|r| (*r).to_owned()).collect(),
            deliveries,
            history,
            resolve: plan.check,
        },
        view,
    ))
}

/// How a `POST /events` body was shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One JSON object (or one invalid document).
    Single,
    /// A JSON array or NDJSON.
    Batch,
}

/// A body that cannot be read as events at all.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BodyError {
    #[error("body is not UTF-8: invalid byte at offset {offset}")]
    NotUtf8 { offset: usize },
    #[error("body is empty")]
    Empty,
    #[error("body is not valid JSON: {0}")]
    Malformed(String),
}

/// Splits a body into raw events: one JSON document, a JSON array, or NDJSON (one event per line).
pub fn split_body(body: &[u8]) -> Result<(Shape, Vec<Result<String, Rejection>>), BodyError> {
    let text = std::str::from_utf8(body).map_err(|e| BodyError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(BodyError::Empty);
    }
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(trimmed).map_err(|e| BodyError::Malformed(e.to_string()))?;
        return Ok((
            Shape::Batch,
            items.into_iter().map(|r| Ok(r.get().to_owned())).collect(),
        ));
    }
    match serde_json::from_str::<&RawValue>(trimmed) {
        Ok(one) => Ok((Shape::Single, vec![Ok(one.get().to_owned())])),
        Err(e) => {
            let lines: Vec<&str> = trimmed
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            if lines.len() > 1 {
                Ok((
                    Shape::Batch,
                    lines.into_iter().map(|l| Ok(l.to_owned())).collect(),
                ))
            } else {
                Err(BodyError::Malformed(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::ManualClock;
    use crate::router::Router;
    use crate::store::sqlite::SqliteStore;
    use std::time::Duration;

    #[tokio::test]
    async fn acceptance_time_comes_from_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), true).unwrap());
        let known = crate::rules::Known {
            targets: ["hook".to_owned()].into(),
            ..Default::default()
        };
        let rule = crate::rules::parse_rule(
            &serde_json::json!({"name": "r", "event_pattern": {"source": ["ci"]}, "targets": ["hook"]}),
            &known,
        )
        .unwrap();
        let now = 1_700_000_000_000;
        let ingestor = Ingestor {
            router: Arc::new(RouterHandle::new(Router::new(vec![rule], Arc::default()))),
            store: store.clone(),
            metrics: Arc::default(),
            envelope: EnvelopeRules {
                max_event_bytes: 4096,
                account: "1".into(),
                region: "r".into(),
            },
            wake: Arc::default(),
            clock: ManualClock::at(now),
            handoff: Arc::default(),
            inbox: Arc::new(crate::inbox::Inbox::none()),
            room: Arc::default(),
        };
        let raw = r#"{"id": "e1", "source": "ci", "detail-type": "t", "detail": {}}"#;
        let results = ingestor
            .ingest(vec![Ok(Incoming::Text(raw.to_owned()))])
            .await
            .unwrap();
        assert!(results[0].is_ok());
        let lease = Duration::from_secs(60);
        assert!(
            store.lease(1, lease, now - 1).await.unwrap().is_empty(),
            "due from the acceptance time on, not before"
        );
        let d = store.lease(1, lease, now).await.unwrap().pop().unwrap();
        assert_eq!(d.created_at_ms, now);
        let event: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(
            event["time"], "2023-11-14T22:13:20Z",
            "the missing time is the clock's"
        );
    }

    #[test]
    fn a_panic_while_processing_one_event_rejects_that_event_only() {
        let items = vec![
            Ok("good-1".to_owned()),
            Ok("poison".to_owned()),
            Err(Rejection::NotObject),
            Ok("good-2".to_owned()),
        ];
        let results = isolate(items, |raw: String| {
            assert!(raw != "poison", "a bug reached by {raw}");
            Ok(raw)
        });
        let ids: Vec<&str> = results.iter().flatten().map(String::as_str).collect();
        assert_eq!(ids, ["good-1", "good-2"]);
        assert!(results[0].is_ok() && results[3].is_ok());
        assert_eq!(results[2], Err(Rejection::NotObject));
        let Err(Rejection::Internal(why)) = &results[1] else {
            panic!("{:?}", results[1])
        };
        assert!(why.contains("a bug reached by poison"), "{why}");
        assert!(
            results[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("other events of the request are not affected")
        );
    }

    #[test]
    fn shapes() {
        let (s, items) = split_body(br#" {"a":1} "#).unwrap();
        assert_eq!((s, items.len()), (Shape::Single, 1));
        let (s, items) = split_body(br#"[{"a":1}, {"b":2}]"#).unwrap();
        assert_eq!((s, items.len()), (Shape::Batch, 2));
        assert_eq!(items[1].as_ref().unwrap(), r#"{"b":2}"#);
        let (s, items) = split_body(b"{\"a\":1}\n\n{oops\n{\"c\":3}\n").unwrap();
        assert_eq!((s, items.len()), (Shape::Batch, 3));
        assert_eq!(split_body(b"  "), Err(BodyError::Empty));
        assert!(matches!(split_body(b"{oops"), Err(BodyError::Malformed(_))));
        assert_eq!(
            split_body(&[0xff, 0xfe]),
            Err(BodyError::NotUtf8 { offset: 0 })
        );
        assert_eq!(
            split_body(b"{\"a\": \"\xff\"}"),
            Err(BodyError::NotUtf8 { offset: 7 })
        );
    }
}
