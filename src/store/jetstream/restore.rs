//! `scanbridge store restore FILE` on JetStream: a backup file (`backup_format.rs`) published back
//! into an installation, so that the daemons carry on from where the backup was taken.
//!
//! The steps:
//! 1. the whole file is read and checked (its header, every line, each message as what its stream
//!    holds) before anything is written, or the cluster even reached ([`super::JetStreamStore::restore`]);
//! 2. the layout is made as a daemon makes it, and every stream and bucket of the prefix must then
//!    be empty: a daemon started on a new cluster makes empty streams, which is fine, but data is
//!    refused, naming the stream, unless `replace` (`--replace`): then every stream and bucket of
//!    the prefix is deleted (the delivery consumer with the outbox) and made anew;
//! 3. the buckets first (commit records, attempts, delivery states, dedup claims, scan history,
//!    alerts, silences, digest groups, rate limits, replays; delete and purge markers as such), then
//!    the archive, the dead letters and the suppressed log, and the outbox last, so that a delivery
//!    is never in the outbox before its event's commit record (the outbox's commit check would take
//!    it for one whose accept failed). Each stream's messages go in their order (which the alert
//!    ordering and retention read), under the target's prefix (the backup's may differ: subjects and
//!    keys are rebased), and without their old `Nats-Msg-Id` (a daemon reusing an id within the
//!    duplicate window must not see its message dropped as a copy of a restored one);
//! 4. every restored delivery is fetched once through the delivery consumer and given back (a NAK)
//!    with what remained of its retry's delay (`P_attempts`' `next_at`): the server then counts it
//!    as delivered before, so the daemon that next fetches it reads its attempts (`outbox.rs` reads
//!    them for a redelivery only), and it is due when its retry was due. A delivery without attempts
//!    is due at once;
//! 5. the doorbell rings.
//!
//! The daemons should be stopped while a restore runs: one that fetches a restored delivery before
//! step 4 attempts it with its attempts counted from zero (nothing is lost; it is attempted more
//! often than the policy says). Consistency is the backup's own (`backup.rs`): each stream as it
//! was when its copy started, so restoring is at-least-once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use futures_util::StreamExt;

use super::backup_format::{Checked, Entry, Kind, Op, Reader};
use super::cluster::{BUCKETS, Cluster, failed, from_json};
use super::wire::{Attempts, DeliveryMsg};
use crate::store::StoreError;
use crate::store::restore::{Part, RestoreError, Restored};

/// Publishes awaiting their acknowledgement at most.
const WINDOW: usize = 256;

/// The Store contract's restore, on a cluster whose layout exists (module doc); `checked` is the
/// file's [`super::backup_format::check`].
pub async fn restore(
    c: &Cluster,
    path: &Path,
    checked: &Checked,
    replace: bool,
    now: i64,
) -> Result<Restored, RestoreError> {
    let held = holding(c).await?;
    if !held.is_empty() {
        if !replace {
            return Err(RestoreError::NotEmpty {
                target: format!("the JetStream store of prefix {:?}", c.names.prefix),
                holds: held
                    .iter()
                    .map(|(s, n)| format!("stream {s} holds {n} message(s)"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        wipe(c).await?;
    }
    let mut keys = HashMap::new();
    for (b, _) in BUCKETS {
        let kv = c.bucket(&c.names.bucket(b)).await?;
        keys.insert(b, kv.put_prefix.clone().unwrap_or(kv.prefix.clone()));
    }
    let mut out = Publisher::new(c, path);
    // Every stream is listed, those the backup held nothing of too.
    let mut counts: BTreeMap<Kind, Part> = Kind::all()
        .into_iter()
        .map(|k| {
            let part = Part {
                name: k.stream(&c.names),
                count: 0,
                deletes: 0,
            };
            (k, part)
        })
        .collect();
    // next_at of each delivery's recorded attempts (P_attempts: key = delivery id).
    let mut due: HashMap<String, i64> = HashMap::new();
    let passes: [&dyn Fn(Kind) -> bool; 3] = [
        &|k| matches!(k, Kind::Bucket(_)),
        &|k| matches!(k, Kind::Events | Kind::Dead | Kind::Suppressed),
        &|k| k == Kind::Outbox,
    ];
    for pass in passes {
        for e in Reader::open(path)? {
            let e = e?;
            if !pass(e.kind) {
                continue;
            }
            let part = counts.get_mut(&e.kind).expect("every kind is counted");
            match e.op {
                Op::Put => part.count += 1,
                Op::Delete | Op::Purge => part.deletes += 1,
            }
            if e.kind == Kind::Bucket("attempts")
                && let Some(d) = &e.data
                && let Ok(a) = serde_json::from_str::<Attempts>(d.get())
            {
                due.insert(e.rest.clone(), a.next_at);
            }
            out.send(&e, &keys).await?;
        }
        // Each pass is stored before the next begins.
        out.finish().await?;
    }
    let pending = checked.counts.get(&Kind::Outbox).copied().unwrap_or(0);
    let mut notes = Vec::new();
    if pending > 0 {
        let (handed, later) = hand_back(c, pending, &due, now).await?;
        notes.push(format!(
            "{handed} pending delivery(ies) handed back through the delivery consumer: {later} due when their retry was due, the others at once"
        ));
        if handed < pending {
            notes.push(format!(
                "{} restored delivery(ies) were not fetched back (a daemon took them?): their attempts count again from 0",
                pending - handed
            ));
        }
    }
    let _ = c
        .client
        .publish(c.names.doorbell(), Default::default())
        .await;
    let _ = c.client.flush().await;
    let order = Kind::all();
    let mut parts: Vec<Part> = Vec::new();
    for k in order {
        if let Some(p) = counts.remove(&k) {
            parts.push(p);
        }
    }
    notes.insert(
        0,
        format!(
            "from {} (format version {}, a backup of prefix {:?})",
            path.display(),
            checked.header.version,
            checked.header.prefix
        ),
    );
    Ok(Restored {
        into: String::new(),
        parts,
        notes,
    })
}

/// The streams of the prefix that hold messages, with how many.
async fn holding(c: &Cluster) -> Result<Vec<(String, u64)>, StoreError> {
    let mut held = Vec::new();
    for name in c.names.all_streams() {
        let info = c
            .stream(&name)
            .await?
            .get_info()
            .await
            .map_err(|e| failed(&format!("reading stream {name}"), e))?;
        if info.state.messages > 0 {
            held.push((name, info.state.messages));
        }
    }
    Ok(held)
}

/// Deletes every stream and bucket of the prefix and makes the layout anew.
async fn wipe(c: &Cluster) -> Result<(), StoreError> {
    use async_nats::jetstream::context::DeleteStreamErrorKind;
    for name in c.names.all_streams() {
        match c.js.delete_stream(&name).await {
            Ok(_) => {}
            Err(e)
                if matches!(e.kind(), DeleteStreamErrorKind::JetStream(j)
                    if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND) => {}
            Err(e) => return Err(failed(&format!("deleting stream {name}"), e)),
        }
    }
    super::setup::ensure(c).await
}

/// Publishes with a window of acknowledgements outstanding; a failure names the line.
struct Publisher<'a> {
    c: &'a Cluster,
    path: String,
    pending: VecDeque<(u64, PublishAckFuture)>,
}

impl<'a> Publisher<'a> {
    fn new(c: &'a Cluster, path: &Path) -> Publisher<'a> {
        Publisher {
            c,
            path: path.display().to_string(),
            pending: VecDeque::new(),
        }
    }

    fn failed(&self, line: u64, e: impl std::fmt::Display) -> RestoreError {
        RestoreError::Store(StoreError::JetStream(format!(
            "restoring line {line} of {}: {e} (the restore stopped part way: run it again with --replace)",
            self.path
        )))
    }

    async fn send(
        &mut self,
        e: &Entry,
        keys: &HashMap<&'static str, String>,
    ) -> Result<(), RestoreError> {
        let mut headers = HeaderMap::new();
        let subject = match e.kind {
            Kind::Bucket(b) => {
                match e.op {
                    Op::Put => {}
                    Op::Delete => headers.insert("KV-Operation", "DEL"),
                    Op::Purge => {
                        headers.insert("KV-Operation", "PURGE");
                        headers.insert("Nats-Rollup", "sub");
                    }
                }
                format!("{}{}", keys[b], e.rest)
            }
            _ => e.subject(&self.c.names),
        };
        let m = PublishMessage::build()
            .payload(e.payload().into())
            .headers(headers);
        let ack = self
            .c
            .js
            .send_publish(subject, m)
            .await
            .map_err(|err| self.failed(e.line, err))?;
        self.pending.push_back((e.line, ack));
        if self.pending.len() >= WINDOW {
            self.settle_one().await?;
        }
        Ok(())
    }

    async fn settle_one(&mut self) -> Result<(), RestoreError> {
        if let Some((line, ack)) = self.pending.pop_front() {
            let a = ack.await.map_err(|err| self.failed(line, err))?;
            if a.duplicate {
                return Err(self.failed(line, "the stream took it for a duplicate"));
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), RestoreError> {
        while !self.pending.is_empty() {
            self.settle_one().await?;
        }
        Ok(())
    }
}

/// Fetches the `expected` restored deliveries through the delivery consumer and gives each back
/// due when its retry was (module doc, step 4). Returns (handed back, of which due later).
async fn hand_back(
    c: &Cluster,
    expected: u64,
    due: &HashMap<String, i64>,
    now: i64,
) -> Result<(u64, u64), StoreError> {
    let consumer: async_nats::jetstream::consumer::PullConsumer = c
        .stream(&c.names.outbox_stream())
        .await?
        .get_consumer(&c.names.consumer())
        .await
        .map_err(|e| failed("opening the delivery consumer", e))?;
    // By stream sequence: a message the server hands again (its ack wait passed meanwhile) is
    // given back once, through its latest delivery.
    let mut held: BTreeMap<u64, async_nats::jetstream::Message> = BTreeMap::new();
    let mut quiet = 0;
    while (held.len() as u64) < expected && quiet < 20 {
        let mut batch = consumer
            .fetch()
            .max_messages(WINDOW)
            .messages()
            .await
            .map_err(|e| failed("fetching restored deliveries", e))?;
        let mut got = 0;
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| failed("fetching restored deliveries", e))?;
            let seq = m
                .info()
                .map_err(|e| failed("fetching restored deliveries", e))?
                .stream_sequence;
            held.insert(seq, m);
            got += 1;
        }
        if got == 0 {
            quiet += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else {
            quiet = 0;
        }
    }
    let (mut handed, mut later) = (0, 0);
    for m in held.values() {
        let delay = from_json::<DeliveryMsg>("delivery", &m.payload)
            .ok()
            .and_then(|d| due.get(&d.id).copied())
            .map(|at| at - now)
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms as u64));
        later += u64::from(delay.is_some());
        m.ack_with(AckKind::Nak(delay))
            .await
            .map_err(|e| failed("giving a restored delivery back", e))?;
        handed += 1;
    }
    c.client
        .flush()
        .await
        .map_err(|e| failed("giving restored deliveries back", e))?;
    Ok((handed, later))
}
