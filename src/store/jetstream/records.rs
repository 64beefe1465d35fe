//! What became of each delivery (the console and the admin API): the `P_states` bucket, one entry
//! per delivery that left the outbox or waits in a digest group (key `EVENT.DELIVERY`, both tokens),
//! holding its [`DeliveryState`] as the Store contract names it; and the listings built from it with
//! the archive (`P_EVENTS`, which names every event's deliveries) and the outbox's attempts.
//!
//! A delivery without an entry is pending: in the outbox, with the attempts `P_attempts` recorded
//! (none: due since its event was accepted). Each way out of the outbox writes the entry before the
//! ack that removes the delivery (ack: delivered; dead letter; suppress; digest: grouped, then sent
//! in the digest), so a crash between the two shows a delivery that is about to be attempted again
//! as done for a moment, never one that is gone as pending. A redrive removes the entry.
//!
//! Listings read the archive newest first (stream order = the order events were stored in) and
//! show only committed events (`P_seen`): an archive record whose accept failed (the client was
//! answered 503) is not an accepted event.
//!
//! Replays (`replay.rs`) add deliveries to an archived event after the fact: they are listed in
//! the `P_replays` bucket (key: the event's token, the list written with check-and-set), and an
//! event's deliveries are those of its archive record and those of its replays, each replayed one
//! with its replay id. Pruning an event (`retention.rs`) [`Records::forget`]s all of it.
//!
//! Counts: the outbox's and the two streams' message counts, the attempts bucket's entries
//! (deliveries that failed at least once and are still waiting) and the members of every group.

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::DirectGetErrorKind;
use futures_util::future::try_join_all;
type Stream = async_nats::jetstream::stream::Stream<()>;

use super::cluster::{Cluster, failed, from_json, to_json, token};
use super::outbox::Outbox;
use super::wire::{EventMsg, ReplayRef, Replays};
use crate::store::{DeliveryRecord, DeliveryState, EventRecord, StoreError};

pub struct Records {
    cluster: Cluster,
    states: kv::Store,
    seen: kv::Store,
    replays: kv::Store,
    archive: Stream,
}

/// How often a check-and-set write of an event's replays is tried before giving up.
const TRIES: usize = 20;

fn key(event_id: &str, delivery_id: &str) -> String {
    format!("{}.{}", token(event_id), token(delivery_id))
}

impl Records {
    pub async fn open(c: &Cluster) -> Result<Records, StoreError> {
        Ok(Records {
            states: c.bucket(&c.names.bucket("states")).await?,
            seen: c.bucket(&c.names.bucket("seen")).await?,
            replays: c.bucket(&c.names.bucket("replays")).await?,
            archive: c.stream(&c.names.events_stream()).await?,
            cluster: c.clone(),
        })
    }

    /// Records what became of delivery `delivery_id` of event `event_id`.
    pub async fn set(
        &self,
        event_id: &str,
        delivery_id: &str,
        state: &DeliveryState,
    ) -> Result<(), StoreError> {
        self.states
            .put(key(event_id, delivery_id), to_json(state).into())
            .await
            .map_err(|e| failed("recording a delivery's state", e))?;
        Ok(())
    }

    /// The delivery is pending again (a redrive).
    pub async fn clear(&self, event_id: &str, delivery_id: &str) -> Result<(), StoreError> {
        self.states
            .purge(key(event_id, delivery_id))
            .await
            .map_err(|e| failed("recording a delivery's state", e))
    }

    /// What became of delivery `delivery_id` of event `event_id`, if it left the outbox (None:
    /// pending, or never made).
    pub async fn state_of(
        &self,
        event_id: &str,
        delivery_id: &str,
    ) -> Result<Option<DeliveryState>, StoreError> {
        match self.states.get(key(event_id, delivery_id)).await {
            Ok(Some(v)) => Ok(Some(from_json::<DeliveryState>("delivery state", &v)?)),
            Ok(None) => Ok(None),
            Err(err) => Err(failed("reading a delivery's state", err)),
        }
    }

    /// The deliveries replays added to event `event_id`, and the revision to write them at.
    pub async fn replays_of(&self, event_id: &str) -> Result<(Option<u64>, Replays), StoreError> {
        let e = self
            .replays
            .entry(token(event_id))
            .await
            .map_err(|e| failed("reading an event's replays", e))?;
        Ok(match e {
            Some(e) if e.operation == kv::Operation::Put => {
                (Some(e.revision), from_json("replays", &e.value)?)
            }
            Some(e) => (Some(e.revision), Replays::default()),
            None => (None, Replays::default()),
        })
    }

    /// Lists `added` among the replayed deliveries of `event_id` (those listed already stay once).
    pub async fn add_replays(&self, event_id: &str, added: &[ReplayRef]) -> Result<(), StoreError> {
        for _ in 0..TRIES {
            let (rev, mut r) = self.replays_of(event_id).await?;
            for a in added {
                if !r.deliveries.iter().any(|d| d.id == a.id) {
                    r.deliveries.push(a.clone());
                }
            }
            let value = to_json(&r).into();
            let written = match rev {
                Some(rev) => match self.replays.update(token(event_id), value, rev).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(failed("recording a replay", e)),
                },
                None => match self.replays.create(token(event_id), value).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(failed("recording a replay", e)),
                },
            };
            if written {
                return Ok(());
            }
        }
        Err(StoreError::JetStream(format!(
            "the replays of event {event_id} kept changing under {TRIES} tries"
        )))
    }

    /// Removes everything recorded about event `e` but its archive message: the states of its
    /// deliveries, its replays and its commit record (the retention task, after deleting the
    /// archive message; an accept of the same id later is a new event, as with SQLite).
    pub async fn forget(&self, e: &EventMsg, replays: &Replays) -> Result<(), StoreError> {
        let ids = e
            .deliveries
            .iter()
            .map(|(id, _, _)| id)
            .chain(replays.deliveries.iter().map(|r| &r.id));
        try_join_all(
            ids.map(|id| async move { self.cluster.erase(&self.states, &key(&e.id, id)).await }),
        )
        .await?;
        self.cluster.erase(&self.replays, &token(&e.id)).await?;
        self.cluster.erase(&self.seen, &token(&e.id)).await
    }

    /// The deliveries of one archived event with their states (those replays added included, with
    /// their replay ids), by rule, target and id.
    pub async fn deliveries(
        &self,
        e: &EventMsg,
        outbox: &Outbox,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let (_, replays) = self.replays_of(&e.id).await?;
        self.deliveries_with(e, &replays, outbox).await
    }

    /// [`Records::deliveries`] with the event's replays read already.
    pub async fn deliveries_with(
        &self,
        e: &EventMsg,
        replays: &Replays,
        outbox: &Outbox,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let all = e
            .deliveries
            .iter()
            .map(|(id, rule, target)| (id, rule, target, None))
            .chain(
                replays
                    .deliveries
                    .iter()
                    .map(|r| (&r.id, &r.rule, &r.target, Some(&r.replay))),
            );
        let mut out = try_join_all(all.map(|(id, rule, target, replay)| async move {
            let state = match self.states.get(key(&e.id, id)).await {
                Ok(Some(v)) => from_json::<DeliveryState>("delivery state", &v)?,
                Ok(None) => match outbox.attempts_of(id).await? {
                    Some(a) => DeliveryState::Pending {
                        attempts: a.attempts,
                        next_attempt_at_ms: a.next_at,
                        last_error: a.last_error,
                    },
                    None => DeliveryState::Pending {
                        attempts: 0,
                        next_attempt_at_ms: e.received_at,
                        last_error: None,
                    },
                },
                Err(err) => return Err(failed("reading a delivery's state", err)),
            };
            Ok::<_, StoreError>(DeliveryRecord {
                id: id.clone(),
                rule: rule.clone(),
                target: target.clone(),
                replay: replay.cloned(),
                state,
            })
        }))
        .await?;
        out.sort_by(|a, b| (&a.rule, &a.target, &a.id).cmp(&(&b.rule, &b.target, &b.id)));
        Ok(out)
    }

    fn record(e: EventMsg, deliveries: Vec<DeliveryRecord>) -> EventRecord {
        EventRecord {
            received_at_ms: e.received_at,
            body: e.body.get().to_owned(),
            id: e.id,
            deliveries,
        }
    }

    pub async fn committed(&self, id: &str) -> Result<bool, StoreError> {
        self.seen
            .get(token(id))
            .await
            .map(|v| v.is_some())
            .map_err(|e| failed("reading commit records", e))
    }

    /// The archived, committed event at `seq` (None: gone, or never committed).
    async fn at(&self, seq: u64) -> Result<Option<EventMsg>, StoreError> {
        let m = match self.archive.direct_get(seq).await {
            Ok(m) => m,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed("reading the archive", e)),
        };
        let e: EventMsg = from_json("archived event", &m.payload)?;
        Ok(self.committed(&e.id).await?.then_some(e))
    }

    /// The Store contract's `event_record`.
    pub async fn event(&self, id: &str, outbox: &Outbox) -> Result<EventRecord, StoreError> {
        let not_found = || StoreError::NotFound {
            what: "event",
            id: id.to_owned(),
        };
        let (_, e) = self.find(id).await?.ok_or_else(not_found)?;
        let deliveries = self.deliveries(&e, outbox).await?;
        Ok(Self::record(e, deliveries))
    }

    /// The committed event `id` and its sequence in the archive.
    pub async fn find(&self, id: &str) -> Result<Option<(u64, EventMsg)>, StoreError> {
        let m = match self
            .archive
            .direct_get_last_for_subject(self.cluster.names.event_subject(id))
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed("reading the archive", e)),
        };
        let e: EventMsg = from_json("archived event", &m.payload)?;
        Ok(self.committed(id).await?.then_some((m.sequence, e)))
    }

    /// The Store contract's `recent_events`.
    pub async fn newest(
        &self,
        limit: usize,
        before: Option<&str>,
        outbox: &Outbox,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let state = self
            .archive
            .get_info()
            .await
            .map_err(|e| failed("reading the archive", e))?
            .state;
        let mut seq = match before {
            Some(b) => match self.find(b).await? {
                Some((s, _)) => s.saturating_sub(1),
                None => {
                    return Err(StoreError::NotFound {
                        what: "event",
                        id: b.to_owned(),
                    });
                }
            },
            None => state.last_sequence,
        };
        let mut out = Vec::new();
        while out.len() < limit && seq >= state.first_sequence.max(1) && state.messages > 0 {
            if let Some(e) = self.at(seq).await? {
                let deliveries = self.deliveries(&e, outbox).await?;
                out.push(Self::record(e, deliveries));
            }
            seq -= 1;
        }
        Ok(out)
    }

    /// How many messages stream `name` holds.
    pub async fn messages(&self, name: &str) -> Result<u64, StoreError> {
        let s = self.cluster.stream(name).await?;
        let info = s
            .get_info()
            .await
            .map_err(|e| failed(&format!("reading stream {name}"), e))?;
        Ok(info.state.messages)
    }
}
