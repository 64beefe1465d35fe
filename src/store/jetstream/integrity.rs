//! `scanbridge store check` on JetStream (the Store contract's `check`): the health of the
//! installation's layout in the cluster, then the store's own invariants, as the SQLite backend's
//! integrity check and invariants.
//!
//! Layout and health, from the cluster's own view (stream and consumer info):
//! - every stream and bucket of the prefix exists and answers, with the configured replicas;
//! - in a cluster, each has a leader and every replica is online and current;
//! - the one delivery consumer exists with explicit acks and this configuration's ack wait (daemons
//!   of one installation must share `[store.jetstream]`).
//!
//! Invariants, read message by message (at most [`CHECK_MAX`] of each stream):
//! - every message of the outbox, the dead letters and the archive reads;
//! - every outbox delivery and dead letter of a committed event has its event in the archive;
//! - no delivery is both in the outbox and in the dead letters;
//! - every digest member's event is in the archive, and a group with members has a flush time.
//!
//! A delivery recorded as done while still in the outbox is not a problem here (unlike SQLite): a
//! daemon killed between recording a delivery and its ack leaves exactly that until the ack wait
//! hands the delivery to another daemon (`records.rs`).

use async_nats::jetstream::consumer::AckPolicy;
use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind};
use serde::Deserialize;

use super::archive;
use super::cluster::{Cluster, from_json};
use super::dead::Dead;
use super::records::Records;
use super::wire::{DeadMsg, DeliveryMsg};
use crate::store::{Problem, StoreError};

/// At most this many messages of each stream are read.
pub const CHECK_MAX: u64 = 200_000;
/// How many example ids a problem shows.
const EXAMPLES: usize = 5;

/// Problems found, by what is wrong.
#[derive(Default)]
struct Found {
    problems: Vec<Problem>,
}

impl Found {
    fn add(&mut self, what: impl Into<String>, example: impl Into<String>) {
        let what = what.into();
        match self.problems.iter_mut().find(|p| p.what == what) {
            Some(p) => {
                p.count += 1;
                if p.examples.len() < EXAMPLES {
                    p.examples.push(example.into());
                }
            }
            None => self.problems.push(Problem {
                what,
                count: 1,
                examples: vec![example.into()],
            }),
        }
    }
}

/// The Store contract's `check`.
pub async fn check(
    c: &Cluster,
    records: &Records,
    dead: &Dead,
) -> Result<Vec<Problem>, StoreError> {
    let mut f = Found::default();
    layout(c, &mut f).await;
    if !f.problems.is_empty() {
        // Without the layout whole the invariants cannot be read.
        return Ok(f.problems);
    }
    outbox(c, records, dead, &mut f).await?;
    dead_letters(c, records, &mut f).await?;
    events(c, &mut f).await?;
    groups(c, records, &mut f).await?;
    Ok(f.problems)
}

async fn layout(c: &Cluster, f: &mut Found) {
    for name in c.names.all_streams() {
        let info = match c.stream(&name).await {
            Ok(s) => s.get_info().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                f.add(
                    "streams or buckets missing or not answering",
                    format!("{name}: {e}"),
                );
                continue;
            }
        };
        if info.config.num_replicas != c.replicas {
            f.add(
                format!(
                    "streams or buckets whose replicas differ from store.jetstream.replicas ({})",
                    c.replicas
                ),
                format!("{name}: {}", info.config.num_replicas),
            );
        }
        if let Some(cluster) = &info.cluster
            && info.config.num_replicas > 1
        {
            if cluster.leader.is_none() {
                f.add(
                    "streams or buckets without a leader (not writable)",
                    name.clone(),
                );
            }
            for r in &cluster.replicas {
                if r.offline || !r.current {
                    f.add(
                        "stream replicas offline or behind their leader",
                        format!("{name} on {}", r.name),
                    );
                }
            }
        }
    }
    let consumer = match c.stream(&c.names.outbox_stream()).await {
        Ok(s) => s
            .consumer_info(c.names.consumer())
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match consumer {
        Err(e) => f.add(
            "the delivery consumer is missing or not answering",
            format!("{}: {e}", c.names.consumer()),
        ),
        Ok(info) => {
            if info.config.ack_policy != AckPolicy::Explicit {
                f.add(
                    "the delivery consumer does not use explicit acks",
                    c.names.consumer(),
                );
            }
            if info.config.ack_wait != c.ack_wait {
                f.add(
                    format!(
                        "the delivery consumer's ack wait differs from store.jetstream.ack_wait ({:?}): daemons of one installation must share [store.jetstream]",
                        c.ack_wait
                    ),
                    format!("{}: {:?}", c.names.consumer(), info.config.ack_wait),
                );
            }
        }
    }
}

/// Whether the committed event `id` is missing from the archive (an uncommitted one is an accept
/// that failed: its deliveries are never sent, and are dropped).
async fn event_missing(c: &Cluster, records: &Records, id: &str) -> Result<bool, StoreError> {
    if !records.committed(id).await? {
        return Ok(false);
    }
    let stream = c.stream(&c.names.events_stream()).await?;
    match stream
        .direct_get_last_for_subject(c.names.event_subject(id))
        .await
    {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(true),
        Err(e) => Err(super::cluster::failed("reading the archive", e)),
    }
}

async fn outbox(
    c: &Cluster,
    records: &Records,
    dead: &Dead,
    f: &mut Found,
) -> Result<(), StoreError> {
    let name = c.names.outbox_stream();
    let stream = c.stream(&name).await?;
    let state = stream
        .get_info()
        .await
        .map_err(|e| super::cluster::failed("reading the outbox", e))?
        .state;
    if state.messages == 0 {
        return Ok(());
    }
    let last = state.last_sequence.min(state.first_sequence + CHECK_MAX);
    // A work-queue stream takes no second consumer: its messages are read one by one.
    for seq in state.first_sequence.max(1)..=last {
        let m = match stream.get_raw_message(seq).await {
            Ok(m) => m,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => continue,
            Err(e) => return Err(super::cluster::failed("reading the outbox", e)),
        };
        let d: DeliveryMsg = match from_json("delivery", &m.payload) {
            Ok(d) => d,
            Err(_) => {
                f.add("outbox messages that do not read", format!("{name} #{seq}"));
                continue;
            }
        };
        if event_missing(c, records, &d.event_id).await? {
            f.add("outbox deliveries whose event is missing", d.id.clone());
        }
        if dead.find(&d.id).await?.is_some() {
            f.add(
                "deliveries both in the outbox and in the dead letters",
                d.id,
            );
        }
    }
    Ok(())
}

async fn dead_letters(c: &Cluster, records: &Records, f: &mut Found) -> Result<(), StoreError> {
    let name = c.names.dead_stream();
    let read = c
        .scan(
            &name,
            async_nats::jetstream::consumer::DeliverPolicy::All,
            CHECK_MAX as usize,
        )
        .await?;
    for (seq, payload) in read {
        match from_json::<DeadMsg>("dead letter", &payload) {
            Ok(m) => {
                if event_missing(c, records, &m.delivery.event_id).await? {
                    f.add("dead letters whose event is missing", m.delivery.id);
                }
            }
            Err(_) => f.add("dead letters that do not read", format!("{name} #{seq}")),
        }
    }
    Ok(())
}

async fn events(c: &Cluster, f: &mut Found) -> Result<(), StoreError> {
    let Some((first, last)) = archive::bounds(c).await? else {
        return Ok(());
    };
    let name = c.names.events_stream();
    let last = last.min(first + CHECK_MAX);
    let read = c
        .scan(
            &name,
            async_nats::jetstream::consumer::DeliverPolicy::All,
            (last - first + 1) as usize,
        )
        .await?;
    for (seq, payload) in read {
        if from_json::<super::wire::EventMsg>("archived event", &payload).is_err() {
            f.add(
                "archived events that do not read (not JSON)",
                format!("{name} #{seq}"),
            );
        }
    }
    Ok(())
}

/// The fields of a digest group the check reads.
#[derive(Deserialize)]
struct Group {
    id: String,
    flush_at: Option<i64>,
    members: Vec<Member>,
}

#[derive(Deserialize)]
struct Member {
    delivery_id: String,
    event_id: String,
}

async fn groups(c: &Cluster, records: &Records, f: &mut Found) -> Result<(), StoreError> {
    let kv = c.bucket(&c.names.bucket("groups")).await?;
    let all: Vec<(String, Group)> = super::mirror::load(&kv, "digest group").await?;
    for (_, g) in all {
        if !g.members.is_empty() && g.flush_at.is_none() {
            f.add(
                "digest groups with members but no flush time (they would never be sent)",
                g.id.clone(),
            );
        }
        for m in &g.members {
            if records.find(&m.event_id).await?.is_none() {
                f.add(
                    "digest members whose event is missing",
                    m.delivery_id.clone(),
                );
            }
        }
    }
    Ok(())
}
