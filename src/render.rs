//! Shaping what a target receives from a rule target's input transformation.
//!
//! For now: no transformation sends the event; `input` sends a constant (a JSON text, as in
//! EventBridge, or any JSON value); `input_path` sends the part of the event at a simple dotted path
//! (`$`, `$.detail`, `$.detail.repository-name`). `input_transformer` (paths map + template) is the
//! targets issue's job; until then it sends the whole event. Pure; no I/O.

use serde_json::Value;

/// The payload for one delivery.
pub fn payload(event: &Value, input: Option<&Value>) -> Value {
    let Some(Value::Object(spec)) = input else {
        return event.clone();
    };
    if let Some(constant) = spec.get("input") {
        return match constant {
            Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| constant.clone()),
            other => other.clone(),
        };
    }
    if let Some(Value::String(path)) = spec.get("input_path") {
        return select(event, path).cloned().unwrap_or(Value::Null);
    }
    event.clone()
}

fn select<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    let rest = path.strip_prefix('$')?;
    let mut at = event;
    for part in rest.split('.').filter(|p| !p.is_empty()) {
        at = at.get(part)?;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs() {
        let e = json!({"detail":{"repository-name":"r"}});
        assert_eq!(payload(&e, None), e);
        assert_eq!(
            payload(&e, Some(&json!({"input":"{\"a\":1}"}))),
            json!({"a":1})
        );
        assert_eq!(
            payload(&e, Some(&json!({"input_path":"$.detail.repository-name"}))),
            json!("r")
        );
        assert_eq!(
            payload(&e, Some(&json!({"input_path":"$.nope"}))),
            Value::Null
        );
    }
}
