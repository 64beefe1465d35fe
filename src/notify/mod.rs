//! Delivery targets: the `[targets.NAME]` configuration, the [`Target`] enum and the contract every
//! target keeps with the worker.
//!
//! Contract: [`Target::notify`] makes one attempt and classifies it as [`Outcome::Delivered`],
//! [`Outcome::Retryable`] (with the receiver's Retry-After, if any) or [`Outcome::Permanent`]. Targets
//! never retry, sleep or dead-letter themselves: the worker and `retry.rs` own that. Reasons never
//! contain secrets (webhook URLs are redacted). Each target type lives in its own module with its config
//! struct beside it; every config struct denies unknown fields (serde ignores that attribute on the
//! internally tagged [`TargetConfig`] itself).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use std::sync::Arc;

use crate::config::{ConfigError, DeliveryConfig};
use crate::render::template::{Context, Templates};
use crate::retry::{RetryOverrides, RetryPolicy};

pub mod console;
pub mod email;
pub mod slack;
pub mod topic;
pub mod webhook;

/// `[targets.NAME]`, selected by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TargetConfig {
    Webhook(webhook::WebhookConfig),
    Console(console::ConsoleConfig),
    Email(email::EmailConfig),
    Slack(slack::SlackConfig),
    Topic(topic::TopicConfig),
}

impl TargetConfig {
    /// Resolves secrets and checks values; `name` is used in error messages. (Topics are checked
    /// against the other targets by [`topic::compile`].)
    pub fn finish(&mut self, name: &str) -> Result<(), ConfigError> {
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
            TargetConfig::Topic(_) => None,
        }
    }

    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Webhook(_) => "webhook",
            TargetConfig::Console(_) => "console",
            TargetConfig::Email(_) => "email",
            TargetConfig::Slack(_) => "slack",
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

/// One delivery attempt's input.
#[derive(Debug)]
pub struct Message<'a> {
    /// Deterministic id (event id + rule + target): receivers use it to drop duplicates.
    pub delivery_id: &'a str,
    pub rule: &'a str,
    pub event_id: &'a str,
    /// The whole event.
    pub event: &'a Value,
    /// What the rule says to send: the event, or its transformed input.
    pub payload: &'a Value,
    /// What changed since the previous scan of the image, when known (templates: `scan.delta`).
    pub delta: Option<&'a crate::scan::Delta>,
}

impl<'a> Message<'a> {
    /// What the templates of this attempt see.
    pub fn context(&self) -> Context<'a> {
        Context::new(
            self.event,
            self.payload,
            self.rule,
            self.delivery_id,
            self.event_id,
        )
        .with_delta(self.delta)
    }
}

/// Hands `f` the message of one delivery of `event` as an attempt would build it (the rule target's
/// input transformation applied), for previews that send nothing (`scanbridge route`, the UI). Err
/// with the reason when the transformation fails: the daemon would dead-letter that delivery.
pub fn with_message<T>(
    event_id: &str,
    event: &Value,
    delivery_id: &str,
    rule: &str,
    input: Option<&Value>,
    f: impl FnOnce(&Message<'_>) -> T,
) -> Result<T, String> {
    let payload = crate::render::payload(event, input, rule).map_err(|e| e.to_string())?;
    Ok(f(&Message {
        delivery_id,
        rule,
        event_id,
        event,
        payload: &payload,
        delta: None,
    }))
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    Retryable {
        retry_after: Option<Duration>,
        reason: String,
    },
    Permanent {
        reason: String,
    },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retryable { .. } => "retryable",
            Outcome::Permanent { .. } => "permanent",
        }
    }
}

/// A ready-to-use target.
#[derive(Debug)]
pub enum Target {
    Webhook(webhook::Webhook),
    Console(console::Console),
    Email(email::Email),
    Slack(slack::Slack),
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
        }
    }

    /// What an attempt would send, as data for the UI (`POST /api/v1/route`): `{"kind", ...}` with,
    /// per kind, the webhook request (method, content type, header names, body), the email (from, to,
    /// subject, both parts), the Slack message (`payload`) or the console text. No secret is in it.
    pub fn preview_data(&self, msg: &Message<'_>) -> Result<Value, String> {
        let (kind, mut data) = match self {
            Target::Webhook(t) => ("webhook", t.preview_data(msg)),
            Target::Console(_) => ("console", serde_json::json!({"text": console::render(msg)})),
            Target::Email(t) => ("email", t.preview_data(msg)?),
            Target::Slack(t) => ("slack", serde_json::json!({"payload": t.payload(msg)?})),
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
        }
    }
}

/// All configured targets with their effective retry policies.
#[derive(Debug)]
pub struct Targets {
    by_name: BTreeMap<String, (Target, RetryPolicy)>,
}

impl Targets {
    /// Builds every deliverable target (topics are not: the router fans them out).
    pub fn build(
        configs: &BTreeMap<String, TargetConfig>,
        delivery: &DeliveryConfig,
        templates: Arc<Templates>,
    ) -> Result<Targets, BuildError> {
        let mut by_name = BTreeMap::new();
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
                    Target::Email(email::Email::new(e, templates.clone()).map_err(|source| {
                        BuildError::Smtp {
                            name: name.clone(),
                            source,
                        }
                    })?)
                }
                TargetConfig::Slack(s) => {
                    Target::Slack(slack::Slack::new(s, templates.clone()).map_err(http)?)
                }
                TargetConfig::Topic(_) => continue,
            };
            by_name.insert(
                name.clone(),
                (target, RetryPolicy::new(delivery, &cfg.retry())),
            );
        }
        Ok(Targets { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&(Target, RetryPolicy)> {
        self.by_name.get(name)
    }
}

/// Resolves a secret URL (inline, environment or `*_file`), requires it, and checks that it is
/// http(s); errors name `key` and never show the URL.
pub(crate) fn required_http_url(
    key: String,
    url: &mut Option<crate::config::Secret>,
    file: &Option<std::path::PathBuf>,
    missing: &str,
) -> Result<(), ConfigError> {
    crate::config::resolve_secret(&key, url, file)?;
    let Some(u) = url.as_ref() else {
        return Err(ConfigError::Invalid {
            key,
            message: missing.into(),
        });
    };
    match reqwest::Url::parse(u.expose()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(ConfigError::Invalid {
            key,
            message: "not an http(s) URL".into(),
        }),
    }
}
