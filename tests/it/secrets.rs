//! No secret leaks: an SMTP password, a webhook URL's token and user info, a Slack webhook path, a
//! Standard Webhooks signing secret and a header value are configured on targets that fail; none of
//! them may appear in the daemon's logs, in dead-letter reasons, or in what `check`, `route` and
//! `notify-test` print.

use serde_json::json;

use crate::daemon::{Home, Receiver, cli};
use crate::smtp::Smtp;
use crate::support::sample;

const SECRETS: [&str; 6] = [
    "smtp-pa55-SECRET",
    "hook-TOKEN-123",
    "url-PASS-456",
    "slack-PATH-789",
    "c2lnbmluZy1TRUNSRVQtYWJj", // base64 of the HMAC key
    "hdr-VAL-321",
];

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} leaks {s}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_dead_letters_or_cli_output() {
    let rx = Receiver::start().await;
    rx.fail(503);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let smtp = Smtp::start("no_secret_in_logs (SMTP part: a closed port instead)");
    let smtp_port = smtp.as_ref().map(|s| s.port).unwrap_or(closed);
    let config = format!(
        "[targets.mail]\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\
         username = \"scanbridge\"\npassword = \"smtp-pa55-SECRET\"\nfrom = \"a@example.org\"\nto = [\"b@example.org\"]\n\
         [targets.hook]\ntype = \"webhook\"\nurl = \"http://user:url-PASS-456@{addr}/hook?token=hook-TOKEN-123\"\n\
         secret = \"whsec_c2lnbmluZy1TRUNSRVQtYWJj\"\nheaders = {{ Authorization = \"Bearer hdr-VAL-321\" }}\n\
         [targets.slack]\ntype = \"slack\"\nwebhook_url = \"http://127.0.0.1:{closed}/services/T/B/slack-PATH-789\"\n",
        addr = rx.addr
    );
    let config = config
        + "[targets.mail.retry]\nmax_attempts = 2\n[targets.hook.retry]\nmax_attempts = 2\n[targets.slack.retry]\nmax_attempts = 2\n";
    let rule = json!({"name": "all", "event_pattern": {"source": ["aws.ecr"]},
        "targets": ["mail", "hook", "slack"]});
    let home = Home::new(&config, &[("r.json", &rule.to_string())]);
    let d = home.start();
    d.post(std::fs::read_to_string(sample("ecr-image-scan-critical.json")).unwrap())
        .await;
    for t in ["mail", "hook", "slack"] {
        d.wait_metric(
            &format!("scanbridge_deliveries_total{{target=\"{t}\",outcome=\"dead_letter\"}}"),
            1.0,
        )
        .await;
    }
    let logs = d.stop();
    assert!(logs.contains("dead-lettered"), "{logs}");
    assert!(
        logs.contains("503"),
        "the webhook failure is logged: {logs}"
    );
    assert_clean("daemon logs", &logs);

    let data = home.path().join("data").display().to_string();
    let out = cli(&["dlq", "--data-dir", &data, "list", "--json"]);
    let dl = String::from_utf8_lossy(&out.stdout);
    println!("dead letters:\n{dl}");
    assert_eq!(dl.lines().count(), 3, "{dl}");
    assert_clean("dead letters", &dl);

    let config = home.path().join("config.toml").display().to_string();
    let rules = home.path().join("rules").display().to_string();
    let event = sample("ecr-image-scan-critical.json");
    for args in [
        vec!["check", "--config", &config, "--rules", &rules],
        vec![
            "route", "--event", &event, "--config", &config, "--rules", &rules,
        ],
        vec!["notify-test", "hook", "--config", &config],
        vec!["notify-test", "slack", "--config", &config],
        vec!["notify-test", "mail", "--config", &config],
    ] {
        let out = cli(&args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.is_empty(), "{args:?}");
        assert_clean(&format!("{args:?}"), &text);
    }
    drop(smtp);
}
