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

use super::dedup::{parse_duration, parse_paths};
use crate::render::jsonpath::Path;
use crate::scan::{DIGEST_DETAIL_TYPE, DIGEST_SOURCE, Facts, SEVERITIES};

pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// A rule's grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub by: Vec<Path>,
    pub wait: Duration,
    pub interval: Duration,
}

impl GroupSpec {
    /// Reads `group_by`, `group_wait`, `group_interval` of a rule document.
    pub fn parse(m: &Map<String, Value>, errs: &mut Vec<(String, String)>) -> Option<GroupSpec> {
        let by = m.get("group_by");
        if by.is_none() {
            for k in ["group_wait", "group_interval"] {
                if m.contains_key(k) {
                    errs.push((format!("/{k}"), format!("{k} needs group_by")));
                }
            }
            return None;
        }
        let by = parse_paths(by.expect("checked"), "/group_by", errs);
        let wait = m
            .get("group_wait")
            .map(|v| parse_duration(v, "/group_wait", errs).unwrap_or_default())
            .unwrap_or(DEFAULT_WAIT);
        let interval = m
            .get("group_interval")
            .map(|v| parse_duration(v, "/group_interval", errs).unwrap_or_default())
            .unwrap_or(DEFAULT_INTERVAL);
        Some(GroupSpec { by, wait, interval })
    }

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
pub fn digest_event(
    id: &str,
    rule: &str,
    labels: &Value,
    members: &[Value],
    window: Duration,
    time: &str,
) -> Value {
    let facts: Vec<Facts> = members.iter().map(Facts::of).collect();
    let worst = SEVERITIES
        .iter()
        .find(|s| facts.iter().any(|f| f.worst.as_deref() == Some(**s)));
    let mut images: Vec<&str> = facts.iter().map(|f| f.image.as_str()).collect();
    images.sort();
    images.dedup();
    let n = images.len();
    let what = if n == 1 { "image" } else { "images" };
    let headline = match worst {
        Some(w) => format!("{n} {what} with {w} findings in the last {}", human(window)),
        None => format!("{n} {what} in the last {}", human(window)),
    };
    let items: Vec<Value> = facts
        .iter()
        .map(|f| {
            json!({
                "image": f.image, "repository": f.repository, "tag": f.tag,
                "digest": f.digest, "short_digest": f.short_digest,
                "worst": f.worst, "summary": f.summary, "headline": f.headline,
                "console_url": f.console_url, "event_id": f.event_id,
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
        assert_eq!(e["detail"]["items"][0]["summary"], "1 HIGH");
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
