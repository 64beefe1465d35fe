//! Alerts people keep reading, end to end through the real binary: silences (CLI, routing, metrics,
//! `route`), deduplication, new-findings-only with deltas, rate limits and durable digests, on both
//! store backends.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::{Home, Receiver};
use crate::support::sample;

fn scan_event(id: &str, repo: &str, digest: &str, counts: Value) -> Value {
    json!({"id": id, "source": "aws.ecr", "detail-type": "ECR Image Scan",
        "account": "123456789012", "region": "us-east-1",
        "detail": {"repository-name": repo, "image-digest": digest, "image-tags": ["v1"],
            "scan-status": "COMPLETE", "finding-severity-counts": counts}})
}

fn scans_rule(extra: Value, target: &str) -> String {
    let mut r =
        json!({"name": "scans", "event_pattern": {"source": ["aws.ecr"]}, "targets": [target]});
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r.to_string()
}

/// A CLI tool on the home's store (either backend).
fn run(home: &Home, args: &[&str]) -> (bool, String, String) {
    let out = home.tool(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

on_both_stores! {
async fn a_silence_mutes_matching_events_until_expired(store: Store) {
    let rx = Receiver::start().await;
    let home = Home::on(&store, &rx.target(), &[("r.json", &scans_rule(json!({}), "hook"))]);
    let d = home.start();
    let (ok, id, err) = run(
        &home,
        &[
            "silence",
            "add",
            "--match",
            "detail.repository-name=payments/*",
            "--expires",
            "1h",
            "--comment",
            "payments rebuild in progress",
            "--author",
            "alice",
        ],
    );
    assert!(ok, "{err}");
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 12, "{id}");

    // A bad matcher is refused and stores nothing.
    let (ok, _, err) = run(
        &home,
        &[
            "silence",
            "add",
            "--match",
            "nope",
            "--expires",
            "1h",
            "--comment",
            "x",
        ],
    );
    assert!(!ok && err.contains("nope"), "{err}");

    d.post(std::fs::read_to_string(sample("ecr-image-scan-critical.json")).unwrap())
        .await;
    d.post(std::fs::read_to_string(sample("ecr-image-scan-high-only.json")).unwrap())
        .await;
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["detail"]["repository-name"], "web/frontend");
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"scans\",target=\"hook\",reason=\"silenced\"}",
        1.0,
    )
    .await;
    assert_eq!(d.metric("scanbridge_silences_active").await, 1.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits().len(), 1, "the payments scan stays silenced");

    // Visible in route, in the listing, and in the suppressed list with the silence id.
    let (ok, out, _) = run(
        &home,
        &[
            "route",
            "--event",
            &sample("ecr-image-scan-critical.json"),
        ],
    );
    assert!(ok);
    assert!(
        out.contains(&format!("silenced by {id}")) && out.contains("payments rebuild"),
        "{out}"
    );
    let (_, list, _) = run(&home, &["silence", "list"]);
    assert!(
        list.contains(&id) && list.contains("alice") && list.contains("payments/*"),
        "{list}"
    );
    let (_, sup, _) = run(&home, &["suppressed", "--json"]);
    let first: Value = serde_json::from_str(sup.lines().next().expect("one suppressed")).unwrap();
    assert_eq!(first["reason"], "silenced");
    assert!(first["detail"].as_str().unwrap().contains(&id), "{first}");

    // Expired: the next payments scan is delivered.
    let (ok, out, _) = run(&home, &["silence", "expire", &id]);
    assert!(ok, "{out}");
    let (ok, _, _) = run(&home, &["silence", "expire", "doesnotexist"]);
    assert!(!ok);
    let mut again: Value = serde_json::from_str(
        &std::fs::read_to_string(sample("ecr-image-scan-critical.json")).unwrap(),
    )
    .unwrap();
    again["id"] = json!("critical-again");
    d.post(again.to_string()).await;
    let hits = rx.wait_hits(2, &d).await;
    assert_eq!(hits[1].body["id"], "critical-again");
    let (_, list, _) = run(&home, &["silence", "list"]);
    assert!(
        !list.contains(&id),
        "expired silences are not listed without --all: {list}"
    );
    let (_, list, _) = run(&home, &["silence", "list", "--all"]);
    assert!(list.contains(&id) && list.contains("expired"), "{list}");
}

async fn cve_allowlist_mutes_one_cve_for_one_repository(store: Store) {
    let rx = Receiver::start().await;
    let rule = json!({"name": "scans", "event_pattern": {"source": ["aws.inspector2"]}, "targets": ["hook"]});
    let home = Home::on(&store, &rx.target(), &[("r.json", &rule.to_string())]);
    let d = home.start();
    let (ok, _, err) = run(
        &home,
        &[
            "silence",
            "add",
            "--cve",
            "CVE-2026-10001",
            "--repository",
            "payments/worker",
            "--expires",
            "2099-12-31",
            "--comment",
            "not reachable: no TLS client in this image",
        ],
    );
    assert!(ok, "{err}");
    let finding: Value =
        serde_json::from_str(&std::fs::read_to_string(sample("inspector2-finding.json")).unwrap())
            .unwrap();
    let mut other_repo = finding.clone();
    other_repo["id"] = json!("other-repo");
    other_repo["detail"]["resources"][0]["details"]["awsEcrContainerImage"]["repositoryName"] =
        json!("web/frontend");
    d.post(finding.to_string()).await;
    d.post(other_repo.to_string()).await;
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["id"], "other-repo");
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"scans\",target=\"hook\",reason=\"silenced\"}",
        1.0,
    )
    .await;
}

async fn duplicates_within_the_window_are_suppressed_and_recorded(store: Store) {
    let rx = Receiver::start().await;
    let rule = scans_rule(json!({"dedup": {"window": "1h"}}), "hook");
    let home = Home::on(&store, &rx.target(), &[("r.json", &rule)]);
    let d = home.start();
    let counts = json!({"CRITICAL": 2});
    for i in 0..3 {
        // ECR re-sends the same scan with new event ids; a zero count present or absent is the same.
        let mut c = counts.clone();
        if i == 2 {
            c["LOW"] = json!(0);
        }
        d.post(scan_event(&format!("dup-{i}"), "payments/api", "sha256:aa", c).to_string())
            .await;
        if i == 0 {
            rx.wait_hits(1, &d).await;
        }
    }
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"scans\",target=\"hook\",reason=\"duplicate\"}",
        2.0,
    )
    .await;
    // New counts are news.
    d.post(scan_event("dup-3", "payments/api", "sha256:aa", json!({"CRITICAL": 3})).to_string())
        .await;
    let hits = rx.wait_hits(2, &d).await;
    assert_eq!(hits[1].body["id"], "dup-3");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.hits().len(), 2);
    let (_, sup, _) = run(&home, &["suppressed", "--json"]);
    let rows: Vec<Value> = sup
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{sup}");
    assert!(rows.iter().all(|r| {
        r["reason"] == "duplicate"
            && r["detail"]
                .as_str()
                .unwrap()
                .starts_with("duplicate of delivery ")
    }));
}

async fn new_findings_only_and_slack_shows_the_delta(store: Store) {
    let rx = Receiver::start().await;
    let config = format!(
        "{}[targets.slack]\ntype = \"slack\"\nwebhook_url = \"http://{}/services/T/B/x\"\n",
        rx.target(),
        rx.addr
    );
    let rule = json!({"name": "scans", "event_pattern": {"source": ["aws.ecr"]},
        "targets": ["slack"], "notify_on": "new_findings"});
    let home = Home::on(&store, &config, &[("r.json", &rule.to_string())]);
    let d = home.start();
    let post = |id: &str, c: Value| scan_event(id, "payments/api", "sha256:aa", c).to_string();
    d.post(post("n1", json!({"HIGH": 7}))).await;
    rx.wait_hits(1, &d).await;
    d.post(post("n2", json!({"HIGH": 7}))).await; // same: not new
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"scans\",target=\"slack\",reason=\"not_new\"}",
        1.0,
    )
    .await;
    d.post(post("n3", json!({"HIGH": 5, "CRITICAL": 2}))).await; // new CRITICAL
    let hits = rx.wait_hits(2, &d).await;
    let text = hits[1].body["text"].as_str().unwrap();
    // Slack mrkdwn escapes `>`; Slack shows "CRITICAL 0 -> 2".
    assert!(
        text.ends_with("(sha256:aa) · CRITICAL 0 -&gt; 2, HIGH 7 -&gt; 5 · rule scans"),
        "{text}"
    );
    let blocks = hits[1].body["blocks"].to_string();
    assert!(
        blocks.contains("Since the previous scan of this image"),
        "{blocks}"
    );
    d.post(post("n4", json!({"HIGH": 1, "CRITICAL": 1}))).await; // fewer: not new
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"scans\",target=\"slack\",reason=\"not_new\"}",
        2.0,
    )
    .await;
    assert_eq!(rx.hits().len(), 2);
}

async fn a_rate_limited_target_gets_everything_spaced_out(store: Store) {
    let rx = Receiver::start().await;
    let config = format!(
        "{}rate_limit = {{ per_second = 5, burst = 1 }}\n",
        rx.target()
    );
    let home = Home::on(&store, &config, &[("r.json", &scans_rule(json!({}), "hook"))]);
    let d = home.start();
    let start = Instant::now();
    let batch: Vec<Value> = (0..6)
        .map(|i| {
            scan_event(
                &format!("rl-{i}"),
                &format!("r{i}"),
                "sha256:aa",
                json!({"LOW": 1}),
            )
        })
        .collect();
    let (status, _) = d.post(Value::Array(batch).to_string()).await;
    assert_eq!(status, 202);
    rx.wait_hits(6, &d).await;
    // burst 1 then 5/s: the 6th send is at least 1 s after the first.
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
    assert!(
        d.metric("scanbridge_deliveries_delayed_total{target=\"hook\"}")
            .await
            >= 1.0
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids: Vec<String> = rx
        .hits()
        .iter()
        .map(|h| h.body["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["rl-0", "rl-1", "rl-2", "rl-3", "rl-4", "rl-5"],
        "none dropped, none twice"
    );
    assert_eq!(
        rx.attempts(),
        6,
        "throttled deliveries were not attempted early"
    );
}

async fn a_digest_folds_a_burst_into_one_message_and_survives_a_restart(store: Store) {
    let rx = Receiver::start().await;
    let config = format!(
        "[targets.slack]\ntype = \"slack\"\nwebhook_url = \"http://{}/services/T/B/x\"\n",
        rx.addr
    );
    let rule = json!({"name": "scans", "event_pattern": {"source": ["aws.ecr"]}, "targets": ["slack"],
        "group_by": [], "group_wait": "2s", "group_interval": "1h"});
    let home = Home::on(&store, &config, &[("r.json", &rule.to_string())]);
    let d = home.start();
    let batch: Vec<Value> = (0..5)
        .map(|i| {
            scan_event(
                &format!("g-{i}"),
                &format!("team/app{i}"),
                "sha256:aa",
                json!({"CRITICAL": i + 1}),
            )
        })
        .collect();
    d.post(Value::Array(batch).to_string()).await;
    d.wait_metric(
        "scanbridge_notifications_grouped_total{rule=\"scans\",target=\"slack\"}",
        5.0,
    )
    .await;
    // Stop before group_wait ends: the pending group is in the store.
    d.stop();
    assert!(rx.hits().is_empty());
    let d = home.start();
    let hits = rx.wait_hits(1, &d).await;
    let m = &hits[0].body;
    assert_eq!(
        m["blocks"][0]["text"]["text"].as_str().unwrap(),
        m["text"].as_str().unwrap().split(" · ").next().unwrap()
    );
    let header = m["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        header.starts_with("5 images with CRITICAL findings in the last "),
        "{header}"
    );
    let body = m["blocks"].to_string();
    for i in 0..5 {
        assert!(body.contains(&format!("team/app{i}:v1")), "{body}");
    }
    assert!(body.contains("5 CRITICAL"), "{body}");
    d.wait_metric(
        "scanbridge_digests_total{rule=\"scans\",target=\"slack\"}",
        1.0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits().len(), 1, "one message for the burst");
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_digest_counts_what_it_lists_lists_each_image_once_and_stays_within_slacks_limits()
{
    let rx = Receiver::start().await;
    let config = format!(
        "[targets.slack]\ntype = \"slack\"\nwebhook_url = \"http://{}/services/T/B/x\"\n",
        rx.addr
    );
    let rule = json!({"name": "scans", "event_pattern": {"source": ["aws.ecr"]}, "targets": ["slack"],
        "group_by": [], "group_wait": "8s", "group_interval": "1h"});
    let home = Home::new(&config, &[("r.json", &rule.to_string())]);
    let d = home.start();
    // 403 matches: 400 images with long names (~100 characters, 40 KB of lines: more than a message
    // should hold), one of them scanned four times (its last result counts).
    let long = "x".repeat(70);
    let mut batch: Vec<Value> = Vec::new();
    for i in 0..400 {
        let mut first = scan_event(
            &format!("big-{i}"),
            &format!("team/service-with-a-long-name-{i:03}-{long}"),
            "sha256:aa",
            json!({"HIGH": 1}),
        );
        first["time"] = json!("2026-11-20T09:00:00Z");
        batch.push(first);
        if i == 7 {
            for n in 0..3 {
                let mut again = scan_event(
                    &format!("again-{n}"),
                    &format!("team/service-with-a-long-name-007-{long}"),
                    "sha256:aa",
                    json!({"CRITICAL": n + 1}),
                );
                again["time"] = json!(format!("2026-11-20T09:0{}:00Z", n + 1));
                batch.push(again);
            }
        }
    }
    for chunk in batch.chunks(100) {
        let (s, b) = d.post(Value::Array(chunk.to_vec()).to_string()).await;
        assert_eq!(s, 202, "{b}");
    }
    let hits = rx.wait_hits(1, &d).await;
    let m = &hits[0].body;
    let header = m["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        header.starts_with("400 images with CRITICAL findings in the last "),
        "{header}"
    );
    let blocks = m["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    let size = m.to_string().len();
    assert!(size < 40_000, "{size} bytes");
    let body = m["blocks"].to_string();
    assert_eq!(
        body.matches(&format!("team/service-with-a-long-name-007-{long}:v1"))
            .count(),
        1,
        "each image once"
    );
    assert!(
        body.contains("3 CRITICAL (4 scans)"),
        "the latest result, and how many scans"
    );
    let listed = body.matches("team/service-with-a-long-name-").count();
    assert!(listed > 50 && listed < 400, "{listed} listed");
    assert!(
        body.contains(&format!("…and {} more", 400 - listed)),
        "{listed} listed: {body}"
    );
    d.stop();
}
