//! The on-call targets end to end, through the real binary and real HTTP servers on loopback
//! standing in for PagerDuty, Opsgenie and a Teams workflow: every payload checked against the
//! vendor's documented schema and limits, the answers classified as the vendors document them
//! (202 accepted, 429 retried with Retry-After, 400 dead-lettered), redirects refused, and
//! `notify-test` for each type.

use std::time::Duration;

use serde_json::{Value, json};

use crate::daemon::{Home, cli, rule};
use crate::support::sample;
use crate::vendor::{Reply, Vendor, assert_valid, opsgenie_accepted, pagerduty_accepted, schema};

const ROUTING_KEY: &str = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y42";
const API_KEY: &str = "eb243592-faa2-4ba2-a551-1afdf565c889";

fn critical() -> String {
    std::fs::read_to_string(sample("ecr-image-scan-critical.json")).unwrap()
}

fn pagerduty(name: &str, v: &Vendor) -> String {
    format!(
        "[targets.{name}]\ntype = \"pagerduty\"\nrouting_key = \"{ROUTING_KEY}\"\nurl = \"{}\"\ntimeout = \"2s\"\n",
        v.url("/v2/enqueue")
    )
}

fn opsgenie(name: &str, v: &Vendor) -> String {
    format!(
        "[targets.{name}]\ntype = \"opsgenie\"\napi_key = \"{API_KEY}\"\nurl = \"{}\"\ntimeout = \"2s\"\n",
        v.url("")
    )
}

fn teams(name: &str, v: &Vendor) -> String {
    format!(
        "[targets.{name}]\ntype = \"teams\"\nwebhook_url = \"{}\"\ntimeout = \"2s\"\n",
        v.url("/workflows/abc/triggers/manual/paths/invoke?sig=T3amsS1gnature")
    )
}

fn all_scans(targets: &[&str]) -> String {
    rule(
        "scans",
        json!({"source": ["aws.ecr", "aws.inspector2"]}),
        targets,
    )
}

fn dead_letters(home: &Home) -> Vec<Value> {
    let data = home.path().join("data").display().to_string();
    let out = cli(&["dlq", "--data-dir", &data, "list", "--json"]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Checks a PagerDuty event against the Events API v2 schema and the 512 KB payload limit.
fn check_pagerduty(call: &crate::vendor::Call) {
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, "/v2/enqueue");
    assert!(call.header("content-type").starts_with("application/json"));
    assert!(call.raw.len() <= 512 * 1024, "{} bytes", call.raw.len());
    assert_valid(
        &schema("vendors/pagerduty-events-v2.schema.json"),
        &call.body,
        "PagerDuty Events API v2",
    );
    assert_eq!(call.body["routing_key"], ROUTING_KEY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_trigger_is_a_documented_events_v2_alert() {
    let pd = Vendor::start(pagerduty_accepted()).await;
    let home = Home::new(
        &pagerduty("oncall", &pd),
        &[("r.json", &all_scans(&["oncall"]))],
    );
    let d = home.start();
    d.post(critical()).await;
    d.post(std::fs::read_to_string(sample("inspector2-finding.json")).unwrap())
        .await;
    let calls = pd.wait_calls(2, &d).await;
    for c in &calls {
        check_pagerduty(c);
    }
    let scan = calls
        .iter()
        .find(|c| c.body["payload"]["class"] == "ECR Image Scan")
        .expect("the scan");
    println!(
        "----- PagerDuty event as received -----\n{}",
        serde_json::to_string_pretty(&scan.body).unwrap()
    );
    let b = &scan.body;
    assert_eq!(b["event_action"], "trigger");
    assert_eq!(
        b["dedup_key"],
        "scanbridge/scans/123456789012.dkr.ecr.us-east-1.amazonaws.com/payments/api:v2.14.0"
    );
    let p = &b["payload"];
    assert_eq!(p["severity"], "critical");
    assert_eq!(
        p["summary"],
        "2 CRITICAL, 7 HIGH, 19 MEDIUM, 4 LOW, 3 INFORMATIONAL in payments/api:v2.14.0"
    );
    assert_eq!(
        p["source"],
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments/api:v2.14.0"
    );
    assert_eq!(p["component"], "payments/api");
    assert_eq!(p["custom_details"]["finding_counts"]["CRITICAL"], 2);
    assert_eq!(p["custom_details"]["finding_counts"]["HIGH"], 7);
    assert_eq!(
        p["custom_details"]["top_findings"],
        json!([
            "2 CRITICAL",
            "7 HIGH",
            "19 MEDIUM",
            "4 LOW",
            "3 INFORMATIONAL"
        ])
    );
    assert!(
        b["links"][0]["href"]
            .as_str()
            .unwrap()
            .starts_with("https://us-east-1.console.aws.amazon.com/ecr/repositories/private/123456789012/payments/api/_/image/sha256:9c1d")
    );

    let finding = calls
        .iter()
        .find(|c| c.body["payload"]["class"] == "Inspector2 Finding")
        .expect("the finding");
    let b = &finding.body;
    assert_eq!(
        b["dedup_key"],
        "scanbridge/scans/arn:aws:inspector2:us-east-2:123456789012:finding/0f9e8d7c6b5a49382716"
    );
    assert_eq!(b["payload"]["severity"], "critical");
    assert_eq!(
        b["payload"]["custom_details"]["top_findings"][0]["id"],
        "CVE-2026-10001"
    );
    let links: Vec<&str> = b["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["href"].as_str().unwrap())
        .collect();
    assert!(
        links.contains(&"https://security-tracker.debian.org/tracker/CVE-2026-10001"),
        "{links:?}"
    );
    let logs = d.stop();
    assert!(!logs.contains(ROUTING_KEY), "the routing key is a secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_429_is_retried_after_retry_after_and_400_is_dead_lettered() {
    let pd = Vendor::start(pagerduty_accepted()).await;
    pd.then([Reply::new(429, r#"{"status":"throttled"}"#).header("retry-after", "1")]);
    let home = Home::new(
        &pagerduty("oncall", &pd),
        &[("r.json", &all_scans(&["oncall"]))],
    );
    let d = home.start();
    d.post(critical()).await;
    let calls = pd.wait_calls(2, &d).await;
    assert_eq!((calls[0].status, calls[1].status), (429, 202));
    let waited = calls[1].at - calls[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 honoured (waited {waited:?}, backoff alone is 200 ms at most)"
    );
    assert_eq!(calls[0].body, calls[1].body, "the same event again");
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"oncall\",outcome=\"delivered\"}",
        1.0,
    )
    .await;

    pd.answer(Reply::new(
        400,
        r#"{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)"]}"#,
    ));
    d.post(std::fs::read_to_string(sample("ecr-image-scan-high-only.json")).unwrap())
        .await;
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"oncall\",outcome=\"dead_letter\"}",
        1.0,
    )
    .await;
    assert_eq!(pd.calls().len(), 3, "a 400 is not retried");
    let dls = dead_letters(&home);
    assert_eq!(dls.len(), 1);
    let reason = dls[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("HTTP 400") && reason.contains("Event object is invalid"),
        "{reason}"
    );
    assert!(!reason.contains(ROUTING_KEY), "{reason}");
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opsgenie_create_is_a_documented_alert() {
    let og = Vendor::start(opsgenie_accepted()).await;
    let home = Home::new(&opsgenie("ops", &og), &[("r.json", &all_scans(&["ops"]))]);
    let d = home.start();
    d.post(critical()).await;
    let c = og.wait_calls(1, &d).await.remove(0);
    println!(
        "----- Opsgenie alert as received -----\n{}",
        serde_json::to_string_pretty(&c.body).unwrap()
    );
    assert_eq!((c.method.as_str(), c.path.as_str()), ("POST", "/v2/alerts"));
    assert_eq!(c.header("authorization"), format!("GenieKey {API_KEY}"));
    assert_valid(
        &schema("vendors/opsgenie-create-alert.schema.json"),
        &c.body,
        "Opsgenie create alert",
    );
    let details: usize = c.body["details"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| k.chars().count() + v.as_str().unwrap().chars().count())
        .sum();
    assert!(details <= 8000, "details total {details}");
    let b = &c.body;
    assert_eq!(b["priority"], "P1");
    assert_eq!(
        b["alias"],
        "scanbridge/scans/123456789012.dkr.ecr.us-east-1.amazonaws.com/payments/api:v2.14.0"
    );
    assert_eq!(
        b["message"],
        "2 CRITICAL, 7 HIGH, 19 MEDIUM, 4 LOW, 3 INFORMATIONAL in payments/api:v2.14.0"
    );
    assert_eq!(
        b["entity"],
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments/api:v2.14.0"
    );
    let tags: Vec<&str> = b["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        [
            "scanbridge",
            "scans",
            "CRITICAL",
            "ecr-image-scan",
            "repository:payments/api"
        ]
    );
    assert_eq!(
        b["details"]["finding_counts"],
        r#"{"CRITICAL":2,"HIGH":7,"MEDIUM":19,"LOW":4,"INFORMATIONAL":3,"UNDEFINED":0}"#
    );
    let desc = b["description"].as_str().unwrap();
    assert!(
        desc.contains(
            "Findings: CRITICAL 2  HIGH 7  MEDIUM 19  LOW 4  INFORMATIONAL 3  UNDEFINED 0"
        ),
        "{desc}"
    );
    let logs = d.stop();
    assert!(!logs.contains(API_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_gets_a_valid_adaptive_card_within_the_size_limit() {
    let wf = Vendor::start(Reply::new(202, "")).await;
    let home = Home::new(
        &teams("channel", &wf),
        &[("r.json", &all_scans(&["channel"]))],
    );
    let d = home.start();
    d.post(critical()).await;
    d.post(std::fs::read_to_string(sample("inspector2-finding.json")).unwrap())
        .await;
    let calls = wf.wait_calls(2, &d).await;
    let card_schema = schema("adaptive-card/adaptive-card-1.4.0.json");
    for c in &calls {
        assert_eq!(c.path, "/workflows/abc/triggers/manual/paths/invoke");
        assert_eq!(c.query.as_deref(), Some("sig=T3amsS1gnature"));
        assert_eq!(c.header("content-type"), "application/json; charset=utf-8");
        assert!(c.raw.len() <= 28 * 1024, "{} bytes", c.raw.len());
        assert_eq!(c.body["type"], "message");
        let a = &c.body["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_valid(&card_schema, &a["content"], "Adaptive Card 1.4");
        assert_eq!(a["content"]["version"], "1.4");
    }
    let scan = &calls
        .iter()
        .find(|c| c.raw.windows(8).any(|w| w == b"payments"))
        .unwrap()
        .body["attachments"][0]["content"];
    println!("----- Teams card as received -----\n{scan:#}");
    let texts = scan.to_string();
    for needle in [
        "2 CRITICAL, 7 HIGH",
        "payments/api",
        "**CRITICAL 2**",
        "Open in ECR console",
    ] {
        assert!(texts.contains(needle), "{needle} in {texts}");
    }
    let logs = d.stop();
    assert!(
        !logs.contains("T3amsS1gnature"),
        "the webhook URL is a secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_refused_and_nothing_follows_them() {
    let elsewhere = Vendor::start(pagerduty_accepted()).await;
    let pd =
        Vendor::start(Reply::new(307, "").header("location", &elsewhere.url("/steal?all=1"))).await;
    let home = Home::new(
        &pagerduty("oncall", &pd),
        &[("r.json", &all_scans(&["oncall"]))],
    );
    let d = home.start();
    d.post(critical()).await;
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"oncall\",outcome=\"dead_letter\"}",
        1.0,
    )
    .await;
    assert!(
        elsewhere.calls().is_empty(),
        "the redirect was not followed"
    );
    let reason = dead_letters(&home)[0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("307") && reason.contains("redirects to 127.0.0.1:"),
        "{reason}"
    );
    assert!(pd.calls()[0].headers.get("referer").is_none());
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_sends_to_each_type() {
    let pd = Vendor::start(pagerduty_accepted()).await;
    let og = Vendor::start(opsgenie_accepted()).await;
    let wf = Vendor::start(Reply::new(202, "")).await;
    let config = format!(
        "{}{}{}",
        pagerduty("oncall", &pd),
        opsgenie("ops", &og),
        teams("channel", &wf)
    );
    let home = Home::new(&config, &[]);
    let cfg = home.path().join("config.toml").display().to_string();
    for (target, vendor) in [("oncall", &pd), ("ops", &og), ("channel", &wf)] {
        let out = cli(&["notify-test", target, "--config", &cfg]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{target}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(&format!("{target}: delivered")), "{text}");
        assert_eq!(vendor.calls().len(), 1, "{target}");
    }
    assert_valid(
        &schema("vendors/pagerduty-events-v2.schema.json"),
        &pd.calls()[0].body,
        "notify-test to PagerDuty",
    );
    og.answer(Reply::new(422, r#"{"message":"Request body is not processable. Please check the errors.","errors":{"message":"Message can not be empty."}}"#));
    let out = cli(&["notify-test", "ops", "--config", &cfg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("permanent") && text.contains("HTTP 422") && text.contains("not processable"),
        "{text}"
    );
    assert!(!text.contains(API_KEY));
}

#[test]
fn the_vendor_schemas_refuse_what_the_vendors_refuse() {
    let pd = schema("vendors/pagerduty-events-v2.schema.json");
    let ok = json!({"routing_key": "k", "event_action": "trigger", "dedup_key": "d",
        "payload": {"summary": "s", "source": "h", "severity": "critical"}});
    assert!(pd.is_valid(&ok));
    for bad in [
        json!({"routing_key": "k", "event_action": "trigger"}),
        json!({"routing_key": "k", "event_action": "resolve"}),
        json!({"routing_key": "k", "event_action": "trigger",
            "payload": {"summary": "s", "source": "h", "severity": "high"}}),
        json!({"routing_key": "k", "event_action": "trigger",
            "payload": {"summary": "x".repeat(1025), "source": "h", "severity": "info"}}),
        json!({"routing_key": "k", "event_action": "trigger", "dedup_key": "d".repeat(256),
            "payload": {"summary": "s", "source": "h", "severity": "info"}}),
    ] {
        assert!(!pd.is_valid(&bad), "{bad}");
    }
    let og = schema("vendors/opsgenie-create-alert.schema.json");
    assert!(og.is_valid(&json!({"message": "m", "priority": "P1", "tags": ["a"]})));
    for bad in [
        json!({"alias": "a"}),
        json!({"message": "m".repeat(131)}),
        json!({"message": "m", "priority": "P0"}),
        json!({"message": "m", "tags": (0..21).map(|i| i.to_string()).collect::<Vec<_>>()}),
        json!({"message": "m", "details": {"n": 1}}),
    ] {
        assert!(!og.is_valid(&bad), "{bad}");
    }
    let close = schema("vendors/opsgenie-close-alert.schema.json");
    assert!(!close.is_valid(&json!({"note": "n", "alias": "a"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_files_or_the_environment_and_never_show() {
    // Vendors that refuse, echoing the credential they were sent (scanbridge must scrub it).
    let pd = Vendor::start(Reply::new(
        400,
        &format!(r#"{{"status":"invalid event","message":"unknown routing_key {ROUTING_KEY}"}}"#),
    ))
    .await;
    let og = Vendor::start(Reply::new(
        401,
        &format!(r#"{{"message":"Key {API_KEY} is not valid"}}"#),
    ))
    .await;
    let wf = Vendor::start(Reply::new(500, "")).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pd-key");
    std::fs::write(&key_file, format!("{ROUTING_KEY}\n")).unwrap();
    let url_file = dir.path().join("teams-url");
    let secret_url = wf.url("/workflows/abc/triggers/manual/paths/invoke?sig=T3amsS1gnature");
    std::fs::write(&url_file, &secret_url).unwrap();
    let targets = format!(
        "[targets.oncall]\ntype = \"pagerduty\"\nrouting_key_file = {:?}\nurl = \"{}\"\n\
         [targets.channel]\ntype = \"teams\"\nwebhook_url_file = {:?}\n[targets.channel.retry]\nmax_attempts = 2\n",
        key_file.display().to_string(),
        pd.url("/v2/enqueue"),
        url_file.display().to_string(),
    );
    let home = Home::new(&targets, &[("r.json", &all_scans(&["oncall", "channel"]))]);
    let cfg = home.path().join("config.toml").display().to_string();
    let rules = home.path().join("rules").display().to_string();

    // The Opsgenie key from the environment: without it the configuration does not load.
    let with_ops = dir.path().join("with-ops.toml");
    std::fs::write(
        &with_ops,
        format!(
            "{targets}[targets.ops]\ntype = \"opsgenie\"\nurl = \"{}\"\n",
            og.url("")
        ),
    )
    .unwrap();
    let with_ops = with_ops.display().to_string();
    let out = cli(&["check", "--config", &with_ops, "--rules", &rules]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("targets.ops.api_key"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scanbridge"))
        .args(["notify-test", "ops", "--config", &with_ops])
        .env("SCANBRIDGE__TARGETS__OPS__API_KEY", API_KEY)
        .output()
        .unwrap();
    let mut shown = vec![
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    ];
    assert!(
        shown[0].contains("HTTP 401") && shown[0].contains("Key *** is not valid"),
        "{}",
        shown[0]
    );
    assert_eq!(
        og.calls()[0].header("authorization"),
        format!("GenieKey {API_KEY}")
    );

    let d = home.start();
    d.post(critical()).await;
    for t in ["oncall", "channel"] {
        d.wait_metric(
            &format!("scanbridge_deliveries_total{{target=\"{t}\",outcome=\"dead_letter\"}}"),
            1.0,
        )
        .await;
    }
    assert_eq!(
        pd.calls()[0].body["routing_key"],
        ROUTING_KEY,
        "the key from the file"
    );
    assert_eq!(wf.calls().len(), 2, "the URL from the file");
    shown.push(d.stop());
    let dls: Vec<String> = dead_letters(&home).iter().map(Value::to_string).collect();
    assert!(
        dls.iter().any(|r| r.contains("unknown routing_key ***")),
        "{dls:#?}"
    );
    shown.extend(dls);
    let event = sample("ecr-image-scan-critical.json");
    for args in [
        vec![
            "route", "--event", &event, "--config", &cfg, "--rules", &rules,
        ],
        vec!["notify-test", "oncall", "--config", &cfg],
        vec!["notify-test", "channel", "--config", &cfg],
    ] {
        let out = cli(&args);
        shown.push(
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        );
    }
    for text in &shown {
        for secret in [ROUTING_KEY, API_KEY, "T3amsS1gnature"] {
            assert!(!text.contains(secret), "{secret} leaks:\n{text}");
        }
    }
}
