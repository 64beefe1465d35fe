//! Hot reload of rules/: a good new file goes live, a broken one keeps the previous set; SIGHUP reloads.

use serde_json::json;

use crate::daemon::{Home, Receiver, event, rule};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changes_reload_and_a_broken_file_keeps_the_previous_rules() {
    let rx = Receiver::start().await;
    let home = Home::new(
        &rx.target(),
        &[("a.json", &rule("a", json!({"source": ["a"]}), &["hook"]))],
    );
    let d = home.start();
    d.post(event("b-before", "b").to_string()).await;
    d.post(event("a-1", "a").to_string()).await;
    rx.wait_hits(1, &d).await;

    home.write_rule("b.json", &rule("b", json!({"source": ["b"]}), &["hook"]));
    d.wait_metric("scanbridge_rule_reloads_total", 1.0).await;
    d.wait_metric("scanbridge_rules_loaded", 2.0).await;
    d.post(event("b-after", "b").to_string()).await;
    let hits = rx.wait_hits(2, &d).await;
    assert_eq!(hits[1].body["id"], "b-after");

    home.write_rule("c.json", "{ \"name\": \"c\", ");
    d.wait_metric("scanbridge_rule_reload_failures_total", 1.0)
        .await;
    d.post(event("b-still", "b").to_string()).await;
    let hits = rx.wait_hits(3, &d).await;
    assert_eq!(
        hits[2].body["id"], "b-still",
        "the previous rule set keeps running"
    );
    let ids: Vec<_> = rx.hits().iter().map(|h| h.body["id"].clone()).collect();
    assert!(
        !ids.contains(&json!("b-before")),
        "rules apply from the moment they are live: {ids:?}"
    );
    assert!(
        d.logs().contains("c.json"),
        "the broken file is named in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_when_watching_is_off() {
    let rx = Receiver::start().await;
    let home = Home::new(&format!("{}\n", rx.target()), &[]);
    let config = home.path().join("config.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("watch = true", "watch = false");
    std::fs::write(&config, text).unwrap();
    let d = home.start();
    home.write_rule("b.json", &rule("b", json!({"source": ["b"]}), &["hook"]));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        d.metric("scanbridge_rule_reloads_total").await,
        0.0,
        "not watching"
    );
    d.signal("HUP");
    d.wait_metric("scanbridge_rule_reloads_total", 1.0).await;
    d.post(event("b-1", "b").to_string()).await;
    assert_eq!(rx.wait_hits(1, &d).await[0].body["id"], "b-1");
}
