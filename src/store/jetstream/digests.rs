//! Digest groups in the `P_groups` bucket: one entry per group (rule, target, labels) with its
//! schedule and its members (delivery and event ids; the bodies stay in the archive).
//!
//! Joining a group is a check-and-set of its entry, then the ack that takes the delivery out of the
//! outbox (a crash between the two leaves the delivery in both: it joins again, once, since members
//! are keyed by delivery id). Every daemon looks for due groups (from a [`Mirror`] of the bucket) and
//! may try to flush one; a flush takes the group in three steps so that it is done exactly once,
//! even across a crash:
//! 1. claim: write a *flushing* mark into the group (check-and-set: one daemon wins) holding the
//!    digest event and the members it folds;
//! 2. publish the digest event and its deliveries (with their ids as `Nats-Msg-Id`);
//! 3. remove those members and the mark, and schedule the next flush (check-and-set again).
//!
//! A mark older than [`STALE_MS`] belongs to a daemon that died between 1 and 3: the next flush takes
//! it over and publishes the *same* digest (the stream drops it if it was already published), so
//! no digest is lost and none is sent twice.

use std::collections::HashSet;

use async_nats::jetstream::kv::{self, Operation};
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};

use super::cluster::{Cluster, failed, from_json, msg_id, to_json};
use super::events::Events;
use super::mirror::{Mirror, load};
use super::wire::{DeliveryMsg, EventMsg};
use crate::store::{DueGroup, GroupAdd, Member, NewDelivery, NewEvent, StoreError};

/// How long a flush may take before another daemon takes it over.
pub const STALE_MS: i64 = 30_000;
const TRIES: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    id: String,
    rule: String,
    target: String,
    labels: String,
    first_at: i64,
    flush_at: Option<i64>,
    last_flush_at: Option<i64>,
    members: Vec<MemberRef>,
    #[serde(default)]
    flushing: Option<Flushing>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemberRef {
    delivery_id: String,
    event_id: String,
    added_at: i64,
}

/// A flush in progress (step 1 done).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Flushing {
    at: i64,
    members: Vec<String>,
    digest_id: String,
    digest_body: String,
    /// (id, rule, target, input)
    deliveries: Vec<(String, String, String, Option<String>)>,
}

pub struct Digests {
    kv: kv::Store,
    cluster: Cluster,
    mirror: Option<Mirror<Group>>,
}

impl Digests {
    pub async fn open(c: &Cluster, follow: bool) -> Result<Digests, StoreError> {
        let kv = c.bucket(&c.names.bucket("groups")).await?;
        let mirror = follow.then(|| Mirror::start(c.js.clone(), kv.clone(), "digest group"));
        Ok(Digests {
            kv,
            cluster: c.clone(),
            mirror,
        })
    }

    async fn read(&self, id: &str) -> Result<(Option<u64>, Option<Group>), StoreError> {
        let e = self
            .kv
            .entry(id)
            .await
            .map_err(|e| failed("reading a digest group", e))?;
        Ok(match e {
            Some(e) if e.operation == Operation::Put => {
                (Some(e.revision), Some(from_json("digest group", &e.value)?))
            }
            Some(e) => (Some(e.revision), None),
            None => (None, None),
        })
    }

    /// Writes `g` at `rev` (None: create); `Ok(false)` when another writer came first.
    async fn write(&self, rev: Option<u64>, g: &Group) -> Result<bool, StoreError> {
        let value = to_json(g).into();
        match rev {
            Some(rev) => match self.kv.update(&g.id, value, rev).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
                Err(e) => Err(failed("writing a digest group", e)),
            },
            None => match self.kv.create(&g.id, value).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(failed("writing a digest group", e)),
            },
        }
    }

    /// Adds the delivery of event `event_id` to its group (the schedule as the SQLite backend keeps it).
    pub async fn add(&self, a: &GroupAdd, event_id: &str) -> Result<(), StoreError> {
        // Group ids are hex digests made by the digest stage; anything else is not a key.
        if a.group_id.is_empty() || !a.group_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(StoreError::JetStream(format!(
                "digest group id {:?} is not a key",
                a.group_id
            )));
        }
        for _ in 0..TRIES {
            let (rev, found) = self.read(&a.group_id).await?;
            let mut g = match found {
                // Pending flush: join it.
                Some(g) if g.flush_at.is_some() => g,
                // Flushed recently: the next flush comes one interval after the last.
                Some(mut g)
                    if g.last_flush_at
                        .is_some_and(|l| a.now_ms < l + a.interval_ms) =>
                {
                    g.flush_at = g.last_flush_at.map(|l| l + a.interval_ms);
                    g
                }
                // New, or idle for a whole interval: start over and wait group_wait.
                other => {
                    let (members, flushing) =
                        other.map(|g| (g.members, g.flushing)).unwrap_or_default();
                    Group {
                        id: a.group_id.clone(),
                        rule: a.rule.clone(),
                        target: a.target.clone(),
                        labels: a.labels.clone(),
                        first_at: a.now_ms,
                        flush_at: Some(a.now_ms + a.wait_ms),
                        last_flush_at: None,
                        members,
                        flushing,
                    }
                }
            };
            g.members.retain(|m| m.delivery_id != a.delivery_id);
            g.members.push(MemberRef {
                delivery_id: a.delivery_id.clone(),
                event_id: event_id.to_owned(),
                added_at: a.now_ms,
            });
            if self.write(rev, &g).await? {
                return Ok(());
            }
        }
        Err(StoreError::JetStream(format!(
            "digest group {} kept changing under {TRIES} tries",
            a.group_id
        )))
    }

    /// Every group (from the mirror when it is in step).
    async fn all(&self) -> Result<Vec<Group>, StoreError> {
        Ok(match self.mirror.as_ref().and_then(Mirror::values) {
            Some(g) => g,
            None => load::<Group>(&self.kv, "digest group")
                .await?
                .into_iter()
                .map(|(_, g)| g)
                .collect(),
        })
    }

    /// Deliveries waiting in groups.
    pub async fn members(&self) -> Result<u64, StoreError> {
        Ok(self
            .all()
            .await?
            .iter()
            .map(|g| g.members.len() as u64)
            .sum())
    }

    /// Groups due at `now`, with their members' events from the archive (oldest first).
    pub async fn due(&self, now: i64, events: &Events) -> Result<Vec<DueGroup>, StoreError> {
        let groups = self.all().await?;
        let mut due: Vec<Group> = groups
            .into_iter()
            .filter(|g| g.flush_at.is_some_and(|f| f <= now))
            .filter(|g| g.flushing.as_ref().is_none_or(|f| now - f.at >= STALE_MS))
            .collect();
        due.sort_by_key(|g| g.flush_at);
        let mut out = Vec::with_capacity(due.len());
        for g in due {
            let mut members = g.members.clone();
            members.sort_by(|a, b| (a.added_at, &a.delivery_id).cmp(&(b.added_at, &b.delivery_id)));
            let bodies = try_join_all(members.iter().map(|m| events.get(&m.event_id))).await?;
            out.push(DueGroup {
                id: g.id,
                rule: g.rule,
                target: g.target,
                labels: g.labels,
                members: members
                    .into_iter()
                    .zip(bodies)
                    .map(|(m, e)| Member {
                        delivery_id: m.delivery_id,
                        event_id: m.event_id,
                        body: e.map_or_else(|| "{}".to_owned(), |e| e.body.get().to_owned()),
                        added_at_ms: m.added_at,
                    })
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Replaces the listed members of group `id` by the digest event (module doc: three steps).
    /// Returns the members this call folded into the digest, (event id, delivery id); none when
    /// another daemon flushes the group.
    pub async fn flush(
        &self,
        id: &str,
        members: &[String],
        digest: &NewEvent,
        now: i64,
        interval_ms: i64,
        events: &Events,
    ) -> Result<Vec<(String, String)>, StoreError> {
        // 1. Claim the flush.
        let mut mark = None;
        for _ in 0..TRIES {
            let (rev, Some(mut g)) = self.read(id).await? else {
                return Ok(Vec::new()); // no such group (any more)
            };
            let taken_over = match &g.flushing {
                Some(f) if now - f.at < STALE_MS => return Ok(Vec::new()), // another daemon is at it
                Some(f) => Some(f.clone()),
                None if g.flush_at.is_none_or(|f| f > now) => return Ok(Vec::new()), // flushed meanwhile
                None => None,
            };
            let present: HashSet<&str> = g.members.iter().map(|m| m.delivery_id.as_str()).collect();
            let f = match taken_over {
                Some(f) => Flushing { at: now, ..f },
                None => Flushing {
                    at: now,
                    members: members
                        .iter()
                        .filter(|m| present.contains(m.as_str()))
                        .cloned()
                        .collect(),
                    digest_id: digest.id.clone(),
                    digest_body: digest.body.clone(),
                    deliveries: digest
                        .deliveries
                        .iter()
                        .map(|d| {
                            (
                                d.id.clone(),
                                d.rule.clone(),
                                d.target.clone(),
                                d.input.clone(),
                            )
                        })
                        .collect(),
                },
            };
            g.flushing = Some(f.clone());
            if self.write(rev, &g).await? {
                mark = Some(f);
                break;
            }
        }
        let Some(f) = mark else {
            return Ok(Vec::new()); // kept losing to other daemons: one of them flushes it
        };
        // 2. The digest event and its deliveries.
        if !f.members.is_empty() {
            let archived = events
                .publish(&EventMsg {
                    id: f.digest_id.clone(),
                    received_at: now,
                    body: super::wire::raw(&f.digest_body),
                    previous: None,
                    deliveries: f
                        .deliveries
                        .iter()
                        .map(|(i, r, t, _)| (i.clone(), r.clone(), t.clone()))
                        .collect(),
                    matched: true,
                    rules: Vec::new(),
                })
                .await?;
            let mut acks = vec![archived];
            for (did, rule, target, input) in &f.deliveries {
                let d = NewDelivery {
                    id: did.clone(),
                    rule: rule.clone(),
                    target: target.clone(),
                    input: input.clone(),
                    alert: None,
                };
                let mut m = DeliveryMsg::new(&d, &f.digest_id, &f.digest_body, None, now);
                m.commit = false;
                acks.push(
                    self.cluster
                        .publish(
                            m.subject(&self.cluster.names),
                            to_json(&m),
                            Some(&msg_id(did)),
                        )
                        .await?,
                );
            }
            try_join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
                .await
                .map_err(|e| failed("publishing a digest", e))?;
        }
        // 3. Members out, mark off, next flush scheduled.
        for _ in 0..TRIES {
            let (rev, Some(mut g)) = self.read(id).await? else {
                return Ok(Vec::new());
            };
            let folded: Vec<(String, String)> = g
                .members
                .iter()
                .filter(|m| f.members.contains(&m.delivery_id))
                .map(|m| (m.event_id.clone(), m.delivery_id.clone()))
                .collect();
            g.members.retain(|m| !f.members.contains(&m.delivery_id));
            g.flushing = None;
            g.last_flush_at = Some(now);
            // Members that arrived meanwhile wait for the next interval.
            g.flush_at = (!g.members.is_empty()).then_some(now + interval_ms);
            if self.write(rev, &g).await? {
                return Ok(folded);
            }
        }
        Err(StoreError::JetStream(format!(
            "digest group {id} kept changing under {TRIES} tries"
        )))
    }
}
