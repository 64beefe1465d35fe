//! The sandbox's endpoints: test a pattern against an event (`POST /api/v1/test-pattern`) and list the
//! shipped sample events (`GET /api/v1/samples`). They need no store, so `scanbridge sandbox` serves
//! them too.
//!
//! `test-pattern` takes `{"pattern": P, "event": E}`, each the text as written (a JSON string, so that
//! syntax errors are judged as AWS judges the text) or a JSON value, and answers with
//! `{"result": "match" | "nomatch" | "error", ...}`:
//! - on a verdict: `explain` (the words of `test-pattern --explain`), `branches` (the same, as data:
//!   `--json --explain`'s `explain`) and `warnings` (`{message, pointer}`);
//! - on an error: `error` = `{"in": "pattern" | "event", "message", "pointer", "line", "column",
//!   "range": {"start", "end"}}`. The message is AWS's own for a pattern; `range` is where the fault is
//!   in the submitted text, in UTF-16 code units (what a browser's text field counts), so the page can
//!   highlight the node the JSON pointer names.

use scanbridge_pattern::{Event, EventError, Limits, Pattern};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ui::assets::SAMPLES;

/// Text as written, or a JSON value (serialised before parsing).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Text {
    Raw(String),
    Json(Value),
}

impl Text {
    pub fn into_text(self) -> String {
        match self {
            Text::Raw(s) => s,
            Text::Json(v) => v.to_string(),
        }
    }
}

/// The body of `POST /api/v1/test-pattern`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestPattern {
    pub pattern: Text,
    pub event: Text,
}

/// A byte range of `text` as UTF-16 code units.
fn utf16_range(text: &str, range: std::ops::Range<usize>) -> Value {
    let clamp = |i: usize| {
        (0..=i.min(text.len()))
            .rev()
            .find(|&j| text.is_char_boundary(j))
            .unwrap_or(0)
    };
    let (a, b) = (clamp(range.start), clamp(range.end));
    let start = text[..a].encode_utf16().count();
    let end = start + text[a..b.max(a)].encode_utf16().count();
    json!({"start": start, "end": end})
}

fn event_error(text: &str, e: &EventError) -> Value {
    let mut err = json!({"in": "event", "message": e.to_string()});
    if let EventError::Syntax(j) = e {
        let len = text
            .get(j.offset..)
            .and_then(|t| t.chars().next())
            .map_or(0, char::len_utf8);
        err["line"] = json!(j.line);
        err["column"] = json!(j.column);
        err["range"] = utf16_range(text, j.offset..j.offset + len);
    }
    err
}

/// Evaluates one pattern against one event, as `test-pattern --explain --json` does.
pub fn evaluate(pattern_text: &str, event_text: &str, limits: &Limits) -> Value {
    let pattern = match Pattern::parse_with_limits(pattern_text, limits) {
        Ok(p) => p,
        Err(e) => {
            let mut err =
                json!({"in": "pattern", "message": e.to_string(), "pointer": e.pointer()});
            if let Some((line, column)) = e.position() {
                err["line"] = json!(line);
                err["column"] = json!(column);
            }
            if let Some(span) = e.span(pattern_text) {
                err["range"] = utf16_range(pattern_text, span);
            }
            return json!({"result": "error", "error": err});
        }
    };
    let warnings: Vec<Value> = pattern
        .warnings()
        .iter()
        .map(|w| json!({"message": w.message, "pointer": w.pointer}))
        .collect();
    let event = match Event::from_bytes(event_text.as_bytes()) {
        Ok(e) => e,
        Err(e) => {
            return json!({"result": "error", "error": event_error(event_text, &e), "warnings": warnings});
        }
    };
    let explanation = pattern.explain(&event);
    json!({
        "result": if explanation.matched { "match" } else { "nomatch" },
        "explain": explanation.to_string(),
        "branches": explanation.to_json(),
        "warnings": warnings,
    })
}

/// The sample events: `[{"name", "title", "event"}]`.
pub fn samples() -> Value {
    Value::Array(
        SAMPLES
            .iter()
            .map(|(name, title, text)| {
                json!({"name": name, "title": title,
                    "event": serde_json::from_str::<Value>(text).unwrap_or(Value::Null)})
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRITICAL: &str = include_str!("../../tests/fixtures/ecr-image-scan-critical.json");

    #[test]
    fn verdicts_with_the_explain_words() {
        let l = Limits::default();
        let p = r#"{"detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}"#;
        let v = evaluate(p, CRITICAL, &l);
        assert_eq!(v["result"], "match");
        assert!(
            v["explain"]
                .as_str()
                .unwrap()
                .contains("ok   detail.finding-severity-counts.CRITICAL: 2 satisfies numeric > 0"),
            "{v}"
        );
        assert_eq!(v["branches"][0]["fields"][0]["held"], true);
        let v = evaluate(r#"{"source": ["aws.inspector2"]}"#, CRITICAL, &l);
        assert_eq!(v["result"], "nomatch");
        assert!(v["explain"].as_str().unwrap().contains("FAIL source"));
    }

    #[test]
    fn errors_point_at_the_text_in_utf16_units() {
        let l = Limits::default();
        // "é" is one UTF-16 unit but two bytes; "😀" two units, four bytes.
        let p = r#"{"é😀": ["x"], "detail": {"scan-status": []}}"#;
        let v = evaluate(p, CRITICAL, &l);
        assert_eq!(v["result"], "error");
        let e = &v["error"];
        assert_eq!(e["in"], "pattern");
        assert_eq!(
            e["message"],
            "Event pattern is not valid. Reason: Empty arrays are not allowed"
        );
        assert_eq!(e["pointer"], "/detail/scan-status");
        let (s, t) = (
            e["range"]["start"].as_u64().unwrap() as usize,
            e["range"]["end"].as_u64().unwrap() as usize,
        );
        let units: Vec<u16> = p.encode_utf16().collect();
        assert_eq!(String::from_utf16(&units[s..t]).unwrap(), "[]");

        let v = evaluate("{\"source\": [\"x\"] oops}", CRITICAL, &l);
        assert_eq!(v["error"]["range"], json!({"start": 17, "end": 18}));
        assert!(v["error"]["line"].is_number());

        let v = evaluate(r#"{"source": ["x"]}"#, "{\"id\": }", &l);
        assert_eq!(v["error"]["in"], "event");
        assert_eq!(v["error"]["range"]["start"], 7);
        let v = evaluate(r#"{"source": ["x"]}"#, "[1]", &l);
        assert_eq!(v["error"]["in"], "event");
    }

    #[test]
    fn the_samples_parse() {
        let s = samples();
        assert_eq!(s.as_array().unwrap().len(), SAMPLES.len());
        assert!(s.as_array().unwrap().iter().all(|x| x["event"].is_object()));
    }
}
