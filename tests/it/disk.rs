//! A full or read-only data directory, at start-up (a clear error, exit non-zero) and while running
//! (ingest answers 503 and acknowledges nothing that is not durable; what got 202 is delivered).
//!
//! How the faults are made without privileges beyond what the test machine has:
//! - full: `store.max_db_bytes` caps the database, and SQLite then fails writes with SQLITE_FULL,
//!   the very error a full disk gives (mounting a small tmpfs needs privileges the tests do not have);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_answers_503_and_loses_nothing_that_got_202() {
    let rx = Receiver::start().await;
    let r = rule("all", json!({"source": ["ci"]}), &["hook"]);
    let home = Home::new(&rx.target(), &[("all.json", &r)]);
    let config = home.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // Room for the empty schema (32 pages of 4 KiB) and a handful of the padded events below.
    std::fs::write(
        &config,
        text.replace("[store]\n", "[store]\nmax_db_bytes = 196608\n"),
    )
    .unwrap();
    let d = home.start();
    let pad = "x".repeat(8000);
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for i in 0..100 {
        let mut ev = event(&format!("e{i}"), "ci");
        ev["detail"]["pad"] = json!(pad);
        let (status, body) = d.post(ev.to_string()).await;
        match status {
            202 => accepted.push(format!("e{i}")),
            503 => {
                assert!(
                    body["error"]
                        .as_str()
                        .unwrap()
                        .contains("database or disk is full")
                        && body["error"]
                            .as_str()
                            .unwrap()
                            .contains("nothing was accepted"),
                    "{body}"
                );
                refused.push(format!("e{i}"));
            }
            other => panic!("{other}: {body}"),
        }
        if refused.len() >= 3 {
            break;
        }
    }
    assert!(
        !accepted.is_empty() && refused.len() == 3,
        "{accepted:?} {refused:?}"
    );
    assert!(d.logs().contains("store failure"));
    // A crash now, then a restart with room: every 202 is delivered, no 503 ever is.
    d.crash();
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("max_db_bytes = 196608", "max_db_bytes = 0"),
    )
    .unwrap();
    let d = home.start();
    let hits = rx.wait_hits(accepted.len(), &d).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids: Vec<String> = rx
        .hits()
        .iter()
        .map(|h| h.body["id"].as_str().unwrap().to_owned())
        .collect();
    for a in &accepted {
        assert!(ids.contains(a), "{a} got 202 but was not delivered");
    }
    for r in &refused {
        assert!(!ids.contains(r), "{r} got 503 but was delivered");
    }
    assert!(hits.len() >= accepted.len());
    assert_eq!(d.post(event("after", "ci").to_string()).await.0, 202);
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
