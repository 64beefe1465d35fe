//! Digests: many matches folded into one message, grouped as Alertmanager groups alerts.
//!
//! A rule with `group_by` (a list of JSON paths; `[]` puts every match in one group) does not notify
//! per event. Each of its deliveries joins the group of its rule, target and `group_by` values, stored
//! durably ([`crate::store::Store::group_add`]). A new group is flushed `group_wait` after its first
//! member (default 30 s, so a burst lands in one message); after a flush, later members are collected
//! and flushed `group_interval` after the previous flush (default 5 m). A group idle for a whole
//! interval starts over.
//!
//! A flush creates a *digest event* (`source = "scanbridge"`, `detail-type = "Scan Digest"`) stored with
//! one delivery to the target, so the digest is retried and dead-lettered like any alert, and renders
//! through the same templates: "5 images with CRITICAL findings in the last 10 minutes", one line per
//! image. Pending groups live in the store and survive a restart.

use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use std::borrow::Borrow;
use std::sync::Arc;

use super::options::{DEFAULT_INTERVAL, GroupSpec, RuleOptions};
use super::stage::{Flow, Ledger, Notice, Stage};
use crate::event::Handoff;
use crate::scan::{DIGEST_DETAIL_TYPE, DIGEST_SOURCE, Facts, SEVERITIES};
use crate::store::{GroupAdd, NewDelivery, NewEvent, delivery_id};

impl GroupSpec {
    /// The group labels of `event`: path as written -> value.
    pub fn labels(&self, event: &Value) -> Value {
        let mut m = Map::new();
        for p in &self.by {
            m.insert(p.original.clone(), p.select(event).unwrap_or(Value::Null));
        }
        Value::Object(m)
    }
}

/// The group id: rule, target and labels.
pub fn group_id(rule: &str, target: &str, labels: &Value) -> String {
    let mut h = Sha256::new();
    for part in [rule, target, &labels.to_string()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// "45 seconds", "10 minutes", "3 hours".
pub fn human(d: Duration) -> String {
    let s = d.as_secs().max(1);
    let (n, unit) = if s < 120 {
        (s, "second")
    } else if s < 2 * 3600 {
        ((s + 30) / 60, "minute")
    } else {
        ((s + 1800) / 3600, "hour")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The digest event for the member events of one group.
///
/// Promises: each image is listed once (`detail.items`, in the order first matched), with its latest
/// result among the members (by the events' `time`) and how many members were that image (`scans`); the headline counts
/// exactly the images listed ("3 images with CRITICAL findings in the last 10 minutes") and
/// `detail.count` the members. Receivers list as many items as their limits allow and say how many
/// more there are.
pub fn digest_event(
    id: &str,
    rule: &str,
    labels: &Value,
    members: &[impl Borrow<Value>],
    window: Duration,
    time: &str,
) -> Value {
    // One line per image: the same repository, tag and digest is one image, however many events.
    let mut lines: Vec<(Facts, u64)> = Vec::new();
    for f in members.iter().map(|m| Facts::of(m.borrow())) {
        match lines
            .iter_mut()
            .find(|(l, _)| l.image == f.image && l.digest == f.digest)
        {
            Some(line) => {
                // The latest scan by the event's time; members of one moment in the order given.
                if f.time >= line.0.time {
                    line.0 = f;
                }
                line.1 += 1;
            }
            None => lines.push((f, 1)),
        }
    }
    let worst = SEVERITIES
        .iter()
        .find(|s| lines.iter().any(|(f, _)| f.worst.as_deref() == Some(**s)));
    let n = lines.len();
    let what = if n == 1 { "image" } else { "images" };
    let headline = match worst {
        Some(w) => format!("{n} {what} with {w} findings in the last {}", human(window)),
        None => format!("{n} {what} in the last {}", human(window)),
    };
    let items: Vec<Value> = lines
        .iter()
        .map(|(f, scans)| {
            json!({
                "image": f.image, "repository": f.repository, "tag": f.tag,
                "digest": f.digest, "short_digest": f.short_digest,
                "worst": f.worst, "summary": f.summary, "headline": f.headline,
                "console_url": f.console_url, "event_id": f.event_id, "scans": scans,
            })
        })
        .collect();
    json!({
        "version": "0",
        "id": id,
        "source": DIGEST_SOURCE,
        "detail-type": DIGEST_DETAIL_TYPE,
        "time": time,
        "resources": [],
        "detail": {
            "rule": rule,
            "group": labels,
            "headline": headline,
            "images": n,
            "count": members.len(),
            "worst": worst,
            "window_seconds": window.as_secs(),
            "items": items,
        }
    })
}

/// Stage 4: a rule with `group_by` moves the delivery into its digest group; the group is flushed
/// later ([`DigestStage::flush_due`]) as one digest delivery.
pub struct DigestStage {
    pub ledger: Ledger,
    /// The live rules' options (a group's interval is read when it is flushed).
    pub rules: Arc<dyn RuleOptions>,
    /// Where a digest event, made here as a value, is handed to the worker.
    pub handoff: Arc<Handoff>,
}

impl Stage for DigestStage {
    const NAME: &'static str = "digest";

    async fn exec(&self, n: &Notice<'_>) -> Flow {
        // A resolve names one alert: it is never folded into a digest. Nor is a replayed delivery:
        // a digest is a live message, so each replayed match is sent on its own, marked as a replay.
        let live = n.delivery.replay.is_none();
        let Some(g) = n.options.group.as_ref().filter(|_| !n.is_resolve() && live) else {
            return Flow::Next;
        };
        let d = n.delivery;
        let labels = g.labels(n.event);
        let add = GroupAdd {
            group_id: group_id(&d.rule, &d.target, &labels),
            rule: d.rule.clone(),
            target: d.target.clone(),
            labels: labels.to_string(),
            delivery_id: d.id.clone(),
            now_ms: n.now_ms,
            wait_ms: g.wait.as_millis() as i64,
            interval_ms: g.interval.as_millis() as i64,
        };
        match self.ledger.store.group_add(add).await {
            Ok(()) => {
                tracing::debug!(delivery = %d.id, rule = %d.rule, target = %d.target, "added to digest group");
                self.ledger.metrics.grouped(&d.rule, &d.target);
                Flow::Held
            }
            Err(e) => {
                tracing::error!(delivery = %d.id, error = %e, "cannot group; sending alone");
                Flow::Next
            }
        }
    }
}

impl DigestStage {
    /// Flushes every digest group that is due at `now`: one digest event and delivery per group.
    /// Returns how many digests were made.
    pub async fn flush_due(&self, now: i64) -> usize {
        let due = match self.ledger.store.groups_due(now).await {
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
                .unwrap_or(DEFAULT_INTERVAL);
            let members: Vec<Arc<Value>> = g
                .members
                .iter()
                .filter_map(|m| {
                    let handed = self.handoff.get(&m.event_id);
                    handed.or_else(|| crate::event::parse_stored(&m.body).map(Arc::new))
                })
                .collect();
            let first = g.members.iter().map(|m| m.added_at_ms).min().unwrap_or(now);
            let window = Duration::from_millis((now - first).max(0) as u64);
            let labels: Value = serde_json::from_str(&g.labels).unwrap_or(Value::Null);
            let id = format!("digest-{}-{now}", g.id);
            let event = digest_event(
                &id,
                &g.rule,
                &labels,
                &members,
                window,
                &crate::event::rfc3339(now),
            );
            let body = event.to_string();
            let len = body.len();
            let digest_event = NewEvent {
                id: id.clone(),
                body,
                matched: vec![g.rule.clone()],
                deliveries: vec![NewDelivery {
                    id: delivery_id(&id, &g.rule, &g.target),
                    rule: g.rule.clone(),
                    target: g.target.clone(),
                    input: None,
                    alert: None,
                }],
                history: None,
                resolve: None,
            };
            let ids: Vec<String> = g.members.iter().map(|m| m.delivery_id.clone()).collect();
            let n = ids.len();
            match self
                .ledger
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
                    self.handoff.put(&id, Arc::new(event), len);
                    tracing::info!(rule = %g.rule, target = %g.target, members = n, digest = %id, "digest ready");
                    self.ledger.metrics.digest(&g.rule, &g.target);
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
    use crate::scan::is_digest;

    fn scan(repo: &str, tag: &str, counts: Value) -> Value {
        json!({"id": format!("{repo}-{tag}"), "source": "aws.ecr", "detail-type": "ECR Image Scan",
            "detail": {"repository-name": repo, "image-digest": "sha256:0123456789abcdef",
                "image-tags": [tag], "scan-status": "COMPLETE", "finding-severity-counts": counts}})
    }

    #[test]
    fn digest_headline_counts_images_and_names_the_worst() {
        let members = [
            scan("a", "1", json!({"HIGH": 1})),
            scan("b", "1", json!({"CRITICAL": 2})),
            scan("b", "1", json!({"CRITICAL": 2})),
        ];
        let e = digest_event(
            "d1",
            "r",
            &json!({}),
            &members,
            Duration::from_secs(600),
            "t",
        );
        assert!(is_digest(&e));
        assert_eq!(
            e["detail"]["headline"],
            "2 images with CRITICAL findings in the last 10 minutes"
        );
        assert_eq!(e["detail"]["count"], 3);
        // Each image once, with how many matches it was: the headline counts what is listed.
        let items = e["detail"]["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["summary"], "1 HIGH");
        assert_eq!(
            (items[1]["image"].as_str(), items[1]["scans"].as_u64()),
            (Some("b:1"), Some(2))
        );
        // A rescan of one image with a new result: listed once, with the latest result.
        let members = [
            scan("a", "1", json!({"HIGH": 1})),
            scan("a", "1", json!({"CRITICAL": 3})),
        ];
        let e = digest_event(
            "d2",
            "r",
            &json!({}),
            &members,
            Duration::from_secs(30),
            "t",
        );
        assert_eq!(
            e["detail"]["headline"],
            "1 image with CRITICAL findings in the last 30 seconds"
        );
        assert_eq!(e["detail"]["items"].as_array().unwrap().len(), 1);
        assert_eq!(e["detail"]["items"][0]["summary"], "3 CRITICAL");
        assert_eq!(human(Duration::from_secs(1)), "1 second");
        assert_eq!(human(Duration::from_secs(7200)), "2 hours");
    }

    #[test]
    fn parse_and_labels() {
        let doc = json!({"group_by": ["$.detail.repository-name"], "group_wait": "1s"});
        let mut errs = Vec::new();
        let g = GroupSpec::parse(doc.as_object().unwrap(), &mut errs).unwrap();
        assert!(errs.is_empty());
        assert_eq!(
            (g.wait, g.interval),
            (Duration::from_secs(1), DEFAULT_INTERVAL)
        );
        let l = g.labels(&scan("a", "1", json!({})));
        assert_eq!(l, json!({"$.detail.repository-name": "a"}));
        assert_ne!(group_id("r", "t", &l), group_id("r", "u", &l));
        let bad = json!({"group_wait": "1s", "group_interval": "x"});
        let mut errs = Vec::new();
        assert!(GroupSpec::parse(bad.as_object().unwrap(), &mut errs).is_none());
        assert_eq!(errs[0].0, "/group_wait");
        let bad = json!({"group_by": "x", "group_interval": "x"});
        let mut errs = Vec::new();
        GroupSpec::parse(bad.as_object().unwrap(), &mut errs);
        let ptrs: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(ptrs, ["/group_by", "/group_interval"]);
    }
}
