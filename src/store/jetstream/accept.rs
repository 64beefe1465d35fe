//! `accept` on JetStream: events, their deliveries, their scan history and their resolves.
//!
//! The order of writes is what makes a 202 safe and a 503 honest:
//! 1. ids seen before: an event whose commit record (`P_seen`) exists was accepted before
//!    ([`Stored::Duplicate`]), and so is a repeat of an id earlier in the same call;
//! 2. for each new event, in order: its scan history (check-and-set, see `history.rs`), then the
//!    resolves it adds (`alerts.rs`), so `previous` and the resolve deliveries are known;
//! 3. every delivery message (`Nats-Msg-Id` = delivery id) and every archive record
//!    (`Nats-Msg-Id` = event id) of the call, published at once, then every acknowledgement awaited:
//!    each one means the stream (with its replicas) has the message;
//! 4. the commit records of the call's events, acknowledged the same way.
//!
//! Only then does `accept` return `Ok` (and the door answer 202). A failure at any step fails the
//! whole call (503): nothing is committed. What step 3 stored is then either deduplicated when the
//! client retries (same message ids, within the streams' duplicate window), or never attempted:
//! the outbox sends only deliveries whose commit record exists (`outbox.rs`, the commit check).
//!
//! An event that cannot be stored for a reason of its own (larger than the cluster's `max_payload`)
//! is refused alone ([`Stored::Refused`]) before anything of it is written.

use std::collections::HashSet;

use async_nats::jetstream::kv;
use futures_util::future::try_join_all;

use super::alerts::Alerts;
use super::cluster::{Cluster, failed, msg_id, to_json, token};
use super::events::Events;
use super::history::History;
use super::outbox::Outbox;
use super::wire::{DeliveryMsg, EventMsg, Seen};
use crate::store::{NewEvent, StoreError, Stored};

/// Room left in a message for its headers.
const HEADROOM: usize = 4096;

pub struct Acceptor {
    cluster: Cluster,
    seen: kv::Store,
}

/// What one new event writes.
struct Plan {
    archive: EventMsg,
    deliveries: Vec<DeliveryMsg>,
}

impl Acceptor {
    pub async fn open(c: &Cluster) -> Result<Acceptor, StoreError> {
        Ok(Acceptor {
            seen: c.bucket(&c.names.bucket("seen")).await?,
            cluster: c.clone(),
        })
    }

    /// Whether event `id` was accepted (committed) before.
    pub async fn seen(&self, id: &str) -> Result<bool, StoreError> {
        self.seen
            .get(token(id))
            .await
            .map(|v| v.is_some())
            .map_err(|e| failed("reading commit records", e))
    }

    /// Whether message `seq` of stream `name` is still stored.
    async fn still_there(&self, name: &str, seq: u64) -> Result<bool, StoreError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match self.cluster.stream(name).await?.get_raw_message(seq).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(false),
            Err(e) => Err(failed("reading back a duplicate", e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn accept(
        &self,
        events: Vec<NewEvent>,
        now: i64,
        history: &History,
        alerts: &Alerts,
        archive: &Events,
        outbox: &Outbox,
    ) -> Result<Vec<Stored>, StoreError> {
        let seen = try_join_all(events.iter().map(|e| self.seen(&e.id))).await?;
        let max = self.cluster.max_payload().saturating_sub(HEADROOM);
        let mut outcomes = Vec::with_capacity(events.len());
        let mut ids: HashSet<&str> = HashSet::new();
        let mut plans: Vec<Plan> = Vec::new();
        for (e, seen) in events.iter().zip(seen) {
            if seen || !ids.insert(&e.id) {
                outcomes.push(Stored::Duplicate);
                continue;
            }
            if e.body.len() > max {
                outcomes.push(Stored::Refused(format!(
                    "the event ({} bytes) does not fit the cluster's message size limit ({} bytes; NATS max_payload)",
                    e.body.len(),
                    self.cluster.max_payload()
                )));
                continue;
            }
            let previous = match &e.history {
                Some(h) => history.record(h, &e.id, now).await?,
                None => None,
            };
            let mut deliveries = e.deliveries.clone();
            if let Some(check) = &e.resolve {
                for r in alerts.resolves(check, &e.id).await? {
                    if !deliveries.iter().any(|d| d.id == r.id) {
                        deliveries.push(r);
                    }
                }
            }
            let deliveries: Vec<DeliveryMsg> = deliveries
                .iter()
                .map(|d| DeliveryMsg::new(d, &e.id, &e.body, previous.as_deref(), now))
                .collect();
            plans.push(Plan {
                archive: EventMsg {
                    id: e.id.clone(),
                    received_at: now,
                    body: super::wire::raw(&e.body),
                    previous,
                    deliveries: deliveries
                        .iter()
                        .map(|d| (d.id.clone(), d.rule.clone(), d.target.clone()))
                        .collect(),
                    matched: !e.matched.is_empty() || !deliveries.is_empty(),
                    rules: e.matched.clone(),
                },
                deliveries,
            });
            outcomes.push(Stored::New);
        }
        // 3. Everything of the call at once, then every acknowledgement.
        let mut sent = Vec::new();
        let mut acks = Vec::new();
        for p in &plans {
            for d in &p.deliveries {
                let (subject, payload) = (d.subject(&self.cluster.names), to_json(d));
                acks.push(
                    self.cluster
                        .publish(subject.clone(), payload.clone(), Some(&msg_id(&d.id)))
                        .await?,
                );
                sent.push((subject, payload, d.id.clone()));
            }
            acks.push(archive.publish(&p.archive).await?);
            sent.push((
                self.cluster.names.event_subject(&p.archive.id),
                to_json(&p.archive),
                p.archive.id.clone(),
            ));
        }
        let acked = try_join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
            .await
            .map_err(|e| failed("storing events (nothing was committed)", e))?;
        // A duplicate within the streams' window is a retry of this very accept, or the same event
        // accepted by another daemon at once: the message is there. Unless it is gone meanwhile
        // (its event was pruned and is accepted again, or its delivery already made): then it is
        // published again under a message id of its own.
        for (ack, (subject, payload, id)) in acked.iter().zip(sent) {
            if ack.duplicate && !self.still_there(&ack.stream, ack.sequence).await? {
                let fresh = msg_id(&format!("{id}.again.{now}"));
                self.cluster
                    .publish_acked(subject, payload, Some(&fresh))
                    .await?;
            }
        }
        // 4. The commit records.
        let commit = to_json(&Seen { at: now });
        try_join_all(plans.iter().map(|p| {
            let v = commit.clone();
            async move { self.seen.put(token(&p.archive.id), v.into()).await }
        }))
        .await
        .map_err(|e| failed("committing events", e))?;
        let mut rang = false;
        for p in &plans {
            outbox.committed(&p.archive.id);
            rang |= !p.deliveries.is_empty();
        }
        if rang {
            outbox.ring().await;
        }
        Ok(outcomes)
    }
}
