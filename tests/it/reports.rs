//! Scanner reports through the real binary: each report as its scanner publishes it
//! (tests/fixtures/reports, SOURCES.md) posted to `POST /reports` reaches a real webhook as its Image
//! Scan event with the report's own counts; the ingest token and limits of `/events` apply; unknown
//! bodies say why; `report-event | test-pattern` works offline; `send --report` posts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::daemon::{Home, Receiver, cli, rule};
use crate::support;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reports")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// The trivy-operator documented sample as its webhook posts it: the object as JSON.
fn operator_json() -> Vec<u8> {
    let yaml = String::from_utf8(read("trivy-operator-vulnerabilityreport.yaml")).unwrap();
    let v: Value = serde_norway::from_str(&yaml).unwrap();
    serde_json::to_vec(&v).unwrap()
}

/// Counts per ECR severity, computed from the report itself (not by scanbridge's code).
fn counts(severities: impl Iterator<Item = String>) -> Value {
    let mut m = BTreeMap::new();
    for s in severities {
        let ecr = match s.to_ascii_uppercase().as_str() {
            "NEGLIGIBLE" => "INFORMATIONAL".to_owned(),
            "UNKNOWN" => "UNDEFINED".to_owned(),
            other => other.to_owned(),
        };
        *m.entry(ecr).or_insert(0u64) += 1;
    }
    json!(m)
}

fn trivy_counts(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap();
    counts(
        v["Results"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["Vulnerabilities"].as_array().cloned().unwrap_or_default())
            .map(|x| x["Severity"].as_str().unwrap().to_owned()),
    )
}

async fn post(url: &str, body: Vec<u8>, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// One report and what its event must say.
struct Case {
    name: &'static str,
    body: Vec<u8>,
    source: &'static str,
    counts: Value,
    repository: Option<&'static str>,
}

fn case(
    name: &'static str,
    body: Vec<u8>,
    source: &'static str,
    counts: Value,
    repository: Option<&'static str>,
) -> Case {
    Case {
        name,
        body,
        source,
        counts,
        repository,
    }
}

fn reports_home(rx: &Receiver, extra: &str) -> Home {
    let r = rule(
        "reports",
        json!({"detail-type": ["Image Scan"], "source": [{"prefix": "scanbridge."}]}),
        &["hook"],
    );
    Home::new(&format!("{}{extra}", rx.target()), &[("reports.json", &r)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_report_reaches_the_webhook_as_its_event() {
    let rx = Receiver::start().await;
    let home = reports_home(&rx, "");
    let d = home.start();
    let trivy39 = read("trivy-alpine-39-high-critical.json");
    let trivy310 = read("trivy-alpine-310-registry.json");
    let grype = read("grype-image.json");
    let grype_counts = {
        let v: Value = serde_json::from_slice(&grype).unwrap();
        counts(
            v["matches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["vulnerability"]["severity"].as_str().unwrap().to_owned()),
        )
    };
    let cases = vec![
        case(
            "trivy 3.9",
            trivy39.clone(),
            "scanbridge.trivy",
            trivy_counts(&trivy39),
            None,
        ),
        case(
            "trivy 3.10",
            trivy310.clone(),
            "scanbridge.trivy",
            trivy_counts(&trivy310),
            Some("alpine"),
        ),
        case(
            "grype",
            grype,
            "scanbridge.grype",
            grype_counts,
            Some("user-input"),
        ),
        case(
            "trivy-operator",
            operator_json(),
            "scanbridge.trivy-operator",
            json!({"CRITICAL": 2}),
            Some("library/nginx"),
        ),
    ];
    let mut ids = Vec::new();
    for c in &cases {
        let (status, answer) = post(&d.url("/reports"), c.body.clone(), None).await;
        assert_eq!(status, 202, "{}: {answer}", c.name);
        assert_eq!(answer["accepted"], 1, "{}: {answer}", c.name);
        ids.push(answer["results"][0]["id"].as_str().unwrap().to_owned());
    }
    let hits = rx.wait_hits(cases.len(), &d).await;
    for (c, id) in cases.iter().zip(&ids) {
        let name = c.name;
        let hit = hits
            .iter()
            .find(|h| h.body["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{name}: no delivery of {id}"));
        let ev = &hit.body;
        assert_eq!(ev["source"], c.source, "{name}");
        assert_eq!(ev["detail-type"], "Image Scan", "{name}");
        assert_eq!(ev["detail"]["scan-status"], "COMPLETE", "{name}");
        assert_eq!(ev["detail"]["finding-severity-counts"], c.counts, "{name}");
        let n: u64 = c
            .counts
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(
            ev["detail"]["findings"].as_array().unwrap().len() as u64,
            n,
            "{name}"
        );
        if let Some(r) = c.repository {
            assert_eq!(ev["detail"]["repository-name"], r, "{name}");
        }
        assert_eq!(ev["account"], "000000000000", "{name}: [aws] account");
    }
    let t310 = hits
        .iter()
        .find(|h| h.body["id"] == ids[1].as_str())
        .unwrap();
    assert_eq!(t310.body["detail"]["image-tags"], json!(["3.10"]));
    assert_eq!(
        t310.body["detail"]["image-digest"],
        "sha256:b1c5a500182b21d0bfa5a584a8526b56d8be316f89e87d951be04abed2446e60"
    );
    assert_eq!(
        t310.body["time"], "2021-08-25T12:20:30Z",
        "the report's CreatedAt"
    );

    // The same report again is the same event: answered "duplicate", delivered once.
    let (status, answer) = post(&d.url("/reports"), trivy39, None).await;
    assert_eq!(
        (status, answer["results"][0]["status"].clone()),
        (202, json!("duplicate"))
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(rx.hits().len(), cases.len(), "no second delivery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_take_the_ingest_token_and_limits_and_say_why_a_body_is_none() {
    let rx = Receiver::start().await;
    let home = reports_home(
        &rx,
        "\n[server]\ntoken = \"tok-reports\"\nmax_body_bytes = 65536\n",
    );
    let d = home.start();
    let url = d.url("/reports");
    let trivy = read("trivy-alpine-39-high-critical.json");
    assert_eq!(post(&url, trivy.clone(), None).await.0, 401);
    assert_eq!(post(&url, trivy.clone(), Some("wrong")).await.0, 401);
    let (status, answer) = post(&url, trivy.clone(), Some("tok-reports")).await;
    assert_eq!(status, 202, "{answer}");

    let (status, answer) = post(
        &url,
        br#"{"kind":"ConfigMap","data":{}}"#.to_vec(),
        Some("tok-reports"),
    )
    .await;
    assert_eq!(status, 400);
    let msg = answer["error"].as_str().unwrap();
    for needle in [
        "not Trivy: no SchemaVersion",
        "not Grype: no `matches` array",
        "not trivy-operator",
    ] {
        assert!(msg.contains(needle), "{msg}");
    }
    assert_eq!(
        answer["formats"],
        json!(["trivy", "grype", "trivy-operator"])
    );

    let (status, answer) = post(
        &format!("{url}?format=grype"),
        trivy.clone(),
        Some("tok-reports"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("not a Grype report"),
        "{answer}"
    );
    let (status, answer) = post(&format!("{url}?format=sarif"), trivy, Some("tok-reports")).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown report format"),
        "{answer}"
    );

    // trivy-operator posts every report kind to the same URL: an ExposedSecretReport is skipped, not refused.
    let (status, answer) = post(
        &url,
        read("trivy-operator-webhook-secret-report.json"),
        Some("tok-reports"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["ignored"]
            .as_str()
            .unwrap()
            .contains("without vulnerabilities")
    );

    // The body limit of /events applies: the 18 KiB report passes, a 70 KiB body does not.
    assert_eq!(
        post(
            &url,
            read("trivy-alpine-310-registry.json"),
            Some("tok-reports")
        )
        .await
        .0,
        202
    );
    let big = format!(
        r#"{{"SchemaVersion":2,"ArtifactName":"a","Pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    assert_eq!(
        post(&url, big.into_bytes(), Some("tok-reports")).await.0,
        413
    );
    let hits = rx.wait_hits(2, &d).await;
    assert_eq!(
        hits.len(),
        2,
        "only the two accepted reports were delivered"
    );
}

#[test]
fn report_event_pipes_into_test_pattern() {
    let file = fixture("trivy-alpine-39-high-critical.json");
    let out = cli(&["report-event", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let text = support::stdout(&out);
    assert_eq!(
        text.lines().count(),
        1,
        "one line: NDJSON for test-pattern --event -"
    );
    let ev: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ev["source"], "scanbridge.trivy");
    let critical = r#"{"detail-type":["Image Scan"],"detail":{"finding-severity-counts":{"CRITICAL":[{"numeric":[">",0]}]}}}"#;
    let m = support::run(
        &[
            "test-pattern",
            "--pattern",
            critical,
            "--event",
            "-",
            "--require-envelope",
        ],
        &text,
    );
    assert_eq!(
        m.status.code(),
        Some(0),
        "{}{}",
        support::stdout(&m),
        support::stderr(&m)
    );
    // A rule written on ECR's basic-scan detail matches the report event too.
    let ecr_rule = r#"{"detail":{"scan-status":["COMPLETE"],"finding-severity-counts":{"HIGH":[{"exists":false}]}}}"#;
    assert_eq!(
        support::run(
            &["test-pattern", "--pattern", ecr_rule, "--event", "-"],
            &text
        )
        .status
        .code(),
        Some(0)
    );
    let high = r#"{"detail":{"finding-severity-counts":{"HIGH":[{"numeric":[">",0]}]}}}"#;
    assert_eq!(
        support::run(&["test-pattern", "--pattern", high, "--event", "-"], &text)
            .status
            .code(),
        Some(1)
    );
    // Stdin, and the same id as the daemon would give.
    let again = support::run(
        &["report-event", "-"],
        &String::from_utf8(read("trivy-alpine-39-high-critical.json")).unwrap(),
    );
    let ev2: Value = serde_json::from_str(&support::stdout(&again)).unwrap();
    assert_eq!(ev2["id"], ev["id"]);
    let bad = support::run(&["report-event", "-"], "{\"hello\": 1}");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        support::stderr(&bad).contains("not Trivy"),
        "{}",
        support::stderr(&bad)
    );
}

/// The house rule for reports: the shipped defaults alone print a readable alert, naming the CVEs.
#[test]
fn default_serve_prints_the_top_findings_of_a_critical_report() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let d = crate::daemon::Daemon::spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
    ]);
    let report = fixture("trivy-alpine-39-high-critical.json");
    let out = cli(&[
        "send",
        "--report",
        "--url",
        &d.url(""),
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", support::stdout(&out));
    let start = std::time::Instant::now();
    while !d.stdout().contains("delivery:") {
        assert!(
            start.elapsed() < crate::daemon::PATIENCE,
            "no alert:\n{}",
            d.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let alert = d.stdout();
    assert!(
        alert.contains("rule report-critical-findings (Image Scan)"),
        "{alert}"
    );
    assert!(alert.contains("CRITICAL 2  HIGH 0"), "{alert}");
    assert!(
        alert.contains("top:      CRITICAL CVE-2019-14697 musl 1.1.20-r4 -> fixed in 1.1.20-r5"),
        "{alert}"
    );
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_report_posts_reports() {
    let rx = Receiver::start().await;
    let home = reports_home(&rx, "");
    let d = home.start();
    let base = d.url("");
    let grype = fixture("grype-image.json");
    let out = tokio::task::spawn_blocking(move || {
        cli(&["send", "--report", "--url", &base, grype.to_str().unwrap()])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        support::stdout(&out),
        support::stderr(&out)
    );
    assert!(
        support::stdout(&out).contains("HTTP 202"),
        "{}",
        support::stdout(&out)
    );
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["source"], "scanbridge.grype");
    let base = d.url("");
    let wrong = fixture("grype-image.json");
    let out = tokio::task::spawn_blocking(move || {
        cli(&[
            "send",
            "--report",
            "--format",
            "trivy",
            "--url",
            &base,
            wrong.to_str().unwrap(),
        ])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", support::stdout(&out));
    assert!(support::stdout(&out).contains("HTTP 400"));
}
