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
//! Counts: the outbox's and the two streams' message counts, the attempts bucket's entries
//! (deliveries that failed at least once and are still waiting) and the members of every group.

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::DirectGetErrorKind;
use futures_util::future::try_join_all;
type Stream = async_nats::jetstream::stream::Stream<()>;

use super::cluster::{Cluster, failed, from_json, to_json, token};
use super::outbox::Outbox;
use super::wire::EventMsg;
use crate::store::{DeliveryRecord, DeliveryState, EventRecord, StoreError};

pub struct Records {
    cluster: Cluster,
    states: kv::Store,
    seen: kv::Store,
    archive: Stream,
}

fn key(event_id: &str, delivery_id: &str) -> String {
    format!("{}.{}", token(event_id), token(delivery_id))
}

impl Records {
    pub async fn open(c: &Cluster) -> Result<Records, StoreError> {
        Ok(Records {
            states: c.bucket(&c.names.bucket("states")).await?,
            seen: c.bucket(&c.names.bucket("seen")).await?,
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

    /// The deliveries of one archived event with their states, by rule, target and id.
    async fn deliveries(
        &self,
        e: &EventMsg,
        outbox: &Outbox,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut out = try_join_all(e.deliveries.iter().map(|(id, rule, target)| async move {
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

    async fn committed(&self, id: &str) -> Result<bool, StoreError> {
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
    async fn find(&self, id: &str) -> Result<Option<(u64, EventMsg)>, StoreError> {
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
