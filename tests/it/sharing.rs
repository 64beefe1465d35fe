//! Several daemons on one JetStream store (issue 14), against a real `nats-server`: two `serve`
//! processes with the same configuration share ingest and delivery, a daemon killed with SIGKILL
//! loses nothing (its unacked deliveries return to the other after the ack wait), and a NATS server
//! restart loses nothing (ingest answers 503 while the stream is unavailable, 202 again after), and
//! with a 3-node NATS cluster and replicas = 3, killing one node loses nothing; a digest group fed by
//! both daemons is flushed once; a target's rate limit is one token bucket for every daemon; a
//! delivery consumer deleted under a daemon is made again, and what was accepted meanwhile is
//! delivered.

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

/// Ten events `PREFIX-FROM` ... routed to the hook, as one batch.
fn batch(prefix: &str, from: usize) -> String {
    let events: Vec<Value> = (from..from + 10)
        .map(|i| event(&format!("{prefix}-{i}"), "ci"))
        .collect();
    json!(events).to_string()
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
    let batch = |from| batch("e-share", from);
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
    // Acknowledged, not only received: a delivery whose ack the killed server never got is
    // (rightly) delivered again after the restart.
    let start = Instant::now();
    while d.metric("scanbridge_queue_depth").await != 0.0 {
        assert!(start.elapsed() < PATIENCE, "{}", d.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_nats_nodes_and_three_replicas_losing_a_node_loses_nothing() {
    let mut store = Store::jetstream_cluster();
    let rx = Receiver::start().await;
    rx.fail(503);
    let home = Home::on(&store, &rx.target(), &[("r.json", &route_ci())]);
    let d = home.start();
    let batch = |from| batch("e-node", from);
    post_until_accepted(&d, batch(0)).await;
    rx.wait_attempts(10, &d).await;
    // Node 0 (the first server in the configuration, so likely the one the daemon talks to) dies
    // with the deliveries pending; the other two keep a quorum and every copy.
    let node = store.node_mut(0).unwrap();
    node.kill();
    post_until_accepted(&d, batch(10)).await;
    rx.fail(0);
    let hits = rx.wait_hits(20, &d).await;
    let got = delivered(&rx);
    assert_eq!(
        got.len(),
        20,
        "every accepted event delivered after losing a node: {got:?} ({} requests)\n{}",
        hits.len(),
        store.node_mut(1).unwrap().logs()
    );
    d.stop();
}

/// Deletes every consumer of the installation's outbox stream, as `nats consumer rm` would.
async fn delete_the_delivery_consumer(nats_url: &str) {
    use futures_util::StreamExt;
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut names = js.stream_names();
    let mut deleted = 0;
    while let Some(name) = names.next().await {
        let name = name.unwrap();
        if !name.ends_with("_OUTBOX") {
            continue;
        }
        let stream = js.get_stream(&name).await.unwrap();
        let mut consumers = stream.consumer_names();
        while let Some(c) = consumers.next().await {
            stream.delete_consumer(&c.unwrap()).await.unwrap();
            deleted += 1;
        }
    }
    assert_eq!(deleted, 1, "one delivery consumer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_consumer_deleted_under_the_daemon_is_made_again_and_nothing_is_lost() {
    let mut store = Store::jetstream();
    let url = store.nats_mut().unwrap().url();
    let rx = Receiver::start().await;
    let home = Home::on(&store, &rx.target(), &[("r.json", &route_ci())]);
    let d = home.start();
    assert_eq!(d.post(batch("e-gone", 0)).await.0, 202);
    rx.wait_hits(10, &d).await;
    delete_the_delivery_consumer(&url).await;
    // Accepted while no consumer exists (ingest does not need it); delivered once it is back.
    assert_eq!(d.post(batch("e-gone", 10)).await.0, 202);
    rx.wait_hits(20, &d).await;
    let got = delivered(&rx);
    assert_eq!(got.len(), 20, "every accepted event delivered: {got:?}");
    assert!(
        d.logs()
            .contains("the delivery consumer was missing; made it again"),
        "{}",
        d.logs()
    );
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_fed_by_two_daemons_is_sent_once() {
    let store = Store::jetstream();
    let rx = Receiver::start().await;
    let rule = json!({"name": "ci-digest", "event_pattern": {"source": ["ci"]}, "targets": ["hook"],
        "group_by": [], "group_wait": "1s", "group_interval": "1h"});
    let home = Home::on(&store, &rx.target(), &[("r.json", &rule.to_string())]);
    let (a, b) = (home.start(), home.start());
    assert_eq!(a.post(batch("e-digest-a", 0)).await.0, 202);
    assert_eq!(b.post(batch("e-digest-b", 0)).await.0, 202);
    let grouped = "scanbridge_notifications_grouped_total{rule=\"ci-digest\",target=\"hook\"}";
    let start = Instant::now();
    while a.metric(grouped).await + b.metric(grouped).await < 20.0 {
        assert!(start.elapsed() < PATIENCE, "{}\n{}", a.logs(), b.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both daemons see the group come due; one flush wins the group's check-and-set.
    rx.wait_hits(1, &a).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "one digest for the burst: {hits:?}");
    // All twenty scans of the one image, from both daemons' deliveries, in the one digest.
    let v: Value = serde_json::from_slice(&hits[0].raw).unwrap();
    assert_eq!(v["detail"]["count"], 20, "{v}");
    assert_eq!(v["detail"]["items"][0]["scans"], 20, "{v}");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_for_every_daemon_together() {
    let store = Store::jetstream();
    let rx = Receiver::start().await;
    // Two sends at once, then one every 100 s: nothing more within the test.
    let config = format!(
        "{}rate_limit = {{ per_second = 0.01, burst = 2 }}\n",
        rx.target()
    );
    let home = Home::on(&store, &config, &[("r.json", &route_ci())]);
    let a = home.start();
    for id in ["rl-1", "rl-2"] {
        assert_eq!(a.post(event(id, "ci").to_string()).await.0, 202);
    }
    rx.wait_hits(2, &a).await;
    a.stop();
    // Another daemon of the installation: the bucket A emptied is its bucket too (with a bucket
    // per daemon, B would start full and send both).
    let b = home.start();
    for id in ["rl-3", "rl-4"] {
        assert_eq!(b.post(event(id, "ci").to_string()).await.0, 202);
    }
    b.wait_metric("scanbridge_deliveries_delayed_total{target=\"hook\"}", 2.0)
        .await;
    let got = delivered(&rx);
    assert_eq!(got.keys().collect::<Vec<_>>(), ["rl-1", "rl-2"], "{got:?}");
    // Queued, not dropped: both wait in the outbox for their tokens.
    for id in ["rl-3", "rl-4"] {
        let out = home.tool(&["events", "show", id, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["deliveries"][0]["state"], "pending", "{v}");
    }
}
