//! Topic fan-out end to end through the daemon: one delivery per subscription whose filter policy
//! matches, each with its own deterministic id, and the rule's transformation applied to each.

use serde_json::json;

use crate::daemon::{Home, Receiver};
use crate::support::sample;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_fans_out_by_filter_policy() {
    let all = Receiver::start().await;
    let critical = Receiver::start().await;
    let payments = Receiver::start().await;
    let config = format!(
        "[targets.all]\ntype = \"webhook\"\nurl = \"{}\"\n\
         [targets.critical]\ntype = \"webhook\"\nurl = \"{}\"\n\
         [targets.payments]\ntype = \"webhook\"\nurl = \"{}\"\n\
         [targets.scan-alerts]\ntype = \"topic\"\nsubscriptions = [\n\
           {{ target = \"all\" }},\n\
           {{ target = \"critical\", filter_policy = {{ detail = {{ finding-severity-counts = {{ CRITICAL = [{{ numeric = [\">\", 0] }}] }} }} }} }},\n\
           {{ target = \"payments\", filter_policy = '{{\"detail\": {{\"repository-name\": [{{\"prefix\": \"payments/\"}}]}}}}' }},\n\
         ]\n",
        all.url(),
        critical.url(),
        payments.url()
    );
    let rule = json!({"name": "scans", "event_pattern": {"detail-type": ["ECR Image Scan"]},
        "targets": [{"target": "scan-alerts", "input_transformer": {
            "input_paths_map": {"repo": "$.detail.repository-name", "id": "$.id"},
            "input_template": "{\"repo\": <repo>, \"event\": <id>}"}}]});
    let home = Home::new(&config, &[("r.json", &rule.to_string())]);
    let d = home.start();
    for name in [
        "ecr-image-scan-critical.json",  // payments/api, CRITICAL 2: all three
        "ecr-image-scan-high-only.json", // web/frontend, no CRITICAL: only "all"
    ] {
        let (status, _) = d.post(std::fs::read_to_string(sample(name)).unwrap()).await;
        assert_eq!(status, 202);
    }
    let got_all = all.wait_hits(2, &d).await;
    let got_critical = critical.wait_hits(1, &d).await;
    let got_payments = payments.wait_hits(1, &d).await;
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"all\",outcome=\"delivered\"}",
        2.0,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(all.hits().len(), 2);
    assert_eq!(
        critical.hits().len(),
        1,
        "the HIGH-only scan is filtered out"
    );
    assert_eq!(payments.hits().len(), 1, "web/frontend is filtered out");
    assert_eq!(
        got_critical[0].body,
        json!({"repo": "payments/api", "event": "3f6a1c52-8e0b-4d1e-9a8f-5b2c7d9e1a01"})
    );
    assert_eq!(got_payments[0].body["repo"], "payments/api");
    let repos: Vec<&str> = got_all
        .iter()
        .map(|h| h.body["repo"].as_str().unwrap())
        .collect();
    assert!(
        repos.contains(&"payments/api") && repos.contains(&"web/frontend"),
        "{repos:?}"
    );

    let key = |h: &crate::daemon::Hit| h.headers["idempotency-key"].to_str().unwrap().to_owned();
    let ev = "3f6a1c52-8e0b-4d1e-9a8f-5b2c7d9e1a01";
    assert_eq!(
        key(&got_critical[0]),
        scanbridge::delivery_id(ev, "scans", "scan-alerts/critical")
    );
    assert_eq!(
        key(&got_payments[0]),
        scanbridge::delivery_id(ev, "scans", "scan-alerts/payments")
    );
    d.stop();
}
