//! Scanner reports → "Image Scan" events: Trivy JSON ([`trivy`]), Grype JSON ([`grype`]) and
//! trivy-operator VulnerabilityReports ([`trivy_operator`]) become one event shape that rules written
//! on ECR's basic-scan detail match too.
//!
//! Promises (pure: no I/O, no clock except [`event`]'s fallback `time`):
//! - detection: a body is tried against every format (or only the one forced with `?format=`); one that
//!   is none of them is an error listing, per format, why not ([`ReportError::Unrecognised`]);
//! - the event: `source` `scanbridge.<format>`, `detail-type` `Image Scan`, and a `detail` with ECR's
//!   keys — `scan-status` (`COMPLETE`), `repository-name`, `image-digest`, `image-tags`,
//!   `finding-severity-counts` (only severities that have findings, as ECR's basic scanning does; absent
//!   when there are none) — plus `findings`, one entry per vulnerability and package, most severe first;
//! - severities are ECR's names ([`report::ecr_severity`]); the counts are exact even when `findings` is cut to
//!   keep the event within the size limit (`findings-omitted` then says how many were left out);
//! - the event id is a UUID made from the SHA-256 of the format name and the report's JSON with object
//!   keys sorted and insignificant whitespace dropped, so the same report posted twice (or re-indented)
//!   is one event, and any change to it (a rescan's new timestamp) is a new one.

pub mod door;
pub mod grype;
pub mod reference;
mod report;
pub mod trivy;
pub mod trivy_operator;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::event::EnvelopeRules;
use crate::scan::clip;
use crate::scan::severity_rank;
pub use report::{Finding, Format, Parsed, ReportError, Scan};

/// The `detail-type` of every event made from a report.
pub const DETAIL_TYPE: &str = "Image Scan";

/// `Ok` if `report` has this format's shape, else why not (one short clause).
fn recognise(format: Format, report: &Value) -> Result<(), String> {
    match format {
        Format::Trivy => trivy::recognise(report),
        Format::Grype => grype::recognise(report),
        Format::TrivyOperator => trivy_operator::recognise(report),
    }
}

fn read(format: Format, report: &Value) -> Result<Parsed, ReportError> {
    match format {
        Format::Trivy => trivy::read(report).map(|s| Parsed::Scan(Box::new(s))),
        Format::Grype => grype::read(report).map(|s| Parsed::Scan(Box::new(s))),
        Format::TrivyOperator => trivy_operator::read(report),
    }
}

/// Reads a report body: detects its format (or checks the forced one) and reads it.
pub fn parse(body: &[u8], forced: Option<Format>) -> Result<Parsed, ReportError> {
    let text = std::str::from_utf8(body).map_err(|e| ReportError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let report =
        crate::strict_json::from_str(text).map_err(|e| ReportError::Malformed(e.to_string()))?;
    let format = match forced {
        Some(f) => {
            recognise(f, &report).map_err(|why| ReportError::NotThis {
                format: f.title(),
                why,
            })?;
            f
        }
        None => {
            let mut reasons = Vec::new();
            let mut found = None;
            for f in Format::ALL {
                match recognise(f, &report) {
                    Ok(()) => {
                        found = Some(f);
                        break;
                    }
                    Err(why) => reasons.push(format!("not {}: {why}", f.title())),
                }
            }
            found.ok_or(ReportError::Unrecognised(reasons))?
        }
    };
    let mut parsed = read(format, &report)?;
    if let Parsed::Scan(scan) = &mut parsed {
        scan.id = event_id(format, &report);
    }
    Ok(parsed)
}

/// The deterministic event id of `report` (see the module doc).
pub fn event_id(format: Format, report: &Value) -> String {
    let mut text = String::with_capacity(4096);
    canonical(report, &mut text);
    let mut h = Sha256::new();
    h.update(format.name().as_bytes());
    h.update(b"\n");
    h.update(text.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// JSON with object keys sorted, no whitespace: the same document however it was written.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Longest strings kept in one finding, in characters; longer ones end in `…`.
const MAX_TITLE: usize = 300;
const MAX_FIELD: usize = 200;
const MAX_URL: usize = 1000;

/// Bytes kept free below the event size limit for what normalisation and the envelope may add.
const SIZE_MARGIN: usize = 512;

fn finding_json(f: &Finding) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(clip(&f.id, MAX_FIELD)));
    m.insert("severity".into(), json!(f.severity));
    let fields = [
        ("package", &f.package, MAX_FIELD),
        ("installed-version", &f.installed_version, MAX_FIELD),
        ("fixed-version", &f.fixed_version, MAX_FIELD),
        ("title", &f.title, MAX_TITLE),
        ("url", &f.url, MAX_URL),
    ];
    for (key, value, max) in fields {
        if let Some(v) = value {
            m.insert(key.into(), json!(clip(v, max)));
        }
    }
    Value::Object(m)
}

/// The event a scan becomes, within `rules.max_event_bytes` (see the module doc).
pub fn event(scan: &Scan, rules: &EnvelopeRules) -> Value {
    let mut findings: Vec<&Finding> = scan.findings.iter().collect();
    // Most severe first; among equals, those with a fix first (what the on-call person can act on).
    findings.sort_by(|a, b| {
        (
            severity_rank(a.severity),
            a.fixed_version.is_none(),
            &a.id,
            &a.package,
        )
            .cmp(&(
                severity_rank(b.severity),
                b.fixed_version.is_none(),
                &b.id,
                &b.package,
            ))
    });
    let mut counts = Map::new();
    for sev in crate::scan::SEVERITIES {
        let n = findings.iter().filter(|f| f.severity == sev).count();
        if n > 0 {
            counts.insert(sev.into(), json!(n));
        }
    }
    let img = &scan.image;
    let mut detail = Map::new();
    detail.insert("scan-status".into(), json!("COMPLETE"));
    if let Some(r) = &img.repository {
        detail.insert("repository-name".into(), json!(clip(r, 256)));
    }
    if !counts.is_empty() {
        detail.insert("finding-severity-counts".into(), Value::Object(counts));
    }
    if let Some(d) = &img.digest {
        detail.insert("image-digest".into(), json!(clip(d, 256)));
    }
    let tags: Vec<String> = img.tags.iter().take(100).map(|t| clip(t, 128)).collect();
    detail.insert("image-tags".into(), json!(tags));
    if let Some(r) = &img.registry {
        detail.insert("registry".into(), json!(clip(r, 256)));
    }
    if let Some(i) = &img.image_id {
        detail.insert("image-id".into(), json!(clip(i, 256)));
    }
    detail.insert("scanner".into(), Value::Object(scan.scanner.clone()));
    for (k, v) in &scan.extra {
        detail.insert(k.clone(), v.clone());
    }
    detail.insert("findings".into(), json!([]));
    let mut ev = Map::new();
    ev.insert("version".into(), json!("0"));
    ev.insert("id".into(), json!(scan.id));
    ev.insert("detail-type".into(), json!(DETAIL_TYPE));
    ev.insert("source".into(), json!(scan.format.source()));
    ev.insert("account".into(), json!(rules.account));
    // A report without a time gets its acceptance time from ingest's clock (as any event without one).
    if let Some(t) = &scan.time {
        ev.insert("time".into(), json!(t));
    }
    ev.insert("region".into(), json!(rules.region));
    let resources: Vec<String> = img.artifact.iter().map(|a| clip(a, 1024)).collect();
    ev.insert("resources".into(), json!(resources));
    ev.insert("detail".into(), Value::Object(detail));
    let mut event = Value::Object(ev);

    // Fill `findings` while the whole event stays within the limit; the room for
    // `"findings-omitted":N,` is reserved up front.
    let base = event.to_string().len() + r#","findings-omitted":18446744073709551615"#.len();
    let budget = rules.max_event_bytes.saturating_sub(SIZE_MARGIN);
    let mut used = base;
    let mut kept = Vec::new();
    for f in &findings {
        let j = finding_json(f);
        let len = j.to_string().len() + 1;
        if used + len > budget {
            break;
        }
        used += len;
        kept.push(j);
    }
    let omitted = findings.len() - kept.len();
    let detail = event["detail"].as_object_mut().expect("built above");
    detail.insert("findings".into(), Value::Array(kept));
    if omitted > 0 {
        detail.insert("findings-omitted".into(), json!(omitted));
    }
    event
}

/// A body turned into what ingest stores: the event (built, so ingest does not parse it again), or why
/// it was skipped.
#[derive(Debug, Clone, PartialEq)]
pub enum Converted {
    Event {
        format: Format,
        event: Value,
        /// Findings left out of `detail.findings` to stay within the size limit.
        omitted: usize,
    },
    Ignored(String),
}

/// [`parse`] then [`event`]: a report body as the event text ingest validates and stores.
pub fn convert(
    body: &[u8],
    forced: Option<Format>,
    rules: &EnvelopeRules,
) -> Result<Converted, ReportError> {
    Ok(match parse(body, forced)? {
        Parsed::Ignored(why) => Converted::Ignored(why),
        Parsed::Scan(scan) => {
            let ev = event(&scan, rules);
            let omitted = ev["detail"]
                .get("findings-omitted")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
            Converted::Event {
                format: scan.format,
                event: ev,
                omitted,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reports")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    pub(crate) fn rules() -> EnvelopeRules {
        EnvelopeRules {
            max_event_bytes: 262_144,
            account: "111122223333".into(),
            region: "eu-west-1".into(),
        }
    }

    fn scan_of(name: &str) -> Scan {
        match parse(&fixture(name), None).unwrap() {
            Parsed::Scan(s) => *s,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn severities_map_to_ecr_names() {
        for (given, want) in [
            ("CRITICAL", "CRITICAL"),
            ("Critical", "CRITICAL"),
            ("high", "HIGH"),
            ("Medium", "MEDIUM"),
            ("LOW", "LOW"),
            ("Negligible", "INFORMATIONAL"),
            ("NONE", "INFORMATIONAL"),
            ("UNKNOWN", "UNDEFINED"),
            ("Unknown", "UNDEFINED"),
            ("", "UNDEFINED"),
            ("bogus", "UNDEFINED"),
        ] {
            assert_eq!(report::ecr_severity(given), want, "{given}");
        }
    }

    #[test]
    fn each_fixture_is_detected_as_its_format() {
        for (name, format) in [
            ("trivy-alpine-39-high-critical.json", Format::Trivy),
            ("trivy-alpine-310-registry.json", Format::Trivy),
            ("grype-image.json", Format::Grype),
            ("trivy-operator-webhook-body.json", Format::TrivyOperator),
        ] {
            assert_eq!(scan_of(name).format, format, "{name}");
        }
    }

    #[test]
    fn unknown_bodies_say_why_they_are_no_format() {
        let err = parse(br#"{"kind":"ConfigMap","SchemaVersion":1}"#, None).unwrap_err();
        let msg = err.to_string();
        for needle in [
            "not Trivy: SchemaVersion is 1",
            "not Grype: no `matches` array",
            "not trivy-operator: kind is \"ConfigMap\"",
        ] {
            assert!(msg.contains(needle), "{msg}");
        }
        let forced = parse(&fixture("grype-image.json"), Some(Format::Trivy)).unwrap_err();
        assert!(
            forced
                .to_string()
                .starts_with("not a Trivy report: no SchemaVersion"),
            "{forced}"
        );
        assert!(matches!(
            parse(b"{oops", None),
            Err(ReportError::Malformed(_))
        ));
        assert_eq!(
            parse(&[0xff], None),
            Err(ReportError::NotUtf8 { offset: 0 })
        );
        assert!(Format::parse("cyclonedx").is_err());
        assert_eq!(
            Format::parse("Trivy-Operator").unwrap(),
            Format::TrivyOperator
        );
    }

    #[test]
    fn the_id_is_the_same_for_the_same_report_however_written() {
        let body = fixture("grype-image.json");
        let a = scan_of("grype-image.json").id;
        let compact = serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
        let b = match parse(&compact, None).unwrap() {
            Parsed::Scan(s) => s.id,
            _ => unreachable!(),
        };
        assert_eq!(a, b);
        assert_eq!(a.len(), 36);
        let changed = String::from_utf8(body).unwrap().replace("1.1.1", "1.1.2");
        let c = match parse(changed.as_bytes(), None).unwrap() {
            Parsed::Scan(s) => s.id,
            _ => unreachable!(),
        };
        assert_ne!(a, c, "a different report is a different event");
    }

    #[test]
    fn the_event_has_ecr_keys_exact_counts_and_validates() {
        let scan = scan_of("trivy-alpine-39-high-critical.json");
        let ev = event(&scan, &rules());
        assert_eq!(ev["source"], "scanbridge.trivy");
        assert_eq!(ev["detail-type"], "Image Scan");
        assert_eq!(ev["account"], "111122223333");
        assert_eq!(ev["region"], "eu-west-1");
        assert_eq!(ev["detail"]["scan-status"], "COMPLETE");
        assert_eq!(
            ev["detail"]["finding-severity-counts"],
            json!({"CRITICAL": 2})
        );
        assert_eq!(ev["detail"]["findings"].as_array().unwrap().len(), 2);
        assert!(ev["detail"].get("findings-omitted").is_none());
        let stored = crate::event::validate(&ev.to_string(), &rules(), 0).unwrap();
        assert_eq!(stored.id, scan.id);
    }

    #[test]
    fn findings_are_cut_to_fit_the_limit_and_counts_stay_exact() {
        let mut scan = scan_of("trivy-alpine-39-high-critical.json");
        let template = scan.findings[0].clone();
        scan.findings = (0..5000)
            .map(|i| Finding {
                id: format!("CVE-2026-{i:05}"),
                severity: ["LOW", "CRITICAL", "MEDIUM", "HIGH", "UNDEFINED"][i % 5],
                title: Some("t".repeat(400)),
                fixed_version: (i % 2 == 0).then(|| "9.9".into()),
                ..template.clone()
            })
            .collect();
        let r = rules();
        let ev = event(&scan, &r);
        let text = ev.to_string();
        assert!(text.len() <= r.max_event_bytes, "{}", text.len());
        assert!(crate::event::validate(&text, &r, 0).is_ok());
        let d = &ev["detail"];
        assert_eq!(
            d["finding-severity-counts"],
            json!({"CRITICAL": 1000, "HIGH": 1000, "MEDIUM": 1000, "LOW": 1000, "UNDEFINED": 1000})
        );
        let kept = d["findings"].as_array().unwrap();
        assert!(kept.len() > 100 && kept.len() < 5000, "{}", kept.len());
        assert_eq!(
            d["findings-omitted"].as_u64().unwrap() as usize,
            5000 - kept.len()
        );
        assert_eq!(kept[0]["severity"], "CRITICAL");
        assert!(kept[0]["fixed-version"].is_string(), "fixed first");
        assert!(
            kept.iter().all(|f| f["severity"] != "UNDEFINED"),
            "least severe dropped first"
        );
        assert!(kept[0]["title"].as_str().unwrap().chars().count() <= MAX_TITLE);
    }
}
