//! The `pagerduty` target: PagerDuty Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`).
//!
//! A trigger is `{"routing_key", "event_action": "trigger", "dedup_key", "payload": {"summary" (≤ 1024
//! characters), "source" (the image reference), "severity" (critical | error | warning | info from the
//! worst finding), "timestamp", "component" (the repository), "class" (the detail-type),
//! "custom_details" (counts, top findings, image, rule, ids)}, "links" (the ECR console, the
//! advisories), "client": "scanbridge"}`. The `dedup_key` is [`super::incident::vendor_key`]: the rule
//! and the image (repository + tag, or digest when untagged) or the Inspector finding ARN, so repeated
//! alerts about one image group into one incident. A resolve is `{"routing_key", "event_action":
//! "resolve", "dedup_key"}` with the same key.
//!
//! Classification, as PagerDuty documents it: 202 (any 2xx) delivered; 429 and 5xx retryable with
//! backoff, Retry-After honoured; 400 (invalid event) and other 4xx permanent, with PagerDuty's error
//! message in the reason; 3xx permanent (redirects are never followed). The routing key is a secret:
//! never logged, never in a reason or `route` output.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::attempt::{Message, Outcome};
use super::incident::{Incident, cap};
use crate::config::{ConfigError, Secret, resolve_secret};
use crate::retry::RetryOverrides;

/// PagerDuty's limit on `payload.summary` (characters).
pub const MAX_SUMMARY: usize = 1024;
/// The Events API v2 endpoint.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// `[targets.NAME] type = "pagerduty"`: `routing_key` (or `routing_key_file`) is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The integration key of an Events API v2 integration (a secret).
    #[serde(default)]
    routing_key: Option<Secret>,
    #[serde(default)]
    routing_key_file: Option<std::path::PathBuf>,
    /// The Events API endpoint (default: PagerDuty's; set for tests or a proxy).
    #[serde(default = "default_url")]
    pub url: String,
    /// Per-request timeout (default 10 s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Token bucket for this target (`{ per_second = 1, burst = 5 }`).
    #[serde(default)]
    pub rate_limit: Option<crate::alerting::RateLimit>,
    /// Deliveries sent to this target at once (default 4).
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub retry: RetryOverrides,
}

fn default_url() -> String {
    DEFAULT_URL.into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl PagerDutyConfig {
    pub(crate) fn finish(&mut self, name: &str) -> Result<(), ConfigError> {
        let key = format!("targets.{name}.routing_key");
        resolve_secret(&key, &mut self.routing_key, &self.routing_key_file)?;
        if self
            .routing_key
            .as_ref()
            .is_none_or(|k| k.expose().trim().is_empty())
        {
            return Err(ConfigError::Invalid {
                key,
                message: "a pagerduty target needs `routing_key` (the integration key of an \
                          Events API v2 integration)"
                    .into(),
            });
        }
        crate::config::check_http_url(&format!("targets.{name}.url"), &self.url)
    }
}

/// A ready PagerDuty target.
#[derive(Debug)]
pub struct PagerDuty {
    routing_key: Secret,
    url: String,
    client: reqwest::Client,
}

impl PagerDuty {
    pub fn new(cfg: &PagerDutyConfig) -> Result<Self, reqwest::Error> {
        Ok(PagerDuty {
            routing_key: cfg.routing_key.clone().expect("checked at load"),
            url: cfg.url.clone(),
            client: super::webhook::http_client(cfg.timeout)?,
        })
    }

    /// The Events API body for `msg`, with the routing key shown as `routing_key` when `reveal` is
    /// false (`scanbridge route`).
    pub fn body(&self, msg: &Message<'_>, reveal: bool) -> Value {
        let key = if reveal {
            self.routing_key.expose()
        } else {
            "***"
        };
        event(msg, key)
    }

    pub fn preview(&self, msg: &Message<'_>) -> String {
        format!(
            "POST {}\ncontent-type: application/json\n\n{}",
            crate::config::redact_url(&self.url),
            serde_json::to_string_pretty(&self.body(msg, false)).unwrap_or_default()
        )
    }

    pub async fn notify(&self, msg: &Message<'_>) -> Outcome {
        let req = self.client.post(&self.url).json(&self.body(msg, true));
        super::incident::send(req, self.routing_key.expose(), msg.now_ms).await
    }
}

/// The Events API v2 event for `msg` (see the module doc), sent with `routing_key`.
pub fn event(msg: &Message<'_>, routing_key: &str) -> Value {
    let mut body = event_raw(msg, routing_key);
    crate::escape::visible_json(&mut body);
    body
}

fn event_raw(msg: &Message<'_>, routing_key: &str) -> Value {
    let i = Incident::of(msg);
    if msg.is_resolve() {
        return json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": i.key});
    }
    let mut payload = json!({
        "summary": cap(&i.summary, MAX_SUMMARY),
        "source": cap(&i.source, MAX_SUMMARY),
        "severity": i.level.pagerduty(),
        "class": cap(&i.class, MAX_SUMMARY),
        "custom_details": i.details,
    });
    if let Some(c) = &i.component {
        payload["component"] = json!(cap(c, MAX_SUMMARY));
    }
    if let Some(t) = msg.event.get("time").and_then(Value::as_str) {
        payload["timestamp"] = json!(t);
    }
    let links: Vec<Value> = i
        .links
        .iter()
        .map(|(href, text)| json!({"href": href, "text": text}))
        .collect();
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": i.key,
        "payload": payload,
        "links": links,
        "client": "scanbridge",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample;

    fn msg<'a>(event: &'a Value, payload: &'a Value) -> Message<'a> {
        Message {
            delivery_id: "d-1",
            rule: "critical-findings",
            event_id: "e-1",
            event,
            payload,
            delta: None,
            now_ms: 0,
            alert: None,
            replay: None,
        }
    }

    #[test]
    fn trigger_has_every_required_field_within_limits() {
        let e = sample("ecr-image-scan-critical.json");
        let ev = event(&msg(&e, &e), "k");
        assert_eq!(ev["event_action"], "trigger");
        assert_eq!(ev["payload"]["severity"], "critical");
        assert_eq!(
            ev["payload"]["summary"],
            "2 CRITICAL, 7 HIGH, 19 MEDIUM, 4 LOW, 3 INFORMATIONAL in payments/api:v2.14.0"
        );
        assert_eq!(
            ev["payload"]["source"],
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments/api:v2.14.0"
        );
        assert_eq!(ev["links"][0]["text"], "Open the image in the ECR console");
        let huge = json!("x".repeat(5000));
        let ev = event(&msg(&e, &huge), "k");
        let s = ev["payload"]["summary"].as_str().unwrap();
        assert_eq!(
            s.chars().count(),
            MAX_SUMMARY,
            "a transformed string is the summary, cut"
        );
    }

    #[test]
    fn config_denies_unknown_fields_and_needs_a_key() {
        let bad: Result<PagerDutyConfig, _> =
            serde_json::from_value(json!({"routing_key": "k", "routing_kee": "x"}));
        assert!(bad.unwrap_err().to_string().contains("routing_kee"));
        let mut c: PagerDutyConfig = serde_json::from_value(json!({})).unwrap();
        let e = c.finish("oncall").unwrap_err().to_string();
        assert!(e.contains("targets.oncall.routing_key"), "{e}");
        let mut c: PagerDutyConfig =
            serde_json::from_value(json!({"routing_key": "s3cr3t", "url": "ftp://x"})).unwrap();
        let e = c.finish("oncall").unwrap_err().to_string();
        assert!(
            e.contains("targets.oncall.url") && !e.contains("s3cr3t"),
            "{e}"
        );
        let mut c: PagerDutyConfig =
            serde_json::from_value(json!({"routing_key": "s3cr3t"})).unwrap();
        c.finish("oncall").unwrap();
        assert_eq!(c.url, DEFAULT_URL);
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
