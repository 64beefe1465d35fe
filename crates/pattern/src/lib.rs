//! EventBridge event patterns with AWS's exact semantics.
//!
//! This crate is pure: no I/O, no async, no logging. It answers one question, "does this pattern match
//! this event?", exactly as Amazon EventBridge does, and says why.
//!
//! ```
//! use scanbridge_pattern::Pattern;
//!
//! let pattern = Pattern::parse(r#"{
//!     "source": ["aws.ecr"],
//!     "detail-type": ["ECR Image Scan"],
//!     "detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}
//! }"#).unwrap();
//!
//! let event = serde_json::json!({
//!     "source": "aws.ecr", "detail-type": "ECR Image Scan",
//!     "detail": {"repository-name": "payments/api", "finding-severity-counts": {"CRITICAL": 2, "HIGH": 7}}
//! });
//! assert!(pattern.matches(&event));
//!
//! // Invalid patterns are rejected in AWS's words, with the JSON pointer of the node at fault.
//! let err = Pattern::parse(r#"{"detail": {"scan-status": []}}"#).unwrap_err();
//! assert_eq!(err.to_string(), "Event pattern is not valid. Reason: Empty arrays are not allowed");
//! assert_eq!(err.pointer(), "/detail/scan-status");
//! ```
//!
//! # Semantics (PATTERNS.md states them in full)
//! - A pattern is a JSON object mirroring the event; every leaf is a non-empty array of values or match
//!   expressions, any of which may match. Fields are ANDed; `$or` lists alternatives.
//! - Patterns match leaf values only. Missing fields, objects and empty arrays are not values.
//! - An array in the event matches if any element matches; a pattern never combines fields drawn from
//!   different elements of one array of objects.
//! - Numbers compare as event-ruler 2.0.1 compares them: as doubles within ±5e9 (`300` = `300.0`);
//!   a number never equals a string (`300` ≠ `"300"`).
//!
//! # Two doors
//! [`Pattern::matches`] is the reference interpreter: simple, obviously correct, and the oracle that the
//! compiled many-rule matcher is tested against. [`RuleSet`] is that matcher: many patterns compiled
//! together, matched against raw event bytes in one pass that decodes only the values some rule names.
//!
//! ```
//! use scanbridge_pattern::{Pattern, RuleSet};
//!
//! let mut rules = RuleSet::new();
//! rules.add("critical", &Pattern::parse(r#"{"detail": {"severity": ["CRITICAL"]}}"#).unwrap());
//! rules.add("payments", &Pattern::parse(r#"{"detail": {"repo": [{"prefix": "payments/"}]}}"#).unwrap());
//! let event = br#"{"detail": {"severity": "CRITICAL", "repo": "payments/api", "big": [1, 2, 3]}}"#;
//! assert_eq!(rules.matches(event).unwrap(), vec!["critical", "payments"]);
//! assert!(rules.matches(b"[1, 2]").is_err()); // not an object, as the reference says
//! ```

pub mod ast;
mod automaton;
mod error;
pub mod eval;
pub mod flatten;
pub mod ip;
pub mod json;
pub mod locate;
pub mod number;
mod parse;
mod ruleset;
pub mod wildcard;

pub use ast::{AnythingBut, Branch, Condition, Literal, Matcher, Range};
pub use automaton::simd::Simd;
pub use error::{EventError, PatternError};
pub use eval::Explanation;
pub use flatten::{Field, Leaf};
pub use parse::{Limits, Warning};
pub use ruleset::{RuleSet, Scratch};

/// A validated event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    branches: Vec<Branch>,
    warnings: Vec<Warning>,
}

impl Pattern {
    /// Parses and validates pattern text with EventBridge's default limits.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        Pattern::parse_with_limits(text, &Limits::default())
    }

    /// Parses with other limits (for example a 4096-character pattern size quota).
    pub fn parse_with_limits(text: &str, limits: &Limits) -> Result<Pattern, PatternError> {
        let parsed = parse::parse(text, limits)?;
        Ok(Pattern {
            branches: parsed.branches,
            warnings: parsed.warnings,
        })
    }

    /// Valid but suspicious things in the pattern text (a repeated key, which AWS accepts by letting
    /// the later one win), each with the JSON pointer where it is.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The alternatives of the pattern (one per `$or` combination).
    pub fn branches(&self) -> &[Branch] {
        &self.branches
    }

    /// Every condition of the pattern once (a condition outside `$or` is in every branch; a key that
    /// a later duplicate replaces, as AWS lets it, is not there), with the branches it is in (indexes
    /// into [`Pattern::branches`]), in the order the branches first name them.
    pub fn conditions(&self) -> Vec<(&Condition, Vec<usize>)> {
        let mut out: Vec<(&Condition, Vec<usize>)> = Vec::new();
        for (i, b) in self.branches.iter().enumerate() {
            for c in &b.conditions {
                match out.iter_mut().find(|(d, _)| d.pointer == c.pointer) {
                    Some((_, branches)) => branches.push(i),
                    None => out.push((c, vec![i])),
                }
            }
        }
        out
    }

    /// Whether the pattern matches the event. A non-object is never matched.
    pub fn matches(&self, event: &serde_json::Value) -> bool {
        event.is_object() && self.matches_event(&Event::from_value(event))
    }

    /// Whether the pattern matches raw event bytes (which must hold one JSON object).
    pub fn matches_bytes(&self, event: &[u8]) -> Result<bool, EventError> {
        Ok(self.matches_event(&Event::from_bytes(event)?))
    }

    /// Whether the pattern matches an already flattened event (flatten once, test many patterns).
    pub fn matches_event(&self, event: &Event) -> bool {
        eval::matches(&self.branches, &event.fields)
    }

    /// Field-by-field reasons for the verdict.
    pub fn explain(&self, event: &Event) -> Explanation {
        eval::explain(&self.branches, &event.fields)
    }
}

/// An event reduced to the leaf fields patterns look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    fields: Vec<Field>,
}

impl Event {
    /// Reads one JSON object from bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Event, EventError> {
        let json = json::parse(bytes)?;
        Event::from_json(&json)
    }

    /// Flattens a parsed JSON object.
    pub fn from_json(json: &json::Json) -> Result<Event, EventError> {
        match json {
            json::Json::Object(_) => Ok(Event {
                fields: flatten::flatten(json),
            }),
            json::Json::Array(_) => Err(EventError::NotAnObject("an array")),
            json::Json::String(_) => Err(EventError::NotAnObject("a string")),
            json::Json::Number(_) => Err(EventError::NotAnObject("a number")),
            json::Json::Bool(_) => Err(EventError::NotAnObject("a boolean")),
            json::Json::Null => Err(EventError::NotAnObject("null")),
        }
    }

    /// Flattens a serde_json value (any value; a non-object has no fields).
    pub fn from_value(v: &serde_json::Value) -> Event {
        Event {
            fields: flatten::flatten(&json::Json::from_value(v)),
        }
    }

    /// The leaves, in document order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
}
