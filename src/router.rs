//! Routing: one event in, the deliveries it causes out (one per matching rule × target).
//!
//! The rule set is swapped atomically on reload ([`RouterHandle`], an `ArcSwap`): a route call sees
//! either the whole old set or the whole new one, never a mix, and never waits on a reload. Matching is
//! kept behind [`Router::route`] alone, so the compiled `RuleSet` can replace the per-rule loop later
//! without touching callers. Delivery ids are deterministic: the same event, rule and target always
//! give the same id, which makes re-ingesting a duplicate event idempotent and lets receivers dedupe.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::rules::Rule;

/// One delivery to make: the rule that matched, the target, and what to send (None = the event).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub rule: String,
    pub target: String,
    pub input: Option<Value>,
}

/// The deterministic delivery id: SHA-256 of event id, rule and target (NUL-separated), 32 hex digits.
pub fn delivery_id(event_id: &str, rule: &str, target: &str) -> String {
    let mut h = Sha256::new();
    for part in [event_id, rule, target] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An immutable set of enabled rules.
#[derive(Debug, Default)]
pub struct Router {
    rules: Vec<Rule>,
}

impl Router {
    pub fn new(rules: Vec<Rule>) -> Self {
        Router {
            rules: rules.into_iter().filter(|r| r.enabled).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The deliveries `event` (with its `id`) causes, in rule-file order.
    pub fn route(&self, event_id: &str, event: &Value) -> Vec<Delivery> {
        let mut out = Vec::new();
        for rule in self.rules.iter().filter(|r| r.pattern.matches(event)) {
            for t in &rule.targets {
                out.push(Delivery {
                    id: delivery_id(event_id, &rule.name, &t.target),
                    rule: rule.name.clone(),
                    target: t.target.clone(),
                    input: t.input.clone(),
                });
            }
        }
        out
    }
}

/// The live router, swapped atomically on reload.
#[derive(Debug)]
pub struct RouterHandle(ArcSwap<Router>);

impl RouterHandle {
    pub fn new(router: Router) -> Self {
        RouterHandle(ArcSwap::from_pointee(router))
    }
    pub fn current(&self) -> Arc<Router> {
        self.0.load_full()
    }
    pub fn swap(&self, router: Router) {
        self.0.store(Arc::new(router));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        assert_eq!(delivery_id("e", "r", "t"), delivery_id("e", "r", "t"));
        assert_ne!(delivery_id("e", "r", "t"), delivery_id("e", "r", "u"));
        assert_ne!(
            delivery_id("ab", "c", "t"),
            delivery_id("a", "bc", "t"),
            "separator matters"
        );
        assert_eq!(delivery_id("e", "r", "t").len(), 32);
    }

    #[test]
    fn routes_matching_enabled_rules_to_each_target() {
        let known = ["a".to_owned(), "b".to_owned()].into();
        let r1 = crate::rules::parse_rule(
            &json!({"name":"r1","event_pattern":{"source":["x"]},"targets":["a","b"]}),
            &known,
        )
        .unwrap();
        let r2 = crate::rules::parse_rule(
            &json!({"name":"r2","enabled":false,"event_pattern":{"source":["x"]},"targets":["a"]}),
            &known,
        )
        .unwrap();
        let router = Router::new(vec![r1, r2]);
        let d = router.route("e1", &json!({"source":"x"}));
        let pairs: Vec<(&str, &str)> = d
            .iter()
            .map(|d| (d.rule.as_str(), d.target.as_str()))
            .collect();
        assert_eq!(pairs, vec![("r1", "a"), ("r1", "b")]);
        assert!(router.route("e2", &json!({"source":"y"})).is_empty());
    }
}
