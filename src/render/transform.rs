//! EventBridge input transformation of one rule target: `input`, `input_path` or `input_transformer`
//! (`input_paths_map` + `input_template`), validated when the rule loads and applied per delivery.
//!
//! Semantics (AWS "Amazon EventBridge input transformation", checked against LocalStack's
//! implementation, which is snapshot-tested against AWS: `localstack-core/localstack/services/events/
//! target.py`, `replace_template_placeholders` and `_get_predefined_template_replacements`):
//! - A template whose trimmed text starts with `{` or `[` is a JSON template; its result must parse as
//!   JSON. Anything else is a string template: one pair of surrounding quotes is removed, `\n` becomes a
//!   newline, and the result is sent as a string.
//! - A string value is inserted JSON-quoted when its placeholder stands outside a JSON string
//!   (`{"i": <instance>}` → `{"i": "i-0123"}`) and raw, unescaped, inside one (`"<state>"` →
//!   `"RUNNING"`) and in string templates. Numbers, booleans and null are inserted as JSON. Objects and
//!   arrays are inserted as JSON in a JSON template; in a string template an object loses its quotes and
//!   an array becomes `[a,b]` (LocalStack's AWS-validated rendering).
//! - A path that matches nothing gives the empty string: `""` outside a JSON string, nothing inside a
//!   string or in a string template (LocalStack: `value = ""  # default value is empty string`).
//!   Deviation: LocalStack also blanks matched falsy values (0, false, [], {}); we insert them as JSON.
//! - Reserved placeholders: `<aws.events.rule-name>`, `<aws.events.rule-arn>` (synthesised as
//!   `arn:aws:events:REGION:ACCOUNT:rule/NAME` from the event), `<aws.events.event.ingestion-time>` (the
//!   event's `time`), `<aws.events.event.json>` (the whole event) and `<aws.events.event>` (the event
//!   without `detail`, `detail-type` renamed `detailType`, as LocalStack's AWS snapshots show).
//! - Load-time checks: at most 100 paths, keys not starting with `aws.`, every path valid, every
//!   placeholder of the template defined (LocalStack: "contains invalid placeholder").

use serde_json::{Map, Value};

use super::jsonpath::Path;

/// The most `input_paths_map` entries EventBridge allows.
pub const MAX_PATHS: usize = 100;

/// Reserved placeholders.
pub const RESERVED: [&str; 5] = [
    "aws.events.event",
    "aws.events.event.json",
    "aws.events.rule-name",
    "aws.events.rule-arn",
    "aws.events.event.ingestion-time",
];

/// A rule target's input transformation, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `input`: a constant (JSON text is parsed; other text is sent as a string).
    Constant(Value),
    /// `input_path`: the part of the event at a path (null when absent).
    Path(Path),
    /// `input_transformer`.
    Transformer(Transformer),
}

/// `input_paths_map` + `input_template`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transformer {
    pub paths: Vec<(String, Path)>,
    pub template: String,
}

/// Why a transformation could not produce a payload at delivery time.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    #[error("input_template produced invalid JSON ({reason}): {text}")]
    InvalidJson { reason: String, text: String },
    #[error("invalid input transformation: {0}")]
    Invalid(String),
}

/// A load-time problem: (JSON pointer relative to the target object, message).
pub type SpecError = (String, String);

impl Input {
    /// Parses `{"input": ...}`, `{"input_path": ...}` or `{"input_transformer": {...}}` as stored with a
    /// rule target. Errors carry pointers relative to the target object.
    pub fn parse(spec: &Value) -> Result<Input, Vec<SpecError>> {
        let one = |p: &str, m: String| vec![(p.to_owned(), m)];
        let Value::Object(m) = spec else {
            return Err(one("", "an input transformation must be an object".into()));
        };
        if let Some(c) = m.get("input") {
            return Ok(Input::Constant(match c {
                Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| c.clone()),
                other => other.clone(),
            }));
        }
        if let Some(p) = m.get("input_path") {
            let Value::String(p) = p else {
                return Err(one("/input_path", "input_path must be a string".into()));
            };
            return Path::parse(p)
                .map(Input::Path)
                .map_err(|e| one("/input_path", e.to_string()));
        }
        if let Some(t) = m.get("input_transformer") {
            return Transformer::parse(t)
                .map(Input::Transformer)
                .map_err(|errs| {
                    errs.into_iter()
                        .map(|(p, msg)| (format!("/input_transformer{p}"), msg))
                        .collect()
                });
        }
        Err(one(
            "",
            "expected input, input_path or input_transformer".into(),
        ))
    }

    /// The payload for `event` delivered by rule `rule`.
    pub fn apply(&self, event: &Value, rule: &str) -> Result<Value, TransformError> {
        match self {
            Input::Constant(v) => Ok(v.clone()),
            Input::Path(p) => Ok(p.select(event).unwrap_or(Value::Null)),
            Input::Transformer(t) => t.apply(event, rule),
        }
    }
}

impl Transformer {
    fn parse(v: &Value) -> Result<Transformer, Vec<SpecError>> {
        let mut errs = Vec::new();
        let Value::Object(m) = v else {
            return Err(vec![(
                String::new(),
                "input_transformer must be an object with input_paths_map and input_template"
                    .into(),
            )]);
        };
        for k in m
            .keys()
            .filter(|k| !["input_paths_map", "input_template"].contains(&k.as_str()))
        {
            errs.push((
                format!("/{k}"),
                format!("unknown key {k:?}; expected input_paths_map, input_template"),
            ));
        }
        let mut paths = Vec::new();
        match m.get("input_paths_map") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                if map.len() > MAX_PATHS {
                    errs.push((
                        "/input_paths_map".into(),
                        format!(
                            "input_paths_map has {} entries; at most {MAX_PATHS} are allowed",
                            map.len()
                        ),
                    ));
                }
                for (k, p) in map {
                    let at = format!(
                        "/input_paths_map/{}",
                        k.replace('~', "~0").replace('/', "~1")
                    );
                    if k.to_ascii_lowercase().starts_with("aws.") {
                        errs.push((at, format!("key {k:?} may not start with \"aws.\"")));
                        continue;
                    }
                    if k.is_empty() || k.contains(['<', '>']) {
                        errs.push((at, format!("invalid key {k:?}")));
                        continue;
                    }
                    match p {
                        Value::String(p) => match Path::parse(p) {
                            Ok(p) => paths.push((k.clone(), p)),
                            Err(e) => errs.push((at, e.to_string())),
                        },
                        _ => errs.push((at, "a path must be a string".into())),
                    }
                }
            }
            Some(_) => errs.push((
                "/input_paths_map".into(),
                "input_paths_map must be an object of name: JSON path".into(),
            )),
        }
        let template = match m.get("input_template") {
            Some(Value::String(t)) => t.clone(),
            Some(_) => {
                errs.push((
                    "/input_template".into(),
                    "input_template must be a string".into(),
                ));
                String::new()
            }
            None => {
                errs.push((
                    "/input_template".into(),
                    "missing required key \"input_template\"".into(),
                ));
                String::new()
            }
        };
        for name in placeholders(&template) {
            if !RESERVED.contains(&name) && !paths.iter().any(|(k, _)| k == name) {
                errs.push((
                    "/input_template".into(),
                    format!("input_template contains invalid placeholder <{name}>: not in input_paths_map and not reserved"),
                ));
            }
        }
        if errs.is_empty() {
            Ok(Transformer { paths, template })
        } else {
            Err(errs)
        }
    }

    /// Fills the template from `event`.
    pub fn apply(&self, event: &Value, rule: &str) -> Result<Value, TransformError> {
        let mut values: Map<String, Value> = Map::new();
        for (k, p) in &self.paths {
            // A path that matches nothing gives "" (LocalStack, validated against AWS).
            values.insert(k.clone(), p.select(event).unwrap_or(Value::from("")));
        }
        reserved(event, rule, &mut values);
        let trimmed = self.template.trim();
        let json = trimmed.starts_with('{') || trimmed.starts_with('[');
        let text = substitute(&self.template, &values, json);
        if json {
            serde_json::from_str(&text).map_err(|e| TransformError::InvalidJson {
                reason: e.to_string(),
                text,
            })
        } else {
            let t = text.trim();
            let inner = t
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(t);
            Ok(Value::String(inner.replace("\\n", "\n")))
        }
    }
}

/// The placeholder names of a template, in order (`<(.*?)>`, as EventBridge).
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else { break };
        out.push(&after[..close]);
        rest = &after[close + 1..];
    }
    out
}

fn reserved(event: &Value, rule: &str, values: &mut Map<String, Value>) {
    let s = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or("");
    values.insert("aws.events.rule-name".into(), rule.into());
    values.insert(
        "aws.events.rule-arn".into(),
        format!(
            "arn:aws:events:{}:{}:rule/{rule}",
            s("region"),
            s("account")
        )
        .into(),
    );
    values.insert(
        "aws.events.event.ingestion-time".into(),
        event.get("time").cloned().unwrap_or(Value::from("")),
    );
    values.insert("aws.events.event.json".into(), event.clone());
    let mut envelope = Map::new();
    if let Value::Object(m) = event {
        for (k, v) in m.iter().filter(|(k, _)| *k != "detail") {
            let k = if k == "detail-type" { "detailType" } else { k };
            envelope.insert(k.to_owned(), v.clone());
        }
    }
    values.insert("aws.events.event".into(), Value::Object(envelope));
}

/// Replaces every `<name>` of `template`, tracking whether it stands inside a JSON string.
fn substitute(template: &str, values: &Map<String, Value>, json: bool) -> String {
    let mut out = String::with_capacity(template.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '<'
            && let Some(close) = rest[1..].find('>')
        {
            let name = &rest[1..1 + close];
            let value = values.get(name).cloned().unwrap_or(Value::from(""));
            out.push_str(&insert(&value, json, json && in_string));
            rest = &rest[close + 2..];
            continue;
        }
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_string = !in_string;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn insert(value: &Value, json: bool, in_string: bool) -> String {
    match value {
        Value::String(s) if json && !in_string => Value::String(s.clone()).to_string(),
        Value::String(s) => s.clone(),
        Value::Object(_) if !json => value.to_string().replace('"', ""),
        Value::Array(items) if !json => {
            let parts: Vec<String> = items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The AWS documentation examples (and our edge cases), as data: tests/fixtures/transformer-cases.json.
    #[test]
    fn documented_cases() {
        let cases: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/transformer-cases.json"))
                .unwrap();
        let events = &cases["events"];
        let mut n = 0;
        for case in cases["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let event = &events[case["event"].as_str().unwrap()];
            let input = Input::parse(&json!({"input_transformer": {
                "input_paths_map": case["input_paths_map"],
                "input_template": case["input_template"],
            }}))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let rule = case["rule"].as_str().unwrap_or("example");
            let got = input
                .apply(event, rule)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, case["want"], "{name}");
            n += 1;
        }
        assert!(n >= 10, "only {n} cases");
    }

    #[test]
    fn load_time_errors_name_the_key() {
        let err = |spec: Value| Input::parse(&spec).unwrap_err();
        let e = err(
            json!({"input_transformer":{"input_paths_map":{"aws.x":"$.a"},"input_template":"\"<aws.x>\""}}),
        );
        assert!(e.iter().any(|(p, m)| p == "/input_transformer/input_paths_map/aws.x" && m.contains("aws.")), "{e:?}");
        let e = err(
            json!({"input_transformer":{"input_paths_map":{"a":"$.a"},"input_template":"\"<b>\""}}),
        );
        assert!(
            e.iter()
                .any(|(p, m)| p == "/input_transformer/input_template" && m.contains("<b>")),
            "{e:?}"
        );
        let e = err(
            json!({"input_transformer":{"input_paths_map":{"a":"detail.x"},"input_template":"\"<a>\""}}),
        );
        assert!(
            e.iter()
                .any(|(p, _)| p == "/input_transformer/input_paths_map/a"),
            "{e:?}"
        );
        let many: Map<String, Value> = (0..101).map(|i| (format!("k{i}"), json!("$.a"))).collect();
        let e = err(json!({"input_transformer":{"input_paths_map":many,"input_template":"\"x\""}}));
        assert!(e.iter().any(|(_, m)| m.contains("at most 100")), "{e:?}");
        let e = err(json!({"input_transformer":{"input_paths_map":{}}}));
        assert!(
            e.iter()
                .any(|(p, _)| p == "/input_transformer/input_template"),
            "{e:?}"
        );
        let e = err(json!({"input_transformer":{"input_template":"\"x\"","typo":1}}));
        assert!(
            e.iter().any(|(p, _)| p == "/input_transformer/typo"),
            "{e:?}"
        );
    }

    #[test]
    fn invalid_json_result_is_an_error_not_a_guess() {
        let t = Input::parse(
            &json!({"input_transformer":{"input_paths_map":{"o":"$.detail"},
            "input_template":"{\"a\": \"<o>\"}"}}),
        )
        .unwrap();
        let e = t.apply(&json!({"detail":{"k":"v"}}), "r").unwrap_err();
        assert!(matches!(e, TransformError::InvalidJson { .. }), "{e}");
    }

    #[test]
    fn constants_and_paths() {
        let e = json!({"detail":{"repository-name":"r"}});
        let p = |s: Value| Input::parse(&s).unwrap().apply(&e, "r").unwrap();
        assert_eq!(p(json!({"input":"{\"a\":1}"})), json!({"a":1}));
        assert_eq!(p(json!({"input":"plain words"})), json!("plain words"));
        assert_eq!(
            p(json!({"input_path":"$.detail.repository-name"})),
            json!("r")
        );
        assert_eq!(p(json!({"input_path":"$.nope"})), Value::Null);
        assert!(Input::parse(&json!({"input_path":"nope"})).is_err());
    }
}
