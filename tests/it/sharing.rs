//! Several daemons on one JetStream store (issue 14), against a real `nats-server`: two `serve`
//! processes with the same configuration share ingest and delivery, a daemon killed with SIGKILL
//! loses nothing (its unacked deliveries return to the other after the ack wait), and a NATS server
//! restart loses nothing (ingest answers 503 while the stream is unavailable, 202 again after).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::{Daemon, Home, PATIENCE, Receiver, event, rule};
use crate::stores::Store;

fn route_ci() -> String {
    rule("ci-to-hook", json!({"source": ["ci"]}), &["hook"])
}

/// How many times the receiver accepted each event id.
fn delivered(rx: &Receiver) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for h in rx.hits() {
        *n.entry(h.body["id"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    n
}

const RETRYABLE: &str = "scanbridge_deliveries_total{target=\"hook\",outcome=\"retryable\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_the_work_and_one_killed_loses_nothing() {
    let store = Store::jetstream();
    let rx = Receiver::start().await;
    rx.fail(503);
    // One home, one configuration: both daemons join the same streams and consumer.
    let home = Home::on(&store, &rx.target(), &[("r.json", &route_ci())]);
    let a = home.start();
    let b = home.start();
    let batch = |from: usize| -> String {
        let events: Vec<Value> = (from..from + 10)
            .map(|i| event(&format!("e-share-{i}"), "ci"))
            .collect();
        json!(events).to_string()
    };
    assert_eq!(a.post(batch(0)).await.0, 202);
    assert_eq!(b.post(batch(10)).await.0, 202);
    // Both daemons attempt deliveries from the one shared consumer (retries go to whoever fetches).
    let start = Instant::now();
    loop {
        let (na, nb) = (a.metric(RETRYABLE).await, b.metric(RETRYABLE).await);
        if na > 0.0 && nb > 0.0 {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "both daemons should attempt deliveries: a {na}, b {nb}\n--- a:\n{}\n--- b:\n{}",
            a.logs(),
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A dies holding leases; the receiver recovers; B delivers everything, A's part after the
    // ack wait.
    a.crash();
    rx.fail(0);
    rx.wait_hits(20, &b).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = delivered(&rx);
    assert_eq!(got.len(), 20, "every accepted event delivered: {got:?}");
    assert!(
        got.values().all(|n| *n == 1),
        "each delivery made by one daemon, once: {got:?}"
    );
    b.wait_metric(
        "scanbridge_deliveries_total{target=\"hook\",outcome=\"delivered\"}",
        20.0,
    )
    .await;
    assert_eq!(b.metric("scanbridge_queue_depth").await, 0.0);
    b.stop();
}

/// Posts `body` until the daemon answers 202 (the cluster is back), failing after [`PATIENCE`].
async fn post_until_accepted(d: &Daemon, body: String) {
    let start = Instant::now();
    loop {
        let (status, answer) = d.post(body.clone()).await;
        if status == 202 {
            return;
        }
        assert_eq!(status, 503, "{answer}");
        assert!(
            start.elapsed() < PATIENCE,
            "still 503 after NATS came back: {answer}\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_loses_nothing_and_ingest_answers_503_meanwhile() {
    let mut store = Store::jetstream();
    let rx = Receiver::start().await;
    let home = Home::on(&store, &rx.target(), &[("r.json", &route_ci())]);
    let d = home.start();
    assert_eq!(d.post(event("e-before", "ci").to_string()).await.0, 202);
    rx.wait_hits(1, &d).await;

    store.nats_mut().unwrap().kill();
    let (status, answer) = d.post(event("e-during", "ci").to_string()).await;
    assert_eq!(
        status, 503,
        "nothing is acknowledged without the stream: {answer}"
    );

    store.nats_mut().unwrap().restart();
    // The client retries what was refused; the cluster kept everything it had acknowledged.
    post_until_accepted(&d, event("e-during", "ci").to_string()).await;
    assert_eq!(d.post(event("e-after", "ci").to_string()).await.0, 202);
    // An id accepted before is not routed again (commit records, then Nats-Msg-Id).
    assert_eq!(d.post(event("e-before", "ci").to_string()).await.0, 202);
    rx.wait_hits(3, &d).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = delivered(&rx);
    let want: BTreeMap<String, usize> = ["e-after", "e-before", "e-during"]
        .into_iter()
        .map(|id| (id.to_owned(), 1))
        .collect();
    assert_eq!(got, want, "each accepted event delivered once");
    d.stop();
}
