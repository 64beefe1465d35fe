//! The notification pipeline: what happens to a leased delivery before its receiver sees it.
//!
//! The pipeline is a list of stages, each one concept in its own file, composed here the way
//! Alertmanager's `notify.go` composes its `Stage`s ([`stage`]: the contract, [`MultiStage`]). For a
//! match of a rule, in order, each stage able to hold the delivery:
//! 1. [`silence`]: an active silence matching the event → suppressed `silenced`.
//! 2. [`history`] (`notify_on`): not news compared with the previous scan → `not_new` / `not_worse`;
//!    also the delta to the previous scan, which templates show.
//! 3. [`dedup`]: the rule and target already notified this key within the window → `duplicate`.
//! 4. [`digest`]: a rule with `group_by` moves the delivery into its group; the group is flushed later
//!    as one digest delivery ([`Alerting::flush_due`]).
//! 5. [`ratelimit`]: no token for the target → back in the outbox, due when a token will be there (no
//!    attempt counted).
//!
//! A digest delivery runs stage 5 only (its members went through 1–4): like Alertmanager's
//! `RoutingStage`, [`Alerting::gate`] picks the chain by the kind of delivery. Rule options come from
//! [`options`] (the rule file's keys), read from the live rule set through [`RuleOptions`] when the
//! delivery is sent (a delivery of a rule since removed gets the defaults: it is simply sent). Time
//! comes from one [`clock`], read once per pass.
//!
//! Promises: nothing is dropped silently — a suppressed delivery is moved to the store's suppressed
//! list with its reason, counted in `scanbridge_notifications_suppressed_total{rule,target,reason}` and
//! logged at debug; grouped and delayed deliveries are counted too. The stages run before every
//! attempt, so a silence added while a delivery waits for a retry stops it; the dedup claim and the
//! notify_on comparison are idempotent, so a retry is never its own duplicate. A store error in a stage
//! lets the delivery through: at-least-once wins over silence.

use std::sync::Arc;

use serde_json::Value;

mod clock;
mod dedup;
mod digest;
mod history;
mod options;
mod ratelimit;
pub(crate) mod silence;
mod stage;

pub use clock::{Clock, SharedClock, system as system_clock};
pub use history::history_update;
#[cfg(test)]
pub(crate) use options::NotifyOn;
pub use options::{AlertOptions, RuleOptions};
pub use ratelimit::{RateLimit, RateLimiter};
pub use stage::MultiStage;
/// For other rooms' unit tests: the real shapes of deltas and digests, a clock that stands still.
#[cfg(test)]
pub(crate) use {
    clock::ManualClock,
    digest::digest_event,
    history::{Previous as HistoryPrevious, delta, observe},
};

use crate::event::Handoff;
use crate::metrics::Metrics;
use crate::scan::Delta;
use crate::store::{Leased, Store};
use dedup::DedupStage;
use digest::DigestStage;
use history::HistoryStage;
use ratelimit::RateLimitStage;
use silence::SilenceStage;
use stage::{Flow, Ledger, Notice};

/// What the pipeline decided for one leased delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send it now; templates get the delta to the previous scan, if known.
    Send(Option<Delta>),
    /// Recorded elsewhere: suppressed, grouped into a digest, or postponed by a rate limit.
    Held,
}

/// The pipeline: its two chains of stages and what they share.
pub struct Alerting {
    clock: SharedClock,
    /// The live rules' options (the router).
    rules: Arc<dyn RuleOptions>,
    /// The chain for a match of a rule: silence, history, dedup, digest, rate limit.
    matches: MultiStage,
    /// The chain for a digest: rate limit.
    digests: MultiStage,
    /// The digest stage, which also flushes due groups.
    digest: Arc<DigestStage>,
}

impl Alerting {
    pub fn new(
        rules: Arc<dyn RuleOptions>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        clock: SharedClock,
        limits: RateLimiter,
        handoff: Arc<Handoff>,
    ) -> Alerting {
        let ledger = Ledger { store, metrics };
        let digest = Arc::new(DigestStage {
            ledger: ledger.clone(),
            rules: rules.clone(),
            handoff,
        });
        let rate_limit = Arc::new(RateLimitStage {
            ledger: ledger.clone(),
            limiter: limits,
        });
        let matches = MultiStage(vec![
            Arc::new(SilenceStage::new(ledger.clone())),
            Arc::new(HistoryStage {
                ledger: ledger.clone(),
            }),
            Arc::new(DedupStage {
                ledger: ledger.clone(),
            }),
            digest.clone(),
            rate_limit.clone(),
        ]);
        Alerting {
            clock,
            rules,
            matches,
            digests: MultiStage(vec![rate_limit]),
            digest,
        }
    }

    /// Runs the stages for `d` (whose event is `event`).
    pub async fn gate(&self, d: &Leased, event: &Value) -> Verdict {
        let digest = crate::scan::is_digest(event);
        let options = match digest {
            true => AlertOptions::default(),
            false => self.rules.alert_options(&d.rule).unwrap_or_default(),
        };
        let notice = Notice {
            delivery: d,
            event,
            options: &options,
            now_ms: self.clock.now_ms(),
            delta: Default::default(),
        };
        let chain = if digest { &self.digests } else { &self.matches };
        match chain.exec(&notice).await {
            Flow::Held => Verdict::Held,
            Flow::Next => Verdict::Send(notice.delta.into_inner()),
        }
    }

    /// Flushes every digest group that is due: one digest event and delivery per group. Returns how
    /// many digests were made.
    pub async fn flush_due(&self) -> usize {
        self.digest.flush_due(self.clock.now_ms()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{Router, RouterHandle};
    use crate::store::Silence;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{NewDelivery, NewEvent, delivery_id};
    use serde_json::json;
    use std::collections::HashMap;
    use std::time::Duration;

    struct Rig {
        alerting: Alerting,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        clock: Arc<ManualClock>,
        _dir: tempfile::TempDir,
    }

    fn rig(rule: Value, limits: HashMap<String, RateLimit>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), true).unwrap());
        let known = crate::rules::Known {
            targets: ["hook".to_owned()].into(),
            ..Default::default()
        };
        let rule = crate::rules::parse_rule(&rule, &known).unwrap();
        let router = Arc::new(RouterHandle::new(Router::new(vec![rule], Arc::default())));
        let clock = ManualClock::at(1_700_000_000_000);
        let metrics = Arc::new(Metrics::default());
        let alerting = Alerting::new(
            router,
            store.clone(),
            metrics.clone(),
            clock.clone(),
            RateLimiter::new(limits, clock.clone()),
            Arc::default(),
        );
        Rig {
            alerting,
            store,
            metrics,
            clock,
            _dir: dir,
        }
    }

    fn scan(id: &str, critical: u64) -> Value {
        json!({"id": id, "source": "aws.ecr", "detail-type": "ECR Image Scan",
            "detail": {"repository-name": "payments/api", "image-digest": "sha256:aa",
                "image-tags": ["v1"], "scan-status": "COMPLETE",
                "finding-severity-counts": {"CRITICAL": critical}}})
    }

    impl Rig {
        /// Accepts `event` for rule `r` → hook, leases it and runs the pipeline.
        async fn offer(&self, event: Value) -> Verdict {
            let id = event["id"].as_str().unwrap().to_owned();
            let d = delivery_id(&id, "r", "hook");
            self.store
                .accept(
                    vec![NewEvent {
                        id,
                        body: event.to_string(),
                        deliveries: vec![NewDelivery {
                            id: d.clone(),
                            rule: "r".into(),
                            target: "hook".into(),
                            input: None,
                        }],
                        history: crate::alerting::history_update(&event),
                    }],
                    self.clock.now_ms(),
                )
                .await
                .unwrap();
            self.gate_leased().await
        }

        async fn gate_leased(&self) -> Verdict {
            let mut leased = self
                .store
                .lease(1, Duration::from_secs(60), self.clock.now_ms())
                .await
                .unwrap();
            let d = leased.pop().expect("a due delivery");
            let event: Value = serde_json::from_str(&d.body).unwrap();
            let v = self.alerting.gate(&d, &event).await;
            if matches!(v, Verdict::Send(_)) {
                self.store.ack(d.id).await.unwrap();
            }
            v
        }

        async fn reasons(&self) -> Vec<String> {
            let mut r: Vec<String> = self
                .store
                .suppressed(100)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.reason)
                .collect();
            r.sort();
            r
        }
    }

    fn base(extra: Value) -> Value {
        let mut r =
            json!({"name": "r", "event_pattern": {"source": ["aws.ecr"]}, "targets": ["hook"]});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    }

    #[tokio::test]
    async fn dedup_window_follows_the_injected_clock() {
        let r = rig(base(json!({"dedup": {"window": "1h"}})), HashMap::new());
        assert!(matches!(r.offer(scan("e1", 2)).await, Verdict::Send(None)));
        assert_eq!(r.offer(scan("e2", 2)).await, Verdict::Held);
        r.clock.advance(Duration::from_secs(3599));
        assert_eq!(r.offer(scan("e3", 2)).await, Verdict::Held);
        r.clock.advance(Duration::from_secs(1));
        assert!(matches!(r.offer(scan("e4", 2)).await, Verdict::Send(_)));
        assert_eq!(r.reasons().await, ["duplicate", "duplicate"]);
        assert_eq!(
            r.store.depth().await.unwrap(),
            0,
            "suppressed deliveries left the outbox"
        );
    }

    #[tokio::test]
    async fn silences_apply_until_they_expire() {
        let r = rig(base(json!({})), HashMap::new());
        let now = r.clock.now_ms();
        r.store
            .silence_add(Silence {
                id: "s1".into(),
                pattern: r#"{"detail":{"repository-name":[{"wildcard":"payments/*"}]}}"#.into(),
                matchers: String::new(),
                comment: "c".into(),
                created_by: "t".into(),
                created_at_ms: now,
                expires_at_ms: now + 10_000,
            })
            .await
            .unwrap();
        assert_eq!(r.offer(scan("e1", 1)).await, Verdict::Held);
        r.clock.advance(Duration::from_secs(10));
        assert!(matches!(r.offer(scan("e2", 1)).await, Verdict::Send(_)));
        assert_eq!(r.reasons().await, ["silenced"]);
        assert!(r.metrics.render(None).contains(
            "scanbridge_notifications_suppressed_total{rule=\"r\",target=\"hook\",reason=\"silenced\"} 1"
        ));
    }

    #[tokio::test]
    async fn notify_on_worse_uses_the_previous_scan_and_gives_the_delta() {
        let r = rig(base(json!({"notify_on": "worse"})), HashMap::new());
        assert!(matches!(r.offer(scan("e1", 1)).await, Verdict::Send(None)));
        assert_eq!(r.offer(scan("e2", 1)).await, Verdict::Held);
        let Verdict::Send(Some(delta)) = r.offer(scan("e3", 4)).await else {
            panic!("worse must be sent with a delta")
        };
        assert_eq!(delta.summary, "CRITICAL 1 -> 4");
        assert_eq!(r.reasons().await, ["not_worse"]);
    }

    #[tokio::test]
    async fn digest_groups_flush_after_wait_then_per_interval() {
        let r = rig(
            base(json!({"group_by": [], "group_wait": "2s", "group_interval": "1m"})),
            HashMap::new(),
        );
        assert_eq!(r.offer(scan("e1", 1)).await, Verdict::Held);
        assert_eq!(r.offer(scan("e2", 3)).await, Verdict::Held);
        r.clock.advance(Duration::from_millis(1999));
        assert_eq!(r.alerting.flush_due().await, 0, "group_wait not over");
        r.clock.advance(Duration::from_millis(1));
        assert_eq!(r.alerting.flush_due().await, 1);
        let d = r
            .store
            .lease(10, Duration::from_secs(60), r.clock.now_ms())
            .await
            .unwrap();
        assert_eq!(d.len(), 1, "one digest delivery for two matches");
        let digest: Value = serde_json::from_str(&d[0].body).unwrap();
        assert_eq!(digest["detail"]["count"], 2);
        assert_eq!(
            digest["detail"]["headline"],
            "1 image with CRITICAL findings in the last 2 seconds"
        );
        assert!(
            matches!(r.alerting.gate(&d[0], &digest).await, Verdict::Send(None)),
            "a digest is not grouped again"
        );
        r.store.ack(d[0].id.clone()).await.unwrap();
        // A later match waits for the interval after the previous flush.
        assert_eq!(r.offer(scan("e3", 5)).await, Verdict::Held);
        r.clock.advance(Duration::from_secs(30));
        assert_eq!(r.alerting.flush_due().await, 0);
        r.clock.advance(Duration::from_secs(30));
        assert_eq!(r.alerting.flush_due().await, 1);
    }

    #[tokio::test]
    async fn rate_limited_deliveries_stay_queued() {
        let limits = HashMap::from([(
            "hook".to_owned(),
            RateLimit {
                per_second: 1.0,
                burst: 1,
            },
        )]);
        let r = rig(base(json!({})), limits);
        assert!(matches!(r.offer(scan("e1", 1)).await, Verdict::Send(_)));
        assert_eq!(r.offer(scan("e2", 1)).await, Verdict::Held);
        assert_eq!(r.store.depth().await.unwrap(), 1, "queued, not dropped");
        assert!(r.reasons().await.is_empty());
        assert!(
            r.store
                .lease(1, Duration::from_secs(60), r.clock.now_ms())
                .await
                .unwrap()
                .is_empty(),
            "postponed: not due before the bucket has a token"
        );
        r.clock.advance(Duration::from_secs(1));
        assert!(matches!(r.gate_leased().await, Verdict::Send(_)));
    }
}
