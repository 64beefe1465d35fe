//! A full or read-only data directory, at start-up (a clear error, exit non-zero) and while running
//! (ingest answers 503 and acknowledges nothing that is not durable; what got 202 is delivered).
//!
//! How the faults are made:
//! - a size limit: `store.max_db_bytes`, which SQLite enforces with SQLITE_FULL, the error a full
//!   disk gives;
//! - a real full disk: a small tmpfs holding the data directory (`mount -t tmpfs`, which needs root
//!   or CAP_SYS_ADMIN; where it is refused, the test says why and checks nothing else), filled with
//!   a ballast file;
//! - read-only: `chattr +i` (the tests run as root, which ignores permission bits but not the
//!   immutable flag). Where chattr is refused, that test says so and checks nothing else.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::daemon::{Home, Receiver, event, rule};

/// Runs `serve` expecting it to refuse to start; returns its stderr.
fn refuses_to_start(home: &Home) -> String {
    let (code, err) = home.refused_start();
    assert_ne!(code, Some(0), "{err}");
    err
}

fn chattr(flag: &str, paths: &[&Path]) -> bool {
    Command::new("chattr")
        .arg(flag)
        .args(paths)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn an_unusable_data_dir_at_start_up_is_a_clear_error() {
    // The data directory is a file.
    let home = Home::new("", &[]);
    std::fs::write(home.path().join("data"), "not a directory").unwrap();
    let err = refuses_to_start(&home);
    assert!(
        err.contains("opening the store in") && err.contains("cannot create data directory"),
        "{err}"
    );
    // The disk is full: not even the schema fits.
    let home = Home::new("[store]\nmax_db_bytes = 4096\n", &[]);
    let text = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    // Home writes its own [store] table first; merge ours into it.
    let text = text
        .replace("[store]\nmax_db_bytes = 4096\n", "")
        .replace("[store]\n", "[store]\nmax_db_bytes = 4096\n");
    std::fs::write(home.path().join("config.toml"), text).unwrap();
    let err = refuses_to_start(&home);
    assert!(err.contains("database or disk is full"), "{err}");
    // Read-only (immutable) data directory.
    let home = Home::new("", &[]);
    let data = home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    if !chattr("+i", &[&data]) {
        eprintln!("chattr +i refused here: read-only start-up not checked");
        return;
    }
    let err = refuses_to_start(&home);
    chattr("-i", &[&data]);
    // The daemon's first write there is its lock file (store/lock.rs).
    assert!(
        err.contains("cannot lock") && err.contains("scanbridge.lock"),
        "{err}"
    );
}

/// Posts `n`-th padded event; its id is `{prefix}{n}`.
fn padded(prefix: &str, n: usize, pad: usize) -> String {
    let mut ev = event(&format!("{prefix}{n}"), "ci");
    ev["detail"]["pad"] = json!("x".repeat(pad));
    ev.to_string()
}

/// The bytes of the database and its WAL in `data`.
fn store_files(data: &Path) -> u64 {
    ["scanbridge.db", "scanbridge.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_limit_prunes_the_archive_first_and_refuses_only_while_pending_work_fills_it() {
    let rx = Receiver::start().await;
    let r = rule("all", json!({"source": ["ci"]}), &["hook"]);
    let home = Home::new(&rx.target(), &[("all.json", &r)]);
    let cap: u64 = 262_144;
    home.store_config(&format!("max_db_bytes = {cap}"));
    let d = home.start();
    let data = home.path().join("data");
    // 1. Delivered events become the archive: far more than the limit is accepted, the oldest
    //    archived events make room, the files stay within the limit. (Before: 503 for ever.)
    for i in 0..80 {
        let (status, body) = d.post(padded("a", i, 6000)).await;
        assert_eq!(status, 202, "event a{i}: {body}");
        rx.wait_hits(i + 1, &d).await;
    }
    assert!(d.metric("scanbridge_pruned_total{kind=\"oldest\"}").await > 0.0);
    let files = store_files(&data);
    assert!(
        files <= cap + cap / 4,
        "{files} bytes on disk for a limit of {cap}"
    );
    // 2. The receiver fails: pending work fills the store; then, and only then, 503 with Retry-After.
    rx.fail(500);
    let (mut accepted, mut refused) = (Vec::new(), None);
    for i in 0..400 {
        let (status, headers, body) = d.post_full(padded("p", i, 6000)).await;
        match status {
            202 => accepted.push(format!("p{i}")),
            503 => {
                refused = Some((headers, body, i));
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let (headers, body, at) = refused.expect("pending work never filled the store");
    let why = body["error"].as_str().unwrap();
    assert!(
        why.contains("pending deliveries fill store.max_db_bytes")
            && why.contains("nothing was accepted"),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(!accepted.is_empty());
    // A crash while refusing loses nothing; the restarted daemon keeps refusing while full.
    d.crash();
    let d = home.start();
    assert_eq!(d.post(padded("q", 0, 6000)).await.0, 503);
    // 3. The receiver recovers: deliveries drain, and ingest is accepted again by itself.
    rx.fail(0);
    let start = Instant::now();
    loop {
        let (status, body) = d.post(padded("after", 0, 100)).await;
        if status == 202 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            start.elapsed() < crate::daemon::PATIENCE,
            "never accepted again:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let want = 80 + accepted.len() + 1;
    rx.wait_hits(want, &d).await;
    let ids: Vec<String> = rx
        .hits()
        .iter()
        .map(|h| h.body["id"].as_str().unwrap().to_owned())
        .collect();
    for a in &accepted {
        assert!(ids.contains(a), "{a} got 202 but was not delivered");
    }
    assert!(
        !ids.contains(&format!("p{at}")),
        "the refused event was delivered"
    );
    assert!(!ids.iter().any(|i| i == "q0"));
    assert!(d.logs().contains("room again"), "{}", d.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_while_running_answers_503_then_recovers() {
    let rx = Receiver::start().await;
    let r = rule("all", json!({"source": ["ci"]}), &["hook"]);
    let home = Home::new(&rx.target(), &[("all.json", &r)]);
    let d = home.start();
    assert_eq!(d.post(event("before", "ci").to_string()).await.0, 202);
    rx.wait_hits(1, &d).await;
    let data = home.path().join("data");
    let (db, wal) = (data.join("scanbridge.db"), data.join("scanbridge.db-wal"));
    // Not the -shm file: SQLite maps it, and an immutable mapping kills the process with SIGBUS.
    if !chattr("+i", &[&db, &wal, &data]) {
        eprintln!("chattr +i refused here: read-only while running not checked");
        return;
    }
    let (status, body) = d.post(event("during", "ci").to_string()).await;
    let (status2, _) = d.post(event("during-2", "ci").to_string()).await;
    chattr("-i", &[&db, &wal, &data]);
    assert_eq!(status, 503, "{body}");
    assert_eq!(status2, 503);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("nothing was accepted"),
        "{body}"
    );
    // Writable again: accepted and delivered; the refused events never are.
    assert_eq!(d.post(event("after", "ci").to_string()).await.0, 202);
    let hits = rx.wait_hits(2, &d).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids: Vec<&str> = hits.iter().filter_map(|h| h.body["id"].as_str()).collect();
    assert!(ids.contains(&"after"), "{ids:?}");
    assert!(!rx.hits().iter().any(|h| h.body["id"] == "during"));
    let _ = Instant::now();
}

/// A tmpfs of a few MiB mounted on a temp directory for the test's life (lazily unmounted on drop).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one of `size` (mount's syntax: "5m"), or says why it cannot (the caller skips).
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes free on it.
    fn available(&self) -> u64 {
        let st = rustix::fs::statvfs(self.path()).unwrap();
        st.f_bavail * st.f_frsize
    }

    /// Writes a ballast file until at most `leave` bytes are free (0: until the disk is full).
    fn fill(&self, leave: u64) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("ballast");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while self.available() > leave {
            let n = (self.available() - leave).min(chunk.len() as u64) as usize;
            if f.write_all(&chunk[..n.max(1)]).is_err() {
                break; // full
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A tmpfs for the test, or None after saying why the test is skipped. Where scripts/test found that
/// tmpfs mounts work (it sets `SCANBRIDGE_REQUIRE_TMPFS`), failing to mount one fails the test.
fn tmpfs_or_skip(test: &str) -> Option<Tmpfs> {
    match Tmpfs::mount("5m") {
        Ok(fs) => Some(fs),
        Err(why) if std::env::var_os("SCANBRIDGE_REQUIRE_TMPFS").is_some() => {
            panic!("{test}: cannot mount a 5 MiB tmpfs although scripts/test could: {why}")
        }
        Err(why) => {
            eprintln!(
                "{test}: SKIPPED: cannot mount a 5 MiB tmpfs here ({why}): a real full disk needs \
                 `mount -t tmpfs`, which takes root or CAP_SYS_ADMIN; the size-limit test \
                 (the_size_limit_prunes_...) still runs"
            );
            None
        }
    }
}

/// A home whose data directory is on `fs`.
fn home_on(fs: &Tmpfs, targets: &str, rules: &[(&str, &str)]) -> Home {
    let home = Home::new(targets, rules);
    let data = fs.path().join("data");
    home.store_config(&format!("data_dir = {:?}", data.display().to_string()));
    home
}

/// Posts until the daemon answers 202 (space came back), failing after PATIENCE.
async fn until_accepted(d: &crate::daemon::Daemon, body: &str) {
    let start = Instant::now();
    loop {
        let (status, answer) = d.post(body.to_owned()).await;
        if status == 202 {
            return;
        }
        assert_eq!(status, 503, "{answer}");
        assert!(
            start.elapsed() < crate::daemon::PATIENCE,
            "new events still refused after space returned:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_new_events_delivers_the_accepted_and_resumes_when_space_returns() {
    let Some(fs) = tmpfs_or_skip("a_full_disk_refuses_new_events") else {
        return;
    };
    let rx = Receiver::start().await;
    rx.fail(503); // nothing is delivered while the disk fills: everything accepted stays pending
    let r = rule("all", json!({"source": ["ci"]}), &["hook"]);
    let home = home_on(&fs, &rx.target(), &[("all.json", &r)]);
    let d = home.start();
    let reserve = fs.path().join("data/scanbridge.reserve");
    let start = Instant::now();
    while std::fs::metadata(&reserve).map(|m| m.len()).unwrap_or(0) < 1 << 20 {
        assert!(start.elapsed() < crate::daemon::PATIENCE, "no reserve made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ballast = fs.fill(2_500_000);
    let (mut accepted, mut refused) = (Vec::new(), None);
    for i in 0..500 {
        let (status, headers, body) = d.post_full(padded("e", i, 20_000)).await;
        match status {
            202 => accepted.push(format!("e{i}")),
            503 => {
                refused = Some((headers, body));
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let (headers, body) = refused.expect("the disk never filled");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("database or disk is full"),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(accepted.len() >= 5, "{} accepted", accepted.len());
    d.wait_metric("scanbridge_store_full", 1.0).await;
    assert!(!reserve.exists(), "the reserve is released on a full disk");
    let (status, body) = d.post(padded("during", 0, 100)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("disk"), "{body}");
    // Delivery of what was accepted goes on, on the full disk (acks are writes too).
    rx.fail(0);
    let hits = rx.wait_hits(accepted.len(), &d).await;
    let ids: Vec<&str> = hits.iter().filter_map(|h| h.body["id"].as_str()).collect();
    for a in &accepted {
        assert!(
            ids.contains(&a.as_str()),
            "{a} got 202 but was not delivered"
        );
    }
    assert!(fs.available() < 2 << 20, "the disk is still full");
    assert_eq!(d.post(padded("still", 0, 100)).await.0, 503);
    // Space returns: the reserve is made again and new events are accepted, without a restart.
    std::fs::remove_file(ballast).unwrap();
    until_accepted(&d, &padded("back", 0, 100)).await;
    rx.wait_hits(accepted.len() + 1, &d).await;
    assert!(reserve.exists());
    assert!(d.logs().contains("disk space is back"), "{}", d.logs());
    assert!(
        !rx.hits()
            .iter()
            .any(|h| h.body["id"] == "during" || h.body["id"] == "still")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_on_a_full_disk_and_delivers() {
    let Some(fs) = tmpfs_or_skip("serve_starts_on_a_full_disk") else {
        return;
    };
    let rx = Receiver::start().await;
    rx.fail(503);
    let r = rule("all", json!({"source": ["ci"]}), &["hook"]);
    let home = home_on(&fs, &rx.target(), &[("all.json", &r)]);
    let d = home.start();
    for i in 0..10 {
        assert_eq!(d.post(padded("e", i, 5_000)).await.0, 202);
    }
    rx.wait_attempts(10, &d).await;
    d.stop();
    // The disk fills while the daemon is down, to the last byte.
    let ballast = fs.fill(0);
    assert!(fs.available() < 4096, "{} bytes free", fs.available());
    let d = home.start();
    assert!(d.logs().contains("disk full at start-up"), "{}", d.logs());
    let (status, body) = d.post(padded("refused", 0, 100)).await;
    assert_eq!(status, 503, "{body}");
    rx.fail(0);
    let hits = rx.wait_hits(10, &d).await;
    for i in 0..10 {
        let id = format!("e{i}");
        assert!(
            hits.iter().any(|h| h.body["id"] == id.as_str()),
            "{id} not delivered"
        );
    }
    std::fs::remove_file(ballast).unwrap();
    until_accepted(&d, &padded("back", 0, 100)).await;
    rx.wait_hits(11, &d).await;
    assert!(!rx.hits().iter().any(|h| h.body["id"] == "refused"));
}
