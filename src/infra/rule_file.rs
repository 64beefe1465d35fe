//! scanbridge's own rule files (`rules/*.json`, `*.yaml`): the `event_pattern` of each, named by the
//! rule's `name`. Only the pattern is checked here; `scanbridge check` validates the rest of a rule
//! (targets, alerting options) against a configuration.

use std::path::Path;

use serde_json::Value;

use super::found::{Body, Format, Found};
use super::holes::Holed;
use super::locate::DocLines;

/// Whether a document is a rule file: an object with a string `name` and an `event_pattern`.
pub fn is_rule(doc: &Value) -> bool {
    doc.get("name").is_some_and(Value::is_string) && doc.get("event_pattern").is_some()
}

/// The pattern of a rule file.
pub fn extract(doc: &Value, file: &Path, lines: &DocLines) -> Vec<Found> {
    let (Some(name), Some(pattern)) = (
        doc.get("name").and_then(Value::as_str),
        doc.get("event_pattern"),
    ) else {
        return Vec::new();
    };
    // As the daemon reads it (`rules::parse_rule`): a string is pattern text, anything else is
    // serialized.
    let text = match pattern {
        Value::String(s) => Holed::verbatim(s.clone()),
        other => Holed {
            verbatim: false,
            ..Holed::verbatim(other.to_string())
        },
    };
    vec![Found {
        file: file.to_owned(),
        resource: name.to_owned(),
        format: Format::ScanbridgeRule,
        resource_type: "scanbridge rule".to_owned(),
        construct_path: None,
        body: Body::Holed(text),
        lines: lines.pattern(&["event_pattern".to_owned()]),
    }]
}
