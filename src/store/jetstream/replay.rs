//! Replays on JetStream (`scanbridge replay`, the Store contract's `replay_enqueue`): deliveries of
//! archived events queued again, each with its replay id.
//!
//! A replayed delivery is a delivery message like any other (the event's body embedded, its
//! `previous` as stamped at ingest, no alert mark), with `replay` set, published into `P_OUTBOX`
//! without a commit check (its event is committed: it is read from the archive), and then listed
//! among the event's replays (`records.rs`, `P_replays`), so that `events show` and the console
//! tell what became of it and retention keeps the event while it is pending. The replay id rides in
//! the message, so it survives dead letters and redrives and comes back in `Leased::replay`.
//!
//! Idempotent on the delivery id, as the SQLite backend: an id listed already whose delivery is
//! pending, dead-lettered, suppressed or waiting in a digest group is skipped; one that was
//! delivered is queued again (its state cleared: pending). Ids of events the archive no longer
//! holds are skipped. The first publish of an id uses the id as `Nats-Msg-Id` (so a caller's retry
//! after a failure half way is deduplicated by the stream); a queueing again gets a message id of
//! its own, so the stream's deduplication never swallows it.

use std::collections::BTreeMap;

use super::cluster::{Cluster, msg_id, to_json};
use super::outbox::Outbox;
use super::records::Records;
use super::wire::{DeliveryMsg, ReplayRef};
use crate::store::{DeliveryState, ReplayDelivery, StoreError};

/// The Store contract's `replay_enqueue`; returns how many were queued.
pub async fn enqueue(
    c: &Cluster,
    records: &Records,
    outbox: &Outbox,
    deliveries: Vec<ReplayDelivery>,
    now: i64,
) -> Result<u64, StoreError> {
    let mut by_event: BTreeMap<String, Vec<ReplayDelivery>> = BTreeMap::new();
    for d in deliveries {
        by_event.entry(d.event_id.clone()).or_default().push(d);
    }
    let mut added = 0;
    for (event_id, ds) in by_event {
        let Some((_, event)) = records.find(&event_id).await? else {
            continue; // pruned, or never accepted
        };
        let (_, replays) = records.replays_of(&event_id).await?;
        let mut listed = Vec::new();
        let mut acks = Vec::new();
        for d in ds {
            let known = replays.deliveries.iter().any(|r| r.id == d.id)
                || event.deliveries.iter().any(|(id, _, _)| *id == d.id);
            let again = if known {
                match records.state_of(&event_id, &d.id).await? {
                    Some(DeliveryState::Delivered { .. } | DeliveryState::InDigest { .. }) => true,
                    _ => continue, // pending, dead-lettered, suppressed or grouped
                }
            } else {
                false
            };
            if again {
                records.clear(&event_id, &d.id).await?;
            }
            let m = DeliveryMsg {
                id: d.id.clone(),
                event_id: event_id.clone(),
                rule: d.rule.clone(),
                target: d.target.clone(),
                input: d.input.clone(),
                created_at: now,
                previous: event.previous.clone(),
                alert: None,
                commit: false,
                replay: Some(d.replay.clone()),
                body: event.body.clone(),
            };
            let id = match again {
                false => msg_id(&d.id),
                true => msg_id(&format!("{}.again.{now}", d.id)),
            };
            acks.push(
                c.publish(m.subject(&c.names), to_json(&m), Some(&id))
                    .await?,
            );
            listed.push(ReplayRef {
                id: d.id,
                rule: d.rule,
                target: d.target,
                replay: d.replay,
            });
        }
        for a in acks {
            a.await
                .map_err(|e| super::cluster::failed("queueing a replay", e))?;
        }
        if !listed.is_empty() {
            records.add_replays(&event_id, &listed).await?;
            added += listed.len() as u64;
        }
    }
    if added > 0 {
        outbox.ring().await;
    }
    Ok(added)
}
