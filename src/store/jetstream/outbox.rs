//! The outbox: `P_OUTBOX`, a work-queue stream of delivery messages, and `P_delivery`, the ONE durable
//! pull consumer that every daemon of an installation fetches from.
//!
//! A lease is JetStream's own: a fetched message is outstanding to this daemon until it is acked,
//! NAKed or its ack wait (`store.jetstream.ack_wait`) passes, and the server hands it to no one else
//! meanwhile. While a daemon works on a delivery it keeps the lease alive (a progress ack every third
//! of the ack wait, up to the `lease` the worker asked for), so the ack wait bounds only how long the
//! deliveries of a daemon that died (kill -9, a lost machine) wait before another daemon takes them.
//!
//! How a delivery leaves: `ack` removes it (work-queue retention deletes an acked message); a retry is
//! a NAK with the retry policy's delay (the server redelivers it then, to whichever daemon fetches);
//! `postpone` is the same without counting an attempt. Attempts live in the `P_attempts` bucket
//! (looked up only for a message delivered more than once), because a redelivery after a lost lease
//! or a postponement is not an attempt.
//!
//! Commit check: an accept publishes its deliveries, then the event's commit record in `P_seen`, and
//! answers 202 only after both. A delivery published by an accept that then failed (the cluster went
//! away mid-request: the client got 503) must not be sent, so before handing out a delivery marked
//! `commit` the lease looks for its commit record (known locally for events this daemon accepted; a
//! "none" from the bucket, which any replica may answer, is confirmed with the stream's leader).
//! Without one it is NAKed for a moment (the accept may still be finishing, here or on another
//! daemon; later looks come less often, up to 5 s apart, and the lease fetches on past it) and, once older than [`GRACE`], dropped: its accept never completed. The grace outlasts
//! the stream's duplicate window, so a client's retry of the failed request (which publishes the same
//! message ids again) is never swallowed by the deduplication of a message that was dropped.
//!
//! After the consumer is made again (`consumer_watch.rs`), every message of the outbox is handed
//! out as if for the first time (`delivered` 1). So the attempts are looked up for every message
//! published before the consumer was made, not only for redeliveries, and a delivery whose recorded
//! next attempt is still ahead (a retry waiting for its delay) is put back until then, not attempted
//! early. The same check covers a daemon that died between recording an attempt and its NAK.
//!
//! Concurrency: the held leases are a map behind a mutex, touched briefly; every network call is
//! made outside it. Each delivery is held at most once per daemon (a second copy of one id, which a
//! redrive racing a redelivery could make, waits).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::kv;
use async_nats::jetstream::message::Acker;
use futures_util::StreamExt;
use futures_util::future::join_all;

use super::cluster::{Cluster, failed, from_json, to_json, token};
use super::setup::{DUPLICATE_WINDOW, RETAIN};
use super::wire::{Attempts, DeliveryMsg};
use crate::store::{Leased, StoreError};

/// How long a delivery without a commit record may wait for it before it is dropped.
pub const GRACE: Duration = Duration::from_secs(DUPLICATE_WINDOW.as_secs() + 60);

/// Event ids committed by this daemon, remembered for the commit check.
const COMMITTED_KEPT: usize = 65_536;

/// A delivery this daemon holds.
pub struct Held {
    pub msg: DeliveryMsg,
    /// Its sequence in `P_OUTBOX` (the order of acceptance).
    pub seq: u64,
    pub attempts: u32,
    /// `P_attempts` has an entry for it.
    pub has_attempts: bool,
    acker: Arc<Acker>,
    /// Progress acks stop here: an attempt stuck past the worker's lease loses it.
    until: Instant,
}

#[derive(Default)]
struct Committed {
    set: HashSet<String>,
    order: VecDeque<String>,
}

/// The consumer side of the outbox.
pub struct Outbox {
    cluster: Cluster,
    consumer: PullConsumer,
    attempts: kv::Store,
    seen: kv::Store,
    held: Mutex<HashMap<String, Held>>,
    committed: Mutex<Committed>,
    /// When the consumer was made (Unix ns), as last seen: messages published before it may have
    /// been delivered by an earlier consumer of the same name.
    made_ns: AtomicI64,
    /// What the last fetches got (for `consumer_watch`).
    fetches: Mutex<Fetches>,
}

/// When this daemon last asked the consumer for deliveries, and what came of it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fetches {
    pub asked: Option<Instant>,
    /// Answered (with messages, or "none").
    pub answered: Option<Instant>,
    /// At least one delivery taken for the worker.
    pub handed: Option<Instant>,
}

/// What the fetches of the last moment showed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchReport {
    pub asked: bool,
    pub answered: bool,
    pub handed: bool,
}

impl Fetches {
    /// What happened in the last `within`.
    pub fn report(&self, within: Duration) -> FetchReport {
        let recent = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() < within);
        FetchReport {
            asked: recent(self.asked),
            answered: recent(self.answered),
            handed: recent(self.handed),
        }
    }
}

/// A retry whose recorded next attempt is further ahead than this is put back until then.
const EARLY: Duration = Duration::from_secs(1);

/// At most this many fetches per lease, each for the room the deliveries put back left.
const FETCH_ROUNDS: usize = 32;

/// The longest a delivery waits for its accept's commit record between two looks.
const UNCOMMITTED_WAIT_MAX: Duration = Duration::from_secs(5);

impl Outbox {
    pub async fn open(cluster: Cluster) -> Result<Outbox, StoreError> {
        let n = &cluster.names;
        let consumer: PullConsumer = cluster
            .stream(&n.outbox_stream())
            .await?
            .get_consumer(&n.consumer())
            .await
            .map_err(|e| failed("opening the delivery consumer", e))?;
        let made_ns = consumer.cached_info().created.unix_timestamp_nanos();
        Ok(Outbox {
            made_ns: AtomicI64::new(clamp_ns(made_ns)),
            fetches: Mutex::default(),
            attempts: cluster.bucket(&n.bucket("attempts")).await?,
            seen: cluster.bucket(&n.bucket("seen")).await?,
            consumer,
            cluster,
            held: Mutex::default(),
            committed: Mutex::default(),
        })
    }

    /// Notes when the consumer was made (its info's `created`, in Unix ns).
    pub fn consumer_made(&self, created_ns: i128) {
        self.made_ns.store(clamp_ns(created_ns), Ordering::Relaxed);
    }

    /// What this daemon's fetches got in the last `within`.
    pub fn fetches(&self, within: Duration) -> FetchReport {
        self.fetches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .report(within)
    }

    fn fetched(&self, f: impl FnOnce(&mut Fetches)) {
        f(&mut self.fetches.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers that this daemon committed `event_id` (its deliveries skip the commit lookup).
    pub fn committed(&self, event_id: &str) {
        let mut c = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        if c.set.insert(event_id.to_owned()) {
            c.order.push_back(event_id.to_owned());
            if c.order.len() > COMMITTED_KEPT
                && let Some(old) = c.order.pop_front()
            {
                c.set.remove(&old);
            }
        }
    }

    fn known_committed(&self, event_id: &str) -> bool {
        let c = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        c.set.contains(event_id)
    }

    /// Fetches up to `limit` deliveries that are due now, without waiting for more.
    ///
    /// What a fetch brings but cannot be attempted (a delivery whose accept has not committed, a
    /// retry not due yet, a copy attempted here) is put back with a delay, and the fetch is made
    /// again for the room it left, up to [`FETCH_ROUNDS`] times within the request timeout: the
    /// consumer hands out redeliveries before new messages, so hundreds of deliveries of failed
    /// accepts, put back every second, would otherwise fill every fetch and starve the deliveries
    /// that can be made (scripts/cluster saw 400 accepted events wait two minutes behind them).
    pub async fn lease(
        &self,
        limit: usize,
        lease: Duration,
        now: i64,
    ) -> Result<Vec<Leased>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // A fetch that is never answered (its consumer's leader was lost with a NATS node, and
        // the request with it) would wait forever: the worker waits `timeout` at most, keeps
        // what came, and asks again at its next turn.
        self.fetched(|f| f.asked = Some(Instant::now()));
        let deadline = tokio::time::Instant::now() + self.cluster.timeout;
        let until = Instant::now() + lease;
        let mut taken = Vec::new();
        for round in 0..FETCH_ROUNDS {
            let want = limit - taken.len();
            let fetched = self.fetch(want, deadline).await?;
            let got = fetched.len();
            let came = join_all(fetched.into_iter().map(|m| self.take(m, until, now))).await;
            let before = taken.len();
            taken.extend(came.into_iter().flatten());
            let put_back = got - (taken.len() - before);
            // Done when the consumer had no more, the room is filled, everything fetched was
            // taken, or the time is up (whatever was put back comes again after its delay).
            if got < want || taken.len() >= limit || put_back == 0 {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tracing::debug!(round, put_back, "fetching again past deliveries put back");
        }
        if !taken.is_empty() {
            self.fetched(|f| f.handed = Some(Instant::now()));
        }
        Ok(taken)
    }

    /// One fetch of up to `want` messages, read until the consumer's answer ends or `deadline`.
    async fn fetch(
        &self,
        want: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<async_nats::jetstream::Message>, StoreError> {
        let mut batch = tokio::time::timeout_at(
            deadline,
            self.consumer.fetch().max_messages(want).messages(),
        )
        .await
        .map_err(|e| failed("fetching deliveries", e))?
        .map_err(|e| failed("fetching deliveries", e))?;
        let mut fetched = Vec::new();
        // Whether the consumer answered: messages, or the end of its answer ("none").
        let mut answered = false;
        loop {
            match tokio::time::timeout_at(deadline, batch.next()).await {
                Ok(Some(Ok(m))) => fetched.push(m),
                Ok(None) => {
                    answered = true;
                    break;
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "fetching deliveries stopped early");
                    break;
                }
                Err(_) => {
                    tracing::warn!("a fetch of deliveries went unanswered; asking again");
                    break;
                }
            }
        }
        if !fetched.is_empty() || answered {
            self.fetched(|f| f.answered = Some(Instant::now()));
        }
        Ok(fetched)
    }

    /// One fetched message: read, checked, held (or put back).
    async fn take(
        &self,
        m: async_nats::jetstream::Message,
        until: Instant,
        now: i64,
    ) -> Option<Leased> {
        let made_ns = self.made_ns.load(Ordering::Relaxed);
        let (seq, delivered, before_consumer) = match m.info() {
            Ok(i) => (
                i.stream_sequence,
                i.delivered,
                clamp_ns(i.published.unix_timestamp_nanos()) < made_ns,
            ),
            Err(e) => {
                tracing::error!(error = %e, "a delivery without JetStream metadata; skipped");
                return None;
            }
        };
        let (message, acker) = m.split();
        let acker = Arc::new(acker);
        let msg: DeliveryMsg = match from_json("delivery", &message.payload) {
            Ok(d) => d,
            Err(e) => {
                // Not ours to read (another build, damage): keep it out of the way, visibly.
                tracing::error!(seq, error = %e, "unreadable delivery in the outbox; terminated");
                let _ = acker.ack_with(AckKind::Term).await;
                return None;
            }
        };
        let (attempts, committed) = tokio::join!(
            async {
                match delivered > 1 || before_consumer {
                    true => self.attempts_of(&msg.id).await,
                    false => Ok(None),
                }
            },
            self.commit_of(&msg, now)
        );
        let put_back = |delay: Duration, why: &str, e: Option<StoreError>| {
            tracing::debug!(delivery = %msg.id, ?delay, why, error = ?e, "delivery put back");
            let acker = acker.clone();
            async move {
                let _ = acker.ack_with(AckKind::Nak(Some(delay))).await;
            }
        };
        let attempts = match attempts {
            Ok(a) => a,
            Err(e) => {
                put_back(Duration::from_secs(1), "attempts unreadable", Some(e)).await;
                return None;
            }
        };
        match committed {
            Ok(true) => {}
            Ok(false) => {
                let age = Duration::from_millis((now - msg.created_at).max(0) as u64);
                if age < GRACE {
                    // Soon after its accept, a commit record is likely a moment away; later, the
                    // accept failed and only a client's retry can commit it: looked at less
                    // often (1 s more at each look, up to UNCOMMITTED_WAIT_MAX).
                    let wait = if age < Duration::from_secs(2) {
                        Duration::from_millis(100)
                    } else {
                        Duration::from_secs(delivered.max(1) as u64).min(UNCOMMITTED_WAIT_MAX)
                    };
                    put_back(wait, "its accept is not committed yet", None).await;
                } else {
                    tracing::warn!(delivery = %msg.id, event = %msg.event_id,
                        "dropping a delivery whose accept never completed (the client was answered 503)");
                    let _ = acker.double_ack().await;
                }
                return None;
            }
            Err(e) => {
                put_back(Duration::from_secs(1), "commit unknown", Some(e)).await;
                return None;
            }
        }
        if let Some(a) = &attempts {
            let ahead = Duration::from_millis((a.next_at - now).max(0) as u64);
            if ahead > EARLY {
                put_back(ahead, "its retry is not due yet", None).await;
                return None;
            }
        }
        let n = attempts.as_ref().map_or(0, |a| a.attempts);
        let leased = msg.leased(n);
        if self.held().contains_key(&msg.id) {
            put_back(
                Duration::from_secs(1),
                "a copy is being attempted here",
                None,
            )
            .await;
            return None;
        }
        self.held().insert(
            msg.id.clone(),
            Held {
                msg,
                seq,
                attempts: n,
                has_attempts: attempts.is_some(),
                acker,
                until,
            },
        );
        Some(leased)
    }

    /// The attempts recorded for delivery `id` (held anywhere), if any.
    pub async fn attempts_of(&self, id: &str) -> Result<Option<Attempts>, StoreError> {
        match self.attempts.get(id).await {
            Ok(Some(v)) => Ok(from_json("attempts", &v).ok()),
            Ok(None) => Ok(None),
            Err(e) => Err(failed("reading attempts", e)),
        }
    }

    /// Whether `msg` may be attempted: not from an accept, or its accept committed.
    async fn commit_of(&self, msg: &DeliveryMsg, now: i64) -> Result<bool, StoreError> {
        let age = Duration::from_millis((now - msg.created_at).max(0) as u64);
        // Past the commit records' own retention a missing record proves nothing.
        if !msg.commit || age >= RETAIN || self.known_committed(&msg.event_id) {
            return Ok(true);
        }
        match self.seen.get(token(&msg.event_id)).await {
            Ok(Some(_)) => Ok(true),
            // A bucket read may be answered by any replica (direct get), one that has just
            // restarted included: "none" is asked again of the stream's leader before the
            // delivery is put back (or, past the grace, dropped).
            Ok(None) => self.committed_at_leader(&msg.event_id).await,
            Err(e) => Err(failed("reading commit records", e)),
        }
    }

    /// The commit record of `event_id`, read from the leader of the bucket's stream.
    async fn committed_at_leader(&self, event_id: &str) -> Result<bool, StoreError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let subject = format!("{}{}", self.seen.prefix, token(event_id));
        let stream = self.cluster.stream(&self.seen.stream_name).await?;
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => Ok(!m.payload.is_empty()),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(false),
            Err(e) => Err(failed("reading commit records", e)),
        }
    }

    /// Takes a held delivery out of the lease table (`None`: not held here).
    pub fn take_held(&self, id: &str) -> Option<Held> {
        self.held().remove(id)
    }

    /// Looks at a held delivery.
    pub fn with_held<T>(&self, id: &str, f: impl FnOnce(&Held) -> T) -> Option<T> {
        self.held().get(id).map(f)
    }

    /// Settles a delivery taken with [`Outbox::take_held`]: `Ack` removes it from the outbox, a NAK
    /// with a delay makes it due again then. Confirmed by the server before returning.
    pub async fn settle(&self, h: &Held, kind: AckKind) -> Result<(), StoreError> {
        let done = matches!(kind, AckKind::Ack);
        h.acker
            .double_ack_with(kind)
            .await
            .map_err(|e| failed("acknowledging a delivery", e))?;
        if done && h.has_attempts {
            // Best effort: a stale entry only costs a lookup if the id is ever seen again.
            let _ = self.attempts.purge(&h.msg.id).await;
        }
        Ok(())
    }

    /// Records an attempt (and when the next is due) before a retry's NAK.
    pub async fn count_attempt(
        &self,
        h: &Held,
        next_at: i64,
        error: String,
    ) -> Result<(), StoreError> {
        let a = Attempts {
            attempts: h.attempts + 1,
            next_at,
            last_error: Some(error),
        };
        self.attempts
            .put(&h.msg.id, to_json(&a).into())
            .await
            .map_err(|e| failed("recording an attempt", e))?;
        Ok(())
    }

    /// When delivery `id` (held anywhere) is next attempted, if an attempt was recorded.
    pub async fn next_attempt(&self, id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.attempts_of(id).await?.map(|a| a.next_at))
    }

    /// Forgets the attempts of `id` (a redrive starts over).
    pub async fn reset_attempts(&self, id: &str) -> Result<(), StoreError> {
        self.attempts
            .purge(id)
            .await
            .map_err(|e| failed("resetting attempts", e))
    }

    /// Extends the leases of the deliveries this daemon works on (see the module doc).
    pub async fn keep_alive(&self) {
        let now = Instant::now();
        let ackers: Vec<Arc<Acker>> = self
            .held()
            .values()
            .filter(|h| h.until > now)
            .map(|h| h.acker.clone())
            .collect();
        for a in ackers {
            let _ = a.ack_with(AckKind::Progress).await;
        }
    }

    /// How often [`Outbox::keep_alive`] must run.
    pub fn keep_alive_every(&self) -> Duration {
        (self.cluster.ack_wait / 3).max(Duration::from_millis(200))
    }

    /// Deliveries in the outbox (due, waiting for a retry, or being attempted anywhere).
    pub async fn depth(&self) -> Result<u64, StoreError> {
        let s = self
            .cluster
            .stream(&self.cluster.names.outbox_stream())
            .await?;
        let info = s
            .get_info()
            .await
            .map_err(|e| failed("reading the outbox", e))?;
        Ok(info.state.messages)
    }

    /// Deliveries that failed at least once and wait in the outbox (their `P_attempts` entries).
    pub async fn retrying(&self) -> Result<u64, StoreError> {
        super::mirror::count(&self.attempts).await
    }

    /// Rings every daemon's doorbell: deliveries were stored.
    pub async fn ring(&self) {
        let _ = self
            .cluster
            .client
            .publish(self.cluster.names.doorbell(), Default::default())
            .await;
    }
}

/// A time in Unix ns as an `i64` (good until 2262).
fn clamp_ns(ns: i128) -> i64 {
    ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}
