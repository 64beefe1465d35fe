//! The templates part of `scanbridge check`: every message template (the embedded defaults with the
//! `templates.dir` overrides, and each email target's own `subject`) rendered, strictly, with a sample
//! of every kind of event scanbridge alerts on, so that a typo in a variable name is found before the
//! first alert rather than by it.
//!
//! The samples (the sandbox's, embedded): ECR basic scans (CRITICAL, HIGH only, clean, failed), an Inspector2 scan and
//! finding, an ECR push, a scanner report's Image Scan (Grype), a digest, an event of no known kind,
//! each also with a delta to a previous scan, and a transformed payload; the `email/resolved_*`
//! templates are rendered with resolves (a clean rescan, a CLOSED finding). Each problem is reported
//! once, with the samples it showed on.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::notify::TargetConfig;
use crate::render::template::{Context, Templates};
use crate::settings::Settings;
use crate::store::{AlertKind, AlertMark};
use crate::ui::assets::SAMPLES;

/// A sample's event by file name (the sandbox's samples, [`SAMPLES`], are every kind of event).
fn sample(name: &str) -> Value {
    let (_, _, text) = SAMPLES
        .iter()
        .find(|(n, _, _)| *n == name)
        .expect("an embedded sample");
    parse(text)
}
const GRYPE: &str = include_str!("../../tests/fixtures/reports/grype-image.json");

/// The templates rendered for alerts, and for resolves.
const ALERT: [&str; 4] = [
    "email/subject.txt",
    "email/body.txt",
    "email/body.html",
    "slack/text.txt",
];
const RESOLVE: [&str; 3] = [
    "email/resolved_subject.txt",
    "email/resolved_body.txt",
    "email/resolved_body.html",
];

/// One sample context: its label, the event, the payload, a delta and a resolve mark.
struct Sample {
    label: String,
    event: Value,
    payload: Value,
    delta: Option<crate::scan::Delta>,
    resolve: Option<AlertMark>,
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("embedded samples are JSON")
}

/// Every sample context.
fn samples() -> Vec<Sample> {
    let critical = sample("ecr-image-scan-critical.json");
    let mut events: Vec<(String, Value)> = SAMPLES
        .iter()
        .map(|(_, title, t)| ((*title).to_owned(), parse(t)))
        .collect();
    let rules = crate::event::EnvelopeRules {
        max_event_bytes: 262_144,
        account: "123456789012".into(),
        region: "us-east-1".into(),
    };
    if let Ok(crate::ingest::reports::Converted::Event { event, .. }) =
        crate::ingest::reports::convert(GRYPE.as_bytes(), None, &rules)
    {
        events.push(("Image Scan (a Grype report)".into(), event));
    }
    events.push((
        "an event of no known kind".into(),
        json!({"version": "0", "id": "sample-generic", "source": "ci.example", "detail-type": "Build Failed",
            "account": "123456789012", "region": "us-east-1", "time": "2026-11-20T09:00:00Z",
            "resources": [], "detail": {"job": "release", "status": "FAILED"}}),
    ));
    let members = [
        critical.clone(),
        sample("ecr-image-scan-high-only.json"),
        critical.clone(),
    ];
    events.push((
        "Scan Digest".into(),
        crate::alerting::digest_event(
            "sample-digest",
            "sample-rule",
            &json!({}),
            &members,
            std::time::Duration::from_secs(600),
            "2026-11-20T09:10:00Z",
        ),
    ));
    let mut out = Vec::new();
    for (label, event) in events {
        out.push(Sample {
            label: label.clone(),
            payload: event.clone(),
            event: event.clone(),
            delta: None,
            resolve: None,
        });
        // The same event compared with a previous scan of the image (or the finding before).
        let mut before = event.clone();
        if before.pointer("/detail/finding-severity-counts").is_some() {
            before["detail"]["finding-severity-counts"] = json!({"HIGH": 1});
        }
        if before.pointer("/detail/severity").is_some() {
            before["detail"]["severity"] = json!("MEDIUM");
        }
        if let Some(o) = crate::alerting::observe(&before) {
            let prev = crate::alerting::HistoryPrevious {
                via: o.keys[0].clone(),
                record: o.record,
            };
            out.push(Sample {
                label: format!("{label}, with a delta"),
                payload: event.clone(),
                delta: Some(crate::alerting::delta(&event, &prev)),
                event: event.clone(),
                resolve: None,
            });
        }
    }
    out.push(Sample {
        label: "ECR scan: 2 CRITICAL, 7 HIGH, with a transformed payload".into(),
        payload: json!("payments/api needs a rebuild"),
        event: critical.clone(),
        delta: None,
        resolve: None,
    });
    // Resolves: a clean rescan of the CRITICAL image, and a CLOSED finding.
    let mut clean = critical.clone();
    clean["id"] = json!("sample-clean-rescan");
    clean["detail"]["finding-severity-counts"] = json!({"LOW": 1});
    let mut closed = sample("inspector2-finding.json");
    closed["detail"]["status"] = json!("CLOSED");
    for (label, before, after) in [
        ("a resolve (clean rescan)", &critical, clean),
        (
            "a resolve (CLOSED finding)",
            &sample("inspector2-finding.json"),
            closed,
        ),
    ] {
        let Some(o) = crate::alerting::observe(before) else {
            continue;
        };
        let prev = crate::alerting::HistoryPrevious {
            via: o.keys[0].clone(),
            record: o.record.clone(),
        };
        out.push(Sample {
            label: label.into(),
            payload: after.clone(),
            delta: Some(crate::alerting::delta(&after, &prev)),
            resolve: Some(AlertMark {
                kind: AlertKind::Resolve,
                key: o.keys[0].clone(),
                time_ms: None,
                record: None,
            }),
            event: after,
        });
    }
    out
}

/// Renders every template with every sample; each problem once, naming the samples it showed on.
pub fn check(settings: &Settings, templates: &Templates) -> Vec<String> {
    let subjects: Vec<(String, String)> = settings
        .targets
        .iter()
        .filter_map(|(name, t)| match t {
            TargetConfig::Email(e) => e.subject.clone().map(|s| (name.clone(), s)),
            _ => None,
        })
        .collect();
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in samples() {
        let ctx = Context::new(
            &s.event,
            &s.payload,
            "sample-rule",
            "sample-delivery",
            "sample-event",
        )
        .with_delta(s.delta.as_ref())
        .with_alert(s.resolve.as_ref());
        let names: &[&str] = if s.resolve.is_some() {
            &RESOLVE
        } else {
            &ALERT
        };
        let mut errors: Vec<String> = names
            .iter()
            .filter_map(|n| templates.render(n, &ctx).err())
            .map(|e| e.to_string())
            .collect();
        if s.resolve.is_none() {
            for (target, source) in &subjects {
                let name = format!("targets.{target}.subject");
                if let Err(e) = templates.render_inline(&name, source, &ctx) {
                    errors.push(e.to_string());
                }
            }
        }
        for e in errors {
            problems.entry(e).or_default().push(s.label.clone());
        }
    }
    problems
        .into_iter()
        .map(|(e, on)| match on.as_slice() {
            [one] => format!("{e} (rendering the sample {one})"),
            [first, ..] if on.len() > 3 => {
                format!("{e} (rendering {} of the samples, first {first})", on.len())
            }
            _ => format!("{e} (rendering the samples {})", on.join("; ")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::load_with_env(None, Some(Default::default())).unwrap()
    }

    #[test]
    fn the_default_templates_render_every_sample_strictly() {
        let s = settings();
        let samples = samples();
        assert!(
            samples.len() >= 19,
            "{:?}",
            samples.iter().map(|s| &s.label).collect::<Vec<_>>()
        );
        assert!(samples.iter().any(|s| s.label.starts_with("Image Scan")));
        let problems = check(&s, &Templates::load(None).unwrap());
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn a_typo_is_reported_once_with_the_template_line_and_variable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("email")).unwrap();
        std::fs::write(
            dir.path().join("email/subject.txt"),
            "{# the subject #}\n[{{ scan.worst or 'scan' }}] {{ scan.sumary }}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let problems = check(&settings(), &t);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0]
                == ("template email/subject.txt, line 2: undefined variable or key: scan.sumary (rendering 17 of the samples, first ECR scan: 2 CRITICAL, 7 HIGH)"),
            "{}",
            problems[0]
        );
    }
}
