//! Resolve: telling the people who were paged that the problem is fixed (a rule option,
//! `notify_resolved = true`).
//!
//! The rules, as README "Resolved alerts" states them:
//! - An alert is one (rule, alert key, target); the key names the image (repository + tag, or the
//!   digest when untagged) or the Inspector2 finding ([`super::alert_key`]). Every delivery of a
//!   `notify_resolved` rule about an event with a key is a **trigger** of the event's primary key.
//! - An alert becomes **open** when a trigger is delivered (not when it is suppressed, silenced,
//!   grouped or dead-lettered: nobody was told), and **resolved** when a resolve is delivered.
//! - A **conclusive** event (a completed scan with counts, or an Inspector2 finding: what the scan
//!   history records) resolves the alerts open under any of its keys, for every target that was
//!   notified, when its rule no longer matches it, when it is an Inspector2 finding whose status is
//!   `CLOSED` (such a finding never triggers a `notify_resolved` rule), or when its rule no longer
//!   exists (removed, renamed or disabled: it matches nothing). A failed scan, a push or any other
//!   event resolves nothing. A rule that still exists with `notify_resolved` turned off keeps its
//!   open alerts as they are and sends no resolves.
//! - Order: triggers and resolves of one alert reach the target in the order their events were
//!   accepted: a delivery waits while one of the opposite kind accepted before it is still in the
//!   outbox. A resolve whose alert is no longer open (never notified, or already resolved) is
//!   suppressed as `not_open`.
//! - Out-of-order scans: a scan older (by its `time`) than the newest trigger delivered for the
//!   alert does not resolve it, and a trigger older than the resolve delivered does not reopen it:
//!   both are suppressed as `stale`.
//! - Re-trigger after resolve: a new match opens the alert again (a new PagerDuty incident with
//!   the same `dedup_key`, a new Opsgenie alert with the same alias); `dedup` claims do not reach
//!   across a resolve, so the re-occurrence is sent even inside the dedup window.
//! - Silences and dedup cover resolves like any notification (a silenced resolve leaves the alert
//!   open); `notify_on` and digests do not apply to them (`notify_resolved` and `group_by` cannot be
//!   combined), rate limits do.
//!
//! Hooks: ingest calls [`plan`] per event (pure), the store records the state
//! ([`crate::store::Store`]'s alert methods), and [`ResolveStage`] runs before the other stages.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::alert_key::alert_keys;
use super::history::{Previous, Record};
use super::stage::{Flow, Ledger, Notice, Stage};
use crate::scan::{Delta, Facts, Kind};
use crate::store::{AlertKind, AlertMark, HistoryUpdate, ResolveCheck};

/// How long a delivery waits, at least and at most, before looking again at an earlier delivery
/// of the opposite kind (it looks again when that one is next attempted, within these bounds).
const WAIT_MIN: Duration = Duration::from_millis(500);
const WAIT_MAX: Duration = Duration::from_secs(300);

/// What the live rule set says about resolving: every enabled rule, and those with
/// `notify_resolved`. Built with the router, shared by every event.
#[derive(Debug, Clone, Default)]
pub struct Tracking {
    live: Arc<BTreeSet<String>>,
    resolving: Arc<[String]>,
}

impl Tracking {
    /// From the enabled rules' names and `notify_resolved` options.
    pub fn new<'a>(rules: impl IntoIterator<Item = (&'a str, bool)>) -> Tracking {
        let mut live = BTreeSet::new();
        let mut resolving = Vec::new();
        for (name, notify_resolved) in rules {
            live.insert(name.to_owned());
            if notify_resolved {
                resolving.push(name.to_owned());
            }
        }
        Tracking {
            live: Arc::new(live),
            resolving: resolving.into(),
        }
    }

    fn resolves(&self, rule: &str) -> bool {
        self.resolving.iter().any(|r| r == rule)
    }
}

/// What happens to the deliveries of one rule for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// An ordinary delivery (the rule does not track alerts, or the event has no key).
    Plain,
    /// A trigger of this alert.
    Trigger(AlertMark),
    /// Not made: a CLOSED finding is a resolution, never a page.
    Drop,
}

/// The resolve side of one event: the fate of each matching rule's deliveries and the check the
/// store runs for the alerts the event may resolve.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    trigger: Option<AlertMark>,
    closed_finding: bool,
    tracking: Tracking,
    /// What the store checks when it accepts the event (None: nothing to resolve).
    pub check: Option<ResolveCheck>,
}

impl Plan {
    /// The fate of the deliveries of `rule` (one of the matching rules).
    pub fn fate(&self, rule: &str) -> Fate {
        if !self.tracking.resolves(rule) {
            return Fate::Plain;
        }
        if self.closed_finding {
            return Fate::Drop;
        }
        match &self.trigger {
            Some(mark) => Fate::Trigger(mark.clone()),
            None => Fate::Plain,
        }
    }
}

/// An RFC 3339 `time` as ms since the Unix epoch.
fn time_ms(event: &Value) -> Option<i64> {
    let t = event.get("time")?.as_str()?;
    let at = humantime::parse_rfc3339_weak(t).ok()?;
    at.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as i64)
}

/// The plan for `event`, given the names of the rules it matched and what it teaches the scan
/// history (`None`: not conclusive). Pure; cheap for events without a key.
pub fn plan(
    tracking: &Tracking,
    event: &Value,
    history: Option<&HistoryUpdate>,
    matched: &[&str],
) -> Plan {
    let tracks_a_match = matched.iter().any(|r| tracking.resolves(r));
    if history.is_none() && !tracks_a_match {
        return Plan::default();
    }
    let Some(keys) = alert_keys(event) else {
        return Plan::default();
    };
    let time = time_ms(event);
    let record = history.map(|h| h.record.clone());
    let closed_finding = Facts::of(event).kind == Kind::InspectorFinding
        && event.pointer("/detail/status").and_then(Value::as_str) == Some("CLOSED");
    let check = history.map(|_| ResolveCheck {
        clear: tracking
            .resolving
            .iter()
            .filter(|r| closed_finding || !matched.contains(&r.as_str()))
            .cloned()
            .collect(),
        keys: keys.all.clone(),
        live: tracking.live.clone(),
        time_ms: time,
        record: record.clone(),
    });
    Plan {
        trigger: Some(AlertMark {
            kind: AlertKind::Trigger,
            key: keys.primary,
            time_ms: time,
            record,
        }),
        closed_finding,
        tracking: tracking.clone(),
        check,
    }
}

/// The resolve stage, first for a match of a rule: for a delivery that triggers or resolves an
/// alert, waits for an earlier delivery of the opposite kind, suppresses stale deliveries and
/// resolves of alerts that are not open, and otherwise lets it go on (a resolve with its delta, and
/// the alert's episode in the dedup scope). Other deliveries pass untouched. A store error lets
/// the delivery through.
pub struct ResolveStage {
    pub ledger: Ledger,
}

impl Stage for ResolveStage {
    const NAME: &'static str = "resolve";

    async fn exec(&self, n: &Notice<'_>) -> Flow {
        let (d, store) = (n.delivery, &self.ledger.store);
        let Some(mark) = &d.alert else {
            return Flow::Next;
        };
        let check = match store.alert_check(d.id.clone(), n.now_ms).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(delivery = %d.id, error = %e, "cannot read the alert state; sending");
                return Flow::Next;
            }
        };
        if let Some(first) = &check.waiting_for {
            let until = check.waiting_until_ms.unwrap_or(0) - n.now_ms;
            let wait = Duration::from_millis(until.max(0) as u64).clamp(WAIT_MIN, WAIT_MAX);
            tracing::debug!(delivery = %d.id, waiting_for = %first, key = %mark.key,
                wait_ms = wait.as_millis() as u64, "waiting for the earlier delivery of this alert");
            if let Err(e) = store.postpone(d.id.clone(), wait, n.now_ms).await {
                tracing::error!(delivery = %d.id, error = %e, "cannot postpone (lease will expire)");
            }
            return Flow::Held;
        }
        let state = check.state.unwrap_or_default();
        let older = |than: Option<i64>| matches!((mark.time_ms, than), (Some(a), Some(b)) if a < b);
        let episode = format!("\u{0}episode {}", state.episode);
        match mark.kind {
            AlertKind::Trigger => {
                if older(state.resolve_time_ms) {
                    let detail = format!(
                        "alert {} was resolved by a newer scan; this trigger's event is older",
                        mark.key
                    );
                    return self.ledger.suppress(n, "stale", detail).await;
                }
                let _ = n.dedup_scope.set(episode);
            }
            AlertKind::Resolve => {
                if !state.open {
                    let detail = format!(
                        "alert {} is not open for {} (never notified, or already resolved)",
                        mark.key, d.target
                    );
                    return self.ledger.suppress(n, "not_open", detail).await;
                }
                if older(state.trigger_time_ms) {
                    let detail = format!(
                        "alert {} was opened by a newer scan; this scan is older",
                        mark.key
                    );
                    return self.ledger.suppress(n, "stale", detail).await;
                }
                if let Some(delta) = state
                    .record
                    .as_deref()
                    .and_then(|r| resolve_delta(n.event, &mark.key, r))
                {
                    let _ = n.delta.set(delta);
                }
                let _ = n.dedup_scope.set(format!("{episode}\u{0}resolve"));
            }
        }
        Flow::Next
    }
}

/// What changed between the trigger that opened alert `key` (its stored scan-history `record`)
/// and `event`, which resolves it.
pub fn resolve_delta(event: &Value, key: &str, record: &str) -> Option<Delta> {
    let record = serde_json::from_str::<Record>(record).ok()?;
    let previous = Previous {
        via: format!("alert:{key}"),
        record,
    };
    let mut delta = super::history::delta(event, &previous);
    delta.compared_with = "the scan that opened the alert".into();
    Some(delta)
}

/// Whether a stored alert of `rule` is resolved by an event with this check (the store's rule).
pub fn resolves(check: &ResolveCheck, rule: &str) -> bool {
    check.clear.iter().any(|r| r == rule) || !check.live.contains(rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample;
    use serde_json::json;

    fn tracking() -> Tracking {
        Tracking::new([("paged", true), ("plain", false)])
    }

    #[test]
    fn triggers_and_checks() {
        let e = sample("ecr-image-scan-critical.json");
        let h = crate::alerting::history_update(&e);
        let p = plan(&tracking(), &e, h.as_ref(), &["paged", "plain"]);
        let Fate::Trigger(m) = p.fate("paged") else {
            panic!("{:?}", p.fate("paged"))
        };
        assert_eq!(m.kind, AlertKind::Trigger);
        assert!(m.key.ends_with("payments/api:v2.14.0"));
        assert_eq!(m.time_ms, Some(1_795_166_047_000), "2026-11-20T09:14:07Z");
        assert_eq!(p.fate("plain"), Fate::Plain);
        let c = p.check.unwrap();
        assert!(c.clear.is_empty(), "it matched the tracking rule");
        assert_eq!(c.keys.len(), 3);
        assert!(c.live.contains("plain"));

        let clean = sample("ecr-image-scan-clean.json");
        let h = crate::alerting::history_update(&clean);
        let c = plan(&tracking(), &clean, h.as_ref(), &["plain"])
            .check
            .unwrap();
        assert_eq!(c.clear, ["paged"]);
    }

    #[test]
    fn inconclusive_events_resolve_nothing_and_closed_findings_never_trigger() {
        let failed = sample("ecr-image-scan-failed.json");
        let h = crate::alerting::history_update(&failed);
        assert!(h.is_none());
        let p = plan(&tracking(), &failed, None, &["paged"]);
        assert!(p.check.is_none(), "a failed scan resolves nothing");
        assert!(
            matches!(p.fate("paged"), Fate::Trigger(_)),
            "but it may page"
        );
        let push = sample("ecr-image-action-push.json");
        assert!(plan(&tracking(), &push, None, &[]).check.is_none());

        let mut closed = sample("inspector2-finding.json");
        closed["detail"]["status"] = json!("CLOSED");
        let h = crate::alerting::history_update(&closed);
        let p = plan(&tracking(), &closed, h.as_ref(), &["paged", "plain"]);
        assert_eq!(p.fate("paged"), Fate::Drop);
        assert_eq!(
            p.fate("plain"),
            Fate::Plain,
            "rules without the option are untouched"
        );
        assert_eq!(p.check.unwrap().clear, ["paged"]);
    }

    #[test]
    fn the_rule_option_is_checked() {
        let known = crate::rules::Known {
            targets: ["t".to_owned()].into(),
            ..Default::default()
        };
        let rule = |extra: Value| {
            let mut r =
                json!({"name": "r", "event_pattern": {"source": ["aws.ecr"]}, "targets": ["t"]});
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
            crate::rules::parse_rule(&r, &known)
        };
        let r = rule(json!({"notify_resolved": true})).unwrap();
        assert!(r.alert.notify_resolved);
        assert_eq!(r.alert.describe().as_deref(), Some("notify_resolved"));
        assert!(!rule(json!({})).unwrap().alert.notify_resolved);
        let errs = rule(json!({"notify_resolved": "yes"})).unwrap_err();
        assert_eq!(errs[0].0, "/notify_resolved", "{errs:?}");
        let errs = rule(json!({"notify_resolved": true, "group_by": []})).unwrap_err();
        assert!(
            errs[0].0 == "/notify_resolved" && errs[0].1.contains("group_by"),
            "{errs:?}"
        );
    }
}
