//! Retention on JetStream (the Store contract's `prune`, `prune_oldest` and `space`): what the
//! retention task (`crate::retention`) decided has expired goes, in bounded batches, by deleting
//! stream messages; never by an age limit of the cluster's own, so `store.retain_*` mean the same
//! on both backends and `0` keeps for ever.
//!
//! - Events: the archive is read oldest first (stream order); an event goes when its class's
//!   cutoff has passed (matched: `retain_events`, unmatched: `retain_unmatched`) and nothing needs
//!   it any more: each of its deliveries (and of its replays) was delivered, sent in a digest or
//!   suppressed, or its dead letter was purged. A pending delivery, a dead letter or a digest member
//!   keeps it. Going means: its archive message deleted, then everything recorded about it
//!   (`records.rs` `forget`: delivery states, replays, the commit record), so an accept of the same
//!   id later is a new event, as with SQLite. An archive record whose accept never committed (the
//!   client got 503) goes once older than the cutoff. A scan stops [`SKEW`] past the newest cutoff
//!   or after [`SCAN_MAX`] messages, so one call is bounded.
//! - Suppressed records: the oldest, by a purge of `P_SUPPRESSED` up to the first one still kept.
//! - Bucket entries (scan history, dedup claims, resolved alerts, idle digest groups): the
//!   bucket's stream is read oldest-written first (one message per key: history 1) and expired
//!   entries are purged up to their revision ([`Cluster::erase_revision`]), so a value rewritten
//!   meanwhile is never lost, and no delete marker is left. An open alert, a closed one whose trigger or resolve is still in the
//!   outbox, and a digest group with members or a flush due are kept.
//!
//! `space`: the bytes of every stream of the installation (buckets included) against
//! `store.max_db_bytes`; new events are refused (`at_limit`) within a twentieth of it, after the
//! retention task pruned the oldest archive (as with SQLite). The disk is the NATS servers': a full
//! one makes publishes fail, so ingest answers 503 from the failure itself (`disk_full` is never
//! set: there is no local reserve to release, and acks need no room on the servers).

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures_util::future::try_join_all;
use serde::Deserialize;

use super::archive::{self, SKEW};
use super::cluster::{Cluster, failed};
use super::dead::Dead;
use super::outbox::{GRACE, Outbox};
use super::records::Records;
use super::wire::{EventMsg, Replays};
use crate::store::{DeliveryState, Pruned, Retention, Space, StoreError, Suppressed};

/// At most this many messages are read per kind and call.
pub const SCAN_MAX: usize = 20_000;
/// Messages read per chunk of a bucket's stream.
const CHUNK: usize = 500;

/// The parts retention works on.
pub struct Retainer<'a> {
    pub cluster: &'a Cluster,
    pub records: &'a Records,
    pub outbox: &'a Outbox,
    pub dead: &'a Dead,
}

/// An archived event that nothing needs, found by a scan.
struct Prunable {
    seq: u64,
    event: EventMsg,
    replays: Replays,
    matched: bool,
}

impl Retainer<'_> {
    /// Whether nothing needs event `e` any more (see the module doc).
    async fn done(&self, e: &EventMsg, replays: &Replays) -> Result<bool, StoreError> {
        let deliveries = self
            .records
            .deliveries_with(e, replays, self.outbox)
            .await?;
        for d in deliveries {
            match d.state {
                DeliveryState::Delivered { .. }
                | DeliveryState::InDigest { .. }
                | DeliveryState::Suppressed { .. } => {}
                DeliveryState::DeadLettered { .. } => {
                    if self.dead.find(&d.id).await?.is_some() {
                        return Ok(false);
                    }
                }
                DeliveryState::Pending { .. } | DeliveryState::Grouped { .. } => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Reads the archive oldest first and returns the events that may go: those `keep` does not
    /// keep, up to `want(unmatched, matched)` of each class; uncommitted records older than
    /// `orphans_before` come back too (as unmatched). Stops at `stop_at` (an acceptance time).
    async fn scan(
        &self,
        keep: impl Fn(&EventMsg, bool) -> bool + Copy,
        want: (usize, usize),
        orphans_before: Option<i64>,
        stop_at: i64,
    ) -> Result<Vec<Prunable>, StoreError> {
        let mut out = Vec::new();
        let (mut unmatched, mut matched) = (0, 0);
        let Some((first, last)) = archive::bounds(self.cluster).await? else {
            return Ok(out);
        };
        let (mut at, mut scanned) = (first, 0);
        while at <= last && scanned < SCAN_MAX && (unmatched < want.0 || matched < want.1) {
            let to = at.saturating_add(CHUNK as u64 - 1).min(last);
            let read = archive::chunk(self.cluster, at, to).await?;
            scanned += read.len().max(1);
            let judged = try_join_all(read.into_iter().map(|(seq, e)| async move {
                let committed = self.records.committed(&e.id).await?;
                let (_, replays) = self.records.replays_of(&e.id).await?;
                let is_matched = e.is_matched(!replays.deliveries.is_empty());
                let verdict = if !committed {
                    orphans_before.is_some_and(|b| e.received_at < b)
                } else {
                    !keep(&e, is_matched) && self.done(&e, &replays).await?
                };
                Ok::<_, StoreError>((seq, e, replays, is_matched && committed, verdict))
            }))
            .await?;
            for (seq, event, replays, is_matched, verdict) in judged {
                if event.received_at >= stop_at {
                    return Ok(out);
                }
                let room = match is_matched {
                    true => matched < want.1,
                    false => unmatched < want.0,
                };
                if verdict && room {
                    match is_matched {
                        true => matched += 1,
                        false => unmatched += 1,
                    }
                    out.push(Prunable {
                        seq,
                        event,
                        replays,
                        matched: is_matched,
                    });
                }
            }
            at = to.saturating_add(1);
        }
        Ok(out)
    }

    /// Deletes the events found: the archive message first, then what is recorded about them.
    async fn delete(&self, found: &[Prunable]) -> Result<(), StoreError> {
        let name = self.cluster.names.events_stream();
        try_join_all(found.iter().map(|p| {
            let name = name.clone();
            async move {
                self.cluster.delete_message(&name, p.seq).await?;
                self.records.forget(&p.event, &p.replays).await
            }
        }))
        .await?;
        Ok(())
    }

    /// The Store contract's `prune`.
    pub async fn prune(&self, r: &Retention) -> Result<Pruned, StoreError> {
        let limit = r.limit.max(1);
        let mut p = Pruned::default();
        let (u, m) = (r.unmatched_before_ms, r.matched_before_ms);
        if u.is_some() || m.is_some() {
            let newest = u.max(m).unwrap_or(i64::MIN);
            let keep = |e: &EventMsg, matched: bool| {
                let cutoff = if matched { m } else { u };
                cutoff.is_none_or(|c| e.received_at >= c)
            };
            let want = (
                if u.is_some() { limit } else { 0 },
                if m.is_some() { limit } else { 0 },
            );
            let found = self
                .scan(keep, want, Some(newest), newest.saturating_add(SKEW))
                .await?;
            self.delete(&found).await?;
            let n_matched = found.iter().filter(|f| f.matched).count();
            p.more |= n_matched >= want.1.max(1) || found.len() - n_matched >= want.0.max(1);
            p.events = found.len() as u64;
        }
        if let Some(before) = r.suppressed_before_ms {
            p.suppressed = self.prune_suppressed(Some(before), limit).await?;
        }
        if let Some(before) = r.history_before_ms {
            p.history = self
                .sweep("history", limit, |v: History| v.at < before)
                .await?;
            p.groups = self
                .sweep("groups", limit, |g: Group| {
                    g.flush_at.is_none()
                        && g.members.is_empty()
                        && g.last_flush_at.unwrap_or(g.first_at) < before
                })
                .await?;
            p.alerts = self.prune_alerts(before, limit).await?;
        }
        if let Some(before) = r.dedup_before_ms {
            p.dedup = self.sweep("dedup", limit, |c: Claim| c.at < before).await?;
        }
        p.more |= [p.suppressed, p.history, p.dedup, p.alerts, p.groups]
            .iter()
            .any(|&n| n >= limit as u64);
        Ok(p)
    }

    /// The Store contract's `prune_oldest`: unmatched events first, then matched ones, whatever
    /// their age, and as many of the oldest suppressed records.
    pub async fn prune_oldest(&self, limit: usize) -> Result<u64, StoreError> {
        let limit = limit.max(1);
        // An uncommitted record may belong to an accept still under way: only past the grace.
        let orphans_before = match archive::bounds(self.cluster).await? {
            Some((_, last)) => archive::chunk(self.cluster, last, last)
                .await?
                .first()
                .map(|(_, e)| e.received_at - GRACE.as_millis() as i64),
            None => None,
        };
        let mut found = self
            .scan(|_, _| false, (limit, limit), orphans_before, i64::MAX)
            .await?;
        // Unmatched first: the scan found up to `limit` of each class, oldest first.
        found.sort_by_key(|f| f.matched);
        found.truncate(limit);
        self.delete(&found).await?;
        let suppressed = self.prune_suppressed(None, limit).await?;
        Ok(found.len() as u64 + suppressed)
    }

    /// Purges up to `limit` of the oldest suppressed records (those before `before`, if given).
    async fn prune_suppressed(&self, before: Option<i64>, limit: usize) -> Result<u64, StoreError> {
        let name = self.cluster.names.suppressed_stream();
        let stream = self.cluster.stream(&name).await?;
        let read = self.cluster.scan(&name, DeliverPolicy::All, limit).await?;
        // The first record kept: everything before it goes.
        let mut upto = None;
        let mut n = 0;
        for (seq, payload) in &read {
            let expired = match serde_json::from_slice::<Suppressed>(payload) {
                Ok(s) => before.is_none_or(|b| s.at_ms < b),
                Err(_) => true, // unreadable: nothing can use it
            };
            if !expired {
                upto = Some(*seq);
                break;
            }
            n += 1;
            upto = Some(seq + 1);
        }
        match upto {
            Some(seq) if n > 0 => {
                let r = stream
                    .purge()
                    .sequence(seq)
                    .await
                    .map_err(|e| failed("pruning suppressed records", e))?;
                Ok(r.purged)
            }
            _ => Ok(0),
        }
    }

    /// Deletes up to `limit` entries of bucket `what` whose value `expired` says so, oldest written
    /// first; values that do not parse as `T` (delete markers, other builds') are left alone.
    async fn sweep<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        limit: usize,
        expired: impl Fn(T) -> bool,
    ) -> Result<u64, StoreError> {
        let name = format!("KV_{}", self.cluster.names.bucket(what));
        let mut gone = Vec::new();
        let read = self
            .cluster
            .scan_subjects(&name, DeliverPolicy::All, SCAN_MAX)
            .await?;
        for m in read {
            if let Ok(v) = serde_json::from_slice::<T>(&m.payload)
                && expired(v)
            {
                gone.push(m);
                if gone.len() >= limit {
                    break;
                }
            }
        }
        let name = &name;
        try_join_all(
            gone.iter()
                .map(|m| async move { self.cluster.erase_revision(name, &m.subject, m.seq).await }),
        )
        .await?;
        Ok(gone.len() as u64)
    }

    /// Deletes the entries of `P_alerts` whose every state is resolved and last changed before
    /// `before`, with no trigger or resolve of it in the outbox.
    async fn prune_alerts(&self, before: i64, limit: usize) -> Result<u64, StoreError> {
        let name = format!("KV_{}", self.cluster.names.bucket("alerts"));
        let outbox = self
            .cluster
            .stream(&self.cluster.names.outbox_stream())
            .await?;
        let read = self
            .cluster
            .scan_subjects(&name, DeliverPolicy::All, SCAN_MAX)
            .await?;
        let mut n = 0;
        for m in read {
            let Ok(entry) = serde_json::from_slice::<AlertEntry>(&m.payload) else {
                continue;
            };
            if entry
                .states
                .iter()
                .any(|s| s.open || s.updated_at >= before)
            {
                continue;
            }
            // The key's token is the last token of the bucket subject.
            let Some(key) = m.subject.rsplit('.').next().map(str::to_owned) else {
                continue;
            };
            let mut in_outbox = false;
            for s in &entry.states {
                for kind in ["trigger", "resolve"] {
                    let subject = self
                        .cluster
                        .names
                        .alert_subject_of_token(&key, &s.rule, &s.target, kind);
                    match outbox.get_first_raw_message_by_subject(&subject, 0).await {
                        Ok(_) => in_outbox = true,
                        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                        Err(e) => return Err(failed("reading the outbox", e)),
                    }
                }
            }
            if !in_outbox {
                self.cluster
                    .erase_revision(&name, &m.subject, m.seq)
                    .await?;
                n += 1;
                if n >= limit as u64 {
                    break;
                }
            }
        }
        Ok(n)
    }

    /// The Store contract's `space`.
    pub async fn space(&self, limit_bytes: u64) -> Result<Space, StoreError> {
        let used = try_join_all(self.cluster.names.all_streams().into_iter().map(
            |name| async move {
                let s = self.cluster.stream(&name).await?;
                let info = s
                    .get_info()
                    .await
                    .map_err(|e| failed(&format!("reading stream {name}"), e))?;
                Ok::<_, StoreError>(info.state.bytes)
            },
        ))
        .await?
        .into_iter()
        .sum::<u64>();
        Ok(Space {
            used_bytes: used,
            limit_bytes,
            disk_full: false,
            at_limit: limit_bytes > 0 && used >= limit_bytes - limit_bytes / 20,
            pruned: 0,
        })
    }
}

/// The fields of bucket values retention reads (the writers' own types stay theirs).
#[derive(Deserialize)]
struct History {
    at: i64,
}

#[derive(Deserialize)]
struct Claim {
    at: i64,
}

#[derive(Deserialize)]
struct Group {
    first_at: i64,
    flush_at: Option<i64>,
    last_flush_at: Option<i64>,
    members: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct AlertEntry {
    states: Vec<AlertStateTimes>,
}

#[derive(Deserialize)]
struct AlertStateTimes {
    rule: String,
    target: String,
    open: bool,
    updated_at: i64,
}
