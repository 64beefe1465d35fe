//! The delivery worker: lease due deliveries, send each once, then ack, schedule a retry, or
//! dead-letter.
//!
//! One dispatcher task leases at most as many deliveries as there are free slots (`delivery.workers`)
//! and runs each attempt as its own task; it wakes when ingest stores new deliveries and otherwise polls
//! every `delivery.poll_interval` for due retries. Outcomes: delivered → ack; retryable → the target's
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

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alerting::SharedClock;
use crate::config::DeliveryConfig;
use crate::event::Handoff;
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
}

impl Worker {
    /// Runs until `shutdown` is cancelled, then drains in-flight attempts.
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.config.workers));
        let mut inflight = JoinSet::new();
        loop {
            while inflight.try_join_next().is_some() {}
            if shutdown.is_cancelled() {
                break;
            }
            self.alerting.flush_due().await;
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = inflight.join_next() => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
            match self
                .store
                .lease(free, self.config.lease, self.clock.now_ms())
                .await
            {
                Ok(batch) if !batch.is_empty() => {
                    for d in batch {
                        let permit = slots
                            .clone()
                            .try_acquire_owned()
                            .expect("leased no more than free slots");
                        let me = self.clone();
                        inflight.spawn(async move {
                            me.attempt(d).await;
                            drop(permit);
                        });
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot lease deliveries"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if !inflight.is_empty() {
            tracing::info!(
                in_flight = inflight.len(),
                "waiting for in-flight deliveries"
            );
        }
        while inflight.join_next().await.is_some() {}
    }

    async fn attempt(&self, d: Leased) {
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
        self.metrics.delivery(&d.target, "dead_letter");
        if let Err(e) = self
            .store
            .dead_letter(d.id.clone(), attempts, reason, self.clock.now_ms())
            .await
        {
            tracing::error!(delivery = %d.id, error = %e, "cannot dead-letter (lease will expire)");
        }
    }
}
