//! `scanbridge route` (offline: matches, fan-out, rendered payloads, exit codes) and
//! `scanbridge notify-test` (one real send, outcome and exit code) through the real binary.

use serde_json::json;

use crate::daemon::{Home, Receiver, cli};
use crate::support::{sample, stderr, stdout};

fn home_with(config: &str) -> Home {
    let rule = json!({"name": "scans", "event_pattern": {"source": ["aws.ecr"], "detail": {"scan-status": ["COMPLETE"]}},
        "targets": ["alerts", {"target": "hook", "input_path": "$.detail.finding-severity-counts"}]});
    Home::new(config, &[("r.json", &rule.to_string())])
}

const TARGETS: &str = "[targets.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook?token=zzz\"\n\
    [targets.slack]\ntype = \"slack\"\nwebhook_url = \"http://127.0.0.1:9/services/T/B/x\"\n\
    [targets.alerts]\ntype = \"topic\"\nsubscriptions = [{ target = \"slack\", filter_policy = { detail = { finding-severity-counts = { CRITICAL = [{ exists = true }] } } } }]\n";

#[test]
fn route_shows_matches_fan_out_and_payloads_without_sending() {
    let home = home_with(TARGETS);
    let config = home.path().join("config.toml").display().to_string();
    let rules = home.path().join("rules").display().to_string();
    let route = |event: &str| {
        cli(&[
            "route",
            "--event",
            &sample(event),
            "--config",
            &config,
            "--rules",
            &rules,
        ])
    };

    let out = route("ecr-image-scan-critical.json");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let slack_id = scanbridge::delivery_id(
        "3f6a1c52-8e0b-4d1e-9a8f-5b2c7d9e1a01",
        "scans",
        "alerts/slack",
    );
    assert!(text.contains("rule scans: matches"), "{text}");
    assert!(
        text.contains(&format!(
            "-> topic alerts -> slack (slack)  delivery {slack_id}"
        )),
        "{text}"
    );
    assert!(
        text.contains("\"type\": \"header\""),
        "the Slack blocks: {text}"
    );
    assert!(
        text.contains("POST http://127.0.0.1:9/***"),
        "redacted URL: {text}"
    );
    assert!(
        text.contains("\"CRITICAL\": 2") && text.contains("\"INFORMATIONAL\": 3"),
        "input_path payload: {text}"
    );
    assert!(
        text.contains("1 of 1 rule matched; 2 deliveries would be sent"),
        "{text}"
    );

    let out = route("ecr-image-scan-high-only.json");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text.contains("topic alerts: no subscription's filter policy matches (slack)"),
        "{text}"
    );
    assert!(
        text.contains("1 of 1 rule matched; 1 delivery would be sent"),
        "{text}"
    );

    let out = route("ecr-image-scan-failed.json");
    assert_eq!(
        out.status.code(),
        Some(1),
        "no rule matches: {}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("0 of 1 rule matched; 0 deliveries would be sent"),
        "{}",
        stdout(&out)
    );

    let out = cli(&[
        "route",
        "--event",
        "/nonexistent.json",
        "--config",
        &config,
        "--rules",
        &rules,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = cli(&[
        "route", "--event", &config, "--config", &config, "--rules", &rules,
    ]);
    assert_eq!(out.status.code(), Some(2), "not JSON: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_sends_the_sample_and_reports_the_outcome() {
    let rx = Receiver::start().await;
    let home = Home::new(&rx.target(), &[]);
    let config = home.path().join("config.toml").display().to_string();
    let run = |args: &[&str]| {
        let config = config.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let mut all: Vec<&str> = vec!["notify-test"];
            all.extend(args.iter().map(String::as_str));
            all.extend(["--config", &config]);
            cli(&all)
        })
    };
    let out = run(&["hook"]).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with("hook: delivered in "),
        "{}",
        stdout(&out)
    );
    let hits = rx.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].body["detail"]["finding-severity-counts"]["CRITICAL"],
        2
    );
    assert!(
        hits[0].body["id"]
            .as_str()
            .unwrap()
            .starts_with("notify-test-")
    );

    let event = sample("inspector2-finding.json");
    run(&["hook", "--event", &event]).await.unwrap();
    assert_eq!(rx.hits()[1].body["detail-type"], "Inspector2 Finding");

    rx.fail(404);
    let out = run(&["hook"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("NOT delivered (permanent"),
        "{}",
        stdout(&out)
    );
    rx.fail(503);
    let out = run(&["hook"]).await.unwrap();
    assert!(
        stdout(&out).contains("NOT delivered (retryable") && stdout(&out).contains("503"),
        "{}",
        stdout(&out)
    );

    let out = run(&["nope"]).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no target \"nope\""),
        "{}",
        stderr(&out)
    );
}
