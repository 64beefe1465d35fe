//! Delivery through real sockets, on both store backends: retries until a receiver recovers, dead
//! letters after the policy, redrive, and nothing lost across a crash.

use serde_json::{Value, json};

use crate::daemon::{Daemon, Home, Receiver, cli, event, rule};

fn route_ci() -> String {
    rule("ci-to-hook", json!({"source": ["ci"]}), &["hook"])
}

/// `scanbridge dlq ARGS` through the daemon's admin API, as an operator runs it.
fn dlq(d: &Daemon, args: &[&str]) -> std::process::Output {
    let url = d.url("");
    let mut all = vec!["dlq", "--url", &url];
    all.extend_from_slice(args);
    cli(&all)
}

on_both_stores! {
async fn a_failing_receiver_gets_the_event_once_it_recovers(store: Store) {
    let rx = Receiver::start().await;
    rx.fail(503);
    let home = Home::on(&store, &rx.target(), &[("r.json", &route_ci())]);
    let d = home.start();
    let (status, _) = d.post(event("e-recover", "ci").to_string()).await;
    assert_eq!(status, 202);
    rx.wait_attempts(3, &d).await;
    assert!(rx.hits().is_empty());
    rx.fail(0);
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["id"], "e-recover");
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"hook\",outcome=\"delivered\"}",
        1.0,
    )
    .await;
    assert!(
        d.metric("scanbridge_deliveries_total{target=\"hook\",outcome=\"retryable\"}")
            .await
            >= 3.0
    );
    d.wait_metric("scanbridge_delivery_latency_seconds_count", 1.0)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.hits().len(), 1, "delivered once, then acked");
    assert_eq!(d.metric("scanbridge_queue_depth").await, 0.0);
}

async fn dead_letter_after_max_attempts_then_redrive(store: Store) {
    let rx = Receiver::start().await;
    rx.fail(500);
    let config = format!("{}[targets.hook.retry]\nmax_attempts = 3\n", rx.target());
    let home = Home::on(&store, &config, &[("r.json", &route_ci())]);
    let d = home.start();
    d.post(event("e-dead", "ci").to_string()).await;
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"hook\",outcome=\"dead_letter\"}",
        1.0,
    )
    .await;
    assert_eq!(rx.attempts(), 3, "exactly max_attempts attempts");

    let out = dlq(&d, &["list", "--json"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let dl: Value = serde_json::from_str(text.lines().next().expect("one dead letter")).unwrap();
    assert_eq!(dl["event_id"], "e-dead");
    assert_eq!(dl["attempts"], 3);
    let reason = dl["reason"].as_str().unwrap();
    assert!(
        reason.contains("max_attempts") && reason.contains("500"),
        "{reason}"
    );
    let id = dl["id"].as_str().unwrap();
    let show = dlq(&d, &["show", id]);
    let shown: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["event"]["id"], "e-dead");

    // A permanent failure dead-letters at once.
    rx.fail(404);
    d.post(event("e-404", "ci").to_string()).await;
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"hook\",outcome=\"dead_letter\"}",
        2.0,
    )
    .await;
    assert_eq!(rx.attempts(), 4);

    // purge asks first: with no terminal to ask on and no --yes, it refuses and deletes nothing.
    let out = dlq(&d, &["purge"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("dlq purge deletes 2 dead letter(s) in the daemon at http://")
            && err.contains("give --yes to confirm"),
        "{err}"
    );
    let listed = String::from_utf8_lossy(&dlq(&d, &["list", "--json"]).stdout)
        .lines()
        .count();
    assert_eq!(listed, 2, "nothing purged");

    rx.fail(0);
    let out = dlq(&d, &["redrive", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["id"], "e-dead");
    let out = dlq(&d, &["redrive", "--all"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("redriven: 1"));
    rx.wait_hits(2, &d).await;
    let out = dlq(&d, &["list", "--json"]);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(dlq(&d, &["redrive", "nope"]).status.code() == Some(2));
    assert!(String::from_utf8_lossy(&dlq(&d, &["purge", "--yes"]).stdout).contains("purged: 0"));
    d.stop();
}

async fn pending_deliveries_survive_a_crash(store: Store) {
    let rx = Receiver::start().await;
    rx.fail(503);
    let home = Home::on(&store, &rx.target(), &[("r.json", &route_ci())]);
    let d = home.start();
    let batch: Vec<Value> = (0..5)
        .map(|i| event(&format!("e-crash-{i}"), "ci"))
        .collect();
    let (status, _) = d.post(json!(batch).to_string()).await;
    assert_eq!(status, 202);
    rx.wait_attempts(5, &d).await;
    d.crash();
    rx.fail(0);
    let d = home.start();
    let hits = rx.wait_hits(5, &d).await;
    let mut ids: Vec<String> = hits
        .iter()
        .map(|h| h.body["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        5,
        "every accepted event delivered after the restart: {ids:?}"
    );
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"hook\",outcome=\"delivered\"}",
        5.0,
    )
    .await;
    let logs = d.stop();
    assert!(logs.contains("stopped"), "{logs}");
}
}
