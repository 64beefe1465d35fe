//! Pattern lints: patterns AWS accepts but that almost never mean what their author meant, each with
//! the JSON pointer of the node at fault and the likely fix.
//!
//! Owns: [`lint`] and [`Lint`], and what the lints know of the events scanbridge handles (ECR Image
//! Scan, Inspector2 Scan and Finding, ECR Image Action, scanner reports' Image Scan): which fields hold
//! objects, which hold numbers, and which hold one of a few upper-case words.
//!
//! Promises: a lint is a warning, never an error: it changes no verdict and no exit code; a pattern
//! that does not parse has no lints (its error says what is wrong); lints come in the order of the
//! pattern's conditions, at most one per node and lint kind, and are deterministic. Pure: no I/O.
//!
//! The API `check-patterns` (issue 20) calls: `scanbridge::lint::lint(text) -> Vec<Lint>`, or
//! [`lint_pattern`] on a pattern already parsed (with `--max-pattern-length`'s limits).

use scanbridge_pattern::{Condition, Literal, Matcher, Pattern};
use serde::Serialize;

use crate::scan::SEVERITIES;

/// One warning about a pattern.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lint {
    /// JSON pointer (RFC 6901) of the node the warning is about.
    pub pointer: String,
    /// What is wrong and the likely fix, in one or two sentences.
    pub message: String,
}

impl std::fmt::Display for Lint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at {})", self.message, self.pointer)
    }
}

/// What a field of the known event kinds holds.
#[derive(Clone, Copy)]
enum Holds {
    Object,
    Number,
    /// One of these words, in this case.
    Words(&'static [&'static str]),
}

const SCAN_STATUSES: &[&str] = &[
    "COMPLETE",
    "FAILED",
    "ACTIVE",
    "PENDING",
    "INITIAL_SCAN_COMPLETE",
    "SCAN_ELIGIBILITY_EXPIRED",
    "FINDINGS_UNAVAILABLE",
    "UNSUPPORTED_IMAGE",
];
const FINDING_SEVERITIES: &[&str] = &[
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNTRIAGED",
];

/// The fields of the known event kinds the lints look at (dotted paths; arrays of objects count as
/// objects, as patterns see them).
const FIELDS: &[(&str, Holds)] = &[
    (
        "source",
        Holds::Words(&[
            "aws.ecr",
            "aws.inspector2",
            "scanbridge.trivy",
            "scanbridge.grype",
            "scanbridge.trivy-operator",
        ]),
    ),
    (
        "detail-type",
        Holds::Words(&[
            "ECR Image Scan",
            "ECR Image Action",
            "Inspector2 Scan",
            "Inspector2 Finding",
            "Image Scan",
        ]),
    ),
    ("detail", Holds::Object),
    ("detail.finding-severity-counts", Holds::Object),
    ("detail.scan-status", Holds::Words(SCAN_STATUSES)),
    ("detail.action-type", Holds::Words(&["PUSH", "DELETE"])),
    ("detail.result", Holds::Words(&["SUCCESS", "FAILURE"])),
    ("detail.severity", Holds::Words(FINDING_SEVERITIES)),
    (
        "detail.status",
        Holds::Words(&["ACTIVE", "SUPPRESSED", "CLOSED"]),
    ),
    (
        "detail.fixAvailable",
        Holds::Words(&["YES", "NO", "PARTIAL"]),
    ),
    ("detail.exploitAvailable", Holds::Words(&["YES", "NO"])),
    (
        "detail.type",
        Holds::Words(&[
            "PACKAGE_VULNERABILITY",
            "CODE_VULNERABILITY",
            "NETWORK_REACHABILITY",
        ]),
    ),
    ("detail.inspectorScore", Holds::Number),
    ("detail.epss", Holds::Object),
    ("detail.epss.score", Holds::Number),
    ("detail.packageVulnerabilityDetails", Holds::Object),
    ("detail.packageVulnerabilityDetails.cvss", Holds::Object),
    (
        "detail.packageVulnerabilityDetails.cvss.baseScore",
        Holds::Number,
    ),
    (
        "detail.packageVulnerabilityDetails.vulnerablePackages",
        Holds::Object,
    ),
    (
        "detail.packageVulnerabilityDetails.vulnerablePackages.epoch",
        Holds::Number,
    ),
    ("detail.remediation", Holds::Object),
    ("detail.remediation.recommendation", Holds::Object),
    ("detail.resources", Holds::Object),
    ("detail.resources.details", Holds::Object),
    (
        "detail.resources.details.awsEcrContainerImage",
        Holds::Object,
    ),
    ("detail.findings", Holds::Object),
];

const COUNTS: &str = "detail.finding-severity-counts.";

/// What the known event kinds hold at `path`.
fn holds(path: &str) -> Option<Holds> {
    if let Some(sev) = path.strip_prefix(COUNTS) {
        return (SEVERITIES.contains(&sev) || sev == "TOTAL").then_some(Holds::Number);
    }
    FIELDS.iter().find(|(p, _)| *p == path).map(|&(_, h)| h)
}

/// The warnings for a pattern's text; none when it does not parse.
pub fn lint(pattern_text: &str) -> Vec<Lint> {
    match Pattern::parse(pattern_text) {
        Ok(pattern) => lint_pattern(&pattern),
        Err(_) => Vec::new(),
    }
}

/// The warnings for a parsed pattern (parsed with whatever limits the caller applies).
pub fn lint_pattern(pattern: &Pattern) -> Vec<Lint> {
    let mut out = Vec::new();
    for (cond, branches) in pattern.conditions() {
        let inspector_only = branches
            .iter()
            .all(|&b| only_inspector_scans(&pattern.branches()[b].conditions));
        lint_condition(cond, inspector_only, &mut out);
    }
    out
}

/// Whether a branch only ever matches Inspector2 events (which carry zero counts).
fn only_inspector_scans(conds: &[Condition]) -> bool {
    let only = |path: &str, ok: &dyn Fn(&str) -> bool| {
        conds.iter().any(|c| {
            c.path == path
                && c.matchers.iter().all(|m| match m {
                    Matcher::Exact(Literal::String(s)) => ok(s),
                    _ => false,
                })
        })
    };
    only("source", &|s| s == "aws.inspector2")
        || only("detail-type", &|s| s.starts_with("Inspector2"))
}

fn push(out: &mut Vec<Lint>, pointer: String, message: String) {
    if !out
        .iter()
        .any(|l| l.pointer == pointer && l.message == message)
    {
        out.push(Lint { pointer, message });
    }
}

/// A value as the pattern writes it (for messages).
fn shown(l: &Literal) -> String {
    match l {
        Literal::String(s) => serde_json::Value::String(s.clone()).to_string(),
        Literal::Number(n) => n.text.clone(),
        Literal::Bool(b) => b.to_string(),
        Literal::Null => "null".into(),
    }
}

fn lint_condition(cond: &Condition, inspector_only: bool, out: &mut Vec<Lint>) {
    let path = cond.path.as_str();
    let misread = operator_as_literal(cond, out);
    let holds = holds(path);
    for (i, m) in cond.matchers.iter().enumerate() {
        let at = cond.matcher_pointer(i);
        match m {
            Matcher::Wildcard(w) if !w.has_star() => push(
                out,
                at.clone(),
                format!(
                    "{{\"wildcard\": {}}} has no *, so it only matches that exact string: write it as a plain value, {}",
                    serde_json::Value::String(w.text.clone()),
                    serde_json::Value::String(w.text.replace("\\*", "*").replace("\\\\", "\\")),
                ),
            ),
            Matcher::Exists(true) if matches!(holds, Some(Holds::Object)) => push(
                out,
                at.clone(),
                format!(
                    "{path} holds an object in the events scanbridge knows, and patterns match values only, so exists: true never holds here: test a field inside it (e.g. {})",
                    inside_example(path)
                ),
            ),
            Matcher::Exact(lit @ Literal::String(s)) => value_lints(path, holds, lit, s, &at, out),
            _ => {}
        }
        if let (
            Matcher::AnythingBut(scanbridge_pattern::AnythingBut::Strings(words)),
            Some(Holds::Words(known)),
        ) = (m, holds)
        {
            for w in words {
                if let Some(right) = wrong_case(w, known) {
                    push(
                        out,
                        at.clone(),
                        format!(
                            "{path} is spelt {} in the events scanbridge knows, so anything-but {} excludes nothing: write {}",
                            serde_json::Value::String(right.to_string()),
                            serde_json::Value::String(w.clone()),
                            serde_json::Value::String(right.to_string())
                        ),
                    );
                }
            }
        }
    }
    if !misread {
        zero_count(cond, inspector_only, out);
    }
    count_key_case(cond, out);
}

/// Lints on one plain string value.
fn value_lints(
    path: &str,
    holds: Option<Holds>,
    lit: &Literal,
    s: &str,
    at: &str,
    out: &mut Vec<Lint>,
) {
    match holds {
        Some(Holds::Words(known)) => {
            if let Some(right) = wrong_case(s, known) {
                push(
                    out,
                    at.to_string(),
                    format!(
                        "{path} is spelt {} in the events scanbridge knows, so {} never matches: write {} (or {{\"equals-ignore-case\": {}}})",
                        serde_json::Value::String(right.to_string()),
                        shown(lit),
                        serde_json::Value::String(right.to_string()),
                        shown(lit)
                    ),
                );
            }
        }
        Some(Holds::Number) if is_number_text(s) => push(
            out,
            at.to_string(),
            format!(
                "{path} is a number in these events and a number never equals a string, so {} never matches: write {s} without quotes (or {{\"numeric\": [\"=\", {s}]}})",
                shown(lit)
            ),
        ),
        _ => {}
    }
}

/// The known word `s` is `known` spelt in another case, if it is.
fn wrong_case(s: &str, known: &[&'static str]) -> Option<&'static str> {
    if known.contains(&s) {
        return None;
    }
    known.iter().copied().find(|k| k.eq_ignore_ascii_case(s))
}

/// Whether `s` is the text of a JSON number.
fn is_number_text(s: &str) -> bool {
    scanbridge_pattern::json::parse(s.trim().as_bytes())
        .is_ok_and(|v| matches!(v, scanbridge_pattern::json::Json::Number(_)))
}

/// A field inside an object path, for the exists lint's fix.
fn inside_example(path: &str) -> String {
    match path {
        "detail.finding-severity-counts" => format!("{path}.CRITICAL: [{{\"exists\": true}}]"),
        "detail" => "detail.scan-status: [{\"exists\": true}]".to_string(),
        _ => format!("{path}.<field>: [{{\"exists\": true}}]"),
    }
}

/// `"CRITICAL": [">", 0]`: an operator written as a plain string in the value list. Whether it was.
fn operator_as_literal(cond: &Condition, out: &mut Vec<Lint>) -> bool {
    let strings: Vec<(usize, &str)> = cond
        .matchers
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match m {
            Matcher::Exact(Literal::String(s)) => Some((i, s.as_str())),
            _ => None,
        })
        .collect();
    let numbers: Vec<&str> = cond
        .matchers
        .iter()
        .filter_map(|m| match m {
            Matcher::Exact(Literal::Number(n)) => Some(n.text.as_str()),
            _ => None,
        })
        .collect();
    const COMPARISONS: [&str; 5] = [">", ">=", "<", "<=", "="];
    if let Some(&(i, op)) = strings.iter().find(|(_, s)| COMPARISONS.contains(s))
        && !numbers.is_empty()
    {
        let terms: Vec<String> = cond
            .matchers
            .iter()
            .filter_map(|m| match m {
                Matcher::Exact(l) => Some(shown(l)),
                _ => None,
            })
            .collect();
        push(
            out,
            cond.matcher_pointer(i),
            format!(
                "[{}] matches the string {} or the number {}; it compares nothing: to compare numbers write [{{\"numeric\": [{}]}}]",
                terms.join(", "),
                serde_json::Value::String(op.to_string()),
                numbers.join(" or the number "),
                terms.join(", ")
            ),
        );
        return true;
    }
    const OPERATORS: [&str; 8] = [
        "prefix",
        "suffix",
        "wildcard",
        "equals-ignore-case",
        "anything-but",
        "cidr",
        "exists",
        "numeric",
    ];
    if let [(0, op), ..] = strings.as_slice()
        && OPERATORS.contains(op)
        && cond.matchers.len() == 2
        && let Matcher::Exact(operand) = &cond.matchers[1]
    {
        push(
            out,
            cond.matcher_pointer(0),
            format!(
                "[{}, {}] matches the string {} or {}; to use the operator write [{{{}: {}}}]",
                serde_json::Value::String(op.to_string()),
                shown(operand),
                serde_json::Value::String(op.to_string()),
                shown(operand),
                serde_json::Value::String(op.to_string()),
                shown(operand)
            ),
        );
        return true;
    }
    false
}

/// `[0]` or `numeric = 0` (or any range holding 0) on an ECR severity count: basic scanning leaves
/// a severity with no findings out, so the value is never 0.
fn zero_count(cond: &Condition, inspector_only: bool, out: &mut Vec<Lint>) {
    let Some(sev) = cond.path.strip_prefix(COUNTS) else {
        return;
    };
    if !SEVERITIES.contains(&sev) || inspector_only || cond.allows_absence() {
        return;
    }
    let zero = scanbridge_pattern::number::comparable("0");
    let Some(i) = cond.matchers.iter().position(|m| match m {
        Matcher::Exact(Literal::Number(n)) => n.cmp.is_some() && n.cmp == zero,
        Matcher::Numeric(r) => zero.is_some_and(|z| r.contains(z)),
        _ => false,
    }) else {
        return;
    };
    push(
        out,
        cond.matcher_pointer(i),
        format!(
            "In ECR basic scanning a severity with no findings is left out of finding-severity-counts, not 0, so this never matches an image with no {sev} findings: add {{\"exists\": false}} to the list (Inspector2 Scan events do carry zeros)"
        ),
    );
}

/// `"finding-severity-counts": {"critical": ...}`: a severity key in the wrong case.
fn count_key_case(cond: &Condition, out: &mut Vec<Lint>) {
    let Some(sev) = cond.path.strip_prefix(COUNTS) else {
        return;
    };
    if SEVERITIES.contains(&sev) || sev == "TOTAL" {
        return;
    }
    if let Some(right) = SEVERITIES
        .iter()
        .chain(["TOTAL"].iter())
        .find(|k| k.eq_ignore_ascii_case(sev))
    {
        push(
            out,
            cond.pointer.clone(),
            format!(
                "severity keys are upper case in finding-severity-counts, so {sev:?} is never there: write {right:?}"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data-driven cases: tests/fixtures/lints.json (a pattern, and the lints it must give: each
    /// lint's pointer and words its message must hold).
    #[test]
    fn lint_cases() {
        let text = include_str!("../tests/fixtures/lints.json");
        let cases: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        assert!(cases.len() >= 20);
        let mut failures = Vec::new();
        for c in &cases {
            let name = c["name"].as_str().unwrap();
            let pattern = match &c["pattern"] {
                serde_json::Value::String(raw) => raw.clone(),
                other => other.to_string(),
            };
            let got = lint(&pattern);
            let want = c["lints"].as_array().unwrap();
            let ok = got.len() == want.len()
                && got.iter().zip(want).all(|(g, w)| {
                    g.pointer == w["pointer"].as_str().unwrap()
                        && w["says"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .all(|s| g.message.contains(s.as_str().unwrap()))
                });
            if !ok {
                failures.push(format!("{name}: got {got:#?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn lints_never_change_a_verdict_and_unparsable_patterns_have_none() {
        assert!(lint("{not json").is_empty());
        assert!(lint(r#"{"a": []}"#).is_empty());
        // The linted pattern still parses and matches as before.
        let text = r#"{"detail": {"finding-severity-counts": {"CRITICAL": [">", 0]}}}"#;
        assert!(!lint(text).is_empty());
        let p = Pattern::parse(text).unwrap();
        let ev = serde_json::json!({"detail": {"finding-severity-counts": {"CRITICAL": 0}}});
        assert!(p.matches(&ev));
    }
}
