//! Deduplication: the same alert to the same place at most once per window.
//!
//! A rule's `dedup` option (`true`, or `{ window = "24h", key = ["$.detail.repository-name", ...] }`)
//! gives every delivery of that rule a key; the notification pipeline ([`crate::alerting`]) asks the
//! store to *claim* the key for the rule and target, and a second delivery with the same key inside the
//! window is suppressed (recorded in the store, counted in `/metrics`, logged at debug).
//!
//! Default keys, when the rule names none: ECR Image Scan and Inspector2 Scan: repository + image
//! digest + the severity counts (fixed order, absent = 0, so `{}` and `{"LOW": 0}` are the same);
//! Inspector2 Finding: findingArn + severity + status; any other event: its `detail-type` and `detail`.
//! A custom key is a list of EventBridge-style JSON paths; a path that selects nothing contributes
//! `null`. Keys are SHA-256 digests of the JSON list of parts, so they are short and stable.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::render::jsonpath::Path;
use crate::scan::{Facts, Kind};

/// The default window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A rule's `dedup` option.
#[derive(Debug, Clone, PartialEq)]
pub struct DedupSpec {
    pub window: Duration,
    /// Custom key paths; `None` = the default key for the event's kind.
    pub key: Option<Vec<Path>>,
}

impl DedupSpec {
    /// Parses `true` / `false` / `{window, key}`; errors are (pointer, message) under `at`.
    pub fn parse(v: &Value, at: &str) -> Result<Option<DedupSpec>, Vec<(String, String)>> {
        let mut errs = Vec::new();
        let obj = match v {
            Value::Bool(false) | Value::Null => return Ok(None),
            Value::Bool(true) => {
                return Ok(Some(DedupSpec {
                    window: DEFAULT_WINDOW,
                    key: None,
                }));
            }
            Value::Object(o) => o,
            _ => {
                return Err(vec![(
                    at.to_owned(),
                    "dedup must be true, false or an object {window, key}".into(),
                )]);
            }
        };
        for k in obj
            .keys()
            .filter(|k| !["window", "key"].contains(&k.as_str()))
        {
            errs.push((
                format!("{at}/{k}"),
                format!("unknown key {k:?}; expected one of window, key"),
            ));
        }
        let window = match obj.get("window") {
            None => DEFAULT_WINDOW,
            Some(w) => parse_duration(w, &format!("{at}/window"), &mut errs).unwrap_or_default(),
        };
        let key = obj
            .get("key")
            .map(|k| parse_paths(k, &format!("{at}/key"), &mut errs));
        if errs.is_empty() {
            Ok(Some(DedupSpec { window, key }))
        } else {
            Err(errs)
        }
    }

    /// The key of `event` under this spec.
    pub fn key_of(&self, event: &Value) -> String {
        let parts = match &self.key {
            Some(paths) => paths
                .iter()
                .map(|p| p.select(event).unwrap_or(Value::Null))
                .collect(),
            None => default_parts(event),
        };
        let mut h = Sha256::new();
        h.update(Value::Array(parts).to_string().as_bytes());
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The default key parts of an event (see the module doc).
pub fn default_parts(event: &Value) -> Vec<Value> {
    let facts = Facts::of(event);
    match facts.kind {
        Kind::EcrScan | Kind::InspectorScan => {
            let counts: Vec<Value> = facts
                .counts
                .iter()
                .map(|c| json!([c.severity, c.count]))
                .collect();
            vec![
                json!(facts.repository),
                json!(facts.digest),
                json!(facts.status),
                Value::Array(counts),
            ]
        }
        Kind::InspectorFinding => vec![
            event
                .pointer("/detail/findingArn")
                .cloned()
                .unwrap_or(Value::Null),
            event
                .pointer("/detail/severity")
                .cloned()
                .unwrap_or(Value::Null),
            event
                .pointer("/detail/status")
                .cloned()
                .unwrap_or(Value::Null),
        ],
        _ => vec![
            event.get("detail-type").cloned().unwrap_or(Value::Null),
            event.get("detail").cloned().unwrap_or(Value::Null),
        ],
    }
}

/// A humantime duration string ("10m"); records an error at `at` otherwise.
pub(crate) fn parse_duration(
    v: &Value,
    at: &str,
    errs: &mut Vec<(String, String)>,
) -> Option<Duration> {
    match v.as_str().map(humantime::parse_duration) {
        Some(Ok(d)) => Some(d),
        _ => {
            errs.push((
                at.to_owned(),
                "expected a duration such as \"30s\", \"10m\" or \"24h\"".into(),
            ));
            None
        }
    }
}

/// A list of JSON paths; records errors (with the index) at `at`.
pub(crate) fn parse_paths(v: &Value, at: &str, errs: &mut Vec<(String, String)>) -> Vec<Path> {
    let Some(items) = v.as_array() else {
        errs.push((at.to_owned(), "expected a list of JSON paths".into()));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str().map(Path::parse) {
            Some(Ok(p)) => out.push(p),
            Some(Err(e)) => errs.push((format!("{at}/{i}"), e.to_string())),
            None => errs.push((format!("{at}/{i}"), "a JSON path is a string".into())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample;

    fn default_spec() -> DedupSpec {
        DedupSpec::parse(&Value::Bool(true), "/dedup")
            .unwrap()
            .unwrap()
    }

    #[test]
    fn default_scan_key_ignores_the_event_id_and_absent_zeros() {
        let spec = default_spec();
        let a = sample("ecr-image-scan-critical.json");
        let mut b = a.clone();
        b["id"] = json!("another-id");
        b["time"] = json!("2030-01-01T00:00:00Z");
        b["detail"]["finding-severity-counts"]["UNDEFINED"] = json!(0);
        assert_eq!(
            spec.key_of(&a),
            spec.key_of(&b),
            "a re-sent scan is a duplicate"
        );
        let mut c = a.clone();
        c["detail"]["finding-severity-counts"]["CRITICAL"] = json!(3);
        assert_ne!(spec.key_of(&a), spec.key_of(&c), "new counts are news");
        let mut d = a.clone();
        d["detail"]["image-digest"] = json!("sha256:0000");
        assert_ne!(spec.key_of(&a), spec.key_of(&d), "another image is news");
    }

    #[test]
    fn default_finding_key_is_arn_severity_status() {
        let spec = default_spec();
        let a = sample("inspector2-finding.json");
        let mut b = a.clone();
        b["id"] = json!("x");
        b["detail"]["updatedAt"] = json!("later");
        assert_eq!(spec.key_of(&a), spec.key_of(&b));
        let mut c = a.clone();
        c["detail"]["status"] = json!("CLOSED");
        assert_ne!(spec.key_of(&a), spec.key_of(&c));
    }

    #[test]
    fn custom_keys_and_errors() {
        let spec = DedupSpec::parse(
            &json!({"window": "10m", "key": ["$.detail.repository-name"]}),
            "/dedup",
        )
        .unwrap()
        .unwrap();
        assert_eq!(spec.window, Duration::from_secs(600));
        let a = sample("ecr-image-scan-critical.json");
        let mut b = a.clone();
        b["detail"]["finding-severity-counts"]["CRITICAL"] = json!(9);
        assert_eq!(
            spec.key_of(&a),
            spec.key_of(&b),
            "only the repository counts"
        );
        let errs = DedupSpec::parse(
            &json!({"window": "soon", "key": ["detail"], "wat": 1}),
            "/dedup",
        )
        .unwrap_err();
        let ptrs: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            ptrs,
            ["/dedup/wat", "/dedup/window", "/dedup/key/0"],
            "{errs:?}"
        );
        assert!(DedupSpec::parse(&json!(3), "/dedup").is_err());
        assert_eq!(DedupSpec::parse(&json!(false), "/dedup").unwrap(), None);
    }
}
