//! EventBridge API destinations as producers: a rule on an AWS event bus whose target is an API
//! destination pointing at scanbridge's `POST /events`, through a connection with API-key
//! authorization. The test sends exactly what an API destination sends (its documented default
//! headers, the key in the header the connection names, the event as EventBridge delivers it) and
//! checks it is accepted with `server.api_key_header` and refused without the key.

use serde_json::{Value, json};

use crate::daemon::{Home, Receiver, rule};
use crate::support::sample;

const KEY: &str = "apidest-Token-7f3a9";

/// The request an API destination makes: EventBridge's headers, the connection's API key header.
fn as_api_destination(
    client: &reqwest::Client,
    url: String,
    key_header: &str,
    key: &str,
    event: &Value,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("user-agent", "Amazon/EventBridge/ApiDestinations")
        .header("content-type", "application/json; charset=utf-8")
        .header("range", "bytes=0-1048575")
        .header("accept-encoding", "gzip,deflate")
        .header("connection", "close")
        .header(key_header, key)
        .body(event.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_destination_with_an_api_key_connection_is_accepted() {
    let rx = Receiver::start().await;
    let critical = rule(
        "critical",
        json!({"detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}),
        &["hook"],
    );
    let config = format!(
        "[server]\ntoken = \"{KEY}\"\napi_key_header = \"x-api-key\"\n{}",
        rx.target()
    );
    let home = Home::new(&config, &[("critical.json", &critical)]);
    let d = home.start();
    // The event exactly as EventBridge delivers it to a target: the whole envelope.
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(sample("ecr-image-scan-critical.json")).unwrap(),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let r = as_api_destination(&client, d.url("/events"), "x-api-key", KEY, &event)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        202,
        "an API destination counts 2xx as delivered"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["results"][0]["id"], event["id"], "{body}");
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body, event, "delivered as received");
    // The header name is case-insensitive, as HTTP's are; a wrong key or none is refused (401,
    // which EventBridge retries until the connection is fixed).
    let r = as_api_destination(
        &client,
        d.url("/events"),
        "X-API-Key",
        KEY,
        &json!({"source": "ci", "detail-type": "t", "detail": {}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    for (header, key) in [("x-api-key", "wrong"), ("x-other", KEY)] {
        let r = as_api_destination(&client, d.url("/events"), header, key, &event)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{header}: {key}");
    }
    let logs = d.stop();
    assert!(!logs.contains(KEY), "{logs}");
}
