//! The distributed store: NATS JetStream streams and key-value buckets, shared by any number of
//! daemons configured with the same `[store.jetstream]` (servers and prefix). It keeps the [`Store`]
//! contract with JetStream's own tools, one concept per file:
//! - [`cluster`] the connection and every name, [`wire`] what the messages and values hold,
//!   [`setup`] the streams, buckets and consumer it makes at start-up;
//! - [`accept`] the write order of an accept (deliveries and archive, then the commit record;
//!   202 only after every acknowledgement), [`events`] the archive;
//! - [`outbox`] the deliveries and the ONE durable pull consumer all daemons share (a lease is the
//!   consumer's ack wait, kept alive while the delivery is attempted; a retry is a NAK with the
//!   retry policy's delay); [`dead`] dead letters and redrive; [`suppressed`] the suppressed log;
//! - alerting state with check-and-set on bucket revisions: [`history`] (scan history),
//!   [`claims`] (dedup claims), [`alerts`] (open/resolved alerts and the order of their
//!   deliveries), [`digests`] (digest groups, flushed exactly once), [`silences`]; [`mirror`]
//!   follows the small buckets a worker reads all the time;
//! - [`records`] what became of each delivery, and the listings of events built on it.
//!
//! Differences from the SQLite backend, by nature of a shared cluster:
//! - Time: due times of retries and postponements are kept by the NATS server (a NAK's delay), not
//!   compared with the `now_ms` the caller hands in; everything the store records still takes the
//!   caller's `now_ms`.
//! - A delivery held by a daemon that died returns to the others after `ack_wait`, not at once
//!   (there is no "the previous owner is gone" moment in a cluster).
//! - No data directory and no lock: several `serve` processes share the work by design.
//!
//! The daemon opens it with a wake-up ([`JetStreamStore::open`]'s `wake`): then it also keeps the
//! leases it holds alive, follows the silences and digest groups, and wakes its worker when any
//! daemon stored deliveries (the doorbell). The CLI tools open it without.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::AckKind;
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use tokio::sync::Notify;

use super::{
    AlertCheck, AlertState, BoxFuture, Counts, DeadLetter, DeliveryState, DueGroup, EventRecord,
    GroupAdd, Leased, NewEvent, Silence, Store, StoreError, Stored, Suppressed,
};
use crate::config::JetStreamConfig;

mod accept;
mod alerts;
mod claims;
mod cluster;
mod dead;
mod digests;
mod events;
mod history;
mod mirror;
mod outbox;
mod records;
mod setup;
mod silences;
mod suppressed;
mod wire;

use cluster::{Cluster, Names, failed};
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

impl JetStreamStore {
    /// Opens the store on the cluster of `cfg`, making its streams, buckets and consumer if needed.
    /// `wake` (the daemon's worker wake-up) turns on what only a daemon needs (module doc).
    pub async fn open(
        cfg: &JetStreamConfig,
        wake: Option<Arc<Notify>>,
    ) -> Result<JetStreamStore, StoreError> {
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
        };
        // A cluster that is starting (electing its JetStream leader) refuses for a moment.
        let deadline = Instant::now() + cfg.connect_timeout;
        loop {
            match setup::ensure(&cluster).await {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "JetStream not ready yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
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
                outbox,
                cluster,
                tasks,
            }),
        })
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
                let (event_id, id) = (m.delivery.event_id.clone(), m.delivery.id.clone());
                i.dead.redrive_one(seq, m, now_ms, &i.outbox).await?;
                i.records.clear(&event_id, &id).await?;
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
