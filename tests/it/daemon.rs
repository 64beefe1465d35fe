//! Helpers for daemon tests: a real `scanbridge serve` on port 0 in a temp directory, and a real HTTP
//! receiver (axum) on port 0 that records what it gets and can be told to fail.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// How long any wait in these tests may take before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running daemon; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

/// A temp home for a daemon: `config.toml`, `rules/`, `data/`.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    /// Writes `extra` config (appended to the test base) and rule files, on SQLite.
    pub fn new(extra_config: &str, rules: &[(&str, &str)]) -> Home {
        Self::on(&crate::stores::Store::Sqlite, extra_config, rules)
    }

    /// Like [`Home::new`], with the daemon's store on `store` (a JetStream home gets a prefix of
    /// its own on the store's server).
    pub fn on(store: &crate::stores::Store, extra_config: &str, rules: &[(&str, &str)]) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("rules")).unwrap();
        for (name, text) in rules {
            std::fs::write(p.join("rules").join(name), text).unwrap();
        }
        // A 1 MiB disk reserve instead of 8: dozens of daemons run at once and each writes its own.
        let config = format!(
            "[store]\ndata_dir = {:?}\nreserve_bytes = 1048576\n{}\n[rules]\ndir = {:?}\nwatch = true\n\n\
             [delivery]\npoll_interval = \"50ms\"\ninitial_backoff = \"50ms\"\nmax_backoff = \"200ms\"\n\n{extra_config}\n",
            p.join("data").display().to_string(),
            store.config(),
            p.join("rules").display().to_string(),
        );
        std::fs::write(p.join("config.toml"), config).unwrap();
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `--config FILE` of this home: how the CLI tools find its store, on either backend.
    pub fn config_arg(&self) -> [String; 2] {
        [
            "--config".to_owned(),
            self.path().join("config.toml").display().to_string(),
        ]
    }

    /// Runs a CLI tool (`dlq`, `silence`, `suppressed`, `events`, `route`, `store`...) on this home's
    /// store directly, on either backend: SQLite's `--data-dir`, JetStream's cluster of `--config`
    /// with `--direct` (`route` and `store` open the configured store themselves).
    pub fn tool(&self, args: &[&str]) -> std::process::Output {
        let config = self.config_arg();
        let text = std::fs::read_to_string(self.path().join("config.toml")).unwrap();
        let jetstream = text.contains("backend = \"jetstream\"");
        let data = self.path().join("data").display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(config.iter().map(String::as_str));
        match (args.first().copied(), jetstream) {
            (Some("route" | "store"), _) => {}
            (_, true) => all.push("--direct"),
            (_, false) => all.extend(["--data-dir", data.as_str()]),
        }
        cli(&all)
    }

    /// Sets `lines` (TOML `key = value` lines) in the `[store]` table of the home's config.toml,
    /// replacing the keys it has already.
    pub fn store_config(&self, lines: &str) {
        let path = self.path().join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let key = |l: &str| l.split('=').next().unwrap_or("").trim().to_owned();
        let new: Vec<&str> = lines.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut out = Vec::new();
        let mut table = String::new();
        for l in text.lines() {
            if l.starts_with('[') {
                table = l.to_owned();
            }
            let replaced =
                table == "[store]" && new.iter().any(|n| key(n) == key(l)) && l.contains('=');
            if !replaced {
                out.push(l.to_owned());
            }
            if l == "[store]" {
                out.extend(new.iter().map(|n| n.to_string()));
            }
        }
        std::fs::write(path, out.join("\n") + "\n").unwrap();
    }

    /// The daemon's database, opened beside it (to move time back or plant a fault).
    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.path().join("data/scanbridge.db")).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }

    /// Runs `scanbridge ARGS --config HOME/config.toml` to completion.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let config = self.config_arg();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(config.iter().map(String::as_str));
        cli(&all)
    }

    /// Writes a rule file atomically (temp file + rename), as editors and deploy tools do.
    pub fn write_rule(&self, name: &str, text: &str) {
        let tmp = self.path().join("rules").join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path().join("rules").join(name)).unwrap();
    }

    pub fn start(&self) -> Daemon {
        let config = self.path().join("config.toml").display().to_string();
        Daemon::spawn(&["serve", "--listen", "127.0.0.1:0", "--config", &config])
    }

    /// Runs `serve` on this home expecting it to refuse to start (bounded by [`PATIENCE`]): its exit
    /// code and stderr. It must never get as far as listening.
    pub fn refused_start(&self) -> (Option<i32>, String) {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scanbridge"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(self.path().join("config.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > PATIENCE {
                let _ = child.kill();
                panic!("serve did not refuse to start");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(!err.contains("listening on"), "{err}");
        (status.code(), err)
    }
}

impl Daemon {
    /// Starts `scanbridge ARGS` and waits for `listening on ADDR`.
    pub fn spawn(args: &[&str]) -> Daemon {
        Self::spawn_with(args, Stdio::null())
    }

    /// Like [`Daemon::spawn`] with the given stdin (`Stdio::piped()` for `--stdin`).
    pub fn spawn_with(args: &[&str], stdin: Stdio) -> Daemon {
        Self::spawn_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, stdin)
    }

    /// Like [`Daemon::spawn_with`], run from `cwd` (where `rules/` and `./data` are looked up).
    pub fn spawn_in(cwd: &Path, args: &[&str], stdin: Stdio) -> Daemon {
        Self::spawn_env(cwd, args, stdin, &[])
    }

    /// Like [`Daemon::spawn_in`], with `env` set for the daemon.
    pub fn spawn_env(cwd: &Path, args: &[&str], stdin: Stdio, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scanbridge"));
        for (k, _) in std::env::vars() {
            if k.starts_with("SCANBRIDGE__") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn scanbridge serve");
        let stderr = collect(child.stderr.take().unwrap());
        let stdout = collect(child.stdout.take().unwrap());
        let start = Instant::now();
        let addr = loop {
            let text = stderr.lock().unwrap().clone();
            if let Some(rest) = text.split("listening on ").nth(1) {
                // Human logs end the address with a space, JSON logs with a quote.
                let addr: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                break addr
                    .parse()
                    .unwrap_or_else(|e| panic!("bad address {addr:?}: {e}"));
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("daemon exited with {status} before listening:\n{text}");
            }
            assert!(
                start.elapsed() < PATIENCE,
                "daemon did not log its address:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Daemon {
            child,
            addr,
            stderr,
            stdout,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Sends a signal by name (TERM, HUP, KILL) with the `kill` utility.
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// SIGKILL and reap: a crash, nothing graceful.
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> String {
        self.signal("TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "daemon exit {status}:\n{}", self.logs());
                break;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "daemon did not stop:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.logs()
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of a metric line (exact series text before the value), or 0.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0.0)
    }

    /// Waits until `series` reaches at least `min`.
    pub async fn wait_metric(&self, series: &str, min: f64) {
        let start = Instant::now();
        loop {
            let v = self.metric(series).await;
            if v >= min {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{series} stayed at {v} < {min}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// POSTs a body to /events; the answer's status, headers and JSON body.
    pub async fn post_full(&self, body: impl Into<reqwest::Body>) -> (u16, HeaderMap, Value) {
        let resp = reqwest::Client::new()
            .post(self.url("/events"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    /// POSTs a body to /events.
    pub async fn post(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(self.url("/events"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(mut r: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

/// One request the receiver accepted.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    /// The body parsed as JSON (Null when it is not JSON).
    pub body: Value,
    /// The body as sent.
    pub raw: Vec<u8>,
}

/// A real HTTP receiver: answers `fail_with` (0 = 200) and records the accepted requests.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    pub attempts: Arc<AtomicUsize>,
    pub fail_with: Arc<AtomicU16>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let r = Receiver {
            addr: "127.0.0.1:0".parse().unwrap(),
            hits: Arc::default(),
            attempts: Arc::default(),
            fail_with: Arc::default(),
        };
        let state = r.clone();
        // Any path and method: `/hook` for webhooks, `/services/T/B/SECRET` for Slack.
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: axum::body::Bytes| {
                let st = state.clone();
                async move {
                    st.attempts.fetch_add(1, Ordering::SeqCst);
                    let fail = st.fail_with.load(Ordering::SeqCst);
                    if fail != 0 {
                        return StatusCode::from_u16(fail).unwrap();
                    }
                    let raw = body.to_vec();
                    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                    st.hits.lock().unwrap().push(Hit {
                        method: method.to_string(),
                        path: uri.path().to_owned(),
                        headers,
                        body,
                        raw,
                    });
                    StatusCode::OK
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, ..r }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// A `[targets.hook]` table pointing here.
    pub fn target(&self) -> String {
        format!(
            "[targets.hook]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout = \"2s\"\n",
            self.url()
        )
    }

    pub fn fail(&self, status: u16) {
        self.fail_with.store(status, Ordering::SeqCst);
    }

    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests were accepted.
    pub async fn wait_hits(&self, n: usize, daemon: &Daemon) -> Vec<Hit> {
        let start = Instant::now();
        loop {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "receiver got {} of {n} deliveries:\n{}",
                hits.len(),
                daemon.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` attempts (any answer) were made.
    pub async fn wait_attempts(&self, n: usize, daemon: &Daemon) {
        let start = Instant::now();
        while self.attempts() < n {
            assert!(
                start.elapsed() < PATIENCE,
                "only {} attempts:\n{}",
                self.attempts(),
                daemon.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A rule file (JSON) named `name` routing `pattern` to `targets`.
pub fn rule(name: &str, pattern: Value, targets: &[&str]) -> String {
    serde_json::json!({"name": name, "event_pattern": pattern, "targets": targets}).to_string()
}

/// A minimal valid event with `source` and an id.
pub fn event(id: &str, source: &str) -> Value {
    serde_json::json!({"id": id, "source": source, "detail-type": "Test", "detail": {"n": 1}})
}

/// PATH with the binary under test's directory first: `scanbridge` as after `cargo install`.
pub fn path_with_binary() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_scanbridge"))
        .parent()
        .unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs the binary to completion (for `check`, `send`, `dlq`).
pub fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_scanbridge"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}
