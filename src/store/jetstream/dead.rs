//! Dead letters: `P_DEAD`, one message per delivery that gave up (subject `P.dead.TOKEN`, the latest
//! per delivery id), holding the delivery as it was (its event's body included) with the attempts
//! made, when it failed and why. A give-up publishes the dead letter and only then acks the delivery
//! out of the outbox, so a crash between the two leaves the delivery in the outbox (tried again),
//! never nowhere.
//!
//! A redrive publishes the delivery back into the outbox (attempts reset, its age counted from the
//! redrive, as the SQLite backend does) and only then deletes the dead letter; the redriven message
//! gets a message id of its own, so the stream's deduplication never mistakes it for the original.

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
type Stream = async_nats::jetstream::stream::Stream<()>;

use super::cluster::{Cluster, failed, from_json, to_json};
use super::wire::{DeadMsg, DeliveryMsg};
use crate::store::{DeadLetter, StoreError};

pub struct Dead {
    cluster: Cluster,
    stream: Stream,
}

impl DeadMsg {
    fn public(&self, with_event: bool) -> DeadLetter {
        let d = &self.delivery;
        DeadLetter {
            id: d.id.clone(),
            event_id: d.event_id.clone(),
            rule: d.rule.clone(),
            target: d.target.clone(),
            attempts: self.attempts,
            created_at_ms: d.created_at,
            failed_at_ms: self.failed_at,
            reason: self.reason.clone(),
            event: with_event
                .then(|| serde_json::from_str(d.body.get()).ok())
                .flatten(),
        }
    }
}

impl Dead {
    pub async fn open(c: &Cluster) -> Result<Dead, StoreError> {
        Ok(Dead {
            stream: c.stream(&c.names.dead_stream()).await?,
            cluster: c.clone(),
        })
    }

    /// Stores a dead letter (acknowledged by the stream before returning).
    pub async fn put(&self, m: &DeadMsg) -> Result<(), StoreError> {
        let subject = self.cluster.names.dead_subject(&m.delivery.id);
        self.cluster
            .publish_acked(subject, to_json(m), None)
            .await
            .map(|_| ())
    }

    /// Up to `limit` dead letters, oldest first, with their sequences.
    pub async fn scan(&self, limit: usize) -> Result<Vec<(u64, DeadMsg)>, StoreError> {
        let raw = self
            .cluster
            .scan(&self.cluster.names.dead_stream(), DeliverPolicy::All, limit)
            .await?;
        raw.into_iter()
            .map(|(seq, p)| Ok((seq, from_json::<DeadMsg>("dead letter", &p)?)))
            .collect()
    }

    pub async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let mut all: Vec<DeadLetter> = self
            .scan(limit)
            .await?
            .iter()
            .map(|(_, m)| m.public(false))
            .collect();
        all.sort_by(|a, b| (a.failed_at_ms, &a.id).cmp(&(b.failed_at_ms, &b.id)));
        Ok(all)
    }

    /// The dead letter of delivery `id` and its sequence.
    pub async fn find(&self, id: &str) -> Result<Option<(u64, DeadMsg)>, StoreError> {
        match self
            .stream
            .get_last_raw_message_by_subject(&self.cluster.names.dead_subject(id))
            .await
        {
            Ok(m) => Ok(Some((m.sequence, from_json("dead letter", &m.payload)?))),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(failed("reading dead letters", e)),
        }
    }

    pub async fn get(&self, id: &str) -> Result<DeadLetter, StoreError> {
        match self.find(id).await? {
            Some((_, m)) => Ok(m.public(true)),
            None => Err(StoreError::NotFound {
                what: "dead letter",
                id: id.to_owned(),
            }),
        }
    }

    /// Moves one dead letter back to the outbox, due at once.
    pub async fn redrive_one(
        &self,
        seq: u64,
        m: DeadMsg,
        now: i64,
        outbox: &super::outbox::Outbox,
    ) -> Result<(), StoreError> {
        let d = DeliveryMsg {
            created_at: now,
            commit: false,
            ..m.delivery
        };
        outbox.reset_attempts(&d.id).await?;
        let id = format!("{}.redrive.{seq}", d.id);
        self.cluster
            .publish_acked(d.subject(&self.cluster.names), to_json(&d), Some(&id))
            .await?;
        self.stream
            .delete_message(seq)
            .await
            .map_err(|e| failed("removing a redriven dead letter", e))?;
        Ok(())
    }

    /// Deletes every dead letter; returns how many.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let r = self
            .stream
            .purge()
            .await
            .map_err(|e| failed("purging dead letters", e))?;
        Ok(r.purged)
    }
}
