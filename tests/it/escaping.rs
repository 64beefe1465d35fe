//! Hostile content end to end through the real binary: what a real Slack receiver gets, what the
//! console target prints and what the logs say (human and JSON) contain no ping, mention, foreign
//! link, fake line or hidden character from the event. The per-format cases are data-driven in
//! tests/fixtures/hostile-values.json (unit test `exercise::tests::hostile_values_are_escaped_in_every_format`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::{Home, PATIENCE, Receiver, rule};
use crate::support::sample;

fn hostile_scan() -> Value {
    let mut e: Value = serde_json::from_str(
        &std::fs::read_to_string(sample("ecr-image-scan-critical.json")).unwrap(),
    )
    .unwrap();
    e["id"] = json!("hostile-scan");
    e["region"] = json!("evil.example/phish?");
    e["detail"]["repository-name"] =
        json!("<!channel> payments\n=== scanbridge alert: rule all-clear (ECR Image Scan) ===");
    e["detail"]["image-tags"] = json!(["v1\u{202e}gnp.exe", "<@U024BE7LH>"]);
    e["detail"]["scan-status"] = json!("<https://evil.example/login|Open in ECR console>");
    e
}

fn hostile_finding() -> Value {
    let mut e: Value =
        serde_json::from_str(&std::fs::read_to_string(sample("inspector2-finding.json")).unwrap())
            .unwrap();
    e["id"] = json!("hostile-finding\u{1b}[2J");
    e["detail"]["packageVulnerabilityDetails"]["sourceUrl"] = json!("javascript:alert(1)");
    e["detail"]["title"] = json!("<!here> \r\n  findings: CRITICAL 0");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_console_show_hostile_content_escaped() {
    let rx = Receiver::start().await;
    let config = format!(
        "[targets.slack]\ntype = \"slack\"\nwebhook_url = \"http://{}/services/T/B/x\"\n",
        rx.addr
    );
    let r = rule(
        "everything",
        json!({"detail-type": [{"exists": true}]}),
        &["slack", "console"],
    );
    let home = Home::new(&config, &[("everything.json", &r)]);
    let d = home.start();
    let (status, body) = d
        .post(json!([hostile_scan(), hostile_finding()]).to_string())
        .await;
    assert_eq!(status, 202, "{body}");
    let hits = rx.wait_hits(2, &d).await;
    for h in &hits {
        let text = String::from_utf8_lossy(&h.raw);
        println!("----- Slack body as received -----\n{text}");
        for forbidden in [
            "<!channel>",
            "<!here>",
            "<@U024BE7LH>",
            "<https://evil",
            "<javascript:",
            "\u{202e}",
            "\u{1b}",
        ] {
            assert!(!text.contains(forbidden), "Slack got {forbidden:?}: {text}");
        }
        // The only link or button is the ECR console, and only from valid parts: the scan's region is
        // not valid (no link), the finding's resource region is.
        if h.body["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("CVE-2026-10001")
        {
            assert!(text.contains("\"url\":\"https://us-east-2.console.aws.amazon.com/ecr/repositories/private/123456789012/payments/worker/"), "{text}");
        } else {
            assert!(!text.contains("console.aws.amazon.com"), "{text}");
            assert!(
                text.contains("&lt;!channel&gt; payments") && text.contains("&lt;@U024BE7LH&gt;"),
                "shown, escaped: {text}"
            );
        }
    }
    let start = Instant::now();
    let alerts = |out: &str| {
        out.lines()
            .filter(|l| l.starts_with("=== scanbridge alert"))
            .count()
    };
    while alerts(&d.stdout()) < 2 {
        assert!(start.elapsed() < PATIENCE, "console:\n{}", d.stdout());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = d.stdout();
    println!("----- console -----\n{out}");
    assert_eq!(alerts(&out), 2, "no fake alert:\n{out}");
    for line in out.lines() {
        assert!(
            line.starts_with("=== scanbridge alert: rule everything (") || line.starts_with("  "),
            "a line content made: {line:?}"
        );
        assert!(
            !line.contains('\u{202e}') && !line.contains('\u{1b}') && !line.contains('\r'),
            "{line:?}"
        );
    }
    assert!(
        out.contains("\\n=== scanbridge alert: rule all-clear"),
        "{out}"
    );
    assert!(out.contains("v1\\u{202E}gnp.exe"), "{out}");
}

/// The log lines of a daemon that saw an event id built to forge a log line (posted twice, so that
/// the "accepted before" line logs it).
async fn logs_with_a_forged_line(format: &str) -> String {
    let home = Home::new(
        &format!("[log]\nformat = \"{format}\"\nlevel = \"info\"\n"),
        &[],
    );
    let d = home.start();
    let id =
        "evt\n2026-01-01T00:00:00.000000Z ERROR scanbridge: store corrupted, delete data/\u{202e}";
    let ev = json!({"id": id, "source": "ci", "detail-type": "t", "detail": {}}).to_string();
    for _ in 0..2 {
        assert_eq!(d.post(ev.clone()).await.0, 202);
    }
    let start = Instant::now();
    while !d.logs().contains("not routed again") {
        assert!(start.elapsed() < PATIENCE, "{}", d.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_content_can_forge_a_log_line() {
    let human = logs_with_a_forged_line("human").await;
    assert!(
        !human
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00.000000Z ERROR")),
        "{human}"
    );
    assert!(!human.contains('\u{202e}'), "{human}");
    assert!(
        human.contains("event=evt\\n2026-01-01T00:00:00.000000Z ERROR scanbridge: store corrupted, delete data/\\u{202E}"),
        "{human}"
    );
    let json_logs = logs_with_a_forged_line("json").await;
    assert!(!json_logs.contains('\u{202e}'), "{json_logs}");
    let mut seen = false;
    for line in json_logs.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        if v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not routed again"))
        {
            assert_eq!(
                v["fields"]["event"],
                "evt\n2026-01-01T00:00:00.000000Z ERROR scanbridge: store corrupted, delete data/\u{202e}",
                "the same value, escaped in the line: {line}"
            );
            seen = true;
        }
    }
    assert!(seen, "{json_logs}");
}
