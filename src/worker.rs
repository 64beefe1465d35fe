//! The delivery worker: lease due deliveries, send each once, then ack, schedule a retry, or
//! dead-letter.
//!
//! One dispatcher task runs each attempt as its own task. Deliveries reach it two ways: leased by the
//! commit that stored them and handed over by ingest at once ([`crate::inbox`]; no lease read), or
//! found by a lease read of the outbox: at start-up, when woken (a redrive, deliveries ingest had no
//! free slot for), at every `delivery.poll_interval` (due retries), and again at once while reads
//! fill every free slot. Either way a delivery holds one of `delivery.workers` slots until its
//! outcome is recorded, so what does not fit waits in the outbox, not in memory.
//!
//! Each target has a lane: at most its `concurrency` attempts at once (HTTP targets reuse pooled
//! connections), the rest of its deliveries wait in the lane. A lease read hands a busy target at
//! most twice its concurrency held in all, so that a slow or failing target cannot take every slot
//! from the others. Acks, retries and dead letters of concurrent attempts share commits (the
//! store's group commit). Outcomes: delivered → ack; retryable → the target's
//! [`RetryPolicy`] picks the delay (or gives up → dead letter with the reason); permanent → dead letter.
//!
//! Before an attempt, the notification pipeline ([`crate::alerting::Alerting::gate`]) may hold the
//! delivery back (waiting for an earlier delivery of the same alert, silenced, duplicate, not news,
//! grouped into a digest, rate limited); the dispatcher also flushes due digest groups on every
//! turn. A delivery that triggers or resolves an alert carries its mark to the target (a resolve
//! says "resolved" in the target's own terms), and its ack records the alert's new state.
//!
//! A replayed delivery (`scanbridge replay`, [`Leased::replay`]) sends its archived event with
//! EventBridge's `replay-name` field set to the replay id, and carries the id to the receiver.
//!
//! Shutdown: on cancellation the dispatcher stops leasing and waits for in-flight attempts (each bounded
//! by its target's timeout) to finish and record their outcome. Anything not recorded (a crash) is
//! leased again after restart: at-least-once, never lost.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alerting::SharedClock;
use crate::config::DeliveryConfig;
use crate::event::Handoff;
use crate::inbox::Inbox;
use crate::metrics::Metrics;
use crate::notify::{Message, Outcome, Targets};
use crate::retry::{Decision, RetryPolicy};
use crate::store::{Leased, Store};

/// Everything an attempt needs; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    pub store: Arc<dyn Store>,
    pub targets: Arc<Targets>,
    pub metrics: Arc<Metrics>,
    /// Notified by ingest when new deliveries are stored.
    pub wake: Arc<Notify>,
    pub config: DeliveryConfig,
    /// The notification pipeline (silences, notify_on, dedup, digests, rate limits).
    pub alerting: Arc<crate::alerting::Alerting>,
    /// The daemon's clock: leases, retry times and ages.
    pub clock: SharedClock,
    /// Parsed views of the events, handed over by ingest (an attempt parses only without one).
    pub handoff: Arc<Handoff>,
    /// Deliveries leased by the commit that stored them, and the count of delivery slots.
    pub inbox: Arc<Inbox>,
}

/// How a delivery reached the worker (`scanbridge_deliveries_leased_total{via}`).
#[derive(Debug, Clone, Copy)]
enum Via {
    /// Leased by the commit that stored it, handed over by ingest.
    Accept,
    /// Found by a lease read of the outbox (retries, start-up, redrives, overflow).
    Poll,
}

/// What a lease read found room for.
enum Read {
    /// It filled every free slot: there may be more due, read again.
    Filled,
    /// It took every due delivery it had room for.
    Done,
    /// Too few free slots to read now; read when attempts end.
    NoRoom,
}

/// The deliveries this worker holds, by target: bounded per target by its `concurrency`.
#[derive(Default)]
struct Lanes {
    by_target: HashMap<String, Lane>,
}

struct Lane {
    /// One permit per attempt in flight.
    permits: Arc<Semaphore>,
    /// Deliveries held (waiting for a permit or being attempted).
    held: usize,
    concurrency: usize,
}

impl Lanes {
    fn lane(&mut self, targets: &Targets, target: &str) -> &mut Lane {
        self.by_target.entry(target.to_owned()).or_insert_with(|| {
            let concurrency = targets.concurrency(target);
            Lane {
                permits: Arc::new(Semaphore::new(concurrency)),
                held: 0,
                concurrency,
            }
        })
    }

    /// How many more deliveries of each busy target a lease read may hand out: enough to keep
    /// each target's slots full (twice its concurrency held), so that a slow target cannot take the
    /// slots of the others.
    fn room(&self) -> BTreeMap<String, usize> {
        self.by_target
            .iter()
            .filter(|(_, l)| l.held > 0)
            .map(|(t, l)| (t.clone(), (2 * l.concurrency).saturating_sub(l.held)))
            .collect()
    }
}

/// What the worker holds: the deliveries being attempted (by attempt task), per target.
#[derive(Default)]
struct Held {
    lanes: Lanes,
    /// Attempt task -> (delivery id, target).
    tasks: HashMap<tokio::task::Id, (String, String)>,
    /// Delivery ids held: a lease read that hands one out again (its lease expired while it
    /// waited for its target) does not start a second attempt.
    ids: HashSet<String>,
    /// Targets whose room held the last lease read back: read again when one of their attempts ends.
    capped: HashSet<String>,
    /// Deliveries a lease read handed out while their attempt was still being booked here (its
    /// outcome committed, its task not yet joined): given back, and read again once it is joined.
    again: HashSet<String>,
}

impl Worker {
    /// Runs until `shutdown` is cancelled, then drains in-flight attempts.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut inflight: JoinSet<()> = JoinSet::new();
        let mut held = Held::default();
        // Whether the outbox must be read: at start-up, when woken (a redrive, deliveries ingest
        // could not lease), at each poll tick (due retries), and while reads fill every free slot.
        let mut read_due = true;
        let mut next_poll = tokio::time::Instant::now() + self.config.poll_interval;
        loop {
            while let Some(done) = inflight.try_join_next_with_id() {
                read_due |= self.finished(done, &mut held);
            }
            if shutdown.is_cancelled() {
                break;
            }
            for d in self.inbox.take() {
                self.start(d, Via::Accept, &mut held, &mut inflight);
            }
            if tokio::time::Instant::now() >= next_poll {
                read_due = true;
                next_poll = tokio::time::Instant::now() + self.config.poll_interval;
            }
            if read_due {
                self.alerting.flush_due().await;
                match self.read(&mut held, &mut inflight).await {
                    Read::Filled => continue,
                    Read::Done => read_due = false,
                    Read::NoRoom => {} // still due: read when slots free up
                }
            }
            tokio::select! {
                _ = self.wake.notified() => read_due = true,
                _ = self.inbox.ready() => {}
                _ = tokio::time::sleep_until(next_poll) => {}
                Some(done) = inflight.join_next_with_id(), if !inflight.is_empty() => {
                    read_due |= self.finished(done, &mut held);
                }
                _ = shutdown.cancelled() => break,
            }
        }
        if !inflight.is_empty() {
            tracing::info!(
                in_flight = inflight.len(),
                "waiting for in-flight deliveries"
            );
        }
        while let Some(done) = inflight.join_next_with_id().await {
            self.finished(done, &mut held);
        }
    }

    /// One lease read for every free slot, each busy target within its room.
    async fn read(&self, held: &mut Held, inflight: &mut JoinSet<()>) -> Read {
        let free = self.inbox.reserve(usize::MAX);
        // While attempts are running, wait for a few slots rather than read the outbox for each
        // one that frees up.
        let worth = (self.config.workers / 4).clamp(1, 16);
        if free == 0 || (free < worth && !inflight.is_empty()) {
            self.inbox.free(free);
            return Read::NoRoom;
        }
        let room = held.lanes.room();
        let got = self
            .store
            .lease_within(free, self.config.lease, self.clock.now_ms(), room.clone())
            .await;
        let batch = match got {
            Ok(batch) => batch,
            Err(e) => {
                self.inbox.free(free);
                tracing::error!(error = %e, "cannot lease deliveries");
                return Read::Done;
            }
        };
        self.inbox.free(free - batch.len());
        let full = batch.len() == free;
        let mut per_target: HashMap<&str, usize> = HashMap::new();
        for d in &batch {
            *per_target.entry(d.target.as_str()).or_default() += 1;
        }
        held.capped = room
            .iter()
            .filter(|(t, n)| per_target.get(t.as_str()).copied().unwrap_or(0) >= **n)
            .map(|(t, _)| t.clone())
            .collect();
        for d in batch {
            self.start(d, Via::Poll, held, inflight);
        }
        // A read that filled every free slot may have left more behind; one that did not took all
        // it had room for: ingest may take slots again.
        // A target whose room held the read back may have more waiting: it goes first too.
        self.inbox.set_backlog(full || !held.capped.is_empty());
        if full { Read::Filled } else { Read::Done }
    }

    /// Starts the attempt of `d` (which holds one of the inbox's slots) in its target's lane.
    fn start(&self, d: Leased, via: Via, held: &mut Held, inflight: &mut JoinSet<()>) {
        if !held.ids.insert(d.id.clone()) {
            // Being attempted already. Either its lease expired while it waited for its target,
            // or its outcome (a retry due at once) was committed and its task is not joined yet:
            // in the second case nothing else would end this new lease before it expires, so it
            // is given back, and the outbox is read again when the running attempt is joined.
            self.store.unlease(&d.id);
            held.again.insert(d.id);
            self.inbox.free(1);
            return;
        }
        let lane = held.lanes.lane(&self.targets, &d.target);
        if lane.held >= 2 * lane.concurrency {
            // Its target has enough waiting: leave it in the outbox for a read when the lane
            // drains, rather than let one slow target hold every slot.
            held.ids.remove(&d.id);
            self.store.unlease(&d.id);
            self.inbox.free(1);
            self.inbox.set_backlog(true);
            held.capped.insert(d.target);
            return;
        }
        lane.held += 1;
        self.metrics.leased(match via {
            Via::Accept => "accept",
            Via::Poll => "poll",
        });
        let permits = lane.permits.clone();
        let (id, target) = (d.id.clone(), d.target.clone());
        let me = self.clone();
        let task = inflight.spawn(async move {
            let permit = permits.acquire_owned().await.ok();
            me.attempt(d, permit).await;
        });
        held.tasks.insert(task.id(), (id, target));
    }

    /// Books the end of an attempt (or its panic: the lease then expires and it is attempted
    /// again): its slot and its place in its lane are free again. Returns whether a lease read is
    /// due because its target had held the last one back.
    fn finished(
        &self,
        done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
        held: &mut Held,
    ) -> bool {
        self.inbox.free(1);
        let task = match done {
            Ok((task, ())) => task,
            Err(e) => {
                tracing::error!(error = %e, "a delivery attempt failed inside scanbridge");
                e.id()
            }
        };
        let Some((id, target)) = held.tasks.remove(&task) else {
            return false;
        };
        held.ids.remove(&id);
        if let Some(lane) = held.lanes.by_target.get_mut(&target) {
            lane.held = lane.held.saturating_sub(1);
        }
        let again = held.again.remove(&id);
        held.capped.remove(&target) | again
    }

    /// One attempt of `d`; `permit` is its place in its target's lane, held while the receiver is
    /// being called (not while the outcome is recorded: the lane bounds requests to the receiver).
    async fn attempt(&self, d: Leased, permit: Option<tokio::sync::OwnedSemaphorePermit>) {
        let Some((target, policy)) = self.targets.get(&d.target) else {
            let reason = format!("target {:?} is not configured", d.target);
            self.dead_letter(&d, d.attempts, reason).await;
            return;
        };
        // At most one parse per attempt, none when ingest (or an earlier attempt) handed the view over.
        let mut event = self.handoff.view(&d.event_id, &d.body);
        if let Some(replay) = &d.replay {
            // A replay delivers the archived event as EventBridge replays do: with `replay-name`.
            event = Arc::new(crate::event::replayed(&event, replay));
        }
        let input: Option<Value> = d
            .input
            .as_deref()
            .and_then(|i| serde_json::from_str(i).ok());
        let payload = match crate::render::payload(&event, input.as_ref(), &d.rule) {
            Ok(p) => p,
            Err(e) => {
                self.metrics.delivery(&d.target, "permanent");
                self.dead_letter(&d, d.attempts + 1, format!("permanent failure: {e}"))
                    .await;
                return;
            }
        };
        let delta = match self.alerting.gate(&d, &event).await {
            crate::alerting::Verdict::Send(delta) => delta,
            crate::alerting::Verdict::Held => return,
        };
        let msg = Message {
            delivery_id: &d.id,
            rule: &d.rule,
            event_id: &d.event_id,
            event: &event,
            payload: &payload,
            delta: delta.as_ref(),
            now_ms: self.clock.now_ms(),
            alert: d.alert.as_ref(),
            replay: d.replay.as_deref(),
        };
        let outcome = target.notify(&msg).await;
        drop(permit);
        self.metrics.delivery(&d.target, outcome.label());
        let attempts = d.attempts + 1;
        match outcome {
            Outcome::Delivered => {
                tracing::info!(delivery = %d.id, rule = %d.rule, target = %d.target, attempts, "delivered");
                self.metrics.delivered_after(self.age(&d));
                if let Err(e) = self.store.ack(d.id.clone(), self.clock.now_ms()).await {
                    tracing::error!(delivery = %d.id, error = %e, "delivered but cannot ack (will redeliver)");
                }
            }
            Outcome::Retryable {
                retry_after,
                reason,
            } => {
                self.retry(&d, policy, attempts, retry_after, reason).await;
            }
            Outcome::Permanent { reason } => {
                self.dead_letter(&d, attempts, format!("permanent failure: {reason}"))
                    .await;
            }
        }
    }

    async fn retry(
        &self,
        d: &Leased,
        policy: &RetryPolicy,
        attempts: u32,
        retry_after: Option<Duration>,
        reason: String,
    ) {
        let decision = policy.decide(attempts, self.age(d), retry_after, &mut rand::rng());
        match decision {
            Decision::RetryAfter(delay) => {
                self.metrics.retry_scheduled(&d.target, attempts, delay);
                tracing::warn!(delivery = %d.id, target = %d.target, attempts, %reason,
                    retry_in_ms = delay.as_millis() as u64, "delivery failed, will retry");
                if let Err(e) = self
                    .store
                    .retry_later(d.id.clone(), delay, reason, self.clock.now_ms())
                    .await
                {
                    tracing::error!(delivery = %d.id, error = %e, "cannot schedule retry (lease will expire)");
                }
            }
            Decision::GiveUp(why) => {
                self.dead_letter(d, attempts, format!("{why}; last error: {reason}"))
                    .await
            }
        }
    }

    /// How long ago `d`'s event was accepted.
    fn age(&self, d: &Leased) -> Duration {
        Duration::from_millis(self.clock.now_ms().saturating_sub(d.created_at_ms).max(0) as u64)
    }

    async fn dead_letter(&self, d: &Leased, attempts: u32, reason: String) {
        tracing::warn!(delivery = %d.id, rule = %d.rule, target = %d.target, attempts, %reason, "dead-lettered");
        // Counted once recorded: whoever reads the counter then finds the dead letter.
        match self
            .store
            .dead_letter(d.id.clone(), attempts, reason, self.clock.now_ms())
            .await
        {
            Ok(()) => self.metrics.delivery(&d.target, "dead_letter"),
            Err(e) => {
                tracing::error!(delivery = %d.id, error = %e, "cannot dead-letter (lease will expire)")
            }
        }
    }
}
