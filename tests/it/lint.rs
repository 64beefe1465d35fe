//! Pattern lints on every surface: `test-pattern`, `check`, `route` and the daemon's log (at start and
//! on hot reload), each with the JSON pointer and the fix; `--no-lint` turns them off, `--json`
//! carries them, and exit codes never change.

use serde_json::{Value, json};

use crate::daemon::{Home, Receiver, cli, rule};
use crate::support::{run, sample, stderr, stdout};

/// `"CRITICAL": [">", 0]` where `[{"numeric": [">", 0]}]` was meant.
const LITERAL: &str =
    r#"{"source": ["aws.ecr"], "detail": {"finding-severity-counts": {"CRITICAL": [">", 0]}}}"#;

#[test]
fn test_pattern_warns_with_pointer_and_fix_and_keeps_the_exit_code() {
    let ev = sample("ecr-image-scan-critical.json");
    let o = run(&["test-pattern", "-p", LITERAL, "-e", &ev], "");
    // The literal ">" or 0 is not in the event: no match, exit 1, as without lints.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "no match");
    let err = stderr(&o);
    assert!(
        err.contains("warning: [\">\", 0] matches the string \">\" or the number 0"),
        "{err}"
    );
    assert!(err.contains("[{\"numeric\": [\">\", 0]}]"), "{err}");
    assert!(
        err.contains("(at /detail/finding-severity-counts/CRITICAL/0)"),
        "{err}"
    );

    let o = run(&["test-pattern", "-p", LITERAL, "-e", &ev, "--no-lint"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));

    // --json carries them on each line; a clean pattern has no `lints` key.
    let o = run(&["test-pattern", "-p", LITERAL, "-e", &ev, "--json"], "");
    let line: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["result"], "nomatch");
    assert_eq!(
        line["lints"][0]["pointer"],
        "/detail/finding-severity-counts/CRITICAL/0"
    );
    assert!(
        line["lints"][0]["message"]
            .as_str()
            .unwrap()
            .contains("numeric")
    );
    let fixed = r#"{"source": ["aws.ecr"], "detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}"#;
    let o = run(&["test-pattern", "-p", fixed, "-e", &ev, "--json"], "");
    assert_eq!(o.status.code(), Some(0));
    let line: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["result"], "match");
    assert!(line.get("lints").is_none(), "{line}");
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[test]
fn check_warns_names_file_and_pointer_exits_0_and_speaks_json() {
    let home = Home::new(
        "",
        &[
            (
                "zero.json",
                &rule(
                    "no-critical",
                    json!({"detail": {"finding-severity-counts": {"CRITICAL": [0]}}}),
                    &["console"],
                ),
            ),
            (
                "case.json",
                &rule(
                    "failed",
                    json!({"detail": {"scan-status": ["failed"]}}),
                    &["console"],
                ),
            ),
            (
                "fine.json",
                &rule("fine", json!({"source": ["aws.ecr"]}), &["console"]),
            ),
        ],
    );
    let rules = home.path().join("rules").display().to_string();
    let o = cli(&["check", "--rules", &rules]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("zero.json: /event_pattern/detail/finding-severity-counts/CRITICAL/0: In ECR basic scanning"),
        "{err}"
    );
    assert!(err.contains("{\"exists\": false}"), "{err}");
    assert!(
        err.contains("case.json: /event_pattern/detail/scan-status/0:"),
        "{err}"
    );
    assert!(err.contains("write \"FAILED\""), "{err}");
    assert!(!err.contains("fine.json"), "{err}");
    assert!(stdout(&o).contains("3 rule(s)"), "{}", stdout(&o));
    assert!(stdout(&o).contains("2 warning(s)"), "{}", stdout(&o));

    let o = cli(&["check", "--rules", &rules, "--no-lint"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("warning"), "{}", stdout(&o));

    let o = cli(&["check", "--rules", &rules, "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["rules"], 3);
    let lints = v["lints"].as_array().unwrap();
    assert_eq!(lints.len(), 2, "{v}");
    assert!(
        lints
            .iter()
            .any(|l| l["rule"] == "failed" && l["pointer"] == "/event_pattern/detail/scan-status/0")
    );

    // An error still exits 2, in JSON too.
    home.write_rule(
        "broken.json",
        r#"{"name": "b", "event_pattern": {"a": []}, "targets": ["console"]}"#,
    );
    let o = cli(&["check", "--rules", &rules, "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["pointer"], "/event_pattern/a");
}

#[test]
fn the_shipped_rules_have_no_warnings() {
    let o = cli(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[test]
fn route_warns_about_the_rule_that_could_not_match() {
    let home = Home::new(
        "",
        &[(
            "literal.json",
            &rule(
                "literal",
                serde_json::from_str(LITERAL).unwrap(),
                &["console"],
            ),
        )],
    );
    let config = home.path().join("config.toml").display().to_string();
    let ev = sample("ecr-image-scan-critical.json");
    let o = cli(&["route", "--config", &config, "--event", &ev]);
    assert_eq!(o.status.code(), Some(1), "no rule matches: {}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("literal.json: /event_pattern/detail/finding-severity-counts/CRITICAL/0:"),
        "{err}"
    );
    let o = cli(&["route", "--config", &config, "--event", &ev, "--no-lint"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_logs_warnings_at_start_and_on_reload() {
    let rx = Receiver::start().await;
    let home = Home::new(
        &rx.target(),
        &[(
            "wild.json",
            &rule(
                "wild",
                json!({"detail": {"repository-name": [{"wildcard": "payments/api"}]}}),
                &["hook"],
            ),
        )],
    );
    let d = home.start();
    let wait_log = |needle: &'static str| {
        let d = &d;
        async move {
            for _ in 0..200 {
                if d.logs().contains(needle) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("{needle:?} not in the log:\n{}", d.logs());
        }
    };
    wait_log("has no *").await;
    assert!(d.logs().contains("/event_pattern/detail/repository-name/0"));

    home.write_rule(
        "count.json",
        &rule(
            "count",
            json!({"detail": {"finding-severity-counts": {"HIGH": ["5"]}}}),
            &["hook"],
        ),
    );
    d.wait_metric("scanbridge_rule_reloads_total", 1.0).await;
    wait_log("write 5 without quotes").await;
    // The rules are live all the same.
    assert_eq!(d.metric("scanbridge_rules_loaded").await, 2.0);
    d.stop();
}
