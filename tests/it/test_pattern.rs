//! `scanbridge test-pattern`: exit codes, input forms, explanations and the conformance batch mode.

use serde_json::Value;

use crate::support::{run, sample, shared, stderr, stdout};

const CRITICAL: &str = r#"{"source": ["aws.ecr"], "detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}"#;

#[test]
fn match_exits_0_and_no_match_exits_1() {
    let o = run(
        &[
            "test-pattern",
            "--pattern",
            CRITICAL,
            "--event",
            &sample("ecr-image-scan-critical.json"),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "match");

    let o = run(
        &[
            "test-pattern",
            "--pattern",
            CRITICAL,
            "--event",
            &sample("ecr-image-scan-high-only.json"),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o).trim(), "no match");
}

#[test]
fn invalid_pattern_exits_2_with_aws_message_and_pointer() {
    let o = run(
        &[
            "test-pattern",
            "-p",
            r#"{"detail": {"scan-status": []}}"#,
            "-e",
            "{}",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("Event pattern is not valid. Reason: Empty arrays are not allowed (at /detail/scan-status)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn invalid_event_exits_2_naming_the_fault() {
    let o = run(
        &[
            "test-pattern",
            "-p",
            CRITICAL,
            "-e",
            r#"{"detail": {"a": 1,}}"#,
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 1, column 20"), "{}", stderr(&o));

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("truncated.json");
    std::fs::write(&f, r#"{"detail": {"#).unwrap();
    let o = run(
        &["test-pattern", "-p", CRITICAL, "-e", f.to_str().unwrap()],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("truncated.json: not valid JSON at line 1, column 12: EOF while parsing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let o = run(
        &["test-pattern", "-p", "no/such/pattern.json", "-e", "{}"],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no/such/pattern.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn explain_names_the_field_and_what_the_rule_needs() {
    let o = run(
        &[
            "test-pattern",
            "-p",
            CRITICAL,
            "-e",
            &sample("ecr-image-scan-high-only.json"),
            "--explain",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("detail.finding-severity-counts.CRITICAL: absent from the event; the rule needs numeric > 0"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains(r#"source: "aws.ecr" satisfies "aws.ecr""#),
        "{}",
        stdout(&o)
    );
}

#[test]
fn pattern_from_stdin_and_json_output() {
    let o = run(
        &[
            "test-pattern",
            "-p",
            "-",
            "-e",
            &sample("ecr-image-scan-critical.json"),
            "--json",
            "--explain",
        ],
        CRITICAL,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["result"], "match");
    // Fields come in pattern order: source, then the CRITICAL count.
    assert_eq!(
        v["explain"][0]["fields"][1]["path"],
        "detail.finding-severity-counts.CRITICAL"
    );
    assert_eq!(v["explain"][0]["fields"][1]["held"], true);
    assert_eq!(
        v["explain"][0]["fields"][1]["reason"],
        "2 satisfies numeric > 0"
    );
}

#[test]
fn a_directory_of_events_reports_each() {
    let dir = shared().join("samples");
    let o = run(
        &["test-pattern", "-p", CRITICAL, "-e", dir.to_str().unwrap()],
        "",
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "not every sample is a CRITICAL scan"
    );
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert!(out.contains("ecr-image-scan-critical.json: match"), "{out}");
    assert!(out.contains("ecr-image-scan-clean.json: no match"), "{out}");
    // inspector2-scan has CRITICAL counts but its source is aws.inspector2.
    assert!(out.contains("inspector2-scan.json: no match"), "{out}");
}

#[test]
fn ndjson_on_stdin() {
    let events = "{\"source\": \"aws.ecr\", \"detail\": {\"finding-severity-counts\": {\"CRITICAL\": 1}}}\n\n\
                  {\"source\": \"aws.ecr\", \"detail\": {}}\n";
    let o = run(
        &["test-pattern", "-p", CRITICAL, "-e", "-", "--json"],
        events,
    );
    assert_eq!(o.status.code(), Some(1));
    let results: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["event"], "<stdin>:1");
    assert_eq!(results[0]["result"], "match");
    assert_eq!(results[1]["event"], "<stdin>:3");
    assert_eq!(results[1]["result"], "nomatch");
}

#[test]
fn require_envelope_rejects_partial_events_like_aws() {
    let o = run(
        &[
            "test-pattern",
            "-p",
            r#"{"a": ["x"]}"#,
            "-e",
            r#"{"a": "x"}"#,
            "--require-envelope",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("missing: id, source, detail-type, account, region, time"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cases_mode_reproduces_the_aws_corpus() {
    let corpus = shared().join("conformance/aws-event-patterns.jsonl");
    let o = run(&["test-pattern", "--cases", corpus.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let expected: Vec<Value> = std::fs::read_to_string(&corpus)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 156);
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g["name"], e["name"]);
        assert_eq!(g["result"], e["expect"], "{}", e["name"]);
        if e["expect"] == "error" {
            assert_eq!(g["message"], e["aws_error"], "{}", e["name"]);
        } else {
            assert!(g.get("message").is_none());
        }
    }
}

#[test]
fn cases_mode_judges_events_like_test_event_pattern() {
    let corpus = shared().join("conformance/aws-event-patterns-extra.jsonl");
    let o = run(&["test-pattern", "--cases", corpus.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<Value> = std::fs::read_to_string(&corpus)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (g, e) in got.iter().zip(&expected) {
        let want = if e["expect"] == "invalid_event" {
            "error"
        } else {
            e["expect"].as_str().unwrap()
        };
        assert_eq!(g["result"], want, "{}", e["name"]);
    }
}

#[test]
fn cases_mode_reports_bad_lines_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cases.jsonl");
    std::fs::write(
        &f,
        "{\"name\": \"ok\", \"pattern\": {\"a\": [\"x\"]}, \"event\": {\"a\": \"x\"}}\nnot json\n",
    )
    .unwrap();
    let o = run(&["test-pattern", "--cases", f.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cases.jsonl:2"), "{}", stderr(&o));
    // The good line was still evaluated (as TestEventPattern: the event lacks the envelope).
    assert!(stdout(&o).contains("\"name\":\"ok\""), "{}", stdout(&o));
}
