//! The Slack target against a real HTTP receiver standing in for an incoming webhook: the Block Kit
//! message a person reads (header, facts, counts in fixed order, console button) and its fallback.

use serde_json::{Value, json};

use crate::daemon::{Home, Receiver, rule};
use crate::support::sample;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_message_reads_at_a_glance() {
    let rx = Receiver::start().await;
    let config = format!(
        "[targets.slack]\ntype = \"slack\"\nwebhook_url = \"http://{}/services/T000/B000/s3cr3tSlackPath\"\n",
        rx.addr
    );
    let rules = rule("scans", json!({"source": ["aws.ecr"]}), &["slack"]);
    let home = Home::new(&config, &[("r.json", &rules)]);
    let d = home.start();
    d.post(std::fs::read_to_string(sample("ecr-image-scan-critical.json")).unwrap())
        .await;
    let hit = rx.wait_hits(1, &d).await.remove(0);
    println!(
        "----- the Slack payload as received -----\n{}",
        serde_json::to_string_pretty(&hit.body).unwrap()
    );
    assert_eq!(hit.path, "/services/T000/B000/s3cr3tSlackPath");
    let m = &hit.body;
    assert_eq!(
        m["text"],
        "2 CRITICAL, 7 HIGH, 19 MEDIUM, 4 LOW, 3 INFORMATIONAL in payments/api:v2.14.0 (sha256:9c1d4f3b8e2a) · rule scans"
    );
    let blocks = m["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["header", "section", "section", "actions", "context"]
    );
    assert_eq!(
        blocks[0]["text"]["text"],
        "2 CRITICAL, 7 HIGH, 19 MEDIUM, 4 LOW, 3 INFORMATIONAL in payments/api:v2.14.0"
    );
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "*Repository*\n`payments/api`",
            "*Tags*\n`v2.14.0` `latest`",
            "*Digest*\n`sha256:9c1d4f3b8e2a`",
            "*Scan*\nCOMPLETE"
        ]
    );
    let counts = blocks[2]["text"]["text"].as_str().unwrap();
    let order: Vec<usize> = [
        "CRITICAL* *2",
        "HIGH* *7",
        "MEDIUM 19",
        "LOW 4",
        "INFORMATIONAL 3",
        "UNDEFINED 0",
    ]
    .iter()
    .map(|c| counts.find(c).unwrap_or_else(|| panic!("{c} in {counts}")))
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "fixed order: {counts}"
    );
    assert_eq!(
        blocks[3]["elements"][0]["url"],
        "https://us-east-1.console.aws.amazon.com/ecr/repositories/private/123456789012/payments/api/_/image/sha256:9c1d4f3b8e2a7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615e4/details?region=us-east-1"
    );
    let context = blocks[4]["elements"][0]["text"].as_str().unwrap();
    assert!(
        context.contains("rule *scans*") && context.contains("us-east-1"),
        "{context}"
    );
    for b in blocks {
        if let Some(Value::String(t)) = b.pointer("/text/text") {
            assert!(t.chars().count() <= 3000);
        }
    }
    d.stop();
}
