//! Scan history: the last scan result per repository and tag and per image digest (and the last state
//! of each Inspector2 finding), so that a rule can notify only on news (`notify_on`) and templates can
//! show what changed ("CRITICAL 0 -> 2").
//!
//! Ingest computes a [`HistoryUpdate`] ([`history_update`]) for every scan event it accepts; the store
//! records it in the same transaction as the event, and stamps the event with the [`Previous`] result
//! it replaced (before updating). So the
//! comparison is made in ingest order, once per event, whatever order deliveries are later sent in,
//! and two rules matching the same event compare against the same previous result.
//!
//! Which previous result: the same digest if it was scanned before (a rescan of one image), else the
//! most recent scan of any of its `repository:tag`s (a new image under a known tag). Failed scans and
//! events without counts are not recorded (they say nothing about findings).
//!
//! `notify_on` (a rule option):
//! - `always` (default): every match notifies.
//! - `new_findings`: a scan notifies when some severity's count went up (or it is the first scan of the
//!   image); a finding notifies when it is first seen or reopened (its status becomes ACTIVE again).
//! - `worse`: a scan notifies when its counts compare greater, severity by severity from CRITICAL down
//!   (more CRITICAL; or as many CRITICAL and more HIGH; ...); a finding when first seen or its severity
//!   went up. Events that are neither scans nor findings always notify.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::options::NotifyOn;
use super::stage::{Flow, Ledger, Notice, Stage};
use crate::scan::{Change, Delta, Facts, Kind, SEVERITIES};
use crate::store::HistoryUpdate;

/// One remembered result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Counts in [`SEVERITIES`] order (scans), empty for findings.
    #[serde(default)]
    pub counts: Vec<u64>,
    /// Finding severity and status (findings).
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    pub event_id: String,
    pub time: Option<String>,
}

/// What the store records for one event: the keys it is known by (most specific first) and its result.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub keys: Vec<String>,
    pub record: Record,
}

/// The result an event replaced, stamped on the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Previous {
    /// The key it was found under: `digest:...`, `tag:repo:tag` or `finding:ARN`.
    pub via: String,
    pub record: Record,
}

/// What `event` teaches the history, if anything.
pub fn observe(event: &Value) -> Option<Observation> {
    let facts = Facts::of(event);
    let event_id = facts.event_id.clone();
    match facts.kind {
        Kind::EcrScan | Kind::InspectorScan | Kind::ImageScan if !facts.failed => {
            let repo = facts.repository.as_deref()?;
            let raw = event.pointer("/detail/finding-severity-counts");
            let complete = facts
                .status
                .as_deref()
                .is_some_and(|s| s.contains("COMPLETE"));
            if raw.is_none() && !complete {
                return None;
            }
            let mut keys = Vec::new();
            if let Some(d) = &facts.digest {
                keys.push(format!("digest:{repo}@{d}"));
            }
            keys.extend(facts.tags.iter().map(|t| format!("tag:{repo}:{t}")));
            if keys.is_empty() {
                return None;
            }
            let counts = SEVERITIES
                .iter()
                .map(|s| {
                    raw.and_then(|c| c.get(*s))
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                })
                .collect();
            Some(Observation {
                keys,
                record: Record {
                    counts,
                    severity: None,
                    status: None,
                    event_id,
                    time: facts.time,
                },
            })
        }
        Kind::InspectorFinding => {
            let arn = event.pointer("/detail/findingArn")?.as_str()?;
            let f = facts.finding.unwrap_or_default();
            Some(Observation {
                keys: vec![format!("finding:{arn}")],
                record: Record {
                    counts: Vec::new(),
                    severity: f.severity,
                    status: f.status,
                    event_id,
                    time: facts.time,
                },
            })
        }
        _ => None,
    }
}

/// What the store records for `event` in the scan history ([`HistoryUpdate`]), if anything: computed
/// here, from the parsed event, before the store's transaction.
pub fn history_update(event: &Value) -> Option<HistoryUpdate> {
    let obs = observe(event)?;
    let (related, exact): (Vec<String>, Vec<String>) =
        obs.keys.into_iter().partition(|k| k.starts_with("tag:"));
    Some(HistoryUpdate {
        exact,
        related,
        record: serde_json::to_string(&obs.record).ok()?,
    })
}

fn rank(severity: Option<&str>) -> usize {
    // CRITICAL is the worst: higher rank = worse.
    severity
        .and_then(|s| SEVERITIES.iter().position(|x| *x == s))
        .map(|i| SEVERITIES.len() - i)
        .unwrap_or(0)
}

/// Whether a rule with `notify_on` notifies about `now` given what it replaced. `Err` says why not.
pub fn decide(
    notify_on: NotifyOn,
    now: Option<&Observation>,
    previous: Option<&Previous>,
) -> Result<(), &'static str> {
    let (Some(now), Some(prev)) = (now, previous) else {
        return Ok(()); // not a scan or finding, or the first sighting: news either way
    };
    let (a, b) = (&prev.record, &now.record);
    let is_finding = b.counts.is_empty();
    match notify_on {
        NotifyOn::Always => Ok(()),
        NotifyOn::NewFindings if is_finding => {
            let reopened =
                b.status.as_deref() == Some("ACTIVE") && a.status.as_deref() != Some("ACTIVE");
            if reopened { Ok(()) } else { Err("not_new") }
        }
        NotifyOn::NewFindings => {
            if b.counts
                .iter()
                .zip(a.counts.iter().chain(std::iter::repeat(&0)))
                .any(|(now, before)| now > before)
            {
                Ok(())
            } else {
                Err("not_new")
            }
        }
        NotifyOn::Worse if is_finding => {
            if rank(b.severity.as_deref()) > rank(a.severity.as_deref()) {
                Ok(())
            } else {
                Err("not_worse")
            }
        }
        NotifyOn::Worse => {
            if b.counts > a.counts {
                Ok(())
            } else {
                Err("not_worse")
            }
        }
    }
}

/// The delta between `previous` and the counts of `event`.
pub fn delta(event: &Value, previous: &Previous) -> Delta {
    let now = observe(event);
    let after = now.map(|o| o.record).unwrap_or(Record {
        counts: Vec::new(),
        severity: None,
        status: None,
        event_id: String::new(),
        time: None,
    });
    let before = &previous.record;
    let all: Vec<Change> = SEVERITIES
        .iter()
        .enumerate()
        .filter(|_| !before.counts.is_empty() && !after.counts.is_empty())
        .map(|(i, s)| Change {
            severity: s,
            before: before.counts.get(i).copied().unwrap_or(0),
            after: after.counts.get(i).copied().unwrap_or(0),
        })
        .collect();
    let changes: Vec<Change> = all
        .iter()
        .filter(|c| c.before != c.after)
        .cloned()
        .collect();
    let mut finding = Vec::new();
    if after.severity.is_some() && after.severity != before.severity {
        finding.push(format!(
            "{} -> {}",
            before.severity.as_deref().unwrap_or("-"),
            after.severity.as_deref().unwrap_or("-")
        ));
    }
    if after.status.is_some() && after.status != before.status {
        finding.push(format!(
            "{} -> {}",
            before.status.as_deref().unwrap_or("-"),
            after.status.as_deref().unwrap_or("-")
        ));
    }
    let summary = if !changes.is_empty() {
        changes
            .iter()
            .map(|c| format!("{} {} -> {}", c.severity, c.before, c.after))
            .collect::<Vec<_>>()
            .join(", ")
    } else if !finding.is_empty() {
        finding.join(", ")
    } else {
        "no change".to_owned()
    };
    let compared_with = match previous.via.split_once(':') {
        Some(("digest", _)) => "the previous scan of this image".to_owned(),
        Some(("tag", rest)) => format!("the previous image of {rest}"),
        _ => "the previous report of this finding".to_owned(),
    };
    Delta {
        compared_with,
        previous_event_id: before.event_id.clone(),
        previous_time: before.time.clone(),
        changes,
        previous: all,
        summary,
        finding: (!finding.is_empty()).then(|| finding.join(", ")),
    }
}

/// Stage 2: `notify_on` compares the event with the result it replaced in the history (stamped at
/// accept) and suppresses what is not news (`not_new`, `not_worse`); it also gives the notice the
/// delta to the previous result, for the templates, whatever `notify_on` says.
pub struct HistoryStage {
    pub ledger: Ledger,
}

impl Stage for HistoryStage {
    const NAME: &'static str = "history";

    async fn exec(&self, n: &Notice<'_>) -> Flow {
        if n.is_resolve() {
            return Flow::Next; // a resolve is not news to compare: the resolve stage set its delta
        }
        let previous: Option<Previous> = n
            .delivery
            .previous
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok());
        let Some(previous) = previous else {
            return Flow::Next; // the first sighting (or not a scan): news either way
        };
        let delta = n.delta.get_or_init(|| delta(n.event, &previous));
        let on = n.options.notify_on;
        if on == NotifyOn::Always {
            return Flow::Next;
        }
        match decide(on, observe(n.event).as_ref(), Some(&previous)) {
            Ok(()) => Flow::Next,
            Err(why) => {
                let detail = format!(
                    "{} compared with event {} ({})",
                    on.as_str(),
                    previous.record.event_id,
                    delta.summary
                );
                self.ledger.suppress(n, why, detail).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scan(digest: &str, tag: &str, counts: Value) -> Value {
        json!({"id": format!("e-{digest}-{counts}"), "source": "aws.ecr", "detail-type": "ECR Image Scan",
            "detail": {"repository-name": "payments/api", "image-digest": digest,
                "image-tags": [tag], "scan-status": "COMPLETE", "finding-severity-counts": counts}})
    }

    fn prev(event: &Value) -> Previous {
        let o = observe(event).unwrap();
        Previous {
            via: o.keys[0].clone(),
            record: o.record,
        }
    }

    #[test]
    fn observes_scans_by_digest_then_tags_and_skips_failures() {
        let o = observe(&scan("sha256:aa", "v1", json!({"HIGH": 2}))).unwrap();
        assert_eq!(
            o.keys,
            ["digest:payments/api@sha256:aa", "tag:payments/api:v1"]
        );
        assert_eq!(o.record.counts, [0, 2, 0, 0, 0, 0]);
        let mut failed = scan("sha256:aa", "v1", json!({}));
        failed["detail"]["scan-status"] = json!("FAILED");
        assert_eq!(observe(&failed), None);
        assert_eq!(observe(&json!({"source": "ci", "detail": {}})), None);
    }

    #[test]
    fn new_findings_and_worse_differ() {
        let before = prev(&scan("d", "t", json!({"CRITICAL": 2})));
        let check = |counts: Value, on: NotifyOn| {
            let now = observe(&scan("d", "t", counts));
            decide(on, now.as_ref(), Some(&before))
        };
        // Same counts: nothing new, nothing worse.
        assert_eq!(
            check(json!({"CRITICAL": 2}), NotifyOn::NewFindings),
            Err("not_new")
        );
        assert_eq!(
            check(json!({"CRITICAL": 2}), NotifyOn::Worse),
            Err("not_worse")
        );
        assert_eq!(check(json!({"CRITICAL": 2}), NotifyOn::Always), Ok(()));
        // Fewer CRITICAL but new HIGH: new findings, yet not worse.
        assert_eq!(
            check(json!({"CRITICAL": 1, "HIGH": 4}), NotifyOn::NewFindings),
            Ok(())
        );
        assert_eq!(
            check(json!({"CRITICAL": 1, "HIGH": 4}), NotifyOn::Worse),
            Err("not_worse")
        );
        // More CRITICAL: both.
        assert_eq!(check(json!({"CRITICAL": 3}), NotifyOn::Worse), Ok(()));
        // First sighting always notifies.
        let first = observe(&scan("x", "y", json!({})));
        assert_eq!(decide(NotifyOn::NewFindings, first.as_ref(), None), Ok(()));
    }

    #[test]
    fn findings_new_when_reopened_worse_when_more_severe() {
        let f = |sev: &str, status: &str| {
            json!({"id": "f", "source": "aws.inspector2", "detail-type": "Inspector2 Finding",
                "detail": {"findingArn": "arn:f1", "severity": sev, "status": status}})
        };
        let before = prev(&f("HIGH", "ACTIVE"));
        let on = |e: Value, n| decide(n, observe(&e).as_ref(), Some(&before));
        assert_eq!(
            on(f("HIGH", "ACTIVE"), NotifyOn::NewFindings),
            Err("not_new")
        );
        assert_eq!(on(f("CRITICAL", "ACTIVE"), NotifyOn::Worse), Ok(()));
        assert_eq!(on(f("MEDIUM", "ACTIVE"), NotifyOn::Worse), Err("not_worse"));
        let closed = prev(&f("HIGH", "CLOSED"));
        assert_eq!(
            decide(
                NotifyOn::NewFindings,
                observe(&f("HIGH", "ACTIVE")).as_ref(),
                Some(&closed)
            ),
            Ok(())
        );
        let d = delta(&f("CRITICAL", "ACTIVE"), &before);
        assert_eq!(d.summary, "HIGH -> CRITICAL");
    }

    #[test]
    fn delta_lists_changes_in_fixed_order() {
        let before = prev(&scan("d", "t", json!({"HIGH": 7, "CRITICAL": 0})));
        let d = delta(
            &scan("d", "t", json!({"CRITICAL": 2, "HIGH": 5, "LOW": 1})),
            &before,
        );
        assert_eq!(d.summary, "CRITICAL 0 -> 2, HIGH 7 -> 5, LOW 0 -> 1");
        assert_eq!(d.previous.len(), 6);
        assert_eq!(d.compared_with, "the previous scan of this image");
        let same = delta(&scan("d", "t", json!({"HIGH": 7})), &before);
        assert_eq!(same.summary, "no change");
        let by_tag = Previous {
            via: "tag:payments/api:v1".into(),
            ..before
        };
        assert_eq!(
            delta(&scan("d2", "v1", json!({})), &by_tag).compared_with,
            "the previous image of payments/api:v1"
        );
    }
}
