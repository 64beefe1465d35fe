//! Shaping what a receiver sends: the rule target's input transformation ([`transform`], over
//! EventBridge-style JSON paths in [`jsonpath`]) and the message templates of email and Slack
//! ([`template`]), which show the scan facts of [`crate::scan`]. This is the only user of jsonpath-rust
//! and minijinja. Pure apart from reading template override files at start-up; it knows no receiver.

pub mod jsonpath;
pub mod template;
pub mod transform;

use serde_json::Value;

pub use transform::{Input, TransformError};

/// The payload of one delivery: the event itself when the rule target has no transformation, else the
/// transformed input. `input` is the stored `{"input"|"input_path"|"input_transformer": ...}` object.
pub fn payload(event: &Value, input: Option<&Value>, rule: &str) -> Result<Value, TransformError> {
    match input {
        None | Some(Value::Null) => Ok(event.clone()),
        Some(spec) => Input::parse(spec)
            .map_err(|errs| {
                TransformError::Invalid(
                    errs.into_iter()
                        .map(|(p, m)| format!("{p}: {m}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?
            .apply(event, rule),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_transformation_sends_the_event() {
        let e = json!({"detail":{"repository-name":"r"}});
        assert_eq!(payload(&e, None, "r").unwrap(), e);
        assert_eq!(
            payload(
                &e,
                Some(&json!({"input_path":"$.detail.repository-name"})),
                "r"
            )
            .unwrap(),
            json!("r")
        );
        assert!(payload(&e, Some(&json!({"bogus":1})), "r").is_err());
    }
}
