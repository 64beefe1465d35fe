//! The AWS JSON 1.1 endpoint driven by the real AWS CLI (installed by scripts/test).

use std::process::Command;

use serde_json::{Value, json};

use crate::daemon::{Daemon, Home, Receiver, rule};

/// The AWS CLI with dummy credentials and no user configuration, or None (with the reason printed).
fn aws(home: &Home, key: &str) -> Option<Command> {
    aws_signing(home, key, "test")
}

/// The AWS CLI signing with `key` and `secret`, no user configuration, or None (reason printed).
fn aws_signing(home: &Home, key: &str, secret: &str) -> Option<Command> {
    if Command::new("aws").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED: the AWS CLI (`aws`) is not on PATH; run the suite through scripts/test"
        );
        return None;
    }
    let mut c = Command::new("aws");
    c.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("AWS_PROFILE");
    Some(c)
}

fn run(mut c: Command, d: &Daemon, args: &[&str]) -> (Option<i32>, String, String) {
    let out = c
        .args(args)
        .args(["--endpoint-url", &d.url(""), "--output", "json"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_events_and_test_event_pattern_through_the_aws_cli() {
    let rx = Receiver::start().await;
    let critical = rule(
        "critical",
        json!({"source": ["aws.ecr"], "detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}),
        &["hook"],
    );
    let config = format!("[server]\ntoken = \"cli-key\"\n{}", rx.target());
    let home = Home::new(&config, &[("critical.json", &critical)]);
    let d = home.start();
    // Without server.aws_credentials, today's behaviour (the access key id as the token), with a warning.
    assert!(
        d.logs().contains("does not verify SigV4 signatures") && d.logs().contains("sigv4=false"),
        "{}",
        d.logs()
    );
    let Some(cli) = aws(&home, "cli-key") else {
        return;
    };

    let detail =
        json!({"repository-name": "payments/api", "finding-severity-counts": {"CRITICAL": 3}})
            .to_string();
    let entries = json!([
        {"Source": "aws.ecr", "DetailType": "ECR Image Scan", "Detail": detail, "Resources": ["arn:aws:ecr:us-east-1:1:repository/payments/api"]},
        {"Source": "aws.ecr", "DetailType": "ECR Image Scan", "Detail": "not json"},
    ])
    .to_string();
    let (code, out, err) = run(cli, &d, &["events", "put-events", "--entries", &entries]);
    assert_eq!(code, Some(0), "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["FailedEntryCount"], 1, "{answer}");
    let event_id = answer["Entries"][0]["EventId"]
        .as_str()
        .expect("first entry accepted")
        .to_owned();
    assert_eq!(answer["Entries"][1]["ErrorCode"], "MalformedDetail");
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["id"], event_id.as_str());
    assert_eq!(hits[0].body["detail-type"], "ECR Image Scan");
    assert_eq!(
        hits[0].body["detail"]["finding-severity-counts"]["CRITICAL"],
        3
    );
    assert_eq!(hits[0].body["account"], "000000000000");

    let ev = json!({"id": "1", "source": "aws.ecr", "detail-type": "x", "account": "1", "region": "r",
        "time": "2026-01-01T00:00:00Z", "resources": [], "detail": {"finding-severity-counts": {"CRITICAL": 1}}})
    .to_string();
    let pattern = r#"{"detail":{"finding-severity-counts":{"CRITICAL":[{"numeric":[">",0]}]}}}"#;
    let (code, out, err) = run(
        aws(&home, "cli-key").unwrap(),
        &d,
        &[
            "events",
            "test-event-pattern",
            "--event-pattern",
            pattern,
            "--event",
            &ev,
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"Result": true})
    );
    let (_, out, _) = run(
        aws(&home, "cli-key").unwrap(),
        &d,
        &[
            "events",
            "test-event-pattern",
            "--event-pattern",
            r#"{"source":["aws.inspector2"]}"#,
            "--event",
            &ev,
        ],
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"Result": false})
    );
    let (code, _, err) = run(
        aws(&home, "cli-key").unwrap(),
        &d,
        &[
            "events",
            "test-event-pattern",
            "--event-pattern",
            r#"{"source":"aws.ecr"}"#,
            "--event",
            &ev,
        ],
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("InvalidEventPatternException") && err.contains("Event pattern is not valid"),
        "{err}"
    );

    let (code, _, err) = run(
        aws(&home, "wrong-key").unwrap(),
        &d,
        &["events", "put-events", "--entries", &entries],
    );
    assert_ne!(code, Some(0), "a wrong access key is refused");
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
}

/// AWS's example key, from its SigV4 documentation.
const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_signatures_are_verified_with_the_real_aws_cli() {
    let rx = Receiver::start().await;
    let all = rule("all", json!({"source": ["ci"]}), &["hook"]);
    let home = Home::new("", &[("all.json", &all)]);
    let secret_file = home.path().join("aws-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let config = home.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "[server]\naws_credentials = [ {{ access_key_id = \"{AKID}\", secret_access_key_file = {:?} }} ]\n{text}{}",
            secret_file.display().to_string(),
            rx.target()
        ),
    )
    .unwrap();
    let d = home.start();
    assert!(d.logs().contains("sigv4=true"), "{}", d.logs());
    let Some(cli) = aws_signing(&home, AKID, SECRET) else {
        return;
    };
    let entries = json!([{"Source": "ci", "DetailType": "t", "Detail": "{\"n\": 1}"}]).to_string();
    // The right secret: accepted and delivered.
    let (code, out, err) = run(cli, &d, &["events", "put-events", "--entries", &entries]);
    assert_eq!(code, Some(0), "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["FailedEntryCount"], 0, "{answer}");
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["id"], answer["Entries"][0]["EventId"]);
    let (code, out, err) = run(
        aws_signing(&home, AKID, SECRET).unwrap(),
        &d,
        &[
            "events",
            "test-event-pattern",
            "--event-pattern",
            r#"{"source":["ci"]}"#,
            "--event",
            r#"{"id":"1","source":"ci","detail-type":"t","account":"1","region":"r","time":"2026-01-01T00:00:00Z","resources":[],"detail":{}}"#,
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"Result": true})
    );
    // A wrong secret: InvalidSignatureException, in AWS's words; nothing accepted.
    let (code, _, err) = run(
        aws_signing(&home, AKID, "wrong-secret").unwrap(),
        &d,
        &["events", "put-events", "--entries", &entries],
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("(InvalidSignatureException)")
            && err.contains(
                "The request signature we calculated does not match the signature you provided"
            ),
        "{err}"
    );
    // An unknown access key id: UnrecognizedClientException.
    let (code, _, err) = run(
        aws_signing(&home, "AKIDUNKNOWN", SECRET).unwrap(),
        &d,
        &["events", "put-events", "--entries", &entries],
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("(UnrecognizedClientException)")
            && err.contains("The security token included in the request is invalid"),
        "{err}"
    );
    // No signature at all (a bearer token is not enough for this door once keys are configured).
    let r = reqwest::Client::new()
        .post(d.url("/"))
        .header("x-amz-target", "AWSEvents.PutEvents")
        .bearer_auth(AKID)
        .body(json!({"Entries": [{"Source": "ci", "DetailType": "t", "Detail": "{}"}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        r.headers()["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.hits().len(), 1, "only the signed event was accepted");
    let logs = d.stop();
    assert!(
        !logs.contains(SECRET) && !logs.contains("wrong-secret"),
        "{logs}"
    );
}
