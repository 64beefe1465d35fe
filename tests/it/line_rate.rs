//! The durable path at line rate (issue 12), through the real binary: deliveries leased in the
//! accepting commit reach their receiver without a lease read (even with `poll_interval` at one
//! hour), each target's `concurrency` bounds its requests at once over reused connections,
//! everything in flight when the daemon is killed is delivered by the next one at once, and a batch
//! of events costs one commit. Speed itself is measured by `scripts/load`, not here.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::daemon::{Daemon, Home, PATIENCE, event, rule};

/// A receiver that holds each request until the test lets it through, and records per path how
/// many were open at once (now and at most), over how many connections, and which event ids it
/// answered 200.
#[derive(Clone, Default)]
struct Gate {
    inner: Arc<GateState>,
}

struct GateState {
    /// Requests are let through one permit each (none at first).
    permits: Semaphore,
    /// Let everything through without permits from now on.
    open: AtomicBool,
    /// Requests are answered only if no [`Gate::forget_open_requests`] came since they arrived.
    generation: AtomicUsize,
    by_path: Mutex<HashMap<String, PathStats>>,
}

impl Default for GateState {
    fn default() -> Self {
        GateState {
            permits: Semaphore::new(0),
            open: AtomicBool::new(false),
            generation: AtomicUsize::new(0),
            by_path: Mutex::default(),
        }
    }
}

#[derive(Default, Clone, Debug)]
struct PathStats {
    now: usize,
    peak: usize,
    peers: HashSet<SocketAddr>,
    ids: Vec<String>,
}

impl Gate {
    async fn start() -> (Gate, SocketAddr) {
        let gate = Gate::default();
        let g = gate.clone();
        let app = axum::Router::new().fallback(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                  uri: axum::http::Uri,
                  body: axum::body::Bytes| {
                let g = g.clone();
                async move { g.handle(peer, uri.path().to_owned(), body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap()
        });
        (gate, addr)
    }

    async fn handle(&self, peer: SocketAddr, path: String, body: axum::body::Bytes) -> StatusCode {
        let s = &self.inner;
        {
            let mut m = s.by_path.lock().unwrap();
            let p = m.entry(path.clone()).or_default();
            p.now += 1;
            p.peak = p.peak.max(p.now);
            p.peers.insert(peer);
        }
        let generation = s.generation.load(Ordering::SeqCst);
        if !s.open.load(Ordering::SeqCst) {
            s.permits.acquire().await.unwrap().forget();
        }
        if s.generation.load(Ordering::SeqCst) != generation {
            std::future::pending::<()>().await; // its sender is gone: never answered
        }
        let id = serde_json::from_slice::<Value>(&body).unwrap_or_default()["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut m = s.by_path.lock().unwrap();
        let p = m.get_mut(&path).unwrap();
        p.now -= 1;
        p.ids.push(id);
        StatusCode::OK
    }

    fn stats(&self, path: &str) -> PathStats {
        self.inner
            .by_path
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// The requests open now are never answered (the process that made them was killed).
    fn forget_open_requests(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Lets every held and later request through.
    fn open(&self) {
        self.inner.open.store(true, Ordering::SeqCst);
        self.inner.permits.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// Waits until `f` holds for the stats of `path`.
    async fn wait(&self, path: &str, what: &str, d: &Daemon, f: impl Fn(&PathStats) -> bool) {
        let start = Instant::now();
        while !f(&self.stats(path)) {
            assert!(
                start.elapsed() < PATIENCE,
                "{path}: {what}; got {:?}\n{}",
                self.stats(path),
                d.logs()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn target(name: &str, addr: SocketAddr, extra: &str) -> String {
    format!(
        "[targets.{name}]\ntype = \"webhook\"\nurl = \"http://{addr}/{name}\"\ntimeout = \"30s\"\n{extra}\n"
    )
}

/// A home whose worker polls the outbox once at start-up and then only every hour.
fn home_polling_hourly(targets: &str, rules: &[(&str, &str)]) -> Home {
    let home = Home::new(targets, rules);
    let cfg = home.path().join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("poll_interval = \"50ms\""), "{text}");
    std::fs::write(
        &cfg,
        text.replace("poll_interval = \"50ms\"", "poll_interval = \"1h\""),
    )
    .unwrap();
    home
}

fn ndjson(ids: impl IntoIterator<Item = String>) -> String {
    ids.into_iter()
        .map(|id| event(&id, "ci").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_delivery_is_sent_at_once_without_a_lease_read() {
    let (gate, addr) = Gate::start().await;
    gate.open();
    let home = home_polling_hourly(
        &target("hook", addr, ""),
        &[("r.json", &rule("r", json!({"source": ["ci"]}), &["hook"]))],
    );
    let d = home.start();
    // The start-up lease read (recovery) has happened once the daemon listens and ticks.
    d.wait_metric("scanbridge_lease_reads_total", 1.0).await;
    let reads = d.metric("scanbridge_lease_reads_total").await;
    for i in 0..3 {
        let (status, _) = d.post(event(&format!("e{i}"), "ci").to_string()).await;
        assert_eq!(status, 202);
    }
    gate.wait("/hook", "3 deliveries", &d, |p| p.ids.len() == 3)
        .await;
    assert_eq!(
        d.metric("scanbridge_deliveries_leased_total{via=\"accept\"}")
            .await,
        3.0
    );
    assert_eq!(
        d.metric("scanbridge_deliveries_leased_total{via=\"poll\"}")
            .await,
        0.0
    );
    assert_eq!(
        d.metric("scanbridge_lease_reads_total").await,
        reads,
        "no lease read was needed"
    );
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"hook\",outcome=\"delivered\"}",
        3.0,
    )
    .await;
    let start = Instant::now();
    while d.metric("scanbridge_queue_depth").await > 0.0 {
        assert!(start.elapsed() < PATIENCE, "the acks never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_target_sends_at_most_its_concurrency_at_once_over_reused_connections() {
    let (gate, addr) = Gate::start().await;
    let targets = format!(
        "{}{}",
        target("narrow", addr, "concurrency = 3"),
        target("wide", addr, "")
    );
    let home = Home::new(
        &targets,
        &[(
            "r.json",
            &rule("r", json!({"source": ["ci"]}), &["narrow", "wide"]),
        )],
    );
    let d = home.start();
    let (status, _) = d.post(ndjson((0..20).map(|i| format!("e{i}")))).await;
    assert_eq!(status, 202);
    // Held at the gate: each target fills its slots, no more.
    gate.wait("/narrow", "3 open requests", &d, |p| p.now == 3)
        .await;
    gate.wait("/wide", "8 open requests (the HTTP default)", &d, |p| {
        p.now == 8
    })
    .await;
    gate.open();
    gate.wait("/narrow", "20 deliveries", &d, |p| p.ids.len() == 20)
        .await;
    gate.wait("/wide", "20 deliveries", &d, |p| p.ids.len() == 20)
        .await;
    let (narrow, wide) = (gate.stats("/narrow"), gate.stats("/wide"));
    assert_eq!((narrow.peak, wide.peak), (3, 8), "{narrow:?} {wide:?}");
    assert!(
        narrow.peers.len() <= 3 && wide.peers.len() <= 8,
        "connections are reused: {} and {} for 20 requests each",
        narrow.peers.len(),
        wide.peers.len()
    );
    let ids: HashSet<&String> = narrow.ids.iter().collect();
    assert_eq!(ids.len(), 20, "each event once: {:?}", narrow.ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_in_flight_at_a_kill_are_delivered_at_once_after_the_restart() {
    let (gate, addr) = Gate::start().await;
    let home = home_polling_hourly(
        &target("hook", addr, ""),
        &[("r.json", &rule("r", json!({"source": ["ci"]}), &["hook"]))],
    );
    let d = home.start();
    let (status, _) = d.post(ndjson((0..5).map(|i| format!("k{i}")))).await;
    assert_eq!(status, 202);
    gate.wait("/hook", "5 requests in flight", &d, |p| p.now == 5)
        .await;
    // Those attempts die with the daemon: the receiver never answers them.
    d.crash();
    gate.forget_open_requests();
    gate.open();
    // The next daemon polls only at start-up (then hourly): it must lease all five at once, with
    // no lease of the dead process in the way.
    let d = home.start();
    gate.wait("/hook", "5 deliveries after the restart", &d, |p| {
        p.ids.len() == 5
    })
    .await;
    let mut ids = gate.stats("/hook").ids;
    ids.sort();
    assert_eq!(ids, ["k0", "k1", "k2", "k3", "k4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_events_costs_one_commit() {
    let home = Home::new("", &[]);
    let d = home.start();
    let writes = "scanbridge_store_writes_total";
    let commits = "scanbridge_store_commits_total";
    let (w0, c0) = (d.metric(writes).await, d.metric(commits).await);
    let (status, body) = d.post(ndjson((0..10).map(|i| format!("b{i}")))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 10, "{body}");
    assert_eq!(
        (d.metric(writes).await - w0, d.metric(commits).await - c0),
        (1.0, 1.0)
    );
    // PutEvents with its maximum of ten entries: one commit too.
    let entries: Vec<Value> = (0..10)
        .map(|i| json!({"Source": "ci", "DetailType": "t", "Detail": format!("{{\"n\":{i}}}")}))
        .collect();
    let r = reqwest::Client::new()
        .post(d.url("/"))
        .header("x-amz-target", "AWSEvents.PutEvents")
        .header("content-type", "application/x-amz-json-1.1")
        .body(json!({"Entries": entries}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["FailedEntryCount"], 0, "{answer}");
    assert_eq!(
        (d.metric(writes).await - w0, d.metric(commits).await - c0),
        (2.0, 2.0)
    );
}

/// Retries due at once (a 1 ms backoff: full jitter often draws 0) race the worker's own booking:
/// a lease read can hand out a delivery whose failed attempt has committed its retry but is not yet
/// joined by the dispatcher. That lease used to be dropped and held until it expired (the 60 s
/// `lease`), so one delivery in a few hundred such retries arrived a minute late. Now every one is
/// delivered as soon as the receiver answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_due_at_once_are_never_held_until_their_lease_expires() {
    let rx = crate::daemon::Receiver::start().await;
    let targets = format!(
        "{}[targets.hook.retry]\ninitial_backoff = \"1ms\"\nmax_backoff = \"1ms\"\n",
        rx.target()
    );
    let home = Home::new(
        &targets,
        &[("r.json", &rule("r", json!({"source": ["ci"]}), &["hook"]))],
    );
    let d = home.start();
    rx.fail(500);
    for i in 0..40 {
        assert_eq!(
            d.post(event(&format!("q{i}"), "ci").to_string()).await.0,
            202
        );
    }
    // Thousands of failed attempts, each retried at once.
    rx.wait_attempts(4_000, &d).await;
    rx.fail(0);
    let start = Instant::now();
    loop {
        let ids: HashSet<String> = rx
            .hits()
            .iter()
            .map(|h| h.body["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        if ids.len() == 40 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} of 40 delivered 10 s after the receiver came back (the lease is 60 s)",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
