//! An open-loop load generator with its own webhook receiver, for `scripts/load`: it offers events at
//! a fixed rate whatever the daemon does (wrk is closed-loop: it slows down with the server), stamps
//! each with its send time, and receives the deliveries itself, so acceptance-to-delivery latency is
//! read from real timestamps on one clock (this process's monotonic clock), not from histogram
//! buckets.
//!
//! ```text
//! cargo run --release --example openloop -- --rate 2000 --secs 20 --wait 10
//! ```
//! prints `listening on ADDR` (the receiver: point a webhook target at `http://ADDR/stamp`), then
//! waits for one line on stdin: the URL to post events to (`http://127.0.0.1:PORT/events`). It sends
//! one event per request, `{"id": "ol-RUN-N", "source": "ci", "detail-type": "scan", "detail":
//! {"severity": "OPEN", "seq": N}}`, at `rate` per second for `secs` seconds (a request is started at
//! each tick, however many are still unanswered), waits up to `wait` seconds for the deliveries, and
//! prints one JSON object with the figures; the generator's own timing (how late it started requests)
//! is part of it, so a generator that could not keep the rate says so.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use scanbridge::{ConnLimits, serve_http as serve};
use tokio_util::sync::CancellationToken;

/// Per event: when it was sent, answered 202 and received (ns since the start; 0 = not yet).
struct Stamps {
    sent: Vec<AtomicU64>,
    accepted: Vec<AtomicU64>,
    received: Vec<AtomicU64>,
    duplicates: AtomicUsize,
    errors: AtomicUsize,
    base: Instant,
}

impl Stamps {
    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos().max(1) as u64
    }
}

fn arg(args: &[String], name: &str, default: f64) -> f64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
        })
        .unwrap_or(default)
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

fn summary(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(|a, b| a.total_cmp(b));
    serde_json::json!({
        "n": v.len(),
        "p50_ms": quantile(&v, 0.50),
        "p99_ms": quantile(&v, 0.99),
        "max_ms": v.last(),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rate = arg(&args, "--rate", 2000.0);
    let secs = arg(&args, "--secs", 20.0);
    let wait = arg(&args, "--wait", 10.0);
    let total = (rate * secs).round() as usize;
    let run = std::process::id();
    let stamps = Arc::new(Stamps {
        sent: (0..total).map(|_| AtomicU64::new(0)).collect(),
        accepted: (0..total).map(|_| AtomicU64::new(0)).collect(),
        received: (0..total).map(|_| AtomicU64::new(0)).collect(),
        duplicates: AtomicUsize::new(0),
        errors: AtomicUsize::new(0),
        base: Instant::now(),
    });

    // The receiver: records the first receipt of each event.
    let rx = stamps.clone();
    let prefix = format!("ol-{run}-");
    let app = Router::new().route(
        "/stamp",
        post(move |body: Bytes| {
            let (rx, prefix) = (rx.clone(), prefix.clone());
            async move {
                let at = rx.now();
                let seq = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v["id"]
                            .as_str()?
                            .strip_prefix(&prefix)?
                            .parse::<usize>()
                            .ok()
                    });
                if let Some(slot) = seq.and_then(|s| rx.received.get(s))
                    && slot
                        .compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed)
                        .is_err()
                {
                    rx.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("listening on {}", listener.local_addr().expect("address"));
    let limits = ConnLimits {
        max_connections: 1024,
        // The daemon is one client: no per-client share.
        max_per_client: 0,
        header_timeout: Duration::from_secs(10),
        on_refused: None,
    };
    tokio::spawn(serve(listener, app, limits, None, CancellationToken::new()));

    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .expect("the target URL on stdin");
    let url: Arc<str> = line.trim().into();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    // The open loop: one request started per tick, never waiting for answers.
    let period = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let inflight = Arc::new(AtomicUsize::new(0));
    let peak_inflight = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        let due = started + period * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let late = Instant::now().saturating_duration_since(due);
        lateness.lock().unwrap().push(late.as_secs_f64() * 1000.0);
        let body = format!(
            r#"{{"id":"ol-{run}-{n}","source":"ci","detail-type":"scan","detail":{{"severity":"OPEN","seq":{n}}}}}"#
        );
        let (client, url, st) = (client.clone(), url.clone(), stamps.clone());
        let (inflight, peak) = (inflight.clone(), peak_inflight.clone());
        // Latencies count from the tick (when the request was due), not from when it started: a
        // generator that falls behind makes the figures worse, never better.
        let due_ns = due.saturating_duration_since(stamps.base).as_nanos().max(1) as u64;
        tasks.spawn(async move {
            let now = inflight.fetch_add(1, Ordering::Relaxed) + 1;
            peak.fetch_max(now, Ordering::Relaxed);
            st.sent[n].store(due_ns, Ordering::Relaxed);
            let r = client
                .post(&*url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match r {
                Ok(r) if r.status() == StatusCode::ACCEPTED => {
                    let _ = r.bytes().await;
                    st.accepted[n].store(st.now(), Ordering::Relaxed);
                }
                _ => {
                    st.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            inflight.fetch_sub(1, Ordering::Relaxed);
        });
        while tasks.try_join_next().is_some() {}
    }
    let send_secs = started.elapsed().as_secs_f64();
    while tasks.join_next().await.is_some() {}
    let stop = stamps.now();

    // Wait for the deliveries; note how many were missing 2 s after the load stopped.
    let accepted_ids = |st: &Stamps| -> Vec<usize> {
        (0..total)
            .filter(|&i| st.accepted[i].load(Ordering::Relaxed) != 0)
            .collect()
    };
    let missing = |st: &Stamps| {
        accepted_ids(st)
            .into_iter()
            .filter(|&i| st.received[i].load(Ordering::Relaxed) == 0)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs_f64(wait);
    let mut missing_after_2s = None;
    loop {
        let since_stop = (stamps.now() - stop) as f64 / 1e9;
        if missing_after_2s.is_none() && since_stop >= 2.0 {
            missing_after_2s = Some(missing(&stamps));
        }
        if missing(&stamps) == 0 && missing_after_2s.is_some() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = &*stamps;
    let ms = |a: u64, b: u64| (b as f64 - a as f64) / 1e6;
    let ids = accepted_ids(st);
    let mut answer = Vec::new();
    let mut to_delivery = Vec::new();
    let mut accept_to_delivery = Vec::new();
    for &i in &ids {
        let (s, a, r) = (
            st.sent[i].load(Ordering::Relaxed),
            st.accepted[i].load(Ordering::Relaxed),
            st.received[i].load(Ordering::Relaxed),
        );
        answer.push(ms(s, a));
        if r != 0 {
            to_delivery.push(ms(s, r));
            accept_to_delivery.push(ms(a, r));
        }
    }
    let received = to_delivery.len();
    let late = lateness.lock().unwrap().clone();
    let out = serde_json::json!({
        "offered_rate": rate,
        "seconds": secs,
        "sent": total,
        "send_rate": total as f64 / send_secs,
        "generator_late": summary(late),
        "peak_unanswered": peak_inflight.load(Ordering::Relaxed),
        "accepted": ids.len(),
        "errors": st.errors.load(Ordering::Relaxed),
        "received": received,
        "duplicates": st.duplicates.load(Ordering::Relaxed),
        "missing_2s_after_stop": missing_after_2s,
        "missing_at_end": ids.len() - received,
        "send_to_202": summary(answer),
        "send_to_delivery": summary(to_delivery),
        "accept_to_delivery": summary(accept_to_delivery),
    });
    println!("{out}");
}
