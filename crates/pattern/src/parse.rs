//! Pattern text → [`Branch`]es, with every check AWS makes and AWS's words for each failure.
//!
//! The walk follows event-ruler's `JsonRuleCompiler` in document order, so when a pattern has several
//! faults the first one reported is the one AWS reports. Semantics kept from AWS on purpose:
//! - a later duplicate key overrides an earlier one at the same path (AWS's "overriding" mode, pinned by
//!   the corpus case `complex_multi_key`);
//! - `$or` forks the branches built so far; fields after a `$or` apply to every branch;
//! - numbers are compared as [`crate::number`] describes.
//!
//! Limits beyond the grammar: the pattern text length ([`Limits::max_len`], 2048 by default as in
//! EventBridge), the number of `$or` combinations ([`Limits::max_combinations`], 1000) and the wildcard
//! complexity of [`crate::wildcard`].

use crate::ast::{AnythingBut, Branch, Condition, Literal, Matcher, Range};
use crate::error::{PatternError, pointer_push};
use crate::ip;
use crate::json::{self, Json};
use crate::number::{self, Number};
use crate::wildcard::{self, Wildcard};

/// Bounds a pattern must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest pattern text, in characters (EventBridge: 2048 by default, 4096 by quota increase).
    pub max_len: usize,
    /// Most branches a pattern may expand to through `$or` (EventBridge: 1000).
    pub max_combinations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: 2048,
            max_combinations: 1000,
        }
    }
}

const OR: &str = "$or";
/// Operator names that cannot be field names inside `$or` (event-ruler's reserved field names).
const RESERVED_IN_OR: &[&str] = &[
    "exactly",
    "prefix",
    "suffix",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
    "equals-ignore-case",
    "wildcard",
];

type Result<T> = std::result::Result<T, PatternError>;

fn fail<T>(reason: impl Into<String>, pointer: &str) -> Result<T> {
    Err(PatternError::new(reason, pointer))
}

/// A parsed pattern: its branches, and warnings about text AWS accepts but people rarely mean.
#[derive(Debug)]
pub struct Parsed {
    pub branches: Vec<Branch>,
    pub warnings: Vec<Warning>,
}

/// Something valid but suspicious in a pattern, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub message: String,
    pub pointer: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at {})", self.message, self.pointer)
    }
}

/// Parses and validates pattern text.
pub fn parse(text: &str, limits: &Limits) -> Result<Parsed> {
    let chars = text.chars().count();
    if chars > limits.max_len {
        return fail(
            format!(
                "Event pattern is {chars} characters long; the limit is {}",
                limits.max_len
            ),
            "",
        );
    }
    let root = json::parse(text.as_bytes()).map_err(PatternError::syntax)?;
    let Json::Object(members) = &root else {
        return fail("Filter is not an object", "");
    };
    let mut c = Compiler {
        limits,
        rules: Vec::new(),
        warnings: Vec::new(),
    };
    c.object(members, "", "", false)?;
    Ok(Parsed {
        branches: c
            .rules
            .into_iter()
            .map(|conditions| Branch { conditions })
            .collect(),
        warnings: c.warnings,
    })
}

struct Compiler<'l> {
    limits: &'l Limits,
    /// The branches so far; each a list of conditions with unique paths.
    rules: Vec<Vec<Condition>>,
    warnings: Vec<Warning>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Compiler<'_> {
    fn object(
        &mut self,
        members: &[(String, Json)],
        path: &str,
        ptr: &str,
        in_or: bool,
    ) -> Result<()> {
        if members.is_empty() {
            return fail("Empty objects are not allowed", ptr);
        }
        for (i, (key, value)) in members.iter().enumerate() {
            let p = pointer_push(ptr, key);
            if members[..i].iter().any(|(k, _)| k == key) {
                self.warnings.push(Warning {
                    message: format!("the key {key:?} appears more than once; as in AWS, the later one replaces the earlier"),
                    pointer: p.clone(),
                });
            }
            if key == OR {
                self.or(value, path, &p)?;
                continue;
            }
            if in_or && RESERVED_IN_OR.contains(&key.as_str()) {
                return fail(
                    format!("{key} is Ruler reserved fieldName which cannot be used inside $or."),
                    &p,
                );
            }
            match value {
                Json::Object(m) => self.object(m, &join(path, key), &p, in_or)?,
                Json::Array(items) => {
                    let matchers = value_list(items, &p)?;
                    let cond = Condition {
                        path: join(path, key),
                        pointer: p,
                        matchers,
                    };
                    if self.rules.is_empty() {
                        self.rules.push(Vec::new());
                    }
                    for rule in &mut self.rules {
                        match rule.iter_mut().find(|c| c.path == cond.path) {
                            Some(existing) => *existing = cond.clone(),
                            None => rule.push(cond.clone()),
                        }
                    }
                }
                _ => return fail(format!("\"{key}\" must be an object or an array"), &p),
            }
        }
        Ok(())
    }

    fn or(&mut self, value: &Json, path: &str, ptr: &str) -> Result<()> {
        let Json::Array(alternatives) = value else {
            return fail("It must be an Array followed with $or.", ptr);
        };
        let current = std::mem::take(&mut self.rules);
        for (i, alt) in alternatives.iter().enumerate() {
            let p = pointer_push(ptr, &i.to_string());
            let Json::Object(m) = alt else {
                return fail(
                    "Only JSON object is allowed in array of $or relationship.",
                    &p,
                );
            };
            let saved = std::mem::take(&mut self.rules);
            self.rules = if current.is_empty() {
                vec![Vec::new()]
            } else {
                current.clone()
            };
            self.object(m, path, &p, true)?;
            let mut forked = std::mem::replace(&mut self.rules, saved);
            self.rules.append(&mut forked);
            if self.rules.len() > self.limits.max_combinations {
                return fail(
                    format!(
                        "Rule is too complex - the $or expressions expand to more than {} combinations",
                        self.limits.max_combinations
                    ),
                    ptr,
                );
            }
        }
        if alternatives.len() < 2 {
            return fail(
                "There must have at least 2 Objects in $or relationship.",
                ptr,
            );
        }
        Ok(())
    }
}

/// A field's value list: literals and match expressions.
fn value_list(items: &[Json], ptr: &str) -> Result<Vec<Matcher>> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = pointer_push(ptr, &i.to_string());
        out.push(match item {
            Json::Object(m) => match_expression(m, &p)?,
            Json::String(s) => match ip::single(s) {
                Some(r) => Matcher::Ip(r),
                None => Matcher::Exact(Literal::String(s.clone())),
            },
            Json::Number(t) => Matcher::Exact(Literal::Number(Number::new(t))),
            Json::Bool(b) => Matcher::Exact(Literal::Bool(*b)),
            Json::Null => Matcher::Exact(Literal::Null),
            Json::Array(_) => {
                return fail(
                    "Match value must be String, number, true, false, or null",
                    &p,
                );
            }
        });
    }
    if out.is_empty() {
        return fail("Empty arrays are not allowed", ptr);
    }
    Ok(out)
}

/// Only one key may follow the operator (AWS checks it after the operand).
fn one_key(m: &[(String, Json)], ptr: &str, reason: &str) -> Result<()> {
    if m.len() > 1 {
        fail(reason, &pointer_push(ptr, &m[1].0))
    } else {
        Ok(())
    }
}

const ONE_KEY: &str = "Only one key allowed in match expression";
const TOO_MANY_NUMERIC: &str = "Too many elements in numeric expression";

fn string_operand<'a>(v: &'a Json, ptr: &str, reason: &str) -> Result<&'a str> {
    match v {
        Json::String(s) => Ok(s),
        _ => fail(reason, ptr),
    }
}

fn match_expression(m: &[(String, Json)], ptr: &str) -> Result<Matcher> {
    let Some((op, v)) = m.first() else {
        return fail("Match expression name not found", ptr);
    };
    let p = pointer_push(ptr, op);
    let matcher = match op.as_str() {
        "exactly" => {
            let s = string_operand(v, &p, "exact match pattern must be a string")?;
            Matcher::Exact(Literal::String(s.to_string()))
        }
        "prefix" | "suffix" => {
            let is_prefix = op == "prefix";
            if let Json::Object(inner) = v {
                let Some((iop, iv)) = inner.first() else {
                    let what = if is_prefix { "Prefix" } else { "Suffix" };
                    return fail(format!("{what} expression name not found"), &p);
                };
                let ip = pointer_push(&p, iop);
                if iop != "equals-ignore-case" {
                    return fail(format!("Unsupported {op} pattern: {iop}"), &ip);
                }
                let s =
                    string_operand(iv, &ip, "equals-ignore-case match pattern must be a string")?;
                one_key(inner, &p, ONE_KEY)?;
                one_key(m, ptr, ONE_KEY)?;
                let s = fold(s);
                return Ok(if is_prefix {
                    Matcher::PrefixIgnoreCase(s)
                } else {
                    Matcher::SuffixIgnoreCase(s)
                });
            }
            let s = string_operand(v, &p, &format!("{op} match pattern must be a string"))?;
            if is_prefix {
                Matcher::Prefix(s.to_string())
            } else {
                Matcher::Suffix(s.to_string())
            }
        }
        "numeric" => {
            let Json::Array(terms) = v else {
                return fail("Value of numeric must be an array.", &p);
            };
            let r = numeric(terms, &p)?;
            one_key(m, ptr, TOO_MANY_NUMERIC)?;
            return Ok(Matcher::Numeric(r));
        }
        "anything-but" => {
            let a = anything_but(v, &p)?;
            // AWS checks the inner object's closing brace before the outer one's.
            if let Json::Object(inner) = v {
                one_key(inner, &p, TOO_MANY_NUMERIC)?;
            }
            one_key(m, ptr, TOO_MANY_NUMERIC)?;
            return Ok(Matcher::AnythingBut(a));
        }
        "exists" => match v {
            Json::Bool(b) => Matcher::Exists(*b),
            _ => return fail("exists match pattern must be either true or false.", &p),
        },
        "cidr" => {
            let s = string_operand(v, &p, "prefix match pattern must be a string")?;
            Matcher::Cidr(ip::cidr(s).map_err(|r| PatternError::new(r, p.clone()))?)
        }
        "equals-ignore-case" => {
            let s = string_operand(v, &p, "equals-ignore-case match pattern must be a string")?;
            Matcher::EqualsIgnoreCase(fold(s))
        }
        "wildcard" => {
            let s = string_operand(v, &p, "wildcard match pattern must be a string")?;
            let w = Wildcard::parse(s).map_err(|r| PatternError::new(r, p.clone()))?;
            if w.complexity() >= wildcard::MAX_COMPLEXITY {
                return fail(wildcard::TOO_COMPLEX, &p);
            }
            Matcher::Wildcard(w)
        }
        other => return fail(format!("Unrecognized match type {other}"), &p),
    };
    one_key(m, ptr, ONE_KEY)?;
    Ok(matcher)
}

/// Case folding for the `equals-ignore-case` family: both sides are compared lower-cased.
pub(crate) fn fold(s: &str) -> String {
    s.to_lowercase()
}

fn anything_but(v: &Json, ptr: &str) -> Result<AnythingBut> {
    #[derive(PartialEq)]
    enum Kind {
        Plain,
        IgnoreCase,
        Prefix,
        Suffix,
        Wildcard,
    }
    let (kind, operand, p) = match v {
        Json::Object(inner) => {
            let Some((iop, iv)) = inner.first() else {
                return fail("Anything-But expression name not found", ptr);
            };
            let kind = match iop.as_str() {
                "equals-ignore-case" => Kind::IgnoreCase,
                "prefix" => Kind::Prefix,
                "suffix" => Kind::Suffix,
                "wildcard" => Kind::Wildcard,
                other => {
                    return fail(
                        format!("Unsupported anything-but pattern: {other}"),
                        &pointer_push(ptr, iop),
                    );
                }
            };
            (kind, iv, pointer_push(ptr, iop))
        }
        other => (Kind::Plain, other, ptr.to_string()),
    };
    if !matches!(operand, Json::Array(_) | Json::String(_) | Json::Number(_)) {
        return fail(
            "Value of anything-but must be an array or single string/number value.",
            &p,
        );
    }
    let values: Vec<(&Json, String)> = match operand {
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, j)| (j, pointer_push(&p, &i.to_string())))
            .collect(),
        single => vec![(single, p.clone())],
    };
    let is_list = matches!(operand, Json::Array(_));

    if kind == Kind::Plain {
        let mut strings = Vec::new();
        let mut numbers = Vec::new();
        for (j, jp) in &values {
            match j {
                Json::String(s) => strings.push(s.clone()),
                Json::Number(t) => {
                    let n = Number::new(t);
                    if n.cmp.is_none() {
                        return fail(number_range_reason(), jp);
                    }
                    numbers.push(n);
                }
                _ if is_list => {
                    return fail(
                        "Inside anything but list, start|null|boolean is not supported.",
                        jp,
                    );
                }
                _ => {
                    return fail(
                        "Inside anything-but list, start|null|boolean is not supported.",
                        jp,
                    );
                }
            }
        }
        return match (strings.is_empty(), numbers.is_empty()) {
            (false, true) => Ok(AnythingBut::Strings(strings)),
            (true, false) => Ok(AnythingBut::Numbers(numbers)),
            _ => fail(
                "Inside anything but list, either all values are number or string, mixed type is not supported",
                &p,
            ),
        };
    }

    let mut texts = Vec::new();
    for (j, jp) in &values {
        let Json::String(s) = j else {
            let reason = match kind {
                Kind::IgnoreCase => {
                    "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported."
                }
                Kind::Wildcard => "wildcard match pattern must be a string",
                _ => "prefix/suffix match pattern must be a string",
            };
            return fail(reason, jp);
        };
        if matches!(kind, Kind::Prefix | Kind::Suffix) && s.is_empty() {
            return fail("Null prefix/suffix not allowed", jp);
        }
        texts.push((s.clone(), jp.clone()));
    }
    Ok(match kind {
        Kind::IgnoreCase => {
            AnythingBut::IgnoreCase(texts.into_iter().map(|(s, _)| fold(&s)).collect())
        }
        Kind::Prefix => AnythingBut::Prefixes(texts.into_iter().map(|(s, _)| s).collect()),
        Kind::Suffix => AnythingBut::Suffixes(texts.into_iter().map(|(s, _)| s).collect()),
        Kind::Wildcard => {
            let mut ws = Vec::new();
            for (s, jp) in texts {
                ws.push(Wildcard::parse(&s).map_err(|r| PatternError::new(r, jp))?);
            }
            AnythingBut::Wildcards(ws)
        }
        Kind::Plain => unreachable!("handled above"),
    })
}

fn number_range_reason() -> String {
    format!(
        "Value must be between {:?} and {:?}, inclusive",
        -number::LIMIT,
        number::LIMIT
    )
    .replace("5000000000.0", "5.0E9")
}

/// `["op", n]` or `[">"|">=", n, "<"|"<=", m]`, with AWS's reason for each malformed shape, checked in
/// event-ruler's order (`JsonRuleCompiler.processNumericMatchExpression`): the shape of the array
/// first, then each bound against the ±5e9 limit (bottom first), then that the bottom of a
/// two-sided range is below its top (`Range.between`: "Bottom must be less than top", also when
/// they are equal, whatever the operators).
fn numeric(terms: &[Json], ptr: &str) -> Result<Range> {
    let at = |i: usize| pointer_push(ptr, &i.to_string());
    let text_of = |i: usize| terms.get(i).map_or("]".to_string(), Json::token_text);
    let Some(Json::String(op)) = terms.first() else {
        return fail(
            format!("Invalid member in numeric match: {}", text_of(0)),
            &at(0),
        );
    };
    // The number text at `i`, or AWS's reason why there is none.
    let number = |i: usize, name: &str| -> Result<&str> {
        match terms.get(i) {
            Some(Json::Number(t)) => Ok(t.as_str()),
            _ => fail(format!("Value of {name} must be numeric"), &at(i)),
        }
    };
    let comparable = |i: usize, t: &str| -> Result<i64> {
        number::comparable(t).ok_or_else(|| PatternError::new(number_range_reason(), at(i)))
    };
    let mut r = Range {
        low: None,
        high: None,
        text: String::new(),
    };
    match op.as_str() {
        "=" | "<" | "<=" => {
            let name = if op == "=" { "equals" } else { op.as_str() };
            let t = number(1, name)?;
            if terms.len() > 2 {
                return fail(TOO_MANY_NUMERIC, &at(2));
            }
            let v = comparable(1, t)?;
            match op.as_str() {
                "=" => {
                    r.low = Some((v, true));
                    r.high = Some((v, true));
                }
                _ => r.high = Some((v, op == "<=")),
            }
        }
        ">" | ">=" => {
            let bottom = number(1, op)?;
            if terms.len() == 2 {
                r.low = Some((comparable(1, bottom)?, op == ">="));
            } else {
                let Json::String(op2) = &terms[2] else {
                    return fail(
                        format!("Bad value in numeric range: {}", text_of(2)),
                        &at(2),
                    );
                };
                if op2 != "<" && op2 != "<=" {
                    return fail(format!("Bad numeric range operator: {op2}"), &at(2));
                }
                let top = number(3, op2)?;
                if terms.len() > 4 {
                    return fail("Too many terms in numeric range expression", &at(4));
                }
                let (low, high) = (comparable(1, bottom)?, comparable(3, top)?);
                if low >= high {
                    return fail("Bottom must be less than top", &at(3));
                }
                r.low = Some((low, op == ">="));
                r.high = Some((high, op2 == "<="));
            }
        }
        other => {
            return fail(
                format!("Unrecognized numeric range operator: {other}"),
                &at(0),
            );
        }
    }
    r.text = terms
        .iter()
        .map(Json::token_text)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: &str) -> (String, String) {
        let e = parse(p, &Limits::default()).unwrap_err();
        (e.reason().to_string(), e.pointer().to_string())
    }

    #[test]
    fn pointers_name_the_node_at_fault() {
        assert_eq!(
            err(r#"{"resources": []}"#),
            ("Empty arrays are not allowed".into(), "/resources".into())
        );
        assert_eq!(
            err(r#"{"detail": {"a/b": [{"prefix": 1}]}}"#),
            (
                "prefix match pattern must be a string".into(),
                "/detail/a~1b/0/prefix".into()
            )
        );
        assert_eq!(
            err(r#"{"x": [{"numeric": [">", 0, "<"]}]}"#),
            ("Value of < must be numeric".into(), "/x/0/numeric/3".into())
        );
    }

    #[test]
    fn numeric_shapes() {
        assert_eq!(
            err(r#"{"x": [{"numeric": []}]}"#).0,
            "Invalid member in numeric match: ]"
        );
        assert_eq!(
            err(r#"{"x": [{"numeric": [5]}]}"#).0,
            "Invalid member in numeric match: 5"
        );
        assert_eq!(
            err(r#"{"x": [{"numeric": ["!", 5]}]}"#).0,
            "Unrecognized numeric range operator: !"
        );
        assert_eq!(
            err(r#"{"x": [{"numeric": ["=", "5"]}]}"#).0,
            "Value of equals must be numeric"
        );
        assert_eq!(
            err(r#"{"x": [{"numeric": ["<", 5, 6]}]}"#).0,
            "Too many elements in numeric expression"
        );
        assert_eq!(
            err(r#"{"x": [{"numeric": [">", 5, 6]}]}"#).0,
            "Bad value in numeric range: 6"
        );
        assert_eq!(
            err(r#"{"x": [{"numeric": [">", 5, "<", 9, 1]}]}"#).0,
            "Too many terms in numeric range expression"
        );
        assert_eq!(
            err(r#"{"x": [{"numeric": [">", 1e10]}]}"#).0,
            "Value must be between -5.0E9 and 5.0E9, inclusive"
        );
    }

    #[test]
    fn or_rules() {
        assert_eq!(
            err(r#"{"$or": {"a": ["b"]}}"#).0,
            "It must be an Array followed with $or."
        );
        assert_eq!(
            err(r#"{"$or": [{"a": ["b"]}]}"#).0,
            "There must have at least 2 Objects in $or relationship."
        );
        assert_eq!(
            err(r#"{"$or": [{"a": ["b"]}, 1]}"#).0,
            "Only JSON object is allowed in array of $or relationship."
        );
        assert_eq!(
            err(r#"{"$or": [{"a": ["b"]}, {"numeric": ["b"]}]}"#).0,
            "numeric is Ruler reserved fieldName which cannot be used inside $or."
        );
        let b = parse(r#"{"s": ["x"], "$or": [{"a": ["1"]}, {"b": ["2"], "$or": [{"c": ["3"]}, {"d": ["4"]}]}], "z": ["9"]}"#, &Limits::default()).unwrap().branches;
        let paths: Vec<Vec<&str>> = b
            .iter()
            .map(|br| br.conditions.iter().map(|c| c.path.as_str()).collect())
            .collect();
        assert_eq!(
            paths,
            vec![
                vec!["s", "a", "z"],
                vec!["s", "b", "c", "z"],
                vec!["s", "b", "d", "z"]
            ]
        );
    }

    #[test]
    fn or_combinations_are_bounded() {
        // 4 nested $or of 6 alternatives each = 1296 combinations.
        let alt = |k: &str| {
            format!(
                r#"{{"$or": [{}]}}"#,
                (0..6)
                    .map(|i| format!(r#"{{"{k}{i}": ["v"]}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let p = format!(
            r#"{{"a": {}, "b": {}, "c": {}, "d": {}}}"#,
            alt("a"),
            alt("b"),
            alt("c"),
            alt("d")
        );
        let limits = Limits {
            max_len: 100_000,
            ..Limits::default()
        };
        let e = parse(&p, &limits).unwrap_err();
        assert!(e.reason().contains("more than 1000 combinations"), "{e}");
        let ok = format!(
            r#"{{"a": {}, "b": {}, "c": {}}}"#,
            alt("a"),
            alt("b"),
            alt("c")
        );
        assert_eq!(parse(&ok, &limits).unwrap().branches.len(), 216);
    }

    #[test]
    fn size_limit_is_configurable() {
        let p = format!(r#"{{"a": ["{}"]}}"#, "x".repeat(3000));
        assert!(err(&p).0.contains("limit is 2048"));
        assert!(
            parse(
                &p,
                &Limits {
                    max_len: 4096,
                    ..Limits::default()
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn duplicate_keys_override_like_aws() {
        let parsed = parse(r#"{"d": {"a": ["x"], "a": ["y"]}}"#, &Limits::default()).unwrap();
        assert_eq!(parsed.warnings.len(), 1);
        assert_eq!(parsed.warnings[0].pointer, "/d/a");
        let b = parsed.branches;
        assert_eq!(b[0].conditions.len(), 1);
        assert_eq!(
            b[0].conditions[0].matchers,
            vec![Matcher::Exact(Literal::String("y".into()))]
        );
    }

    #[test]
    fn misc_reasons() {
        assert_eq!(err("[1]").0, "Filter is not an object");
        assert_eq!(err("{}").0, "Empty objects are not allowed");
        assert_eq!(err(r#"{"a": {}}"#).0, "Empty objects are not allowed");
        assert_eq!(
            err(r#"{"a": [[1]]}"#).0,
            "Match value must be String, number, true, false, or null"
        );
        assert_eq!(err(r#"{"a": [{}]}"#).0, "Match expression name not found");
        assert_eq!(
            err(r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#).0,
            "Only one key allowed in match expression"
        );
        assert_eq!(
            err(r#"{"a": [{"exists": "yes"}]}"#).0,
            "exists match pattern must be either true or false."
        );
        assert_eq!(
            err(r#"{"a": [{"anything-but": {}}]}"#).0,
            "Anything-But expression name not found"
        );
        assert_eq!(
            err(r#"{"a": [{"anything-but": {"numeric": 1}}]}"#).0,
            "Unsupported anything-but pattern: numeric"
        );
        assert_eq!(
            err(r#"{"a": [{"anything-but": []}]}"#).0,
            "Inside anything but list, either all values are number or string, mixed type is not supported"
        );
        assert_eq!(
            err(r#"{"a": [{"anything-but": ["a", 1]}]}"#).0,
            "Inside anything but list, either all values are number or string, mixed type is not supported"
        );
        assert_eq!(
            err(r#"{"a": [{"prefix": {"foo": "x"}}]}"#).0,
            "Unsupported prefix pattern: foo"
        );
        assert_eq!(
            err(r#"{"a": [{"suffix": {}}]}"#).0,
            "Suffix expression name not found"
        );
        assert_eq!(
            err(r#"{"a": [{"wildcard": "a\\b"}]}"#).0,
            "Invalid escape character at pos 2"
        );
        assert_eq!(
            err(r#"{"a": [{"cidr": "10.0.0.0/33"}]}"#).0,
            "IPv4 mask bits must be < 32"
        );
    }
}
