//! The notification pipeline: what happens to a leased delivery before its receiver sees it.
//!
//! The pipeline is a list of stages, each one concept in its own file, composed here the way
//! Alertmanager's `notify.go` composes its `Stage`s ([`stage`]: the contract, [`MultiStage`]). For a
//! match of a rule, in order, each stage able to hold the delivery:
//! 0. [`resolve`], for a trigger or resolve of a rule with `notify_resolved`: wait for an earlier
//!    delivery of the same alert; a stale delivery or a resolve of an alert that is not open →
//!    suppressed `stale` / `not_open`; a resolve gets its delta (since the trigger).
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

mod alert_key;
mod clock;
mod dedup;
mod digest;
mod history;
mod options;
mod ratelimit;
mod resolve;
pub(crate) mod silence;
mod stage;

pub use alert_key::{alert_keys, aws_shaped, image_reference};
/// For other rooms' unit tests: a clock that stands still.
#[cfg(test)]
pub(crate) use clock::ManualClock;
pub use clock::{Clock, SharedClock, system as system_clock};
pub use history::history_update;
pub(crate) use options::NotifyOn;
pub use options::{AlertOptions, RuleOptions};
pub use ratelimit::{RateLimit, RateLimiter};
pub use resolve::{Fate, Tracking, plan as resolve_plan, resolve_delta, resolves};
pub use stage::MultiStage;
/// For the exercise harness (and other rooms' unit tests): the real shapes of deltas and digests.
pub(crate) use {
    digest::{digest_event, group_id},
    history::{Previous as HistoryPrevious, decide, delta, observe},
};

use crate::event::Handoff;
use crate::metrics::Metrics;
use crate::scan::Delta;
use crate::store::{Leased, Store};
use dedup::DedupStage;
use digest::DigestStage;
use history::HistoryStage;
use ratelimit::RateLimitStage;
use resolve::ResolveStage;
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
    /// The chain for a match of a rule: resolve, silence, history, dedup, digest, rate limit.
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
            Arc::new(ResolveStage {
                ledger: ledger.clone(),
            }),
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
            dedup_scope: Default::default(),
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
    use crate::store::{AlertKind, NewDelivery, NewEvent, delivery_id};
    use serde_json::json;
    use std::collections::HashMap;
    use std::time::Duration;

    struct Rig {
        alerting: Alerting,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        clock: Arc<ManualClock>,
        router: Arc<RouterHandle>,
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
            router.clone(),
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
            router,
            _dir: dir,
        }
    }

    /// A silence of `pattern` for ten seconds from `now`.
    fn silence(pattern: &str, now: i64) -> Silence {
        Silence {
            id: "s1".into(),
            pattern: pattern.into(),
            matchers: String::new(),
            comment: "c".into(),
            created_by: "t".into(),
            created_at_ms: now,
            expires_at_ms: now + 10_000,
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
                        matched: vec!["r".into()],
                        deliveries: vec![NewDelivery {
                            id: d.clone(),
                            rule: "r".into(),
                            target: "hook".into(),
                            input: None,
                            alert: None,
                        }],
                        history: crate::alerting::history_update(&event),
                        resolve: None,
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
                self.store.ack(d.id, self.clock.now_ms()).await.unwrap();
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
            .silence_add(silence(
                r#"{"detail":{"repository-name":[{"wildcard":"payments/*"}]}}"#,
                now,
            ))
            .await
            .unwrap();
        assert_eq!(r.offer(scan("e1", 1)).await, Verdict::Held);
        r.clock.advance(Duration::from_secs(10));
        assert!(matches!(r.offer(scan("e2", 1)).await, Verdict::Send(_)));
        assert_eq!(r.reasons().await, ["silenced"]);
        assert!(r.metrics.render(None, None).contains(
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
        r.store
            .ack(d[0].id.clone(), r.clock.now_ms())
            .await
            .unwrap();
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

    fn timed_scan(id: &str, critical: u64, time: &str) -> Value {
        let mut e = scan(id, critical);
        e["time"] = json!(time);
        e
    }

    impl Rig {
        /// Accepts `event` through the real ingest path, without running the pipeline.
        async fn ingest(&self, event: Value) {
            let ingest = crate::ingest::Ingestor {
                router: self.router.clone(),
                store: self.store.clone(),
                metrics: self.metrics.clone(),
                envelope: crate::event::EnvelopeRules {
                    max_event_bytes: 1 << 20,
                    account: "123456789012".into(),
                    region: "us-east-1".into(),
                },
                wake: Arc::default(),
                clock: self.clock.clone(),
                handoff: Arc::default(),
                inbox: Arc::new(crate::inbox::Inbox::none()),
                room: Arc::default(),
            };
            let item = Ok(crate::event::Incoming::Text(event.to_string()));
            let results = ingest.ingest(vec![item]).await.unwrap();
            assert!(results[0].is_ok(), "{results:?}");
        }

        /// Leases every due delivery and runs the pipeline on each, acking what is sent.
        async fn gate_all(&self) -> Vec<(String, Option<AlertKind>, Verdict)> {
            let mut out = Vec::new();
            for d in self
                .store
                .lease(10, Duration::from_secs(60), self.clock.now_ms())
                .await
                .unwrap()
            {
                let event: Value = serde_json::from_str(&d.body).unwrap();
                let v = self.alerting.gate(&d, &event).await;
                if matches!(v, Verdict::Send(_)) {
                    self.store
                        .ack(d.id.clone(), self.clock.now_ms())
                        .await
                        .unwrap();
                }
                out.push((d.event_id.clone(), d.alert.as_ref().map(|a| a.kind), v));
            }
            out
        }
    }

    fn paged(extra: Value) -> Value {
        let mut r = json!({"name": "r", "notify_resolved": true, "targets": ["hook"],
            "event_pattern": {"detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    }

    #[tokio::test]
    async fn a_resolve_waits_for_its_trigger_and_says_what_changed() {
        let r = rig(paged(json!({"dedup": {"window": "1h"}})), HashMap::new());
        r.ingest(scan("e1", 2)).await;
        r.ingest(scan("e2", 0)).await;
        // Both leased at once; the resolve is looked at first: it waits for the trigger.
        let leased = r
            .store
            .lease(10, Duration::from_secs(60), r.clock.now_ms())
            .await
            .unwrap();
        let kind = |d: &Leased| d.alert.as_ref().map(|a| a.kind);
        let trigger = leased
            .iter()
            .find(|d| kind(d) == Some(AlertKind::Trigger))
            .unwrap();
        let resolve = leased
            .iter()
            .find(|d| kind(d) == Some(AlertKind::Resolve))
            .unwrap();
        let body = |d: &Leased| serde_json::from_str::<Value>(&d.body).unwrap();
        assert_eq!(
            r.alerting.gate(resolve, &body(resolve)).await,
            Verdict::Held
        );
        assert_eq!(
            r.alerting.gate(trigger, &body(trigger)).await,
            Verdict::Send(None)
        );
        r.store
            .ack(trigger.id.clone(), r.clock.now_ms())
            .await
            .unwrap();
        assert!(
            r.gate_all().await.is_empty(),
            "the resolve waits at least 500 ms"
        );
        r.clock.advance(Duration::from_millis(500));
        let v = r.gate_all().await;
        assert_eq!(v.len(), 1);
        let Verdict::Send(Some(delta)) = &v[0].2 else {
            panic!("{v:?}")
        };
        assert_eq!(delta.summary, "CRITICAL 2 -> 0");
        assert_eq!(delta.compared_with, "the scan that opened the alert");
        // The same result again, inside the dedup window, after a resolve: a new episode, sent.
        r.ingest(scan("e3", 2)).await;
        let v = r.gate_all().await;
        assert!(matches!(v[0].2, Verdict::Send(_)), "{v:?}");
        assert!(r.reasons().await.is_empty());
    }

    #[tokio::test]
    async fn resolves_of_alerts_nobody_was_told_about_and_stale_scans_are_suppressed() {
        let r = rig(paged(json!({})), HashMap::new());
        let now = r.clock.now_ms();
        r.store
            .silence_add(silence(
                r#"{"detail":{"finding-severity-counts":{"CRITICAL":[{"numeric":[">",0]}]}}}"#,
                now,
            ))
            .await
            .unwrap();
        r.ingest(timed_scan("e1", 2, "2026-11-20T10:00:00Z")).await;
        assert_eq!(
            r.gate_all().await[0].2,
            Verdict::Held,
            "silenced: nobody was paged"
        );
        r.ingest(timed_scan("e2", 0, "2026-11-20T10:05:00Z")).await;
        assert_eq!(
            r.store.depth().await.unwrap(),
            0,
            "nothing open, nothing to resolve"
        );

        r.clock.advance(Duration::from_secs(11));
        r.ingest(timed_scan("e3", 2, "2026-11-20T11:00:00Z")).await;
        assert!(matches!(r.gate_all().await[0].2, Verdict::Send(_)));
        // A clean scan taken before the one that opened the alert arrives late: it is stale.
        r.ingest(timed_scan("e0", 0, "2026-11-20T09:00:00Z")).await;
        assert_eq!(r.gate_all().await[0].2, Verdict::Held);
        assert_eq!(r.reasons().await, ["silenced", "stale"]);
        // A newer clean scan resolves it; a second resolve finds nothing open.
        r.ingest(timed_scan("e4", 0, "2026-11-20T12:00:00Z")).await;
        r.ingest(timed_scan("e5", 0, "2026-11-20T12:01:00Z")).await;
        let v = r.gate_all().await;
        let sent = v.iter().filter(|x| matches!(x.2, Verdict::Send(_))).count();
        assert_eq!(sent, 1, "{v:?}");
        assert_eq!(r.reasons().await, ["not_open", "silenced", "stale"]);
    }
}
