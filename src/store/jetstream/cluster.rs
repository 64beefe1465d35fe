//! The cluster the JetStream backend talks to: one NATS connection, the JetStream context on it, and
//! the names of everything the backend keeps there, all derived from `store.jetstream.prefix` so that
//! several installations can share one cluster. This is the folder's contract: every part imports it,
//! none imports another part's internals through it.
//!
//! Names (prefix `P`):
//! - streams `P_EVENTS` (the archive, subjects `P.events.TOKEN`), `P_OUTBOX` (deliveries, work-queue
//!   retention, subjects `P.outbox.d` and `P.outbox.a.KEY.RULETARGET.KIND` for alert-marked ones),
//!   `P_DEAD` (dead letters, `P.dead.TOKEN`), `P_SUPPRESSED` (`P.suppressed`);
//! - the one durable pull consumer `P_delivery` on `P_OUTBOX`, shared by every daemon;
//! - key-value buckets `P_seen`, `P_history`, `P_dedup`, `P_alerts`, `P_silences`, `P_groups`,
//!   `P_attempts`, `P_ratelimit`, `P_states`;
//! - the core-NATS subject `P.doorbell`, rung after every accept that stored deliveries (no payload,
//!   nothing stored): it wakes every daemon's worker at once instead of at its next poll.
//!
//! Tokens: ids, keys, rule and target names come from events and configuration, so they never become
//! subject tokens or bucket keys as they are: [`token`] hashes them to 32 hex digits.
//!
//! Errors: every failure to reach the cluster, or a refusal by it, is [`StoreError::JetStream`] with
//! what was being done (ingest answers 503 on it; the worker retries later).

use std::time::Duration;

use async_nats::jetstream;
use sha2::{Digest, Sha256};

use crate::store::StoreError;

/// The key-value buckets and how long their entries live (zero: until deleted). The archive, the
/// commit records, the delivery states and the replays are kept until the retention task prunes
/// them (`retention.rs`, by `store.retain_*`), never by an age of the cluster's own.
pub const BUCKETS: [(&str, Duration); 10] = [
    ("seen", Duration::ZERO),
    ("history", Duration::ZERO),
    ("dedup", Duration::ZERO),
    ("alerts", Duration::ZERO),
    ("silences", Duration::ZERO),
    ("groups", Duration::ZERO),
    // Rewritten at every retry; a week outlasts any backoff, and lets delete markers go.
    ("attempts", Duration::from_secs(7 * 24 * 3600)),
    // One token bucket per rate-limited target, rewritten at every send (history 1).
    ("ratelimit", Duration::ZERO),
    // What became of each delivery, kept as long as the archive keeps its event.
    ("states", Duration::ZERO),
    // The deliveries replays added to each archived event, kept with the event.
    ("replays", Duration::ZERO),
];

/// The connection and the names.
#[derive(Clone)]
pub struct Cluster {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub names: Names,
    /// Copies of every stream and bucket.
    pub replicas: usize,
    /// The consumer's ack wait: how long a dead daemon's deliveries stay reserved.
    pub ack_wait: Duration,
    /// How long a request may wait for the cluster's answer.
    pub timeout: Duration,
}

impl Cluster {
    /// The stream named `name` (without a round trip: the handle only carries the name).
    pub async fn stream(&self, name: &str) -> Result<jetstream::stream::Stream<()>, StoreError> {
        self.js
            .get_stream_no_info(name)
            .await
            .map_err(|e| failed(&format!("opening stream {name}"), e))
    }

    /// The key-value bucket named `name`.
    pub async fn bucket(&self, name: &str) -> Result<jetstream::kv::Store, StoreError> {
        self.js
            .get_key_value(name)
            .await
            .map_err(|e| failed(&format!("opening bucket {name}"), e))
    }

    /// Publishes `payload` to `subject` (with `msg_id` for the stream's deduplication, if any) and
    /// returns the future of the stream's acknowledgement: nothing is stored before it resolves.
    pub async fn publish(
        &self,
        subject: String,
        payload: Vec<u8>,
        msg_id: Option<&str>,
    ) -> Result<jetstream::context::PublishAckFuture, StoreError> {
        let mut m = jetstream::message::PublishMessage::build().payload(payload.into());
        if let Some(id) = msg_id {
            m = m.message_id(id);
        }
        self.js
            .send_publish(subject, m)
            .await
            .map_err(|e| failed("publishing", e))
    }

    /// Publishes and waits for the acknowledgement.
    pub async fn publish_acked(
        &self,
        subject: String,
        payload: Vec<u8>,
        msg_id: Option<&str>,
    ) -> Result<jetstream::publish::PublishAck, StoreError> {
        self.publish(subject, payload, msg_id)
            .await?
            .await
            .map_err(|e| failed("waiting for the stream's acknowledgement", e))
    }

    /// Up to `limit` messages of stream `name` in order from `from` (an ordered consumer that goes
    /// away when done): (stream sequence, payload).
    pub async fn scan(
        &self,
        name: &str,
        from: jetstream::consumer::DeliverPolicy,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .scan_subjects(name, from, limit)
            .await?
            .into_iter()
            .map(|m| (m.seq, m.payload))
            .collect())
    }

    /// [`Cluster::scan`] with each message's subject.
    pub async fn scan_subjects(
        &self,
        name: &str,
        from: jetstream::consumer::DeliverPolicy,
        limit: usize,
    ) -> Result<Vec<Scanned>, StoreError> {
        use futures_util::StreamExt;
        let stream = self.stream(name).await?;
        let held = stream
            .get_info()
            .await
            .map_err(|e| failed(&format!("reading stream {name}"), e))?
            .state
            .messages;
        let mut out = Vec::new();
        if held == 0 || limit == 0 {
            return Ok(out);
        }
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: from,
                ..Default::default()
            })
            .await
            .map_err(|e| failed(&format!("reading stream {name}"), e))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| failed(&format!("reading stream {name}"), e))?;
        // An ordered consumer of a stream whose last messages went meanwhile waits for more: a
        // quiet while ends the read with what it has.
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), messages.next()).await
        {
            let m = m.map_err(|e| failed(&format!("reading stream {name}"), e))?;
            let (seq, pending) = match m.info() {
                Ok(i) => (i.stream_sequence, i.pending),
                Err(e) => return Err(failed(&format!("reading stream {name}"), e)),
            };
            out.push(Scanned {
                seq,
                subject: m.subject.to_string(),
                payload: m.payload.to_vec(),
            });
            if pending == 0 || out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Removes the value of `key` from bucket `kv` for good, leaving no delete marker behind
    /// (markers of a bucket kept for ever would pile up): [`Cluster::erase_revision`] of the
    /// revision read here, so a value written meanwhile stays.
    pub async fn erase(&self, kv: &jetstream::kv::Store, key: &str) -> Result<(), StoreError> {
        let entry = kv
            .entry(key)
            .await
            .map_err(|e| failed(&format!("reading bucket {}", kv.name), e))?;
        match entry {
            Some(e) => {
                self.erase_revision(&kv.stream_name, &format!("{}{key}", kv.prefix), e.revision)
                    .await
            }
            None => Ok(()),
        }
    }

    /// Removes revision `rev` (and any older) of the bucket value at `subject` from the bucket's
    /// stream `stream_name`: a purge of that subject below `rev + 1`, which leaves no marker and
    /// spares a newer revision (a bucket's stream denies single deletes, not purges).
    pub async fn erase_revision(
        &self,
        stream_name: &str,
        subject: &str,
        rev: u64,
    ) -> Result<(), StoreError> {
        self.stream(stream_name)
            .await?
            .purge()
            .filter(subject)
            .sequence(rev + 1)
            .await
            .map(|_| ())
            .map_err(|e| failed(&format!("removing a value from {stream_name}"), e))
    }

    /// Deletes message `seq` of stream `name` (not a bucket's); gone already is fine.
    pub async fn delete_message(&self, name: &str, seq: u64) -> Result<(), StoreError> {
        use jetstream::ErrorCode;
        use jetstream::stream::DeleteMessageErrorKind;
        let stream = self.stream(name).await?;
        match stream.delete_message(seq).await {
            Ok(_) => Ok(()),
            // No message with that sequence: deleted by another daemon meanwhile.
            Err(e)
                if matches!(e.kind(), DeleteMessageErrorKind::JetStream(j)
                    if j.error_code() == ErrorCode::NO_MESSAGE_FOUND) =>
            {
                Ok(())
            }
            Err(e) => Err(failed(&format!("deleting from stream {name}"), e)),
        }
    }

    /// The largest message the cluster accepts (its `max_payload`).
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }
}

/// One message read by [`Cluster::scan_subjects`].
pub struct Scanned {
    pub seq: u64,
    pub subject: String,
    pub payload: Vec<u8>,
}

/// Every name the backend uses, from the prefix.
#[derive(Debug, Clone)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix)
    }
    pub fn outbox_stream(&self) -> String {
        format!("{}_OUTBOX", self.prefix)
    }
    pub fn dead_stream(&self) -> String {
        format!("{}_DEAD", self.prefix)
    }
    pub fn suppressed_stream(&self) -> String {
        format!("{}_SUPPRESSED", self.prefix)
    }
    pub fn consumer(&self) -> String {
        format!("{}_delivery", self.prefix)
    }
    pub fn bucket(&self, what: &str) -> String {
        format!("{}_{what}", self.prefix)
    }
    /// The archive subject of one event.
    pub fn event_subject(&self, event_id: &str) -> String {
        format!("{}.events.{}", self.prefix, token(event_id))
    }
    /// The outbox subject of a plain delivery.
    pub fn plain_subject(&self) -> String {
        format!("{}.outbox.d", self.prefix)
    }
    /// The outbox subject of a delivery marked `kind` (`trigger`/`resolve`) for an alert.
    pub fn alert_subject(&self, key: &str, rule: &str, target: &str, kind: &str) -> String {
        format!(
            "{}.outbox.a.{}.{}.{kind}",
            self.prefix,
            token(key),
            token2(rule, target)
        )
    }
    /// [`Names::alert_subject`] from the alert key's token (the `P_alerts` bucket's key).
    pub fn alert_subject_of_token(
        &self,
        key_token: &str,
        rule: &str,
        target: &str,
        kind: &str,
    ) -> String {
        format!(
            "{}.outbox.a.{key_token}.{}.{kind}",
            self.prefix,
            token2(rule, target)
        )
    }
    /// Every stream the backend keeps: its four, and the streams of its key-value buckets.
    pub fn all_streams(&self) -> Vec<String> {
        let mut all = vec![
            self.events_stream(),
            self.outbox_stream(),
            self.dead_stream(),
            self.suppressed_stream(),
        ];
        all.extend(
            BUCKETS
                .iter()
                .map(|(b, _)| format!("KV_{}", self.bucket(b))),
        );
        all
    }
    /// Every alert-marked subject of one alert key and kind (a wildcard).
    pub fn alert_subjects_of(&self, key: &str, kind: &str) -> String {
        format!("{}.outbox.a.{}.*.{kind}", self.prefix, token(key))
    }
    pub fn dead_subject(&self, delivery_id: &str) -> String {
        format!("{}.dead.{}", self.prefix, token(delivery_id))
    }
    pub fn suppressed_subject(&self) -> String {
        format!("{}.suppressed", self.prefix)
    }
    pub fn doorbell(&self) -> String {
        format!("{}.doorbell", self.prefix)
    }
}

/// A subject token or bucket key for an untrusted string: 32 hex digits of its SHA-256.
pub fn token(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes())[..16])
}

/// [`token`] of two strings (NUL-separated, so that the pair is unambiguous).
pub fn token2(a: &str, b: &str) -> String {
    let mut h = Sha256::new();
    h.update(a.as_bytes());
    h.update([0]);
    h.update(b.as_bytes());
    hex(&h.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `Nats-Msg-Id` for an id: the id itself when it is a plain header value, else its token (ids
/// come from clients; a header value cannot hold control characters).
pub fn msg_id(id: &str) -> String {
    if !id.is_empty() && id.len() <= 200 && id.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        id.to_owned()
    } else {
        format!("sha:{}", token(id))
    }
}

/// A cluster failure while doing `what`.
pub fn failed(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::JetStream(format!("{what}: {e}"))
}

/// JSON for a message or a bucket value.
pub fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("plain data serialises")
}

/// Reads a message or bucket value written by [`to_json`]; a value that does not parse is the
/// cluster's data gone wrong (or a newer build's): an error naming `what`, never a panic.
pub fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::JetStream(format!("unreadable {what} in the cluster: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_message_ids_are_safe_for_subjects_and_headers() {
        let t = token("a.b c>*\n");
        assert_eq!(t.len(), 32);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(token2("a", "bc"), token2("ab", "c"));
        assert_eq!(msg_id("4f2a-uuid"), "4f2a-uuid");
        assert!(msg_id("a b").starts_with("sha:"));
        assert!(msg_id("x\r\nNats-Expected-Stream: y").starts_with("sha:"));
        let n = Names {
            prefix: "sb".into(),
        };
        assert_eq!(n.outbox_stream(), "sb_OUTBOX");
        assert!(
            n.alert_subject("img:v1", "r", "t", "trigger")
                .starts_with("sb.outbox.a.")
        );
        assert!(
            n.alert_subjects_of("img:v1", "trigger")
                .contains(".*.trigger")
        );
    }
}
