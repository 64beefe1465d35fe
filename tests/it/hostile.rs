//! Hostile input against the real daemon over real sockets: each case gets a clear error, the daemon
//! stays up, and what was accepted before and after is delivered. Quick versions of the cases listed in
//! RELIABILITY.md (the scripts under scripts/ run the long versions).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::daemon::{Daemon, Home, PATIENCE, Receiver, event, rule};

fn everything_to_hook(rx: &Receiver, extra: &str) -> Home {
    let r = rule("all", json!({"source": ["ci"]}), &["hook"]);
    Home::new(&format!("{}{extra}", rx.target()), &[("all.json", &r)])
}

/// Ids of the events the receiver got.
fn delivered(rx: &Receiver) -> Vec<String> {
    rx.hits()
        .iter()
        .filter_map(|h| h.body["id"].as_str().map(str::to_owned))
        .collect()
}

async fn still_up_and_delivering(d: &Daemon, rx: &Receiver, id: &str) {
    let (status, body) = d.post(event(id, "ci").to_string()).await;
    assert_eq!(status, 202, "{body}");
    let start = Instant::now();
    while !delivered(rx).iter().any(|x| x == id) {
        assert!(
            start.elapsed() < PATIENCE,
            "{id} not delivered:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_clear_errors_and_the_daemon_stays_up() {
    let rx = Receiver::start().await;
    let home = everything_to_hook(&rx, "");
    let d = home.start();
    still_up_and_delivering(&d, &rx, "before").await;
    let deep = format!(
        r#"{{"source":"ci","detail-type":"t","detail":{{"x":{}1{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "truncated",
            br#"{"source":"ci","detail-"#.to_vec(),
            400,
            "line 1 column",
        ),
        ("garbage", b"hello".to_vec(), 400, "not valid JSON"),
        (
            "string",
            br#""an event""#.to_vec(),
            400,
            "must be a JSON object",
        ),
        (
            "array of scalars",
            b"[1, null, \"x\"]".to_vec(),
            400,
            "must be a JSON object",
        ),
        (
            "invalid UTF-8",
            b"{\"source\":\"c\xffi\"}".to_vec(),
            400,
            "offset 12",
        ),
        ("empty", b"   ".to_vec(), 400, "empty"),
        (
            "duplicate keys",
            br#"{"source":"ci","detail-type":"t","detail":{"sev":"LOW","sev":"CRITICAL"}}"#
                .to_vec(),
            400,
            "duplicate key \\\"sev\\\"",
        ),
        (
            "1e400",
            br#"{"source":"ci","detail-type":"t","detail":{"n":1e400}}"#.to_vec(),
            400,
            "number out of range",
        ),
        (
            "100,000 levels deep",
            deep.into_bytes(),
            400,
            "recursion limit",
        ),
        (
            "100,000 levels deep, top level",
            ("[".repeat(100_000) + &"]".repeat(100_000)).into_bytes(),
            400,
            "recursion limit",
        ),
    ];
    for (name, body, status, needle) in cases {
        let (got, answer) = d.post(body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert!(answer.to_string().contains(needle), "{name}: {answer}");
    }
    // -0 is a number like any other.
    let (status, body) = d
        .post(r#"{"id":"minus-zero","source":"ci","detail-type":"t","detail":{"n":-0}}"#)
        .await;
    assert_eq!(status, 202, "{body}");
    still_up_and_delivering(&d, &rx, "after").await;
    assert!(delivered(&rx).iter().any(|x| x == "minus-zero"));
    assert_eq!(d.metric("scanbridge_events_accepted_total").await, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_elements_get_413_without_a_million_results() {
    let rx = Receiver::start().await;
    let home = everything_to_hook(&rx, "");
    let d = home.start();
    // One event holding a million-element array: over the 256 KiB event limit.
    let mut big = String::from(r#"{"source":"ci","detail-type":"t","detail":{"a":["#);
    big.push_str(&vec!["0"; 1_000_000].join(","));
    big.push_str("]}}");
    let (status, body) = d.post(big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.to_string().contains("over the limit"), "{body}");
    // A batch of a million tiny elements (2 MB): refused as a whole, answer stays small.
    let batch = format!("[{}]", vec!["{}"; 1_000_000].join(","));
    let resp = reqwest::Client::new()
        .post(d.url("/events"))
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let text = resp.text().await.unwrap();
    assert!(
        text.len() < 1000 && text.contains("server.max_batch_events"),
        "{text}"
    );
    still_up_and_delivering(&d, &rx, "after").await;
}

/// Sends `head` on a raw connection and returns what the server answers before closing (bounded).
async fn raw_exchange(d: &Daemon, head: &[u8]) -> (Duration, String) {
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(head).await.unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut got)).await;
    (start.elapsed(), String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_bodies_and_headers_time_out() {
    let rx = Receiver::start().await;
    let home = everything_to_hook(
        &rx,
        "[server]\nbody_timeout = \"1s\"\nheader_timeout = \"1s\"\n",
    );
    let d = home.start();
    // A body that never ends: 10 of the 1000 announced bytes, then silence.
    let (took, answer) = raw_exchange(
        &d,
        b"POST /events HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{\"source\":",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.body_timeout"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Headers that never end: the connection is closed.
    let (took, answer) = raw_exchange(&d, b"POST /events HTTP/1.1\r\nhost: x\r\n").await;
    assert!(!answer.contains("202"), "{answer}");
    assert!(
        took < Duration::from_secs(5),
        "closed after the header timeout: {took:?}"
    );
    // Nothing at all: closed too.
    let (took, _) = raw_exchange(&d, b"").await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        d.metric("scanbridge_ingest_refused_total{reason=\"body_timeout\"}")
            .await
            >= 1.0
    );
    still_up_and_delivering(&d, &rx, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections_are_all_served_within_the_limit() {
    let rx = Receiver::start().await;
    let home = everything_to_hook(
        &rx,
        "[server]\nmax_connections = 8\nheader_timeout = \"1s\"\nrate_limit = 0.0\n",
    );
    let d = home.start();
    // 8 silent connections take every slot; a real client waits until the header timeout frees them.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(d.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    still_up_and_delivering(&d, &rx, "waited").await;
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "served while every slot was taken: {:?}",
        start.elapsed()
    );
    drop(idle);
    // 200 clients at once, each on its own connection: every one accepted, every event delivered.
    // One client (building 200 would starve the test runtime past the 1 s header timeout), no
    // connection reuse, so each request opens its own connection.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = d.url("/events");
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .body(event(&format!("c{i}"), "ci").to_string())
                .send()
                .await;
            r.map(|r| r.status().as_u16()).map_err(|e| format!("{e:?}"))
        }));
    }
    let mut outcomes = std::collections::BTreeMap::new();
    for t in tasks {
        *outcomes.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(
        outcomes.get(&Ok(202)),
        Some(&200),
        "{outcomes:?}\n{}",
        d.logs()
    );
    rx.wait_hits(201, &d).await;
    let mut ids = delivered(&rx);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 201, "every accepted event delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_rate_limit_answers_429_with_retry_after() {
    let home = Home::new("[server]\nrate_limit = 2.0\nrate_burst = 3\n", &[]);
    let d = home.start();
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    // The burst is spent with small events (quickly, so the bucket has no time to refill even on a
    // loaded machine); then padded events (~1 MB): a refusal must still reach the client (the body
    // is drained, not reset).
    let pad = "p".repeat(200_000);
    for i in 0..6 {
        let mut ev = event(&format!("r{i}"), "ci");
        if i >= 3 {
            ev["detail"]["pad"] = json!(pad);
        }
        let batch = json!([ev, ev, ev, ev, ev]).to_string();
        let r = client
            .post(d.url("/events"))
            .body(batch)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").cloned();
            let body: Value = r.json().await.unwrap();
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("server.rate_limit"),
                "{body}"
            );
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(&statuses[..3], &[202, 202, 202], "{statuses:?}");
    assert!(
        statuses[3..].iter().all(|s| [202, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    assert_eq!(retry_after.unwrap(), "1");
    // Health and metrics are not limited.
    let m = d
        .metric("scanbridge_ingest_refused_total{reason=\"rate\"}")
        .await;
    assert!(m >= 1.0, "{m}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        d.post(event("later", "ci").to_string()).await.0,
        202,
        "the bucket refills"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_at_once_while_heavy_matching_runs() {
    // 1,000 wildcard rules that every value must be checked against ("*q1*z*": no literal anchor),
    // and events with a 50 KB string: seconds of matching per event in a debug build.
    let rules: Vec<(String, String)> = (0..1000)
        .map(|i| {
            let pattern = json!({"detail": {"blob": [{"wildcard": format!("*q{i}*z*")}]}});
            (
                format!("w{i}.json"),
                rule(&format!("w{i}"), pattern, &["console"]),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = rules
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let home = Home::new("", &refs);
    let d = home.start();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut heavy = Vec::new();
    // As many heavy requests as the daemon has async worker threads on this machine (at least 2).
    let n = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    for i in 0..n {
        let mut ev = event(&format!("heavy-{i}"), "ci");
        ev["detail"]["blob"] = json!("ab".repeat(25_000));
        let (url, done) = (d.url("/events"), done.clone());
        heavy.push(tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(url)
                .body(ev.to_string())
                .send()
                .await
                .unwrap();
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            r.status().as_u16()
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for path in ["/healthz", "/readyz"] {
        let start = Instant::now();
        let r = reqwest::get(d.url(path)).await.unwrap();
        let took = start.elapsed();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            finished < n,
            "the heavy requests were done before {path} answered: the load is too light to show anything"
        );
        // Matching on the async threads made health checks wait for the matching (seconds here).
        assert!(
            took < Duration::from_secs(1),
            "{path} took {took:?} while matching ran"
        );
    }
    for h in heavy {
        assert_eq!(h.await.unwrap(), 202);
    }
}

/// Events that once panicked between acceptance and rendering (a multi-byte character where the digest
/// is cut, counts whose sum overflows), beside good ones, in one batch.
fn poisoned_batch() -> Vec<Value> {
    vec![
        event("good-1", "ci"),
        json!({"id": "multibyte-digest", "source": "aws.ecr", "detail-type": "ECR Image Scan",
            "detail": {"repository-name": "payments/api", "image-digest": "sha256:ééééééééééééééé",
                "image-tags": ["v1"], "scan-status": "COMPLETE",
                "finding-severity-counts": {"CRITICAL": u64::MAX, "HIGH": u64::MAX}}}),
        json!({"id": "emoji-digest", "source": "aws.inspector2", "detail-type": "Inspector2 Finding",
            "detail": {"findingArn": "arn:💥", "severity": "CRITICAL",
                "resources": [{"details": {"awsEcrContainerImage": {"imageHash": "🀥K𝂃¥𑴂&{🩬?ኞ", "repositoryName": "r"}}}]}}),
        event("good-2", "ci"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_batch_is_accepted_whole_and_every_event_delivered() {
    let rx = Receiver::start().await;
    let r = rule(
        "everything",
        json!({"detail-type": [{"exists": true}]}),
        &["hook", "console", "slack"],
    );
    let config = format!(
        "{}[targets.slack]\ntype = \"slack\"\nwebhook_url = \"http://{}/services/T/B/x\"\n",
        rx.target(),
        rx.addr
    );
    let home = Home::new(&config, &[("everything.json", &r)]);
    let d = home.start();
    let batch = poisoned_batch();
    let ndjson: String = batch.iter().map(|e| format!("{e}\n")).collect();
    let (status, body) = d.post(ndjson).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 4, "{body}");
    // Every event reaches the webhook and Slack (2 hits each), and the console prints each one.
    let hits = rx.wait_hits(8, &d).await;
    for e in &batch {
        let id = e["id"].as_str().unwrap();
        assert!(
            hits.iter().any(|h| h.body["id"] == id),
            "{id} not delivered to the webhook:\n{}",
            d.logs()
        );
    }
    let slack: Vec<&crate::daemon::Hit> = hits
        .iter()
        .filter(|h| h.path.starts_with("/services/"))
        .collect();
    assert_eq!(slack.len(), 4);
    assert!(
        slack
            .iter()
            .any(|h| h.body.to_string().contains("sha256:éééééééééééé")),
        "the short digest is cut at 12 characters"
    );
    let start = Instant::now();
    while d.stdout().matches("=== scanbridge alert").count() < 4 {
        assert!(start.elapsed() < PATIENCE, "console:\n{}", d.stdout());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!d.logs().contains("panicked"), "{}", d.logs());
    assert_eq!(
        d.metric("scanbridge_deliveries_total{target=\"hook\",outcome=\"delivered\"}")
            .await,
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_connection() {
    // Defaults: 512 connections, 64 per client. The header timeout is long, so that the failure mode
    // (every slot held until it fires) would be obvious.
    let home = Home::new(
        "[server]\nheader_timeout = \"30s\"\nrate_limit = 0.0\n",
        &[],
    );
    let d = home.start();
    // 530 slow connections from one address (127.0.0.2: loopback, but not the address this test's
    // other clients and `scanbridge health` come from), each stuck in the middle of its headers.
    let mut slow = Vec::new();
    for _ in 0..530 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut s = sock.connect(d.addr).await.unwrap();
        s.write_all(b"POST /events HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let refused = "scanbridge_ingest_refused_total{reason=\"client_connections\"}";
    d.wait_metric(refused, 466.0).await;
    // Everyone else is served at once: the container health check, and a producer.
    let start = Instant::now();
    let out = crate::daemon::cli(&["health", "--url", &d.url("")]);
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(3), "health took {took:?}");
    let start = Instant::now();
    assert_eq!(d.post(event("beside-them", "ci").to_string()).await.0, 202);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // Exactly one client's share was kept; the others were told why and closed.
    assert_eq!(d.metric(refused).await, 466.0);
    let mut told = 0;
    for s in slow.iter_mut().rev().take(20) {
        let mut buf = vec![0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await
            && String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503")
        {
            told += 1;
        }
    }
    assert!(told > 0, "the refused connections get a 503");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smaller_hostile_inputs_get_clear_answers() {
    let rx = Receiver::start().await;
    let home = everything_to_hook(&rx, "[server]\ntoken = \"tok-Case-1\"\n");
    let d = home.start();
    let client = reqwest::Client::new();
    // The auth scheme is case-insensitive.
    for (i, scheme) in ["bearer", "BEARER", "Bearer"].iter().enumerate() {
        let r = client
            .post(d.url("/events"))
            .header("authorization", format!("{scheme} tok-Case-1"))
            .body(event(&format!("scheme-{i}"), "ci").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "{scheme}");
    }
    // PutEvents with a Time no timestamp can hold: 400 in AWS's shape, nothing accepted, no panic.
    let r = client
        .post(d.url("/"))
        .header("authorization", "Bearer tok-Case-1")
        .header("x-amz-target", "AWSEvents.PutEvents")
        .header("content-type", "application/x-amz-json-1.1")
        .body(r#"{"Entries":[{"Source":"ci","DetailType":"t","Detail":"{}","Time":1e300}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.headers()["x-amzn-errortype"], "ValidationException");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["__type"], "ValidationException", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("'entries.1.member.time'"),
        "{body}"
    );
    // An event id with control characters and non-ASCII still makes a valid webhook request (its
    // header is percent-encoded): delivered at once, not retried for a day.
    let (status, body) = client
        .post(d.url("/events"))
        .bearer_auth("tok-Case-1")
        .body(json!({"id": "evt\u{1}\r\nX-Injected: 1 é", "source": "ci", "detail-type": "t", "detail": {}}).to_string())
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 202, "{:?}", body.text().await);
    let start = Instant::now();
    let hit = loop {
        if let Some(h) = rx
            .hits()
            .into_iter()
            .find(|h| h.body["id"].as_str().is_some_and(|i| i.starts_with("evt")))
        {
            break h;
        }
        assert!(start.elapsed() < PATIENCE, "{}", d.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        hit.headers["x-scanbridge-event-id"],
        "evt%01%0D%0AX-Injected:%201%20%C3%A9"
    );
    assert!(hit.headers.get("x-injected").is_none());
    assert_eq!(rx.attempts(), rx.hits().len(), "no failed attempt");
    drop(d);

    // A TOML syntax error on a secret's line: position and key, never the line.
    let bad = home.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cr3t-Never-Shown\n",
    )
    .unwrap();
    for cmd in ["serve", "check"] {
        let out = crate::daemon::cli(&[cmd, "--config", &bad.display().to_string()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("bad.toml: line 3, column 28 (key `server.token`)")
                && !err.contains("s3cr3t"),
            "{cmd}: {err}"
        );
    }
}
