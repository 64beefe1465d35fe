//! Parse once, through the real daemon: `scanbridge_event_parses_total` counts every event JSON the
//! process parses into a tree. One event, fanned out to two targets and retried, is parsed once on
//! its way from ingest to delivery (PutEvents too: its `Detail` is the one parse); after a restart the
//! worker parses the stored bytes once and hands that to every later attempt.

use serde_json::json;

use crate::daemon::{Home, Receiver, event, rule};

const PARSES: &str = "scanbridge_event_parses_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_parsed_once_from_ingest_to_delivery() {
    let rx = Receiver::start().await;
    rx.fail(503);
    let both = rule("both", json!({"source": ["ci"]}), &["hook", "console"]);
    let home = Home::new(&rx.target(), &[("r.json", &both)]);
    let d = home.start();
    let text = d.metrics().await;
    assert!(text.contains(&format!("\n{PARSES} 0\n")), "{text}");

    let (status, _) = d.post(event("e-once", "ci").to_string()).await;
    assert_eq!(status, 202);
    rx.wait_attempts(3, &d).await; // three attempts on the hook: each would have parsed again
    rx.fail(0);
    assert_eq!(rx.wait_hits(1, &d).await[0].body["id"], "e-once");
    for target in ["hook", "console"] {
        let series =
            format!("scanbridge_deliveries_total{{target=\"{target}\",outcome=\"delivered\"}}");
        d.wait_metric(&series, 1.0).await;
    }
    assert_eq!(
        d.metric(PARSES).await,
        1.0,
        "two deliveries, four attempts, one parse"
    );

    // The AWS JSON 1.1 door builds the event from the entry whose Detail it parsed: no second parse.
    let put = json!({"Entries": [{"Source": "ci", "DetailType": "Test", "Detail": "{\"n\": 2}"}]});
    let resp = reqwest::Client::new()
        .post(d.url("/"))
        .header("x-amz-target", "AWSEvents.PutEvents")
        .header("content-type", "application/x-amz-json-1.1")
        .body(put.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["FailedEntryCount"], 0, "{answer}");
    let hits = rx.wait_hits(2, &d).await;
    assert_eq!(hits[1].body["detail"]["n"], 2);
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"console\",outcome=\"delivered\"}",
        2.0,
    )
    .await;
    assert_eq!(
        d.metric(PARSES).await,
        2.0,
        "one more event, one more parse"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_stored_event_is_parsed_once_for_all_its_attempts() {
    let rx = Receiver::start().await;
    rx.fail(503);
    let home = Home::new(
        &rx.target(),
        &[(
            "r.json",
            &rule("hook", json!({"source": ["ci"]}), &["hook"]),
        )],
    );
    let d = home.start();
    let (status, _) = d.post(event("e-restart", "ci").to_string()).await;
    assert_eq!(status, 202);
    rx.wait_attempts(1, &d).await;
    d.stop();

    let d = home.start();
    let before = rx.attempts();
    rx.wait_attempts(before + 3, &d).await; // retried after the restart, from the stored bytes
    rx.fail(0);
    assert_eq!(rx.wait_hits(1, &d).await[0].body["id"], "e-restart");
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"hook\",outcome=\"delivered\"}",
        1.0,
    )
    .await;
    assert_eq!(
        d.metric(PARSES).await,
        1.0,
        "the first attempt after the restart parses the stored bytes; the later ones reuse its view"
    );
}
