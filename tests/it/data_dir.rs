//! One daemon per data directory, and no store made from a file that is not one: a second `serve` on a
//! held directory exits 2 naming the directory and the holder's pid while the CLI tools keep working
//! beside the first; an empty, non-SQLite or foreign `scanbridge.db` stops `serve` (and the tools) with a
//! clear error and is left untouched.

use std::path::Path;

use serde_json::json;

use crate::daemon::{Home, Receiver, cli, event, rule};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_a_held_data_directory_exits_2_and_the_tools_run_beside_the_first() {
    let rx = Receiver::start().await;
    let r = rule("all", json!({"source": ["ci"]}), &["hook"]);
    let home = Home::new(&rx.target(), &[("all.json", &r)]);
    let first = home.start();
    let data = home.path().join("data");

    let (code, err) = home.refused_start();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&data.display().to_string())
            && err.contains(&format!("pid {}", first.child.id()))
            && err.contains("in use by another `scanbridge serve`"),
        "{err}"
    );
    let lock = std::fs::read_to_string(data.join("scanbridge.lock")).unwrap();
    assert_eq!(
        lock.trim(),
        first.child.id().to_string(),
        "the refused daemon left the holder's pid alone"
    );

    // The tools that read or queue work open the store beside the daemon (--data-dir), or ask it.
    let dir = data.display().to_string();
    let url = first.url("");
    let out = cli(&["dlq", "list", "--data-dir", &dir]);
    assert!(out.status.success(), "dlq: {}", text(&out.stderr));
    let out = cli(&[
        "silence",
        "add",
        "--match",
        "detail.n=2",
        "--expires",
        "1h",
        "--comment",
        "beside the daemon",
        "--data-dir",
        &dir,
    ]);
    assert!(out.status.success(), "silence add: {}", text(&out.stderr));
    let out = cli(&["silence", "list", "--url", &url]);
    assert!(
        text(&out.stdout).contains("beside the daemon"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&["suppressed", "--data-dir", &dir]);
    assert!(out.status.success(), "suppressed: {}", text(&out.stderr));

    // The first daemon never noticed.
    let (status, body) = first.post(event("still-mine", "ci").to_string()).await;
    assert_eq!(status, 202, "{body}");
    let hits = rx.wait_hits(1, &first).await;
    assert_eq!(hits[0].body["id"], "still-mine");

    // A crash releases the lock (the kernel drops it with the process): the next daemon starts.
    first.crash();
    let second = home.start();
    let lock = std::fs::read_to_string(data.join("scanbridge.lock")).unwrap();
    assert_eq!(lock.trim(), second.child.id().to_string());
    second.stop();
}

fn refused_with(home: &Home, needle: &str) -> String {
    let (code, err) = home.refused_start();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("scanbridge.db") && err.contains(needle) && err.contains("refusing to start"),
        "{err}"
    );
    err
}

fn sqlite(path: &Path, sql: &str) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(sql).unwrap();
}

#[test]
fn an_empty_or_foreign_database_file_is_refused_and_left_alone() {
    let home = Home::new("", &[]);
    let data = home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("scanbridge.db");

    // 0 bytes: a truncated store, not an empty one.
    std::fs::write(&db, b"").unwrap();
    refused_with(&home, "is empty (0 bytes)");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "left untouched");
    let dir = data.display().to_string();
    let out = cli(&["dlq", "list", "--data-dir", &dir]);
    assert_eq!(out.status.code(), Some(2), "the tools refuse it too");
    assert!(text(&out.stderr).contains("is empty (0 bytes)"));

    // Not SQLite at all.
    std::fs::write(&db, "id,body\n1,{}\n".repeat(500)).unwrap();
    refused_with(&home, "is not an SQLite database");

    // Another application's SQLite database, by its tables or by its application id.
    std::fs::remove_file(&db).unwrap();
    sqlite(
        &db,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);",
    );
    refused_with(&home, "without scanbridge's tables (it holds users)");
    let tables = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    assert_eq!(tables, 1, "no scanbridge table was added to it");
    std::fs::remove_file(&db).unwrap();
    sqlite(&db, "PRAGMA application_id = 1234;");
    refused_with(&home, "another application (application_id 0x4d2)");

    // A store made by an older build (scanbridge's tables, no application id) is adopted.
    std::fs::remove_file(&db).unwrap();
    sqlite(
        &db,
        "CREATE TABLE events (id TEXT PRIMARY KEY, body TEXT NOT NULL, received_at INTEGER NOT NULL);
         CREATE TABLE outbox (id TEXT PRIMARY KEY, event_id TEXT NOT NULL, rule TEXT NOT NULL,
           target TEXT NOT NULL, input TEXT, attempts INTEGER NOT NULL DEFAULT 0,
           created_at INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL,
           leased_until INTEGER NOT NULL DEFAULT 0, last_error TEXT);",
    );
    let d = home.start();
    d.stop();
    let id: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .unwrap();
    assert_eq!(id, 0x5342_5247, "marked as scanbridge's");

    // A fresh directory gets a store at once, never a 0-byte file.
    std::fs::remove_dir_all(&data).unwrap();
    let d = home.start();
    assert!(std::fs::metadata(&db).unwrap().len() > 0);
    d.stop();
}
