//! Holes: the values in a pattern that are known only at deploy time.
//!
//! Infrastructure code writes patterns with parts filled in by the deployment: CloudFormation intrinsic
//! functions (`!Ref SourceName`, `!Sub "${AWS::AccountId}"`), Terraform interpolations and references
//! (`${data.aws_caller_identity.current.account_id}`, `var.sources`), Serverless Framework variables
//! (`${self:custom.stage}`). A [`Holed`] pattern is JSON text in which each such part is a *marker*
//! inside a JSON string, with a [`Hole`] saying what it stands for, so that [`super::check`] can
//! validate everything around it and report the hole by its JSON pointer, and a test file can give it
//! a value ([`Holed::resolve`]).
//!
//! Invariants: markers always sit inside JSON strings (so the text stays JSON whenever the source
//! text was); a marker is `@@sbN@@` with `N` the hole's index in [`Holed::holes`].

use serde_json::{Map, Value};

/// A part of a pattern known only at deploy time.
#[derive(Debug, Clone, PartialEq)]
pub struct Hole {
    /// As written in the source: `!Ref SourceName`, `${AWS::AccountId}`, `var.env`,
    /// `${self:custom.stage}`.
    pub shown: String,
    /// The name a test file's `parameters` gives it a value under (`SourceName`,
    /// `AWS::AccountId`, `var.env`, `self:custom.stage`); `None` when nothing can (a function).
    pub key: Option<String>,
    /// Whether the hole stands for a whole JSON value of any type (`!Ref List` as a field's value,
    /// `${jsonencode(var.x)}` outside a string) rather than for text inside a string.
    pub any: bool,
}

/// Pattern text with holes.
#[derive(Debug, Clone, PartialEq)]
pub struct Holed {
    /// JSON text (when the source's was); every hole is a marker inside a JSON string.
    pub text: String,
    /// Indexed by the marker's number. Holes resolved by [`Holed::resolve`] stay here, unused.
    pub holes: Vec<Hole>,
    /// Whether `text` is the pattern exactly as written (a JSON string in the source), so that its
    /// length and repeated keys are what AWS sees; otherwise it is a compact serialization.
    pub verbatim: bool,
}

const OPEN: &str = "@@sb";
const CLOSE: &str = "@@";

fn marker(id: usize) -> String {
    format!("{OPEN}{id}{CLOSE}")
}

/// The hole ids marked in `s`, in order.
pub fn markers_in(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(OPEN) {
        let after = &rest[i + OPEN.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(CLOSE) {
            if let Ok(id) = after[..digits].parse() {
                out.push(id);
            }
            rest = &after[digits + CLOSE.len()..];
        } else {
            rest = after;
        }
    }
    out
}

/// Replaces every marker in `s` by `with(id)`.
pub fn replace_markers(s: &str, with: impl Fn(usize) -> String) -> String {
    let mut out = s.to_owned();
    for id in markers_in(s) {
        out = out.replacen(&marker(id), &with(id), 1);
    }
    out
}

/// Collects holes while a pattern is converted.
#[derive(Debug, Default)]
pub struct HoleSet {
    holes: Vec<Hole>,
}

impl HoleSet {
    /// Registers a hole; returns the marker to put in its place (inside a string).
    pub fn add(&mut self, shown: impl Into<String>, key: Option<String>, any: bool) -> String {
        self.holes.push(Hole {
            shown: shown.into(),
            key,
            any,
        });
        marker(self.holes.len() - 1)
    }

    /// The holes with a value that carries their markers, serialized compactly.
    pub fn with_value(self, value: &Value) -> Holed {
        Holed {
            text: serde_json::to_string(value).expect("a JSON value serializes"),
            holes: self.holes,
            verbatim: false,
        }
    }
}

/// A piece of pattern text as a source writes it: literal text or a hole.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Hole { shown: String, key: Option<String> },
}

/// Joins text pieces into pattern text. A hole inside a JSON string becomes a marker there; a hole
/// outside any string (`"source": ${jsonencode(var.sources)}`) becomes a quoted marker standing for a
/// value of any type.
pub fn render(pieces: Vec<Piece>) -> Holed {
    let mut text = String::new();
    let mut set = HoleSet::default();
    let (mut in_string, mut escaped) = (false, false);
    for piece in pieces {
        match piece {
            Piece::Text(t) => {
                for c in t.chars() {
                    if in_string {
                        if escaped {
                            escaped = false;
                        } else if c == '\\' {
                            escaped = true;
                        } else if c == '"' {
                            in_string = false;
                        }
                    } else if c == '"' {
                        in_string = true;
                    }
                }
                text.push_str(&t);
            }
            Piece::Hole { shown, key } => {
                let m = set.add(shown, key, !in_string);
                if in_string {
                    text.push_str(&m);
                } else {
                    text.push('"');
                    text.push_str(&m);
                    text.push('"');
                }
            }
        }
    }
    let verbatim = set.holes.is_empty();
    Holed {
        text,
        holes: set.holes,
        verbatim,
    }
}

impl Holed {
    /// Pattern text without holes, as written.
    pub fn verbatim(text: impl Into<String>) -> Holed {
        Holed {
            text: text.into(),
            holes: Vec::new(),
            verbatim: true,
        }
    }

    /// The ids of the holes still in the text.
    pub fn open(&self) -> Vec<usize> {
        markers_in(&self.text)
    }

    /// Fills in the holes whose key `params` gives a value for (a test file's `parameters`).
    pub fn resolve(&self, params: &Map<String, Value>) -> Holed {
        let mut text = self.text.clone();
        for id in self.open() {
            let hole = &self.holes[id];
            let Some(value) = hole.key.as_ref().and_then(|k| params.get(k)) else {
                continue;
            };
            let quoted = format!("\"{}\"", marker(id));
            if hole.any && text.contains(&quoted) {
                text = text.replacen(&quoted, &value.to_string(), 1);
            } else {
                let inner = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let escaped = serde_json::to_string(&inner).expect("a string serializes");
                text = text.replacen(&marker(id), &escaped[1..escaped.len() - 1], 1);
            }
        }
        Holed {
            text,
            holes: self.holes.clone(),
            verbatim: self.verbatim,
        }
    }
}

/// Whether a JSON object is a CloudFormation intrinsic function (`{"Ref": ...}`, `{"Fn::X": ...}`,
/// `{"Condition": ...}`): exactly one key, which is one of those.
pub fn intrinsic(m: &Map<String, Value>) -> Option<(&str, &Value)> {
    let mut it = m.iter();
    let (k, v) = it.next()?;
    if it.next().is_some() {
        return None;
    }
    (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then_some((k.as_str(), v))
}

/// How an intrinsic function is written in short form, for messages (`!Ref Env`, `!GetAtt A.B`,
/// `!Sub '...'`), at most about 80 characters.
pub fn shown_intrinsic(name: &str, arg: &Value) -> String {
    let short = name.strip_prefix("Fn::").unwrap_or(name);
    let arg = match (name, arg) {
        (_, Value::String(s)) => s.clone(),
        ("Fn::GetAtt", Value::Array(parts)) if parts.iter().all(Value::is_string) => parts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("."),
        (_, other) => other.to_string(),
    };
    let mut shown = format!("!{short} {arg}");
    if shown.chars().count() > 80 {
        shown = shown.chars().take(77).collect::<String>() + "...";
    }
    shown
}

/// The parameter name that resolves an intrinsic: `Ref`'s target, `GetAtt`'s `A.B`.
fn intrinsic_key(name: &str, arg: &Value) -> Option<String> {
    match (name, arg) {
        ("Ref", Value::String(s)) => Some(s.clone()),
        ("Fn::GetAtt", Value::Array(parts)) => Some(
            parts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("."),
        ),
        ("Fn::GetAtt", Value::String(s)) => Some(s.clone()),
        ("Fn::ImportValue", Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Options of [`cfn_value`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CfnOptions {
    /// Also treat `${...}` inside plain strings as holes (Serverless Framework variables).
    pub serverless_variables: bool,
}

/// A pattern value with CloudFormation intrinsic functions (and, with the option, Serverless
/// variables) replaced by markers. `Fn::Sub` and `Fn::Join` become strings in which only the
/// substituted parts are holes, so their literal text is still checked.
pub fn cfn_value(v: &Value, set: &mut HoleSet, opts: CfnOptions) -> Value {
    match v {
        Value::Object(m) => {
            if let Some((name, arg)) = intrinsic(m) {
                return match intrinsic_string(name, arg, set, opts) {
                    Some(s) => Value::String(s),
                    None => Value::String(set.add(
                        shown_intrinsic(name, arg),
                        intrinsic_key(name, arg),
                        true,
                    )),
                };
            }
            Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let k = if opts.serverless_variables {
                            serverless_string(k, set)
                        } else {
                            k.clone()
                        };
                        (k, cfn_value(v, set, opts))
                    })
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| cfn_value(i, set, opts)).collect())
        }
        Value::String(s) if opts.serverless_variables => Value::String(serverless_string(s, set)),
        other => other.clone(),
    }
}

/// `Fn::Sub` and `Fn::Join` as a string with markers for their substituted parts; `None` for any
/// other function (or an unexpected shape).
fn intrinsic_string(
    name: &str,
    arg: &Value,
    set: &mut HoleSet,
    opts: CfnOptions,
) -> Option<String> {
    match name {
        "Fn::Sub" => {
            let (template, vars) = match arg {
                Value::String(s) => (s.as_str(), None),
                Value::Array(a) if a.len() == 2 => (a[0].as_str()?, a[1].as_object()),
                _ => return None,
            };
            let pieces = sub_pieces(template, vars);
            Some(pieces_in_string(pieces, set))
        }
        "Fn::Join" => {
            let Value::Array(a) = arg else { return None };
            let (Some(Value::String(delim)), Some(Value::Array(items))) = (a.first(), a.get(1))
            else {
                return None;
            };
            let mut out = Vec::new();
            for item in items {
                out.push(match item {
                    Value::String(s) if opts.serverless_variables => serverless_string(s, set),
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Object(m) => match intrinsic(m) {
                        Some((n, a)) => match intrinsic_string(n, a, set, opts) {
                            Some(s) => s,
                            None => set.add(shown_intrinsic(n, a), intrinsic_key(n, a), false),
                        },
                        None => return None,
                    },
                    _ => return None,
                });
            }
            Some(out.join(delim))
        }
        _ => None,
    }
}

/// Inside a string every hole is text.
fn pieces_in_string(pieces: Vec<Piece>, set: &mut HoleSet) -> String {
    pieces
        .into_iter()
        .map(|p| match p {
            Piece::Text(t) => t,
            Piece::Hole { shown, key } => set.add(shown, key, false),
        })
        .collect()
}

/// Splits an `Fn::Sub` template into literal text and `${Name}` holes. `${!Literal}` is the literal
/// `${Literal}`; a variable that the second argument maps to a literal string is substituted.
pub fn sub_pieces(template: &str, vars: Option<&Map<String, Value>>) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("${") {
        text.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            text.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        if let Some(lit) = name.strip_prefix('!') {
            text.push_str("${");
            text.push_str(lit);
            text.push('}');
        } else {
            let name = name.trim();
            match vars.and_then(|v| v.get(name)) {
                Some(Value::String(s)) => text.push_str(s),
                Some(Value::Object(m)) if intrinsic(m).is_some() => {
                    let (n, a) = intrinsic(m).expect("checked");
                    flush(&mut pieces, &mut text);
                    pieces.push(Piece::Hole {
                        shown: shown_intrinsic(n, a),
                        key: intrinsic_key(n, a).or_else(|| Some(name.to_owned())),
                    });
                }
                _ => {
                    flush(&mut pieces, &mut text);
                    pieces.push(Piece::Hole {
                        shown: format!("${{{name}}}"),
                        key: Some(name.to_owned()),
                    });
                }
            }
        }
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    flush(&mut pieces, &mut text);
    pieces
}

fn flush(pieces: &mut Vec<Piece>, text: &mut String) {
    if !text.is_empty() {
        pieces.push(Piece::Text(std::mem::take(text)));
    }
}

/// Splits a string at Serverless Framework variables (`${self:custom.stage}`, `${opt:stage, "dev"}`,
/// nested ones too) into text and holes.
pub fn serverless_pieces(s: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            let mut depth = 0;
            let mut j = i + 1;
            while j < bytes.len() {
                match bytes[j] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if j < bytes.len() {
                flush(&mut pieces, &mut text);
                let inner = s[i + 2..j].trim();
                pieces.push(Piece::Hole {
                    shown: s[i..=j].to_owned(),
                    key: Some(inner.to_owned()),
                });
                i = j + 1;
                continue;
            }
        }
        let c = s[i..].chars().next().expect("in bounds");
        text.push(c);
        i += c.len_utf8();
    }
    flush(&mut pieces, &mut text);
    pieces
}

fn serverless_string(s: &str, set: &mut HoleSet) -> String {
    if !s.contains("${") {
        return s.to_owned();
    }
    pieces_in_string(serverless_pieces(s), set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn render_marks_holes_inside_and_outside_strings() {
        let h = render(vec![
            Piece::Text(r#"{"account": [""#.into()),
            Piece::Hole {
                shown: "${data.x.id}".into(),
                key: Some("data.x.id".into()),
            },
            Piece::Text(r#""], "source": "#.into()),
            Piece::Hole {
                shown: "${jsonencode(var.s)}".into(),
                key: None,
            },
            Piece::Text("}".into()),
        ]);
        assert_eq!(h.text, r#"{"account": ["@@sb0@@"], "source": "@@sb1@@"}"#);
        assert!(!h.holes[0].any && h.holes[1].any);
        assert!(!h.verbatim);
        assert_eq!(h.open(), [0, 1]);
    }

    #[test]
    fn escaped_quotes_do_not_end_a_string() {
        let h = render(vec![
            Piece::Text(r#"{"a": ["x\"y "#.into()),
            Piece::Hole {
                shown: "h".into(),
                key: None,
            },
            Piece::Text(r#""]}"#.into()),
        ]);
        assert!(!h.holes[0].any, "{h:?}");
    }

    #[test]
    fn intrinsics_become_holes_and_sub_keeps_its_literal_text() {
        let mut set = HoleSet::default();
        let v = cfn_value(
            &json!({"account": [{"Fn::Sub": "${AWS::AccountId}"}], "source": {"Ref": "Sources"},
                    "detail": {"name": [{"prefix": {"Fn::Sub": "${Env}-orders-${!Literal}"}}],
                               "bus": [{"Fn::Join": [":", ["arn", {"Ref": "AWS::Partition"}]]}]}}),
            &mut set,
            CfnOptions::default(),
        );
        let h = set.with_value(&v);
        assert_eq!(
            v,
            json!({"account": ["@@sb0@@"], "source": "@@sb1@@",
                   "detail": {"name": [{"prefix": "@@sb2@@-orders-${Literal}"}], "bus": ["arn:@@sb3@@"]}})
        );
        let shown: Vec<&str> = h.holes.iter().map(|h| h.shown.as_str()).collect();
        assert_eq!(
            shown,
            [
                "${AWS::AccountId}",
                "!Ref Sources",
                "${Env}",
                "!Ref AWS::Partition"
            ]
        );
        assert!(h.holes[1].any && !h.holes[0].any);
    }

    #[test]
    fn sub_with_a_variable_map_substitutes_literals() {
        let vars = json!({"Cluster": "arn:aws:ecs:eu-west-1:1:cluster/x", "Q": {"Ref": "Queue"}});
        let p = sub_pieces("${Cluster}|${Q}|${Other}", vars.as_object());
        assert_eq!(
            p,
            [
                Piece::Text("arn:aws:ecs:eu-west-1:1:cluster/x|".into()),
                Piece::Hole {
                    shown: "!Ref Queue".into(),
                    key: Some("Queue".into())
                },
                Piece::Text("|".into()),
                Piece::Hole {
                    shown: "${Other}".into(),
                    key: Some("Other".into())
                },
            ]
        );
    }

    #[test]
    fn serverless_variables_nest() {
        let p = serverless_pieces(r#"app-${opt:stage, ${self:custom.default}}-x"#);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(
            p[1],
            Piece::Hole {
                shown: "${opt:stage, ${self:custom.default}}".into(),
                key: Some("opt:stage, ${self:custom.default}".into())
            }
        );
    }

    #[test]
    fn resolve_fills_named_holes_as_strings_or_values() {
        let mut set = HoleSet::default();
        let v = cfn_value(
            &json!({"account": [{"Fn::Sub": "${AWS::AccountId}"}], "source": {"Ref": "Sources"}, "x": [{"Fn::GetAZs": ""}]}),
            &mut set,
            CfnOptions::default(),
        );
        let h = set.with_value(&v);
        let params = json!({"AWS::AccountId": "123456789012", "Sources": ["a", "b"]});
        let r = h.resolve(params.as_object().unwrap());
        assert_eq!(
            serde_json::from_str::<Value>(&r.text).unwrap(),
            json!({"account": ["123456789012"], "source": ["a", "b"], "x": ["@@sb2@@"]})
        );
        assert_eq!(r.open(), [2]);
    }
}
