//! The `topic` target (SNS-like): a named fan-out point. A rule that targets a topic causes one delivery
//! per subscription whose filter policy matches the event; each is its own delivery (own id, own
//! retries, own dead letter) to the subscribed email, webhook, slack or console target, with the rule
//! target's input transformation applied as usual.
//!
//! A filter policy is an event pattern in the same grammar as rules (scanbridge-pattern), matched
//! against the whole event (unlike SNS, which matches message attributes: here the event is the
//! message). No policy means every event. A topic never delivers by itself, so it has no `retry`.
//!
//! Validated at configuration load, each error naming its key: at least one subscription; a
//! subscription's target must exist and must not be a topic; no target twice; the policy must parse.

use std::collections::BTreeMap;

use scanbridge_pattern::Pattern;
use serde::Deserialize;
use serde_json::Value;

use crate::config::ConfigError;

/// `[targets.NAME] type = "topic"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    pub subscriptions: Vec<SubscriptionConfig>,
}

/// `{ target = "NAME", filter_policy = {...} }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    pub target: String,
    /// An event pattern (a table, or its JSON text).
    #[serde(default)]
    pub filter_policy: Option<Value>,
}

/// One subscription, ready to match.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub target: String,
    pub filter: Option<Pattern>,
}

impl Subscription {
    pub fn accepts(&self, event: &Value) -> bool {
        self.filter.as_ref().is_none_or(|p| p.matches(event))
    }
}

/// Every topic's subscriptions, by topic name.
pub type Topics = BTreeMap<String, Vec<Subscription>>;

fn policy_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks every topic against the receivers (the configured targets that are not topics) and
/// compiles the filter policies.
pub fn compile(
    topics: &[(&String, &TopicConfig)],
    receivers: &[&str],
) -> Result<Topics, ConfigError> {
    let mut compiled = Topics::new();
    for &(name, t) in topics {
        if t.subscriptions.is_empty() {
            return Err(ConfigError::Invalid {
                key: format!("targets.{name}.subscriptions"),
                message: "a topic needs at least one subscription".into(),
            });
        }
        let mut subs: Vec<Subscription> = Vec::new();
        for (i, s) in t.subscriptions.iter().enumerate() {
            let key = |k: &str| format!("targets.{name}.subscriptions[{i}].{k}");
            if topics.iter().any(|(n, _)| **n == s.target) {
                return Err(ConfigError::Invalid {
                    key: key("target"),
                    message: format!(
                        "{:?} is a topic; a topic cannot subscribe to a topic",
                        s.target
                    ),
                });
            }
            if !receivers.contains(&s.target.as_str()) {
                return Err(ConfigError::Invalid {
                    key: key("target"),
                    message: format!(
                        "unknown target {:?}; configured targets: {}",
                        s.target,
                        receivers.join(", ")
                    ),
                });
            }
            if subs.iter().any(|x| x.target == s.target) {
                return Err(ConfigError::Invalid {
                    key: key("target"),
                    message: format!("target {:?} subscribed twice", s.target),
                });
            }
            let filter = match &s.filter_policy {
                None => None,
                Some(p) => {
                    Some(
                        Pattern::parse(&policy_text(p)).map_err(|e| ConfigError::Invalid {
                            key: format!("{}{}", key("filter_policy"), e.pointer()),
                            message: e.to_string(),
                        })?,
                    )
                }
            };
            subs.push(Subscription {
                target: s.target.clone(),
                filter,
            });
        }
        compiled.insert(name.clone(), subs);
    }
    Ok(compiled)
}
