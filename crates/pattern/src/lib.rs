//! TEMPORARY STUB on the `daemon` branch so the daemon compiles before the real engine lands on `main`.
//! It implements the agreed API (`Pattern::parse`, `matches`, `matches_bytes`, `PatternError` with
//! `reason()`/`pointer()`) for a small subset of the grammar: exact values, `prefix`, `exists`,
//! `anything-but` (single value or list) and `numeric`. Replaced wholesale by `git merge main`.

use serde_json::{Map, Value};

/// A pattern that is not valid; Display is AWS's message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("Event pattern is not valid. Reason: {reason}")]
pub struct PatternError {
    reason: String,
    pointer: String,
}

impl PatternError {
    fn new(reason: impl Into<String>, pointer: &str) -> Self {
        PatternError {
            reason: reason.into(),
            pointer: pointer.to_owned(),
        }
    }
    /// AWS's reason text.
    pub fn reason(&self) -> &str {
        &self.reason
    }
    /// JSON pointer of the node at fault within the pattern.
    pub fn pointer(&self) -> &str {
        &self.pointer
    }
}

/// An event that is not a JSON object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("event is not valid: {0}")]
pub struct EventError(String);

#[derive(Debug, Clone)]
enum Cond {
    Exact(Value),
    Prefix(String),
    Exists(bool),
    AnythingBut(Vec<Value>),
    Numeric(Vec<(String, f64)>),
}

#[derive(Debug, Clone)]
enum Node {
    Fields(Vec<(String, Node)>),
    Leaf(Vec<Cond>),
}

/// A parsed event pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    root: Node,
}

impl Pattern {
    /// Parses and validates a pattern.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| PatternError::new(format!("Filter is not valid JSON: {e}"), ""))?;
        match &v {
            Value::Object(m) => Ok(Pattern {
                root: parse_obj(m, "")?,
            }),
            _ => Err(PatternError::new("Filter is not an object", "")),
        }
    }

    /// Whether the event matches.
    pub fn matches(&self, event: &Value) -> bool {
        eval(&self.root, Some(event))
    }

    /// Whether the event (raw JSON bytes) matches.
    pub fn matches_bytes(&self, bytes: &[u8]) -> Result<bool, EventError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| EventError(e.to_string()))?;
        if !v.is_object() {
            return Err(EventError("not an object".into()));
        }
        Ok(self.matches(&v))
    }
}

fn esc(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn parse_obj(m: &Map<String, Value>, ptr: &str) -> Result<Node, PatternError> {
    let mut out = Vec::new();
    for (k, v) in m {
        let p = format!("{ptr}/{}", esc(k));
        let node = match v {
            Value::Object(inner) => parse_obj(inner, &p)?,
            Value::Array(items) => Node::Leaf(parse_leaf(items, &p)?),
            _ => {
                return Err(PatternError::new(
                    format!("\"{k}\" must be an object or an array"),
                    &p,
                ));
            }
        };
        out.push((k.clone(), node));
    }
    Ok(Node::Fields(out))
}

fn parse_leaf(items: &[Value], ptr: &str) -> Result<Vec<Cond>, PatternError> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{ptr}/{i}");
        let c = match item {
            Value::Object(m) if m.len() == 1 => {
                let (op, arg) = m.iter().next().expect("one entry");
                match (op.as_str(), arg) {
                    ("prefix", Value::String(s)) => Cond::Prefix(s.clone()),
                    ("exists", Value::Bool(b)) => Cond::Exists(*b),
                    ("anything-but", Value::Array(a)) => Cond::AnythingBut(a.clone()),
                    ("anything-but", v) => Cond::AnythingBut(vec![v.clone()]),
                    ("numeric", Value::Array(a)) => {
                        let mut cmp = Vec::new();
                        let mut j = 0;
                        while j < a.len() {
                            let op = a[j].as_str().ok_or_else(|| {
                                PatternError::new(
                                    "Value of numeric must be an array.",
                                    &format!("{p}/numeric/{j}"),
                                )
                            })?;
                            let n = a.get(j + 1).and_then(Value::as_f64).ok_or_else(|| {
                                PatternError::new(
                                    "Value of numeric must be a number",
                                    &format!("{p}/numeric/{}", j + 1),
                                )
                            })?;
                            if !matches!(op, "<" | "<=" | "=" | ">" | ">=") {
                                return Err(PatternError::new(
                                    format!("Unrecognized numeric range operator: {op}"),
                                    &format!("{p}/numeric/{j}"),
                                ));
                            }
                            cmp.push((op.to_owned(), n));
                            j += 2;
                        }
                        Cond::Numeric(cmp)
                    }
                    (op, _) => {
                        return Err(PatternError::new(
                            format!("Unrecognized match type {op}"),
                            &format!("{p}/{}", esc(op)),
                        ));
                    }
                }
            }
            Value::Object(_) => {
                return Err(PatternError::new(
                    "Match expression must have exactly one key",
                    &p,
                ));
            }
            Value::Array(_) => {
                return Err(PatternError::new(
                    "Match value must be String, number, true, false, or null",
                    &p,
                ));
            }
            v => Cond::Exact(v.clone()),
        };
        out.push(c);
    }
    Ok(out)
}

fn eval(node: &Node, v: Option<&Value>) -> bool {
    match node {
        Node::Fields(fields) => fields.iter().all(|(k, n)| {
            let child = v.and_then(|v| v.get(k));
            match child {
                Some(Value::Array(items)) if matches!(n, Node::Fields(_)) => {
                    items.iter().any(|i| eval(n, Some(i)))
                }
                other => eval(n, other),
            }
        }),
        Node::Leaf(conds) => conds.iter().any(|c| match v {
            Some(Value::Array(items)) => match c {
                Cond::Exists(b) => *b == !items.is_empty(),
                _ => items.iter().any(|i| cond(c, Some(i))),
            },
            other => cond(c, other),
        }),
    }
}

fn cond(c: &Cond, v: Option<&Value>) -> bool {
    match c {
        Cond::Exists(b) => *b == v.is_some(),
        Cond::Exact(x) => v.is_some_and(|v| match (x, v) {
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
            _ => x == v,
        }),
        Cond::Prefix(p) => v
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with(p.as_str())),
        Cond::AnythingBut(list) => v.is_some_and(|v| !list.contains(v)),
        Cond::Numeric(cmp) => v.and_then(Value::as_f64).is_some_and(|n| {
            cmp.iter().all(|(op, x)| match op.as_str() {
                "<" => n < *x,
                "<=" => n <= *x,
                "=" => n == *x,
                ">" => n > *x,
                _ => n >= *x,
            })
        }),
    }
}
