//! The AWS-validated conformance corpus (../shared/conformance), read at run time: every case must get
//! AWS's verdict, and every error case AWS's exact message.
//!
//! The corpus lives beside the repository (`../shared`, or `$SCANBRIDGE_SHARED`); it is not copied. A
//! missing corpus fails the test rather than skipping it: a green run must mean the corpus was checked.

use std::path::PathBuf;

use scanbridge_pattern::{Event, Pattern};
use serde_json::Value;

fn shared() -> PathBuf {
    match std::env::var_os("SCANBRIDGE_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

fn cases(file: &str) -> Vec<Value> {
    let path = shared().join("conformance").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("conformance corpus {} is required: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs one case; returns a description of the disagreement, if any.
fn check(case: &Value) -> Option<String> {
    let name = case["name"].as_str().unwrap();
    let expect = case["expect"].as_str().unwrap();
    let pattern_text = match &case["pattern"] {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    };
    let event_text = match &case["event"] {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    };
    let pattern = Pattern::parse(&pattern_text);
    let got = match (&pattern, Event::from_bytes(event_text.as_bytes())) {
        (Err(e), _) => {
            let want = case["aws_error"].as_str().unwrap_or("");
            if expect == "error" && e.to_string() == want {
                return None;
            }
            format!("error {e:?}")
        }
        (Ok(_), Err(_)) if expect == "invalid_event" => return None,
        (Ok(_), Err(e)) => format!("invalid event: {e}"),
        (Ok(p), Ok(ev)) => {
            // AWS rejects events without the envelope fields TestEventPattern requires.
            let envelope = ["id", "source", "detail-type", "account", "region", "time"];
            let complete = envelope
                .iter()
                .all(|k| ev.fields().iter().any(|f| f.path == *k));
            if expect == "invalid_event" && !complete {
                return None;
            }
            if p.matches_event(&ev) {
                "match".into()
            } else {
                "nomatch".into()
            }
        }
    };
    if got == expect {
        None
    } else {
        Some(format!(
            "{name}: expected {expect} ({:?}), got {got}",
            case["aws_error"]
        ))
    }
}

fn run(file: &str, expected_count: usize) {
    let cases = cases(file);
    assert_eq!(
        cases.len(),
        expected_count,
        "{file} should hold {expected_count} cases"
    );
    let failures: Vec<String> = cases.iter().filter_map(check).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree with AWS:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn aws_event_patterns_main_corpus() {
    run("aws-event-patterns.jsonl", 156);
}

#[test]
fn aws_event_patterns_extra_corpus() {
    run("aws-event-patterns-extra.jsonl", 20);
}

#[test]
fn every_error_case_carries_the_exact_aws_message() {
    let cases = cases("aws-event-patterns.jsonl");
    let errors: Vec<&Value> = cases.iter().filter(|c| c["expect"] == "error").collect();
    assert_eq!(errors.len(), 38);
    for c in errors {
        let text = match &c["pattern"] {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        };
        let e = Pattern::parse(&text).expect_err(c["name"].as_str().unwrap());
        assert_eq!(
            Some(e.to_string().as_str()),
            c["aws_error"].as_str(),
            "{}",
            c["name"]
        );
    }
}
