//! Amazon Inspector out of the box: the shipped rules alert on Inspector2 findings (CRITICAL, and HIGH
//! with a fix) and Inspector2 scans beside ECR scans, and every receiver a person reads (console,
//! Slack, Teams, email) shows a finding's CVE, severity, score, package with installed and fixed
//! versions and its resource, and an Inspector2 scan's repository name (not the ARN) and TOTAL.
//! Through the real binary, with the shared kit's Inspector2 samples, real HTTP receivers and a real
//! SMTP server.

use serde_json::{Value, json};

use crate::daemon::{Home, PATIENCE, Receiver, rule};
use crate::email::part;
use crate::smtp::Smtp;
use crate::support::sample;

fn read(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(sample(name)).unwrap()).unwrap()
}

/// Waits until the daemon's stdout holds `n` console alerts.
async fn alerts(d: &crate::daemon::Daemon, n: usize) -> String {
    let start = std::time::Instant::now();
    loop {
        let out = d.stdout();
        if out.matches("=== scanbridge alert").count() >= n {
            return out;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{n} alerts expected:\n{out}\n{}",
            d.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_rules_alert_on_inspector_findings_and_scans_on_the_console() {
    // The shipped rules/ of the repository, as `serve` uses them.
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let home = Home::new("", &[]);
    let config = std::fs::read_to_string(home.path().join("config.toml"))
        .unwrap()
        .replace(
            &format!(
                "dir = {:?}",
                home.path().join("rules").display().to_string()
            ),
            &format!("dir = {:?}", rules.display().to_string()),
        );
    std::fs::write(home.path().join("config.toml"), config).unwrap();
    let d = home.start();

    let finding = read("inspector2-finding.json");
    assert_eq!(d.post(finding.to_string()).await.0, 202);
    let out = alerts(&d, 1).await;
    for line in [
        "=== scanbridge alert: rule inspector-critical-findings (Inspector2 Finding) ===\n",
        "  image:    payments/worker:release-2026.11\n",
        "  finding:  CVE-2026-10001 CRITICAL (score 9.8) ACTIVE\n",
        "  package:  libssl3 3.0.15 -> fixed in 3.0.15-1~deb12u2\n",
        "  resource: arn:aws:ecr:us-east-2:123456789012:repository/payments/worker/sha256:1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809\n",
    ] {
        assert!(out.contains(line), "{line}in:\n{out}");
    }

    // HIGH: alerted when a fix is available, not otherwise.
    let mut high = finding.clone();
    high["id"] = json!("high-fixable");
    high["detail"]["severity"] = json!("HIGH");
    high["detail"]["findingArn"] = json!("arn:aws:inspector2:us-east-2:123456789012:finding/high");
    let mut unfixed = high.clone();
    unfixed["id"] = json!("high-unfixed");
    unfixed["detail"]["fixAvailable"] = json!("NO");
    unfixed["detail"]["findingArn"] = json!("arn:aws:inspector2:us-east-2:123456789012:finding/no");
    assert_eq!(d.post(unfixed.to_string()).await.0, 202);
    assert_eq!(d.post(high.to_string()).await.0, 202);
    let out = alerts(&d, 2).await;
    assert!(
        out.contains("rule inspector-high-findings-fixable (Inspector2 Finding)"),
        "{out}"
    );

    // An Inspector2 Scan (enhanced scanning) beside the ECR scans: the name, not the ARN; TOTAL.
    assert_eq!(
        d.post(read("inspector2-scan.json").to_string()).await.0,
        202
    );
    let out = alerts(&d, 3).await;
    let scan = out
        .split("=== scanbridge alert")
        .find(|a| a.contains("(Inspector2 Scan)"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        scan.starts_with(": rule critical-findings (Inspector2 Scan)"),
        "{scan}"
    );
    assert!(
        scan.contains("  image:    payments/worker:release-2026.11\n"),
        "{scan}"
    );
    assert!(!scan.contains("image:    arn:"), "{scan}");
    assert!(
        scan.contains("  findings: CRITICAL 1  HIGH 0  MEDIUM 6  TOTAL 10\n"),
        "{scan}"
    );
    // The unfixed HIGH finding alerted nobody: still three alerts once everything is delivered.
    d.wait_metric("scanbridge_events_accepted_total", 4.0).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        d.stdout().matches("=== scanbridge alert").count(),
        3,
        "{}",
        d.stdout()
    );
    assert!(!d.stdout().contains("high-unfixed"), "{}", d.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_teams_and_email_show_the_finding_and_the_scan_total() {
    let Some(smtp) = Smtp::start("slack_teams_and_email_show_the_finding_and_the_scan_total")
    else {
        return;
    };
    let slack = Receiver::start().await;
    let teams = Receiver::start().await;
    let config = format!(
        "[targets.slack]\ntype = \"slack\"\nwebhook_url = \"http://{}/services/T/B/x\"\n\
         [targets.teams]\ntype = \"teams\"\nwebhook_url = \"http://{}/workflow\"\n{}",
        slack.addr,
        teams.addr,
        smtp.target("mail", &["oncall@example.org"], "")
    );
    let r = rule(
        "inspector",
        json!({"source": ["aws.inspector2"]}),
        &["slack", "teams", "mail"],
    );
    let home = Home::new(&config, &[("r.json", &r)]);
    let d = home.start();
    assert_eq!(
        d.post(read("inspector2-finding.json").to_string()).await.0,
        202
    );
    let s = slack.wait_hits(1, &d).await.remove(0).body;
    let fields: Vec<String> = s["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["fields"].as_array())
        .flatten()
        .map(|f| f["text"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "*Repository*\n`payments/worker`",
        "*Severity*\nCRITICAL (score 9.8)",
        "*Package*\n`libssl3` 3.0.15",
        "*Fixed in*\n3.0.15-1~deb12u2",
        "*Resource*\n`arn:aws:ecr:us-east-2:123456789012:repository/payments/worker/sha256:1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809`",
    ] {
        assert!(fields.iter().any(|f| f == want), "{want} in {fields:#?}");
    }
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("*Vulnerability*\n") && f.contains("CVE-2026-10001")),
        "{fields:#?}"
    );

    let t = teams.wait_hits(1, &d).await.remove(0).body;
    let facts: Vec<(String, String)> = t["attachments"][0]["content"]["body"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["facts"].as_array())
        .flatten()
        .map(|f| {
            (
                f["title"].as_str().unwrap().to_owned(),
                f["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let fact = |title: &str| {
        facts
            .iter()
            .find(|(t, _)| t == title)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {title} in {facts:?}"))
    };
    assert_eq!(fact("Vulnerability"), "CVE-2026-10001");
    assert_eq!(fact("Severity"), "CRITICAL (score 9.8)");
    assert_eq!(fact("Package"), "libssl3 3\\.0.15");
    // Markdown-escaped as every value from an event is ('~' would strike through).
    assert_eq!(fact("Fixed in"), "3\\.0.15-1\\~deb12u2");
    assert!(
        fact("Resource").contains("payments/worker/sha256:1a2b3c4d5e6f"),
        "{facts:?}"
    );

    let raw = smtp.wait_messages(1, || d.logs()).remove(0);
    let mail = mailparse::parse_mail(&raw).unwrap();
    let text = part(&mail, "text/plain");
    for want in [
        "Vulnerability:  CVE-2026-10001 (CVE-2026-10001 - libssl3)",
        "Severity:       CRITICAL (score 9.8)",
        "Package:        libssl3 3.0.15",
        "Fixed in:       3.0.15-1~deb12u2",
        "Image:          payments/worker:release-2026.11",
        "Resource:       arn:aws:ecr:us-east-2:123456789012:repository/payments/worker/sha256:1a2b3c4d5e6f",
    ] {
        assert!(text.contains(want), "{want} in:\n{text}");
    }
    let html = part(&mail, "text/html");
    assert!(html.contains("<th align=\"left\">Resource</th>"), "{html}");

    // The Inspector2 Scan: its repository name and TOTAL, everywhere.
    assert_eq!(
        d.post(read("inspector2-scan.json").to_string()).await.0,
        202
    );
    let s = slack.wait_hits(2, &d).await.remove(1).body.to_string();
    assert!(
        s.contains("(total 10)") && s.contains("`payments/worker`"),
        "{s}"
    );
    assert!(!s.contains("repository/payments/worker`"), "{s}");
    let t = teams.wait_hits(2, &d).await.remove(1).body.to_string();
    assert!(t.contains("(total 10)"), "{t}");
    let raw = smtp.wait_messages(2, || d.logs()).remove(1);
    let mail = mailparse::parse_mail(&raw).unwrap();
    let text = part(&mail, "text/plain");
    assert!(
        text.contains("Findings (total 10):")
            && text.contains("Image:    payments/worker:release-2026.11"),
        "{text}"
    );
}
