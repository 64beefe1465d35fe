//! The notification pipeline: what happens to a leased delivery before its target sees it.
//!
//! Order (Alertmanager's, adapted to scan events), each step able to stop the delivery:
//! 1. **Silences** ([`crate::alerting::silence`]): an active silence matching the event → suppressed `silenced`.
//! 2. **notify_on** ([`crate::alerting::history`]): not news compared with the previous scan → `not_new` /
//!    `not_worse`.
//! 3. **dedup** ([`crate::alerting::dedup`]): the rule and target already notified this key within the window →
//!    `duplicate`.
//! 4. **Digest** ([`crate::alerting::digest`]): a rule with `group_by` moves the delivery into its group; the
//!    group is flushed later as one digest delivery ([`Alerting::flush_due`]).
//! 5. **Rate limit** ([`crate::alerting::ratelimit`]): no token for the target → back in the outbox, due when a
//!    token will be there (no attempt counted).
//!
//! Promises: nothing is dropped silently — a suppressed delivery is moved to the store's suppressed
//! list with its reason, counted in `scanbridge_notifications_suppressed_total{rule,target,reason}` and
//! logged at debug; grouped and delayed deliveries are counted too. The steps run before every
//! attempt, so a silence added while a delivery waits for a retry stops it; the dedup claim and the
//! notify_on comparison are idempotent, so a retry is never its own duplicate. A rule's options are
//! read from the live rule set when the delivery is sent (a delivery of a rule since removed is
//! simply sent). Digest deliveries skip steps 1–4 (their members went through them). A store error
//! in a step lets the delivery through: at-least-once wins over silence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

mod clock;
mod dedup;
mod digest;
mod history;
mod options;
mod ratelimit;
pub(crate) mod silence;

pub use clock::{Clock, SharedClock, system as system_clock};
pub use history::{NotifyOn, history_update};
pub use options::{AlertOptions, RuleOptions};
pub use ratelimit::{RateLimit, RateLimiter};
/// For other rooms' unit tests: the real shapes of deltas and digests.
#[cfg(test)]
pub(crate) use {
    digest::digest_event,
    history::{delta, observe},
};

use crate::metrics::Metrics;
use crate::scan::Delta;
use crate::store::Silence;
use crate::store::{GroupAdd, Leased, NewDelivery, NewEvent, Store, Suppressed, delivery_id};
use history::Previous;
#[cfg(test)]
pub(crate) use history::Previous as HistoryPrevious;
use silence::SilenceSet;

/// What the pipeline decided for one leased delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send it now; templates get the delta to the previous scan, if known.
    Send(Option<Delta>),
    /// Recorded elsewhere: suppressed, grouped into a digest, or postponed by a rate limit.
    Held,
}

/// The pipeline and everything it needs.
pub struct Alerting {
    /// The live rules' options (the router).
    pub rules: Arc<dyn RuleOptions>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    pub limits: RateLimiter,
    silences: Mutex<(Vec<Silence>, Arc<SilenceSet>)>,
}

impl Alerting {
    pub fn new(
        rules: Arc<dyn RuleOptions>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        clock: SharedClock,
        limits: RateLimiter,
    ) -> Alerting {
        Alerting {
            rules,
            store,
            metrics,
            clock,
            limits,
            silences: Mutex::default(),
        }
    }

    /// The stored silences, compiled (recompiled only when the stored list changed).
    async fn silence_set(&self) -> Arc<SilenceSet> {
        let stored = match self.store.silences().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read silences; sending unsilenced");
                return Arc::default();
            }
        };
        let mut cache = self.silences.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != stored {
            let now = self.clock.now_ms();
            let active = stored.iter().filter(|s| s.active_at(now)).count();
            self.metrics.silences_active(active as u64);
            cache.1 = Arc::new(SilenceSet::new(stored.clone()));
            cache.0 = stored;
        }
        cache.1.clone()
    }

    async fn suppress(&self, d: &Leased, reason: &'static str, detail: String) -> Verdict {
        tracing::debug!(delivery = %d.id, rule = %d.rule, target = %d.target, reason, %detail,
            "notification suppressed");
        self.metrics.suppressed(&d.rule, &d.target, reason);
        let s = Suppressed {
            id: d.id.clone(),
            event_id: d.event_id.clone(),
            rule: d.rule.clone(),
            target: d.target.clone(),
            reason: reason.to_owned(),
            detail,
            at_ms: self.clock.now_ms(),
        };
        if let Err(e) = self.store.suppress(s).await {
            tracing::error!(delivery = %d.id, error = %e, "cannot record suppression (lease will expire)");
        }
        Verdict::Held
    }

    /// Runs the pipeline for `d` (whose event is `event`).
    pub async fn gate(&self, d: &Leased, event: &Value) -> Verdict {
        let previous: Option<Previous> = d
            .previous
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok());
        if !crate::scan::is_digest(event) {
            let now = self.clock.now_ms();
            if let Some(s) = self.silence_set().await.find(event, now) {
                let detail = format!("silence {} ({})", s.id, s.comment);
                return self.suppress(d, "silenced", detail).await;
            }
            let options = self.rules.alert_options(&d.rule).unwrap_or_default();
            if options.notify_on != NotifyOn::Always {
                let observed = history::observe(event);
                if let Err(why) =
                    history::decide(options.notify_on, observed.as_ref(), previous.as_ref())
                {
                    let p = previous
                        .as_ref()
                        .expect("decide only refuses with a previous");
                    let detail = format!(
                        "{} compared with event {} ({})",
                        options.notify_on.as_str(),
                        p.record.event_id,
                        history::delta(event, p).summary
                    );
                    return self.suppress(d, why, detail).await;
                }
            }
            if let Some(spec) = &options.dedup {
                let scope = format!("{}\u{0}{}", d.rule, d.target);
                let claim = self
                    .store
                    .dedup_claim(
                        scope,
                        spec.key_of(event),
                        d.id.clone(),
                        spec.window.as_millis() as i64,
                        now,
                    )
                    .await;
                match claim {
                    Ok(None) => {}
                    Ok(Some(first)) => {
                        let detail = format!("duplicate of delivery {first}");
                        return self.suppress(d, "duplicate", detail).await;
                    }
                    Err(e) => {
                        tracing::error!(delivery = %d.id, error = %e, "dedup check failed; sending")
                    }
                }
            }
            if let Some(g) = &options.group {
                let labels = g.labels(event);
                let add = GroupAdd {
                    group_id: digest::group_id(&d.rule, &d.target, &labels),
                    rule: d.rule.clone(),
                    target: d.target.clone(),
                    labels: labels.to_string(),
                    delivery_id: d.id.clone(),
                    now_ms: now,
                    wait_ms: g.wait.as_millis() as i64,
                    interval_ms: g.interval.as_millis() as i64,
                };
                match self.store.group_add(add).await {
                    Ok(()) => {
                        tracing::debug!(delivery = %d.id, rule = %d.rule, target = %d.target, "added to digest group");
                        self.metrics.grouped(&d.rule, &d.target);
                        return Verdict::Held;
                    }
                    Err(e) => {
                        tracing::error!(delivery = %d.id, error = %e, "cannot group; sending alone")
                    }
                }
            }
        }
        if let Err(wait) = self.limits.try_take(&d.target) {
            tracing::debug!(delivery = %d.id, target = %d.target, wait_ms = wait.as_millis() as u64,
                "rate limited; queued");
            self.metrics.delayed(&d.target);
            if let Err(e) = self.store.postpone(d.id.clone(), wait).await {
                tracing::error!(delivery = %d.id, error = %e, "cannot postpone (lease will expire)");
            }
            return Verdict::Held;
        }
        Verdict::Send(previous.map(|p| history::delta(event, &p)))
    }

    /// Flushes every digest group that is due: one digest event and delivery per group. Returns how
    /// many digests were made.
    pub async fn flush_due(&self) -> usize {
        let now = self.clock.now_ms();
        let due = match self.store.groups_due(now).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read digest groups");
                return 0;
            }
        };
        let mut made = 0;
        for g in due {
            let interval = self
                .rules
                .alert_options(&g.rule)
                .and_then(|o| o.group.map(|s| s.interval))
                .unwrap_or(digest::DEFAULT_INTERVAL);
            let members: Vec<Value> = g
                .members
                .iter()
                .filter_map(|(_, body, _)| serde_json::from_str(body).ok())
                .collect();
            let first = g.members.iter().map(|m| m.2).min().unwrap_or(now);
            let window = Duration::from_millis((now - first).max(0) as u64);
            let labels: Value = serde_json::from_str(&g.labels).unwrap_or(Value::Null);
            let id = format!("digest-{}-{now}", g.id);
            let event = digest::digest_event(
                &id,
                &g.rule,
                &labels,
                &members,
                window,
                &crate::alerting::silence::format_ms(now),
            );
            let digest_event = NewEvent {
                id: id.clone(),
                body: event.to_string(),
                deliveries: vec![NewDelivery {
                    id: delivery_id(&id, &g.rule, &g.target),
                    rule: g.rule.clone(),
                    target: g.target.clone(),
                    input: None,
                }],
                history: None,
            };
            let ids: Vec<String> = g.members.iter().map(|m| m.0.clone()).collect();
            let n = ids.len();
            match self
                .store
                .group_flush(
                    g.id.clone(),
                    ids,
                    digest_event,
                    now,
                    interval.as_millis() as i64,
                )
                .await
            {
                Ok(()) if n > 0 => {
                    tracing::info!(rule = %g.rule, target = %g.target, members = n, digest = %id, "digest ready");
                    self.metrics.digest(&g.rule, &g.target);
                    made += 1;
                }
                Ok(()) => {}
                Err(e) => tracing::error!(group = %g.id, error = %e, "cannot flush digest group"),
            }
        }
        made
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::clock::ManualClock;
    use crate::alerting::ratelimit::RateLimit;
    use crate::router::{Router, RouterHandle};
    use crate::store::sqlite::SqliteStore;
    use serde_json::json;
    use std::collections::HashMap;

    struct Rig {
        alerting: Alerting,
        store: Arc<dyn Store>,
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
        let clock = ManualClock::at(crate::store::now_ms());
        let alerting = Alerting::new(
            router,
            store.clone(),
            Arc::default(),
            clock.clone(),
            RateLimiter::new(limits, clock.clone()),
        );
        Rig {
            alerting,
            store,
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
                .accept(vec![NewEvent {
                    id,
                    body: event.to_string(),
                    deliveries: vec![NewDelivery {
                        id: d.clone(),
                        rule: "r".into(),
                        target: "hook".into(),
                        input: None,
                    }],
                    history: crate::alerting::history_update(&event),
                }])
                .await
                .unwrap();
            self.gate_leased().await
        }

        async fn gate_leased(&self) -> Verdict {
            let mut leased = self.store.lease(1, Duration::from_secs(60)).await.unwrap();
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
        assert!(r.alerting.metrics.render(None).contains(
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
        let d = r.store.lease(10, Duration::from_secs(60)).await.unwrap();
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
        r.clock.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(1100)).await; // the outbox due time is wall time
        assert!(matches!(r.gate_leased().await, Verdict::Send(_)));
    }
}
