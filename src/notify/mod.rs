//! Receivers: the `[targets.NAME]` configuration ([`TargetConfig`]), building the receivers
//! ([`Targets`]) and dispatching an attempt to one ([`Target`]).
//!
//! Contract ([`attempt`]): [`Target::notify`] makes one attempt and classifies it as
//! [`Outcome::Delivered`], [`Outcome::Retryable`] (with the receiver's Retry-After, if any) or
//! [`Outcome::Permanent`]. Receivers never retry, sleep or dead-letter themselves: the worker and
//! `retry.rs` own that. Reasons never contain secrets (webhook URLs are redacted). Each receiver lives in
//! its own module with its config struct beside it, importing only the contract; every config struct
//! denies unknown fields (serde ignores that attribute on the internally tagged [`TargetConfig`]
//! itself).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::{ConfigError, DeliveryConfig};
use crate::render::template::Templates;
use crate::retry::{RetryOverrides, RetryPolicy};

mod attempt;
pub mod console;
pub mod email;
pub mod incident;
pub mod opsgenie;
pub mod pagerduty;
pub mod slack;
pub mod teams;
pub mod topic;
pub mod webhook;

pub use attempt::{Message, Outcome, with_message};

/// `[targets.NAME]`, selected by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TargetConfig {
    Webhook(webhook::WebhookConfig),
    Console(console::ConsoleConfig),
    Email(email::EmailConfig),
    Slack(slack::SlackConfig),
    Topic(topic::TopicConfig),
    PagerDuty(pagerduty::PagerDutyConfig),
    Opsgenie(opsgenie::OpsgenieConfig),
    Teams(teams::TeamsConfig),
}

impl TargetConfig {
    /// Resolves secrets and checks values; `name` is used in error messages. (Topics are checked
    /// against the other targets by [`compile_topics`].)
    pub fn finish(&mut self, name: &str) -> Result<(), ConfigError> {
        if self.concurrency() == 0 {
            return Err(ConfigError::Invalid {
                key: format!("targets.{name}.concurrency"),
                message: "must be at least 1 (deliveries sent at once)".into(),
            });
        }
        if let Some(problem) = self.rate_limit().and_then(|r| r.problem()) {
            return Err(ConfigError::Invalid {
                key: format!("targets.{name}.rate_limit"),
                message: problem,
            });
        }
        match self {
            TargetConfig::Webhook(w) => w.finish(name),
            TargetConfig::Email(e) => e.finish(name),
            TargetConfig::Slack(s) => s.finish(name),
            TargetConfig::PagerDuty(p) => p.finish(name),
            TargetConfig::Opsgenie(o) => o.finish(name),
            TargetConfig::Teams(t) => t.finish(name),
            TargetConfig::Console(_) | TargetConfig::Topic(_) => Ok(()),
        }
    }

    /// The retry overrides (a topic has none: its subscriptions' targets retry).
    pub fn retry(&self) -> RetryOverrides {
        match self {
            TargetConfig::Webhook(w) => w.retry.clone(),
            TargetConfig::Console(c) => c.retry.clone(),
            TargetConfig::Email(e) => e.retry.clone(),
            TargetConfig::Slack(s) => s.retry.clone(),
            TargetConfig::PagerDuty(p) => p.retry.clone(),
            TargetConfig::Opsgenie(o) => o.retry.clone(),
            TargetConfig::Teams(t) => t.retry.clone(),
            TargetConfig::Topic(_) => RetryOverrides::default(),
        }
    }

    /// The target's `rate_limit`, if any (topics have none: their subscriptions' targets do).
    pub fn rate_limit(&self) -> Option<crate::alerting::RateLimit> {
        match self {
            TargetConfig::Webhook(w) => w.rate_limit,
            TargetConfig::Console(c) => c.rate_limit,
            TargetConfig::Email(e) => e.rate_limit,
            TargetConfig::Slack(s) => s.rate_limit,
            TargetConfig::PagerDuty(p) => p.rate_limit,
            TargetConfig::Opsgenie(o) => o.rate_limit,
            TargetConfig::Teams(t) => t.rate_limit,
            TargetConfig::Topic(_) => None,
        }
    }

    /// Deliveries sent to the target at once: its `concurrency`, or the default of its kind (several
    /// for HTTP receivers, whose connections are pooled and reused; one SMTP connection; one console,
    /// so that its lines keep their order). Topics have none: their subscriptions' targets do.
    pub fn concurrency(&self) -> usize {
        let (set, default) = match self {
            TargetConfig::Webhook(w) => (w.concurrency, 8),
            TargetConfig::Console(c) => (c.concurrency, 1),
            TargetConfig::Email(e) => (e.concurrency, 1),
            TargetConfig::Slack(s) => (s.concurrency, 4),
            TargetConfig::PagerDuty(p) => (p.concurrency, 4),
            TargetConfig::Opsgenie(o) => (o.concurrency, 4),
            TargetConfig::Teams(t) => (t.concurrency, 4),
            TargetConfig::Topic(_) => (None, 1),
        };
        set.unwrap_or(default)
    }

    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Webhook(_) => "webhook",
            TargetConfig::Console(_) => "console",
            TargetConfig::Email(_) => "email",
            TargetConfig::Slack(_) => "slack",
            TargetConfig::PagerDuty(_) => "pagerduty",
            TargetConfig::Opsgenie(_) => "opsgenie",
            TargetConfig::Teams(_) => "teams",
            TargetConfig::Topic(_) => "topic",
        }
    }
}

/// A target could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("target {name}: HTTP client: {source}")]
    Http {
        name: String,
        source: reqwest::Error,
    },
    #[error("target {name}: SMTP transport: {source}")]
    Smtp {
        name: String,
        source: lettre::transport::smtp::Error,
    },
}

/// A ready-to-use target.
#[derive(Debug)]
pub enum Target {
    Webhook(webhook::Webhook),
    Console(console::Console),
    Email(email::Email),
    Slack(slack::Slack),
    PagerDuty(pagerduty::PagerDuty),
    Opsgenie(opsgenie::Opsgenie),
    Teams(teams::Teams),
}

impl Target {
    /// Exactly what an attempt would send, as text for a person (`scanbridge route`); sends nothing.
    /// Secrets (URLs, header values, passwords) are not shown.
    pub fn preview(&self, msg: &Message<'_>) -> Result<String, String> {
        match self {
            Target::Webhook(t) => Ok(t.preview(msg)),
            Target::Console(_) => Ok(console::render(msg)),
            Target::Email(t) => t.preview(msg),
            Target::Slack(t) => t
                .payload(msg)
                .map(|p| serde_json::to_string_pretty(&p).unwrap_or_default()),
            Target::PagerDuty(t) => Ok(t.preview(msg)),
            Target::Opsgenie(t) => Ok(t.preview(msg)),
            Target::Teams(t) => Ok(t.preview(msg)),
        }
    }

    /// What an attempt would send, as data for the UI (`POST /api/v1/route`): `{"kind", ...}` with,
    /// per kind, the webhook request (method, content type, header names, body), the email (from, to,
    /// subject, both parts), the Slack message (`payload`) or the console text. No secret is in it.
    pub fn preview_data(&self, msg: &Message<'_>) -> Result<serde_json::Value, String> {
        let (kind, mut data) = match self {
            Target::Webhook(t) => ("webhook", t.preview_data(msg)),
            Target::Console(_) => ("console", serde_json::json!({"text": console::render(msg)})),
            Target::Email(t) => ("email", t.preview_data(msg)?),
            Target::Slack(t) => ("slack", serde_json::json!({"payload": t.payload(msg)?})),
            // The pagers' requests as a webhook's: the body, never the URL or the key.
            Target::PagerDuty(t) => ("pagerduty", json_request(&[], t.body(msg, false))),
            Target::Opsgenie(t) => (
                "opsgenie",
                json_request(&["authorization"], t.request(msg).1),
            ),
            Target::Teams(_) => ("teams", json_request(&[], teams::payload(msg))),
        };
        data["kind"] = kind.into();
        Ok(data)
    }

    /// Makes one attempt.
    pub async fn notify(&self, msg: &Message<'_>) -> Outcome {
        match self {
            Target::Webhook(t) => t.notify(msg).await,
            Target::Console(t) => t.notify(msg),
            Target::Email(t) => t.notify(msg).await,
            Target::Slack(t) => t.notify(msg).await,
            Target::PagerDuty(t) => t.notify(msg).await,
            Target::Opsgenie(t) => t.notify(msg).await,
            Target::Teams(t) => t.notify(msg).await,
        }
    }
}

/// A JSON POST as [`Target::preview_data`] shows it: the header names it carries (values hidden) and
/// the body.
fn json_request(headers: &[&str], body: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"method": "POST", "content_type": "application/json", "headers": headers,
        "signed": false, "body": body})
}

/// All configured targets with their effective retry policies.
#[derive(Debug)]
pub struct Targets {
    by_name: BTreeMap<String, (Target, RetryPolicy)>,
    concurrency: BTreeMap<String, usize>,
}

impl Targets {
    /// Builds every deliverable target (topics are not: the router fans them out).
    pub fn build(
        configs: &BTreeMap<String, TargetConfig>,
        delivery: &DeliveryConfig,
        templates: Arc<Templates>,
    ) -> Result<Targets, BuildError> {
        let mut by_name = BTreeMap::new();
        let mut concurrency = BTreeMap::new();
        for (name, cfg) in configs {
            let http = |source| BuildError::Http {
                name: name.clone(),
                source,
            };
            let target = match cfg {
                TargetConfig::Webhook(w) => {
                    Target::Webhook(webhook::Webhook::new(name, w).map_err(http)?)
                }
                TargetConfig::Console(_) => Target::Console(console::Console),
                TargetConfig::Email(e) => {
                    Target::Email(email::Email::new(name, e, templates.clone()).map_err(
                        |source| BuildError::Smtp {
                            name: name.clone(),
                            source,
                        },
                    )?)
                }
                TargetConfig::Slack(s) => {
                    Target::Slack(slack::Slack::new(s, templates.clone()).map_err(http)?)
                }
                TargetConfig::PagerDuty(p) => {
                    Target::PagerDuty(pagerduty::PagerDuty::new(p).map_err(http)?)
                }
                TargetConfig::Opsgenie(o) => {
                    Target::Opsgenie(opsgenie::Opsgenie::new(o).map_err(http)?)
                }
                TargetConfig::Teams(t) => Target::Teams(teams::Teams::new(t).map_err(http)?),
                TargetConfig::Topic(_) => continue,
            };
            by_name.insert(
                name.clone(),
                (target, RetryPolicy::new(delivery, &cfg.retry())),
            );
            concurrency.insert(name.clone(), cfg.concurrency().max(1));
        }
        Ok(Targets {
            by_name,
            concurrency,
        })
    }

    /// Deliveries sent to `name` at once ([`TargetConfig::concurrency`]; 1 for an unknown name).
    pub fn concurrency(&self, name: &str) -> usize {
        self.concurrency.get(name).copied().unwrap_or(1)
    }

    pub fn get(&self, name: &str) -> Option<&(Target, RetryPolicy)> {
        self.by_name.get(name)
    }
}

/// Checks every topic against the other targets and compiles the filter policies.
pub fn compile_topics(
    targets: &BTreeMap<String, TargetConfig>,
) -> Result<topic::Topics, ConfigError> {
    let topics: Vec<(&String, &topic::TopicConfig)> = targets
        .iter()
        .filter_map(|(name, c)| match c {
            TargetConfig::Topic(t) => Some((name, t)),
            _ => None,
        })
        .collect();
    let receivers: Vec<&str> = targets
        .iter()
        .filter(|(_, c)| !matches!(c, TargetConfig::Topic(_)))
        .map(|(n, _)| n.as_str())
        .collect();
    topic::compile(&topics, &receivers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AlertKind, AlertMark};
    use crate::testing::sample;
    use serde_json::{Value, json};

    /// A resolve of the critical sample's alert by a clean rescan of the same image.
    fn resolve() -> (Value, AlertMark, crate::scan::Delta) {
        let critical = sample("ecr-image-scan-critical.json");
        let mut clean = critical.clone();
        clean["id"] = json!("e-clean");
        clean["detail"]["finding-severity-counts"] = json!({"LOW": 1});
        let key = crate::alerting::alert_keys(&critical).unwrap().primary;
        let record = crate::alerting::history_update(&critical).unwrap().record;
        let delta = crate::alerting::resolve_delta(&clean, &key, &record).unwrap();
        let mark = AlertMark {
            kind: AlertKind::Resolve,
            key,
            time_ms: None,
            record: None,
        };
        (clean, mark, delta)
    }

    fn message<'a>(
        e: &'a Value,
        mark: &'a AlertMark,
        delta: &'a crate::scan::Delta,
    ) -> Message<'a> {
        Message {
            delivery_id: "d-resolve",
            rule: "critical-findings",
            event_id: "e-clean",
            event: e,
            payload: e,
            delta: Some(delta),
            now_ms: 0,
            alert: Some(mark),
            replay: None,
        }
    }

    const HEADLINE: &str = "Resolved: payments/api:v2.14.0 — CRITICAL 2 -> 0, HIGH 7 -> 0, MEDIUM 19 -> 0, LOW 4 -> 1, INFORMATIONAL 3 -> 0";

    #[test]
    fn a_resolve_speaks_each_receivers_language() {
        let (e, mark, delta) = resolve();
        let msg = message(&e, &mark, &delta);
        assert!(msg.is_resolve());
        assert_eq!(msg.context().resolved.unwrap().headline, HEADLINE);

        let pd = pagerduty::event(&msg, "k");
        assert_eq!(
            pd,
            json!({"routing_key": "k", "event_action": "resolve",
                "dedup_key": format!("scanbridge/critical-findings/{}", mark.key)})
        );

        let og: opsgenie::OpsgenieConfig =
            serde_json::from_value(json!({"api_key": "k", "url": "https://api.eu.opsgenie.com"}))
                .unwrap();
        let (url, body) = opsgenie::Opsgenie::new(&og).unwrap().request(&msg);
        assert_eq!(
            url.as_str(),
            "https://api.eu.opsgenie.com/v2/alerts/scanbridge%2Fcritical-findings%2F123456789012.dkr.ecr.us-east-1.amazonaws.com%2Fpayments%2Fapi:v2.14.0/close?identifierType=alias"
        );
        assert_eq!(body["source"], "scanbridge");
        assert!(
            body["note"].as_str().unwrap().starts_with(HEADLINE),
            "{body}"
        );

        let slack = slack::resolved(&msg.context());
        assert_eq!(slack["blocks"][0]["text"]["text"], HEADLINE);
        let text = slack["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(
            text.contains("*Changes since the scan that opened the alert*  CRITICAL 2 -&gt; 0")
                && text.contains("*Findings now*  1 LOW"),
            "{text}"
        );

        let teams = teams::payload(&msg);
        let card = &teams["attachments"][0]["content"];
        assert_eq!(card["body"][0]["color"], "good");
        assert!(
            card["body"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Resolved: payments/api:v2.14.0")
        );

        let hook = webhook::resolved_body(&msg);
        assert_eq!(hook["status"], "resolved");
        assert_eq!(hook["alert_key"], json!(mark.key));
        assert_eq!(
            hook["changes"][0],
            json!({"severity": "CRITICAL", "before": 2, "after": 0})
        );
        assert_eq!(
            hook["opened_by"]["event_id"],
            "3f6a1c52-8e0b-4d1e-9a8f-5b2c7d9e1a01"
        );
        assert_eq!(hook["event"]["id"], "e-clean");

        let console = console::render(&msg);
        assert!(
            console.starts_with(
                "=== scanbridge RESOLVED: rule critical-findings ===\n  Resolved: payments/api"
            ),
            "{console}"
        );
    }

    #[test]
    fn resolved_email_says_what_changed() {
        let (e, mark, delta) = resolve();
        let msg = message(&e, &mark, &delta);
        let cfg: email::EmailConfig = serde_json::from_value(json!({
            "host": "127.0.0.1", "port": 25, "tls": "none", "from": "a@example.org", "to": ["b@example.org"],
            "subject": "custom {{ rule }}"}))
        .unwrap();
        let templates = Arc::new(Templates::load(None).unwrap());
        let mail = email::Email::new("mail", &cfg, templates).unwrap();
        let (subject, text, html) = mail.render(&msg).unwrap();
        assert_eq!(
            subject,
            format!("[scanbridge] {HEADLINE}"),
            "the custom subject is for alerts"
        );
        assert!(
            text.contains("  CRITICAL 2 -> 0\n  HIGH 7 -> 0\n"),
            "{text}"
        );
        assert!(text.contains("Findings now: 1 LOW"), "{text}");
        assert!(
            text.contains("rule critical-findings no longer matches"),
            "{text}"
        );
        assert!(html.contains("CRITICAL 2 -&gt; 0"), "{html}");
    }

    #[test]
    fn resolved_cards_are_valid_adaptive_cards() {
        let (e, mark, delta) = resolve();
        let card = teams::payload(&message(&e, &mark, &delta));
        let v = teams::tests::validator();
        let errors: Vec<String> = v
            .iter_errors(&card["attachments"][0]["content"])
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}

#[cfg(test)]
mod report_tests {
    use super::*;

    #[test]
    fn a_scanner_report_pages_like_an_ecr_scan() {
        let e = crate::testing::report_event("trivy-alpine-39-high-critical.json");
        let msg = Message {
            delivery_id: "d",
            rule: "r",
            event_id: "e",
            event: &e,
            payload: &e,
            delta: None,
            now_ms: 0,
            alert: None,
            replay: None,
        };
        let keys = crate::alerting::alert_keys(&e).expect("an image scan has an alert key");
        let pd = pagerduty::event(&msg, "k");
        assert_eq!(pd["dedup_key"], format!("scanbridge/r/{}", keys.primary));
        assert_eq!(pd["payload"]["severity"], "critical");
        let top = pd["payload"]["custom_details"]["top_findings"]
            .as_array()
            .unwrap();
        assert_eq!(top[0]["severity"], "CRITICAL", "{top:?}");
        assert!(top[0]["id"].as_str().unwrap().starts_with("CVE-"));
        let card = teams::payload(&msg);
        let content = &card["attachments"][0]["content"];
        assert!(teams::tests::validator().is_valid(content), "{content:#}");
        assert!(
            content.to_string().contains("**Top findings**"),
            "{content:#}"
        );
    }
}
