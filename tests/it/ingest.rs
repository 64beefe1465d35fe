//! Ingest over real sockets: samples, batches with bad events, size limits, authentication, and the
//! default configuration printing console alerts.

use serde_json::{Value, json};

use crate::daemon::{Daemon, Home, Receiver, cli, event, rule};
use crate::support::shared;

const SAMPLES: [&str; 7] = [
    "ecr-image-action-push.json",
    "ecr-image-scan-clean.json",
    "ecr-image-scan-critical.json",
    "ecr-image-scan-failed.json",
    "ecr-image-scan-high-only.json",
    "inspector2-finding.json",
    "inspector2-scan.json",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shared_sample_is_accepted_and_delivered_unchanged() {
    let rx = Receiver::start().await;
    let everything = rule(
        "everything",
        json!({"source": [{"prefix": "aws."}]}),
        &["hook"],
    );
    let home = Home::new(&rx.target(), &[("everything.json", &everything)]);
    let d = home.start();
    let dir = shared().join("samples");
    let mut sent = Vec::new();
    for name in SAMPLES {
        let text =
            std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let original: Value = serde_json::from_str(&text).unwrap();
        let (status, body) = d.post(text).await;
        assert_eq!(status, 202, "{name}: {body}");
        assert_eq!(body["accepted"], 1, "{name}: {body}");
        assert_eq!(
            body["results"][0]["id"], original["id"],
            "{name}: the event's own id is kept"
        );
        sent.push(original);
    }
    let hits = rx.wait_hits(SAMPLES.len(), &d).await;
    for original in &sent {
        let hit = hits
            .iter()
            .find(|h| h.body["id"] == original["id"])
            .expect("delivered");
        assert_eq!(
            &hit.body, original,
            "a complete envelope is delivered as sent"
        );
        assert!(hit.headers.contains_key("idempotency-key"));
    }
    let keys: std::collections::BTreeSet<_> = hits
        .iter()
        .map(|h| h.headers["idempotency-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), SAMPLES.len(), "delivery ids are distinct");
    assert_eq!(
        d.metric("scanbridge_events_accepted_total").await,
        SAMPLES.len() as f64
    );
    assert_eq!(
        d.metric("scanbridge_rule_matches_total{rule=\"everything\"}")
            .await,
        SAMPLES.len() as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_in_a_batch_is_rejected_with_its_index_and_the_rest_accepted() {
    let home = Home::new("", &[]);
    let d = home.start();
    let batch =
        json!([event("ok-1", "ci"), {"source": "ci", "detail": {}}, 42, event("ok-2", "ci")]);
    let (status, body) = d.post(batch.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(2), Some(2)),
        "{body}"
    );
    let r = body["results"].as_array().unwrap();
    assert_eq!(
        r[0],
        json!({"index": 0, "status": "accepted", "id": "ok-1"})
    );
    assert_eq!(r[1]["index"], 1);
    assert_eq!(r[1]["status"], "rejected");
    assert!(
        r[1]["error"].as_str().unwrap().contains("detail-type"),
        "{body}"
    );
    assert!(
        r[2]["error"].as_str().unwrap().contains("JSON object"),
        "{body}"
    );
    assert_eq!(r[3]["id"], "ok-2");

    // NDJSON with a malformed line, and an event without id gets one.
    let nd = format!(
        "{}\n{{not json\n{}\n",
        event("nd-1", "ci"),
        json!({"source":"ci","detail-type":"t","detail":{}})
    );
    let (status, body) = d.post(nd).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["results"][1]["status"], "rejected");
    assert!(
        body["results"][1]["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(
        body["results"][2]["id"].as_str().unwrap().len(),
        36,
        "an id is assigned: {body}"
    );

    // Nothing valid at all: 400.
    let (status, _) = d.post("{\"source\": 1}").await;
    assert_eq!(status, 400);
    assert_eq!(d.metric("scanbridge_events_rejected_total").await, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_events_get_413() {
    let home = Home::new("[server]\nmax_body_bytes = 1000000\n", &[]);
    let d = home.start();
    let mut big = event("big", "ci");
    big["detail"]["pad"] = json!("x".repeat(300 * 1024));
    let (status, body) = d.post(big.to_string()).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("over the limit"),
        "{body}"
    );
    // In a batch, only the big one is rejected.
    let (status, body) = d.post(json!([big, event("small", "ci")]).to_string()).await;
    assert_eq!(status, 202);
    assert_eq!(body["results"][0]["status"], "rejected");
    assert_eq!(body["results"][1]["status"], "accepted");
    // A body over max_body_bytes never reaches the handler.
    let huge = "[".to_owned() + &vec![event("e", "ci").to_string(); 20_000].join(",") + "]";
    assert!(huge.len() > 1_000_000);
    let (status, _) = d.post(huge).await;
    assert_eq!(status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_token_is_required_and_never_logged() {
    let home = Home::new("[server]\ntoken = \"tok-9f8e7d\"\n", &[]);
    let d = home.start();
    let c = reqwest::Client::new();
    let body = event("a1", "ci").to_string();
    let none = c
        .post(d.url("/events"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let wrong = c
        .post(d.url("/events"))
        .bearer_auth("tok-9f8e7e")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let aws_none = c
        .post(d.url("/"))
        .header("x-amz-target", "AWSEvents.PutEvents")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(aws_none.status(), 401);
    let right = c
        .post(d.url("/events"))
        .bearer_auth("tok-9f8e7d")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 202);
    assert_eq!(
        c.get(d.url("/healthz")).send().await.unwrap().status(),
        200,
        "health stays open"
    );
    assert_eq!(c.get(d.url("/readyz")).send().await.unwrap().status(), 200);
    let logs = d.stop();
    assert!(!logs.contains("tok-9f8e7d"), "{logs}");
}

/// The house rule: shipped defaults alone print a readable alert for a critical scan.
#[test]
fn default_serve_prints_a_console_alert_for_a_critical_scan() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let d = Daemon::spawn(&["serve", "--listen", "127.0.0.1:0", "--data-dir", &data_dir]);
    send_critical_sample(&d);
    wait_for_stdout(&d, "digest:");
    let alert = d.stdout();
    assert!(alert.contains("rule critical-findings"), "{alert}");
    assert!(alert.contains("payments/api:v2.14.0"), "{alert}");
    assert!(
        alert.contains("CRITICAL 2  HIGH 7  MEDIUM 19  LOW 4  INFORMATIONAL 3  UNDEFINED 0"),
        "{alert}"
    );
    assert!(
        !alert.contains("high-findings-production"),
        "payments/api is not a production repository"
    );
    d.stop();
}

#[test]
fn check_reports_every_error_and_exits_2() {
    let ok = cli(&["check"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("6 rule(s)"));

    let home = Home::new(
        "",
        &[
            (
                "a.json",
                r#"{"name":"a","event_pattern":{"source":["x"]},"targets":["nowhere"]}"#,
            ),
            (
                "b.yaml",
                "name: b\nevent_pattern:\n  detail:\n    n: [{numeric: [\">\", \"zero\"]}]\ntargets: [console]\n",
            ),
        ],
    );
    let rules = home.path().join("rules").display().to_string();
    let out = cli(&["check", "--rules", &rules]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a.json: /targets/0: unknown target \"nowhere\""),
        "{err}"
    );
    assert!(err.contains("b.yaml: /event_pattern/detail/n"), "{err}");
    assert!(
        err.contains("Event pattern is not valid. Reason: "),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");

    std::fs::write(
        home.path().join("bad.toml"),
        "[delivery]\nmax_atempts = 3\n",
    )
    .unwrap();
    let bad = home.path().join("bad.toml").display().to_string();
    let out = cli(&["check", "--config", &bad]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_atempts"));
    let out = cli(&["serve", "--config", &bad]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "serve refuses a bad configuration"
    );
}

#[test]
fn serve_stdin_ingests_ndjson() {
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let mut d = Daemon::spawn_with(
        &[
            "serve",
            "--stdin",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
        ],
        std::process::Stdio::piped(),
    );
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ecr-image-scan-critical.json"
    );
    let critical: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let mut stdin = d.child.stdin.take().unwrap();
    writeln!(stdin, "{}\nnot json\n{}", event("s-1", "ci"), critical).unwrap();
    drop(stdin);
    wait_for_stdout(&d, "rule critical-findings");
    let logs = d.logs();
    assert!(
        logs.contains("accepted from stdin") && logs.contains("rejected from stdin"),
        "{logs}"
    );
    assert!(logs.contains("stdin closed"), "{logs}");
    d.stop();
}

#[test]
fn serve_outside_the_repository_uses_the_built_in_rules_and_data_dir() {
    // A fresh directory: no config.toml, no rules/, no data/. The embedded defaults must still alert.
    let home = tempfile::tempdir().unwrap();
    let d = Daemon::spawn_in(
        home.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        std::process::Stdio::null(),
    );
    assert!(
        d.logs().contains("using the built-in example rules"),
        "{}",
        d.logs()
    );
    send_critical_sample(&d);
    wait_for_stdout(&d, "digest:");
    assert!(
        d.stdout().contains("rule critical-findings"),
        "{}",
        d.stdout()
    );
    assert!(
        home.path().join("data/scanbridge.db").exists(),
        "the default data directory is ./data"
    );
    d.stop();
}

#[test]
fn resending_an_accepted_event_id_says_duplicate_and_alerts_once() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let d = Daemon::spawn(&["serve", "--listen", "127.0.0.1:0", "--data-dir", &data_dir]);
    let first = send_critical_sample(&d);
    let second = send_critical_sample(&d);
    assert!(first.contains("\"status\":\"accepted\""), "{first}");
    assert!(second.contains("\"status\":\"duplicate\""), "{second}");
    wait_for_stdout(&d, "digest:");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        d.stdout().matches("=== scanbridge alert").count(),
        1,
        "{}",
        d.stdout()
    );
    d.stop();
}

/// Waits until the daemon's stdout (the console target) shows `needle`.
fn wait_for_stdout(d: &Daemon, needle: &str) {
    let start = std::time::Instant::now();
    while !d.stdout().contains(needle) {
        assert!(
            start.elapsed() < crate::daemon::PATIENCE,
            "no alert:\n{}",
            d.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends the repository's CRITICAL scan fixture to the daemon with `scanbridge send`.
fn send_critical_sample(d: &Daemon) -> String {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ecr-image-scan-critical.json"
    );
    let out = cli(&["send", "--url", &d.url(""), fixture]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    stdout
}
