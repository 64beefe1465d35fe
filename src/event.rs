//! The EventBridge envelope: validation of one event's JSON and normalisation before it is stored.
//!
//! Promises: an accepted event is a JSON object no larger than the limit, with string `source` and
//! `detail-type`, an object `detail`, and — filled in when absent — `version` "0", a fresh `id` (UUID v4),
//! `time` (now, RFC 3339), `account` and `region` (from `[aws]`) and `resources` ([]). Fields that are
//! present must have EventBridge's types. An object with a repeated key is rejected (see
//! [`crate::strict_json`]). Validation is pure; nothing here does I/O.

use std::time::SystemTime;

use serde_json::{Map, Value};

/// Limits and defaults applied to every incoming event.
#[derive(Debug, Clone)]
pub struct EnvelopeRules {
    pub max_event_bytes: usize,
    pub account: String,
    pub region: String,
}

/// Why one event was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("event is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("event is not valid JSON: {0}")]
    Malformed(String),
    #[error("event must be a JSON object")]
    NotObject,
    #[error("event lacks required field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// Processing this event failed inside scanbridge (a bug, caught): the event alone is refused.
    #[error(
        "event could not be processed ({0}); it was not accepted, and the other events of the request are not affected"
    )]
    Internal(String),
}

/// A validated, normalised event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub value: Value,
    /// `value` serialised: what the store keeps.
    pub body: String,
}

/// The current time in EventBridge's format (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Validates and normalises one event given as JSON text.
pub fn validate(raw: &str, rules: &EnvelopeRules) -> Result<Event, Rejection> {
    if raw.len() > rules.max_event_bytes {
        return Err(Rejection::TooLarge {
            size: raw.len(),
            limit: rules.max_event_bytes,
        });
    }
    let value =
        crate::strict_json::from_str(raw).map_err(|e| Rejection::Malformed(e.to_string()))?;
    let Value::Object(mut m) = value else {
        return Err(Rejection::NotObject);
    };
    normalise(&mut m, rules)?;
    let id = m["id"].as_str().expect("normalised").to_owned();
    let value = Value::Object(m);
    let body = value.to_string();
    if body.len() > rules.max_event_bytes {
        return Err(Rejection::TooLarge {
            size: body.len(),
            limit: rules.max_event_bytes,
        });
    }
    Ok(Event { id, value, body })
}

fn normalise(m: &mut Map<String, Value>, rules: &EnvelopeRules) -> Result<(), Rejection> {
    for field in ["source", "detail-type"] {
        match m.get(field) {
            None | Some(Value::Null) => return Err(Rejection::Missing(field)),
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => {
                return Err(Rejection::WrongType {
                    field,
                    expected: "a non-empty string",
                });
            }
        }
    }
    match m.get("detail") {
        None | Some(Value::Null) => return Err(Rejection::Missing("detail")),
        Some(Value::Object(_)) => {}
        Some(_) => {
            return Err(Rejection::WrongType {
                field: "detail",
                expected: "a JSON object",
            });
        }
    }
    type Fill = fn(&EnvelopeRules) -> String;
    let defaults: [(&'static str, Fill); 5] = [
        ("version", |_| "0".to_owned()),
        ("id", |_| uuid::Uuid::new_v4().to_string()),
        ("time", |_| now_rfc3339()),
        ("account", |r| r.account.clone()),
        ("region", |r| r.region.clone()),
    ];
    for (field, make) in defaults {
        match m.get(field) {
            None | Some(Value::Null) => {
                m.insert(field.to_owned(), Value::String(make(rules)));
            }
            Some(Value::String(s)) if !(field == "id" && s.is_empty()) => {}
            Some(_) => {
                return Err(Rejection::WrongType {
                    field,
                    expected: "a non-empty string",
                });
            }
        }
    }
    match m.get("resources") {
        None | Some(Value::Null) => {
            m.insert("resources".into(), Value::Array(vec![]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => {
            return Err(Rejection::WrongType {
                field: "resources",
                expected: "an array of strings",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> EnvelopeRules {
        EnvelopeRules {
            max_event_bytes: 1024,
            account: "111".into(),
            region: "eu-west-1".into(),
        }
    }

    #[test]
    fn fills_missing_envelope_fields() {
        let e = validate(r#"{"source":"ci","detail-type":"t","detail":{}}"#, &rules()).unwrap();
        assert_eq!(e.id.len(), 36);
        assert_eq!(e.value["account"], "111");
        assert_eq!(e.value["region"], "eu-west-1");
        assert_eq!(e.value["resources"], serde_json::json!([]));
        assert!(e.value["time"].as_str().unwrap().ends_with('Z'));
        let again: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(again, e.value);
    }

    #[test]
    fn keeps_given_id() {
        let e = validate(
            r#"{"id":"x1","source":"s","detail-type":"t","detail":{}}"#,
            &rules(),
        )
        .unwrap();
        assert_eq!(e.id, "x1");
    }

    #[test]
    fn rejections() {
        let r = rules();
        assert_eq!(validate("[1]", &r).unwrap_err(), Rejection::NotObject);
        assert!(matches!(
            validate("{", &r).unwrap_err(),
            Rejection::Malformed(_)
        ));
        assert_eq!(
            validate(r#"{"detail-type":"t","detail":{}}"#, &r).unwrap_err(),
            Rejection::Missing("source")
        );
        assert_eq!(
            validate(r#"{"source":"s","detail-type":"t","detail":"x"}"#, &r).unwrap_err(),
            Rejection::WrongType {
                field: "detail",
                expected: "a JSON object"
            }
        );
        let big = format!(
            r#"{{"source":"s","detail-type":"t","detail":{{"x":"{}"}}}}"#,
            "a".repeat(2000)
        );
        assert!(matches!(
            validate(&big, &r).unwrap_err(),
            Rejection::TooLarge { .. }
        ));
    }
}
