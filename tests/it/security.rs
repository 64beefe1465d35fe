//! Ingest security over real sockets: several tokens (inline, environment list, a file rotated while
//! the daemon runs), no token in logs, metrics or error bodies, and optional TLS (rustls) with a
//! certificate made by the `openssl` command line.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Home, PATIENCE, event};

const TOKENS: [&str; 4] = [
    "inline-TOK-111",
    "file-TOK-222",
    "file-TOK-333",
    "wrong-TOK-999",
];

async fn post_with(d: &Daemon, token: &str, id: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(d.url("/events"))
        .bearer_auth(token)
        .body(event(id, "ci").to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_tokens_rotate_through_the_file_and_never_leak() {
    let home = Home::new("", &[]);
    let file = home.path().join("tokens");
    std::fs::write(&file, format!("# rotated by ops\n{}\n", TOKENS[1])).unwrap();
    let config = home.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "[server]\ntokens = [\"{}\"]\ntokens_file = {:?}\n{text}",
            TOKENS[0],
            file.display().to_string()
        ),
    )
    .unwrap();
    let d = home.start();
    let mut bodies = String::new();
    for (token, id, want) in [
        (TOKENS[0], "a", 202),
        (TOKENS[1], "b", 202),
        (TOKENS[3], "c", 401),
        ("", "d", 401),
    ] {
        let (status, body) = post_with(&d, token, id).await;
        assert_eq!(status, want, "{token}: {body}");
        bodies.push_str(&body);
    }
    // Rotate: the file now holds only the new token; the old one stops working without a restart.
    std::fs::write(&file, format!("{}\n", TOKENS[2])).unwrap();
    let start = Instant::now();
    loop {
        let (old, _) = post_with(&d, TOKENS[1], "old").await;
        if old == 401 {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "the old token still works");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = post_with(&d, TOKENS[2], "new").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(post_with(&d, TOKENS[0], "inline").await.0, 202);
    // AWS SDK style: the token as the SigV4 access key id.
    let r = reqwest::Client::new()
        .post(d.url("/"))
        .header("x-amz-target", "AWSEvents.PutEvents")
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential={}/20260101/us-east-1/events/aws4_request, SignedHeaders=host, Signature=00", TOKENS[3]),
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    bodies.push_str(&r.text().await.unwrap());
    let metrics = d.metrics().await;
    assert!(metrics.contains("scanbridge_ingest_refused_total{reason=\"unauthorized\"}"));
    let logs = d.stop();
    for t in TOKENS {
        assert!(!logs.contains(t), "logs leak {t}:\n{logs}");
        assert!(!metrics.contains(t), "metrics leak {t}");
        assert!(!bodies.contains(t), "answers leak {t}: {bodies}");
    }
    assert!(logs.contains("ingest tokens re-read"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ingest_with_rustls() {
    let home = Home::new("", &[]);
    let (cert, key) = (home.path().join("cert.pem"), home.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    assert!(
        made.is_ok_and(|o| o.status.success()),
        "the openssl command line is needed to make a test certificate"
    );
    let config = home.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "[server]\ntls_cert_file = {:?}\ntls_key_file = {:?}\n{text}",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let d = home.start();
    assert!(d.logs().contains("tls=true"));
    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let r = client
        .post(format!("https://{}/events", d.addr))
        .body(event("over-tls", "ci").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .post(d.url("/events"))
        .timeout(Duration::from_secs(5))
        .body(event("plain", "ci").to_string())
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    drop(d);
    // A broken key file is a start-up error naming the key, without the key's content.
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = crate::daemon::cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        &config.display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("server.tls_key_file"),
        "{err}"
    );
}
