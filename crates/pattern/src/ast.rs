//! The parsed form of a pattern: what each field of an event must satisfy.
//!
//! A pattern is a disjunction of [`Branch`]es (one per combination of `$or` alternatives; a pattern
//! without `$or` has one). A branch is a conjunction of [`Condition`]s, one per dotted field path; a
//! condition holds when any of its [`Matcher`]s accepts a value at that path (or, for `exists: false`,
//! when the path has no value). This is the shape event-ruler compiles a rule into, so the two doors
//! (the interpreter in `eval` and the compiled `RuleSet`) start from the same facts.

use std::fmt;

use crate::ip::IpRange;
use crate::number::{Comparable, Number};
use crate::wildcard::Wildcard;

/// One way for the pattern to match: every condition must hold, on array-consistent values.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub conditions: Vec<Condition>,
}

/// What the values at one field path must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The dotted path (`detail.finding-severity-counts.CRITICAL`); keys are joined with `.`, so a
    /// pattern key `a.b` and nested keys `a` → `b` name the same field, as in AWS.
    pub path: String,
    /// JSON pointer of the value list in the pattern text, for messages.
    pub pointer: String,
    /// Any one of these accepting a value satisfies the condition.
    pub matchers: Vec<Matcher>,
}

impl Condition {
    /// The JSON pointer of matcher `i` in the pattern text (the matchers are the value list's
    /// elements, in order).
    pub fn matcher_pointer(&self, i: usize) -> String {
        format!("{}/{i}", self.pointer)
    }

    /// Whether `exists: false` is among the matchers: the condition also holds when the path is absent.
    pub fn allows_absence(&self) -> bool {
        self.matchers
            .iter()
            .any(|m| matches!(m, Matcher::Exists(false)))
    }
}

/// A literal value in a pattern's value list.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(Number),
    Bool(bool),
    Null,
}

/// One operator of the grammar, with its operand already validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    /// A plain value: string, number (by text or by comparable value), true, false or null.
    Exact(Literal),
    /// A plain string that is an IP address: matches that address however the event spells it.
    Ip(IpRange),
    Prefix(String),
    /// Stored lower-cased.
    PrefixIgnoreCase(String),
    Suffix(String),
    /// Stored lower-cased.
    SuffixIgnoreCase(String),
    /// Stored lower-cased.
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric(Range),
    Exists(bool),
    Cidr(IpRange),
}

/// What an `anything-but` excludes. It accepts any value present at the path that is not excluded;
/// values of another type (a number against a string list, null, booleans) are never excluded.
#[derive(Debug, Clone, PartialEq)]
pub enum AnythingBut {
    Strings(Vec<String>),
    Numbers(Vec<Number>),
    /// Stored lower-cased.
    IgnoreCase(Vec<String>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    Wildcards(Vec<Wildcard>),
}

/// A numeric interval over comparable numbers; `None` bounds are unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Range {
    /// (bound, inclusive)
    pub low: Option<(Comparable, bool)>,
    pub high: Option<(Comparable, bool)>,
    /// The operator list as written, e.g. `> 0 <= 5`, for explanations.
    pub text: String,
}

impl Range {
    pub fn contains(&self, v: Comparable) -> bool {
        let lo = match self.low {
            None => true,
            Some((b, true)) => v >= b,
            Some((b, false)) => v > b,
        };
        let hi = match self.high {
            None => true,
            Some((b, true)) => v <= b,
            Some((b, false)) => v < b,
        };
        lo && hi
    }
}

fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn list(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.len() == 1 {
        v.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", v.join(", "))
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => f.write_str(&quoted(s)),
            Literal::Number(n) => f.write_str(&n.text),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(l) => write!(f, "{l}"),
            Matcher::Ip(r) => write!(f, "{} (an IP address)", quoted(&r.text)),
            Matcher::Prefix(p) => write!(f, "prefix {}", quoted(p)),
            Matcher::PrefixIgnoreCase(p) => write!(f, "prefix equals-ignore-case {}", quoted(p)),
            Matcher::Suffix(p) => write!(f, "suffix {}", quoted(p)),
            Matcher::SuffixIgnoreCase(p) => write!(f, "suffix equals-ignore-case {}", quoted(p)),
            Matcher::EqualsIgnoreCase(p) => write!(f, "equals-ignore-case {}", quoted(p)),
            Matcher::Wildcard(w) => write!(f, "wildcard {}", quoted(&w.text)),
            Matcher::AnythingBut(a) => write!(f, "anything-but {a}"),
            Matcher::Numeric(r) => write!(f, "numeric {}", r.text),
            Matcher::Exists(b) => write!(f, "exists {b}"),
            Matcher::Cidr(r) => write!(f, "cidr {}", quoted(&r.text)),
        }
    }
}

impl fmt::Display for AnythingBut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnythingBut::Strings(v) => f.write_str(&list(v.iter().map(|s| quoted(s)))),
            AnythingBut::Numbers(v) => f.write_str(&list(v.iter().map(|n| n.text.clone()))),
            AnythingBut::IgnoreCase(v) => {
                write!(
                    f,
                    "equals-ignore-case {}",
                    list(v.iter().map(|s| quoted(s)))
                )
            }
            AnythingBut::Prefixes(v) => write!(f, "prefix {}", list(v.iter().map(|s| quoted(s)))),
            AnythingBut::Suffixes(v) => write!(f, "suffix {}", list(v.iter().map(|s| quoted(s)))),
            AnythingBut::Wildcards(v) => {
                write!(f, "wildcard {}", list(v.iter().map(|w| quoted(&w.text))))
            }
        }
    }
}
