//! The email target against a real SMTP server (aiosmtpd): the message that arrives is parsed back and
//! read as the on-call person would (headers, both MIME parts, the rendered counts); real 4xx and 5xx
//! replies are retried and dead-lettered as promised.

use mailparse::{MailHeaderMap, ParsedMail};
use serde_json::json;

use crate::daemon::{Home, cli, rule};
use crate::smtp::Smtp;
use crate::support::sample;

pub fn part<'a>(mail: &'a ParsedMail<'a>, mime: &str) -> String {
    if mail.ctype.mimetype == mime {
        return mail.get_body().unwrap().replace("\r\n", "\n");
    }
    mail.subparts
        .iter()
        .map(|p| part(p, mime))
        .find(|b| !b.is_empty())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_alert_email_arrives_with_both_parts_and_every_count() {
    let Some(smtp) = Smtp::start("scan_alert_email_arrives_with_both_parts_and_every_count") else {
        return;
    };
    let config = smtp.target(
        "mail",
        &["oncall@example.org", "sre@example.org"],
        "cc = [\"security@example.org\"]",
    );
    let rules = rule(
        "scans-to-mail",
        json!({"source": ["aws.ecr", "aws.inspector2"]}),
        &["mail"],
    );
    let home = Home::new(&config, &[("r.json", &rules)]);
    let d = home.start();
    let critical = std::fs::read_to_string(sample("ecr-image-scan-critical.json")).unwrap();
    assert_eq!(d.post(critical).await.0, 202);
    let raw = smtp.wait_messages(1, || d.logs()).remove(0);
    let mail = mailparse::parse_mail(&raw).unwrap();
    let h = &mail.headers;
    let subject = h.get_first_value("Subject").unwrap();
    println!(
        "----- the email as received -----\nSubject: {subject}\n{}",
        part(&mail, "text/plain")
    );
    assert_eq!(
        subject,
        "[scanbridge] 2 CRITICAL, 7 HIGH, 19 MEDIUM, 4 LOW, 3 INFORMATIONAL in payments/api:v2.14.0"
    );
    assert!(
        h.get_first_value("From")
            .unwrap()
            .contains("scanbridge@example.org")
    );
    let to = h.get_first_value("To").unwrap();
    assert!(
        to.contains("oncall@example.org") && to.contains("sre@example.org"),
        "{to}"
    );
    assert!(
        h.get_first_value("Cc")
            .unwrap()
            .contains("security@example.org")
    );
    let id = scanbridge::delivery_id(
        "3f6a1c52-8e0b-4d1e-9a8f-5b2c7d9e1a01",
        "scans-to-mail",
        "mail",
    );
    assert_eq!(
        h.get_first_value("Message-ID").unwrap(),
        format!("<{id}@scanbridge>")
    );
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");

    let text = part(&mail, "text/plain");
    let counts = [
        "CRITICAL: 2",
        "HIGH: 7",
        "MEDIUM: 19",
        "LOW: 4",
        "INFORMATIONAL: 3",
        "UNDEFINED: 0",
    ];
    let mut at = 0;
    for c in counts {
        let i = text[at..]
            .find(c)
            .unwrap_or_else(|| panic!("{c} missing or out of order:\n{text}"));
        at += i;
    }
    assert!(
        text.contains("payments/api:v2.14.0 (also latest)"),
        "{text}"
    );
    assert!(
        text.contains("Digest:   sha256:9c1d4f3b8e2a\n"),
        "short digest:\n{text}"
    );
    let console = "https://us-east-1.console.aws.amazon.com/ecr/repositories/private/123456789012/payments/api/_/image/sha256:9c1d4f3b8e2a7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615e4/details?region=us-east-1";
    assert!(text.contains(console), "{text}");

    let html = part(&mail, "text/html").replace("&#x2f;", "/");
    assert!(
        html.contains("<td>UNDEFINED</td><td align=\"right\">0</td>"),
        "{html}"
    );
    assert!(html.contains(&format!("href=\"{console}\"")), "{html}");

    // An Inspector2 finding: CVE, package, fixed-in version.
    let finding = std::fs::read_to_string(sample("inspector2-finding.json")).unwrap();
    d.post(finding).await;
    let raw = smtp.wait_messages(2, || d.logs());
    let second = raw
        .iter()
        .map(|r| mailparse::parse_mail(r).unwrap())
        .find(|m| {
            m.headers
                .get_first_value("Subject")
                .unwrap()
                .contains("CVE")
        })
        .expect("the finding email");
    assert_eq!(
        second.headers.get_first_value("Subject").unwrap(),
        "[scanbridge] CRITICAL CVE-2026-10001 in libssl3 (payments/worker:release-2026.11)"
    );
    let text = part(&second, "text/plain");
    for needle in [
        "Package:        libssl3 3.0.15",
        "Fixed in:       3.0.15-1~deb12u2",
        "score 9.8",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_5xx_dead_letters_at_once_and_4xx_is_retried() {
    let Some(smtp) = Smtp::start("smtp_5xx_dead_letters_at_once_and_4xx_is_retried") else {
        return;
    };
    let config = format!(
        "{}{}",
        smtp.target("rejecting", &["reject@example.org"], ""),
        smtp.target(
            "busy",
            &["later@example.org"],
            "[targets.busy.retry]\nmax_attempts = 3\n"
        ),
    );
    let rules = rule("all", json!({"source": ["ci"]}), &["rejecting", "busy"]);
    let home = Home::new(&config, &[("r.json", &rules)]);
    let d = home.start();
    d.post(crate::daemon::event("e-smtp", "ci").to_string())
        .await;
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"rejecting\",outcome=\"dead_letter\"}",
        1.0,
    )
    .await;
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"busy\",outcome=\"dead_letter\"}",
        1.0,
    )
    .await;
    assert_eq!(
        d.metric("scanbridge_deliveries_total{target=\"rejecting\",outcome=\"permanent\"}")
            .await,
        1.0,
        "5xx: one attempt"
    );
    assert_eq!(
        d.metric("scanbridge_deliveries_total{target=\"busy\",outcome=\"retryable\"}")
            .await,
        3.0,
        "4xx: retried up to max_attempts"
    );
    let data = home.path().join("data").display().to_string();
    let out = cli(&["dlq", "--data-dir", &data, "list", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let reasons: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reason = |t: &str| {
        reasons.iter().find(|r| r["target"] == t).unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        reason("rejecting").contains("550"),
        "{}",
        reason("rejecting")
    );
    assert!(
        reason("busy").contains("451") && reason("busy").contains("max_attempts"),
        "{}",
        reason("busy")
    );
    assert_eq!(smtp.count(), 0, "nothing was accepted");
    d.stop();
}
