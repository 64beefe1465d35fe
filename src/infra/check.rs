//! Checking one found pattern as EventBridge would, around the parts known only at deploy time.
//!
//! A pattern without holes is parsed exactly as written (`Pattern::parse_with_limits`), so the verdict
//! and the message are AWS's. A pattern with holes is parsed with each hole replaced by a placeholder
//! that fits where it stands (a string inside a string or a value list, `["x"]` as a field's value,
//! `true` under `exists`, ...); an error at, inside or just above a hole is the placeholder's fault,
//! so another placeholder is tried, and if none fits that part is reported as unchecked rather than
//! invalid. Any other error is the pattern's own: the verdict is [`Verdict::Invalid`] with AWS's message
//! and pointer. A pattern with holes and no error of its own is [`Verdict::Unchecked`], naming every
//! hole by pointer.
//!
//! A valid pattern (ok, or unchecked with the rest valid) also gets its lints ([`crate::lint`]):
//! warnings that change no verdict. With holes, the lints of the placeholder-filled pattern are kept
//! except those at, inside or just above a hole (a placeholder's value is nobody's intent).

use scanbridge_pattern::{Limits, Pattern, Warning};
use serde_json::{Map, Value, json};

use super::found::Body;
use super::holes::{Holed, markers_in, replace_markers};
use super::pointer::pointer_push;
use crate::lint::Lint;

/// The outcome for one pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Invalid,
    Unchecked,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Invalid => "invalid",
            Verdict::Unchecked => "unchecked",
        }
    }
}

/// A part of the pattern that was not checked, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Unresolved {
    pub pointer: String,
    pub shown: String,
}

/// The verdict on one pattern.
#[derive(Debug, Clone)]
pub struct Checked {
    pub verdict: Verdict,
    /// AWS's message for an invalid pattern; what was not checked for an unchecked one.
    pub message: Option<String>,
    /// JSON pointer of the fault inside the pattern (invalid only; `""` for the whole pattern).
    pub pointer: Option<String>,
    /// Every hole, by pointer.
    pub unresolved: Vec<Unresolved>,
    /// Valid but suspicious text (a repeated key), from the pattern crate.
    pub warnings: Vec<Warning>,
    /// Patterns AWS accepts that likely mean something else ([`crate::lint`]), pointers inside the
    /// pattern.
    pub lints: Vec<Lint>,
    /// The validated pattern, when there is nothing unchecked (what tests run against).
    pub pattern: Option<Pattern>,
}

impl Checked {
    fn new(verdict: Verdict) -> Checked {
        Checked {
            verdict,
            message: None,
            pointer: None,
            unresolved: Vec::new(),
            warnings: Vec::new(),
            lints: Vec::new(),
            pattern: None,
        }
    }
}

/// Checks one pattern.
pub fn check(body: &Body, limits: &Limits) -> Checked {
    match body {
        Body::Opaque { shown, why } => Checked {
            message: Some(format!("not checkable statically: {why}")),
            unresolved: vec![Unresolved {
                pointer: String::new(),
                shown: shown.clone(),
            }],
            ..Checked::new(Verdict::Unchecked)
        },
        Body::Holed(h) => check_holed(h, limits),
    }
}

/// The AWS message of a parse error, with the position of a syntax error.
fn aws_message(e: &scanbridge_pattern::PatternError) -> String {
    match e.position() {
        Some((l, c)) => format!("{e} (at line {l}, column {c} of the pattern)"),
        None => e.to_string(),
    }
}

fn invalid(e: &scanbridge_pattern::PatternError, unresolved: Vec<Unresolved>) -> Checked {
    Checked {
        message: Some(aws_message(e)),
        pointer: Some(e.pointer().to_owned()),
        unresolved,
        ..Checked::new(Verdict::Invalid)
    }
}

/// Where a hole is in the parsed pattern.
#[derive(Debug)]
struct Use {
    id: usize,
    pointer: String,
    /// The hole is the whole node and may be any JSON value.
    whole_any: bool,
    /// The placeholders to try for it (whole-value holes only).
    candidates: Vec<Value>,
}

fn check_holed(h: &Holed, limits: &Limits) -> Checked {
    if h.open().is_empty() {
        return match Pattern::parse_with_limits(&h.text, limits) {
            Ok(p) => Checked {
                warnings: if h.verbatim {
                    p.warnings().to_vec()
                } else {
                    Vec::new()
                },
                lints: crate::lint::lint_pattern(&p),
                pattern: Some(p),
                ..Checked::new(Verdict::Ok)
            },
            Err(e) => invalid(&e, Vec::new()),
        };
    }
    let value: Value = match serde_json::from_str(&h.text) {
        Ok(v) => v,
        // Not JSON: the pattern crate words the syntax error as AWS does.
        Err(_) => {
            return match Pattern::parse_with_limits(&h.text, limits) {
                Err(e) => invalid(&e, Vec::new()),
                Ok(_) => unreachable!("serde_json and the pattern crate agree on JSON"),
            };
        }
    };
    let mut uses = Vec::new();
    find_uses(&value, "", h, &mut uses);
    for u in uses.iter_mut().filter(|u| u.whole_any) {
        u.candidates = placeholders(&value, &u.pointer);
    }
    let unresolved: Vec<Unresolved> = uses
        .iter()
        .map(|u| Unresolved {
            pointer: u.pointer.clone(),
            shown: h.holes[u.id].shown.clone(),
        })
        .collect();
    if let Some(root) = uses.iter().find(|u| u.whole_any && u.pointer.is_empty()) {
        return Checked {
            message: Some(format!(
                "not checkable statically: the pattern is {}",
                h.holes[root.id].shown
            )),
            unresolved,
            ..Checked::new(Verdict::Unchecked)
        };
    }
    // Which placeholder each whole-value hole is on.
    let mut choice = vec![0usize; h.holes.len()];
    for _ in 0..64 {
        let text = serde_json::to_string(&substitute(&value, "", &uses, &choice))
            .expect("a JSON value serializes");
        match Pattern::parse_with_limits(&text, limits) {
            Ok(p) => {
                let lints = crate::lint::lint_pattern(&p)
                    .into_iter()
                    .filter(|l| !uses.iter().any(|u| near(&l.pointer, &u.pointer)))
                    .collect();
                let list: Vec<String> = unresolved
                    .iter()
                    .map(|u| format!("{} is {}", shown_pointer(&u.pointer), u.shown))
                    .collect();
                return Checked {
                    message: Some(format!(
                        "not checkable statically: {}; the rest of the pattern is valid",
                        list.join(", ")
                    )),
                    unresolved,
                    lints,
                    ..Checked::new(Verdict::Unchecked)
                };
            }
            Err(e) => {
                let Some(u) = uses.iter().find(|u| near(e.pointer(), &u.pointer)) else {
                    return invalid(&e, unresolved);
                };
                if u.whole_any && choice[u.id] + 1 < u.candidates.len() {
                    choice[u.id] += 1;
                    continue;
                }
                return Checked {
                    message: Some(format!(
                        "not checkable statically: {} is {}, and the pattern around it cannot be checked without its value",
                        shown_pointer(&u.pointer),
                        h.holes[u.id].shown
                    )),
                    unresolved,
                    ..Checked::new(Verdict::Unchecked)
                };
            }
        }
    }
    Checked {
        message: Some("not checkable statically: too many parts known only at deploy time".into()),
        unresolved,
        ..Checked::new(Verdict::Unchecked)
    }
}

fn shown_pointer(p: &str) -> &str {
    if p.is_empty() { "the pattern" } else { p }
}

/// Whether an error at `err` may be a placeholder's fault for a hole at `hole`: at it, inside it,
/// or up to two levels above it (the value list or operator that holds it).
fn near(err: &str, hole: &str) -> bool {
    if err == hole || err.starts_with(&format!("{hole}/")) {
        return true;
    }
    hole.strip_prefix(err)
        .filter(|rest| rest.starts_with('/'))
        .is_some_and(|rest| rest.matches('/').count() <= 2)
}

fn find_uses(v: &Value, pointer: &str, h: &Holed, out: &mut Vec<Use>) {
    match v {
        Value::String(s) => {
            let ids = markers_in(s);
            for id in ids.iter().copied() {
                let whole = ids.len() == 1 && *s == format!("@@sb{id}@@");
                out.push(Use {
                    id,
                    pointer: pointer.to_owned(),
                    whole_any: whole && h.holes.get(id).is_some_and(|x| x.any),
                    candidates: Vec::new(),
                });
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                find_uses(x, &format!("{pointer}/{i}"), h, out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let p = pointer_push(pointer, k);
                for id in markers_in(k) {
                    out.push(Use {
                        id,
                        pointer: p.clone(),
                        whole_any: false,
                        candidates: Vec::new(),
                    });
                }
                find_uses(x, &p, h, out);
            }
        }
        _ => {}
    }
}

/// The placeholders to try for a whole-value hole, by where it stands: the key above it and whether
/// it is a list element.
fn placeholders(root: &Value, pointer: &str) -> Vec<Value> {
    let tokens = super::pointer::pointer_tokens(pointer);
    let Some((last, parents)) = tokens.split_last() else {
        return vec![json!(["x"])];
    };
    let mut parent = root;
    for t in parents {
        parent = match parent {
            Value::Object(m) => &m[t.as_str()],
            Value::Array(a) => &a[t.parse::<usize>().unwrap_or(0)],
            _ => return vec![json!("x")],
        };
    }
    if parent.is_array() {
        let key_above = parents.last().map(String::as_str);
        return match key_above {
            Some("numeric") => vec![json!(0), json!("x")],
            Some("cidr") => vec![json!("10.0.0.0/8")],
            _ => vec![json!("x"), json!(0), json!(true)],
        };
    }
    match last.as_str() {
        "prefix" | "suffix" | "wildcard" | "equals-ignore-case" => vec![json!("x")],
        "cidr" => vec![json!("10.0.0.0/8")],
        "exists" => vec![json!(true)],
        "numeric" => vec![json!([">", 0])],
        "anything-but" => vec![json!("x"), json!(["x"])],
        "$or" => vec![json!([{"x": ["x"]}, {"y": ["y"]}])],
        _ => vec![json!(["x"]), json!({"x": ["x"]})],
    }
}

/// The pattern with every hole replaced by its current placeholder (`"x"` for text).
fn substitute(v: &Value, pointer: &str, uses: &[Use], choice: &[usize]) -> Value {
    if let Some(u) = uses.iter().find(|u| u.whole_any && u.pointer == pointer) {
        return u.candidates[choice[u.id].min(u.candidates.len() - 1)].clone();
    }
    match v {
        Value::String(s) => Value::String(replace_markers(s, |_| "x".to_owned())),
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| substitute(x, &format!("{pointer}/{i}"), uses, choice))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let p = pointer_push(pointer, k);
                    (
                        replace_markers(k, |id| format!("x{id}")),
                        substitute(x, &p, uses, choice),
                    )
                })
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::holes::{CfnOptions, HoleSet, cfn_value};

    fn holed(v: Value) -> Body {
        let mut set = HoleSet::default();
        let v = cfn_value(&v, &mut set, CfnOptions::default());
        Body::Holed(set.with_value(&v))
    }

    fn verdict(v: Value) -> Checked {
        check(&holed(v), &Limits::default())
    }

    #[test]
    fn placeholders_fit_where_the_hole_stands() {
        let cases = [
            json!({"detail": {"x": [{"exists": {"Ref": "P"}}]}}),
            json!({"detail": {"n": [{"numeric": [">", {"Ref": "Min"}, "<", 100]}]}}),
            json!({"detail": {"ip": [{"cidr": {"Ref": "Net"}}]}}),
            json!({"detail": {"repo": [{"prefix": {"Fn::Sub": "${Env}/"}}]}}),
            json!({"source": {"Ref": "Sources"}}),
            json!({"detail": {"state": [{"anything-but": {"Ref": "States"}}]}}),
            json!({"detail": {"name": [{"wildcard": {"Fn::Sub": "${Env}-*"}}]}}),
        ];
        for c in cases {
            let v = verdict(c.clone());
            assert_eq!(v.verdict, Verdict::Unchecked, "{c}: {v:?}");
            assert_eq!(v.unresolved.len(), 1, "{c}");
            assert!(
                v.message
                    .as_deref()
                    .unwrap()
                    .ends_with("the rest of the pattern is valid"),
                "{c}: {v:?}"
            );
        }
    }

    #[test]
    fn the_patterns_own_errors_are_reported_despite_holes() {
        let v =
            verdict(json!({"account": [{"Ref": "AWS::AccountId"}], "detail": {"scan-status": []}}));
        assert_eq!(v.verdict, Verdict::Invalid);
        assert_eq!(v.pointer.as_deref(), Some("/detail/scan-status"));
        assert_eq!(v.unresolved[0].pointer, "/account/0");
        // A fault in the literal part of a string with a hole is still found.
        let v = verdict(json!({"detail": {"ip": [{"cidr": {"Fn::Sub": "10.0.${Octet}.0/99"}}]}}));
        assert_eq!(
            v.verdict,
            Verdict::Unchecked,
            "the hole may be the culprit: {v:?}"
        );
        // A fault beside a hole (not at, in or above it) is the pattern's own.
        let v = verdict(json!({"detail": {"n": [{"numeric": [">>", {"Ref": "Min"}]}]}}));
        assert_eq!(v.verdict, Verdict::Invalid, "{v:?}");
        assert_eq!(v.pointer.as_deref(), Some("/detail/n/0/numeric/0"));
        // When no placeholder fits (the operator itself is the hole), the part is unchecked.
        let v = verdict(json!({"detail": {"n": [{"numeric": [{"Ref": "Op"}, 5]}]}}));
        assert_eq!(v.verdict, Verdict::Unchecked, "{v:?}");
        assert!(
            v.message
                .unwrap()
                .contains("cannot be checked without its value")
        );
    }

    #[test]
    fn a_whole_pattern_hole_and_nearness() {
        let v = verdict(json!({"Ref": "Pattern"}));
        assert_eq!(v.verdict, Verdict::Unchecked);
        assert_eq!(
            v.message.as_deref(),
            Some("not checkable statically: the pattern is !Ref Pattern")
        );
        assert!(near("/a/b", "/a/b/0"));
        assert!(near("/a/b/0/c", "/a/b/0"));
        assert!(near("/a", "/a/b/0"));
        assert!(!near("/a", "/a/b/c/d"));
        assert!(!near("/x", "/a"));
    }

    #[test]
    fn verbatim_text_keeps_aws_warnings_and_syntax_positions() {
        let v = check(
            &Body::Holed(Holed::verbatim(r#"{"source": ["a"], "source": ["b"]}"#)),
            &Limits::default(),
        );
        assert_eq!(v.verdict, Verdict::Ok);
        assert_eq!(v.warnings.len(), 1, "{v:?}");
        let v = check(
            &Body::Holed(Holed::verbatim("{\"source\": [\"a\"")),
            &Limits::default(),
        );
        assert_eq!(v.verdict, Verdict::Invalid);
        assert!(
            v.message.unwrap().contains("(at line 1, column"),
            "syntax errors say where"
        );
    }
}
