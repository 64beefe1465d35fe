//! Deduplication: the same alert to the same place at most once per window.
//!
//! A rule's `dedup` option (`true`, or `{ window = "24h", key = ["$.detail.repository-name", ...] }`)
//! gives every delivery of that rule a key; the notification pipeline ([`crate::alerting`]) asks the
//! store to *claim* the key for the rule and target, and a second delivery with the same key inside the
//! window is suppressed (recorded in the store, counted in `/metrics`, logged at debug).
//!
//! A replayed delivery (`scanbridge replay`) claims its keys in a scope of its own replay: it is never
//! suppressed as a duplicate of a live delivery, and never keeps a live one from being sent.
//!
//! Default keys, when the rule names none: ECR Image Scan and Inspector2 Scan: repository + image
//! digest + the severity counts (fixed order, absent = 0, so `{}` and `{"LOW": 0}` are the same);
//! Inspector2 Finding: findingArn + severity + status; any other event: its `detail-type` and `detail`.
//! A custom key is a list of EventBridge-style JSON paths; a path that selects nothing contributes
//! `null`. Keys are SHA-256 digests of the JSON list of parts, so they are short and stable.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::options::DedupSpec;
use super::stage::{Flow, Ledger, Notice, Stage};
use crate::scan::{Facts, Kind};

impl DedupSpec {
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
        Kind::EcrScan | Kind::InspectorScan | Kind::ImageScan => {
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

/// Stage 3: a rule with `dedup` claims the event's key for its rule and target; a delivery whose key
/// another delivery claimed within the window is suppressed (`duplicate`).
pub struct DedupStage {
    pub ledger: Ledger,
}

impl Stage for DedupStage {
    const NAME: &'static str = "dedup";

    async fn exec(&self, n: &Notice<'_>) -> Flow {
        let Some(spec) = &n.options.dedup else {
            return Flow::Next;
        };
        let d = n.delivery;
        let episode = n.dedup_scope.get().map(String::as_str).unwrap_or("");
        // A replay dedups within itself, never against live deliveries (nor they against it).
        let replay = d
            .replay
            .as_deref()
            .map(|r| format!("\u{0}replay:{r}"))
            .unwrap_or_default();
        let scope = format!("{}\u{0}{}{episode}{replay}", d.rule, d.target);
        let claim = self
            .ledger
            .store
            .dedup_claim(
                scope,
                spec.key_of(n.event),
                d.id.clone(),
                spec.window.as_millis() as i64,
                n.now_ms,
            )
            .await;
        match claim {
            Ok(None) => Flow::Next,
            Ok(Some(first)) => {
                let detail = format!("duplicate of delivery {first}");
                self.ledger.suppress(n, "duplicate", detail).await
            }
            Err(e) => {
                tracing::error!(delivery = %d.id, error = %e, "dedup check failed; sending");
                Flow::Next
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample;
    use std::time::Duration;

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
