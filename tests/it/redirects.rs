//! HTTP receivers never follow redirects: a webhook or Slack URL answering 301, 302, 307 or 308 is a
//! permanent failure whose dead-letter reason names the status and the redirect's host, never the
//! secret URL; the host it points to sees nothing (no body, no secret header, no signature, no
//! `Referer`). Real loopback HTTP servers on port 0.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};

use crate::daemon::{Home, PATIENCE, cli, rule};

/// A server that answers every request with the status named by the path's first segment
/// (`/301/...`) and `Location: {to}{path}`, recording what it got.
async fn redirector(to: String) -> (std::net::SocketAddr, Arc<Mutex<Vec<(Uri, HeaderMap)>>>) {
    let seen: Arc<Mutex<Vec<(Uri, HeaderMap)>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let (s, to) = (s.clone(), to.clone());
        async move {
            s.lock().unwrap().push((uri.clone(), headers));
            let code: u16 = uri
                .path()
                .split('/')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(200);
            let status = StatusCode::from_u16(code).unwrap();
            (
                status,
                [("location", format!("{to}{}", uri.path()))],
                "moved",
            )
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_never_followed_and_dead_letter_naming_status_and_host() {
    // Where the redirects point: it must see nothing at all.
    let (elsewhere, stolen) = redirector("http://unused.invalid".into()).await;
    let (origin, asked) = redirector(format!("http://{elsewhere}/steal")).await;
    let mut config = String::new();
    let mut targets = Vec::new();
    for code in [301, 302, 307, 308] {
        config.push_str(&format!(
            "[targets.hook{code}]\ntype = \"webhook\"\nurl = \"http://{origin}/{code}/s3cr3t-path-token\"\n\
             headers = {{ Authorization = \"Bearer s3cr3t-header\" }}\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n"
        ));
        targets.push(format!("hook{code}"));
    }
    config.push_str(&format!(
        "[targets.slack]\ntype = \"slack\"\nwebhook_url = \"http://{origin}/307/services/T/B/s3cr3t-slack\"\n"
    ));
    targets.push("slack".into());
    let names: Vec<&str> = targets.iter().map(String::as_str).collect();
    let r = rule("all", json!({"source": ["ci"]}), &names);
    let home = Home::new(&config, &[("all.json", &r)]);
    let d = home.start();
    let ev = json!({"id": "e1", "source": "ci", "detail-type": "t", "detail": {"n": 1}});
    assert_eq!(d.post(ev.to_string()).await.0, 202);

    let url = d.url("");
    let start = Instant::now();
    let letters: Vec<Value> = loop {
        let out = cli(&["dlq", "list", "--json", "--url", &url]);
        let letters: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if letters.len() == targets.len() {
            break letters;
        }
        assert!(start.elapsed() < PATIENCE, "{letters:?}\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for l in &letters {
        let target = l["target"].as_str().unwrap();
        let code = if target == "slack" {
            "307"
        } else {
            &target[4..]
        };
        let reason = l["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("HTTP {code} "))
                && reason.contains(&format!("redirects to {elsewhere};")),
            "{target}: {reason}"
        );
        assert!(
            !reason.contains("s3cr3t") && !reason.contains("/steal"),
            "{target}: {reason}"
        );
        assert_eq!(l["attempts"], 1, "permanent at once: {l}");
    }
    // One request per target reached the origin, none went on to where the redirects point.
    assert_eq!(asked.lock().unwrap().len(), targets.len());
    assert!(
        stolen.lock().unwrap().is_empty(),
        "followed: {:?}",
        stolen.lock().unwrap()
    );
    for (_, headers) in asked.lock().unwrap().iter() {
        assert!(headers.get("referer").is_none(), "{headers:?}");
    }
    let logs = d.stop();
    assert!(!logs.contains("s3cr3t"), "{logs}");
}
