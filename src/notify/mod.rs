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
pub mod slack;
pub mod topic;
pub mod webhook;

pub use attempt::{Message, Outcome};

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
    /// against the other targets by [`compile_topics`].)
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
