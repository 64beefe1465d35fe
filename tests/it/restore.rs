//! `scanbridge store restore FILE` through the real binary, on both backends (a real nats-server for
//! JetStream): a daemon whose receivers are down accepts events (deliveries retry in the outbox,
//! others are dead-lettered, one is silenced, each claims a dedup key), the store is backed up and
//! lost (a new data directory; a new NATS server, restored under another prefix), a daemon started
//! and stopped there leaves an empty store the restore accepts, and a daemon with the receivers up
//! then delivers every pending delivery once with its attempts kept, lists and redrives the dead
//! letters, and still holds the silence, the dedup claims and the ids it saw. And the refusals,
//! exit 2, each leaving the store as it was: a store that holds data (named), a damaged backup (on
//! JetStream the line at fault by number, before anything is made), a daemon holding the data
//! directory (SQLite).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::daemon::{Home, Receiver};
use crate::stores::Store;
use crate::support::{exits, stderr, stdout};

/// An event of rule `scans`, dedup key `k`, of `team` (the silence holds team `muted`).
fn ci(id: &str, k: &str, team: &str) -> String {
    json!({"id": id, "source": "ci", "detail-type": "Test", "detail": {"k": k, "team": team}})
        .to_string()
}

fn bad(id: &str) -> String {
    json!({"id": id, "source": "bad", "detail-type": "Test", "detail": {"n": 1}}).to_string()
}

/// The attempts `events show ID` reports for the event's one delivery: pending or delivered.
fn attempts_of(home: &Home, id: &str) -> (String, u64) {
    let out = home.tool(&["events", "show", id]);
    exits(&out, 0);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains(" delivery "))
        .unwrap_or_else(|| panic!("no delivery line: {text}"));
    let number = |after: &str| -> u64 {
        line.split(after)
            .nth(1)
            .unwrap_or_else(|| panic!("{line}"))
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("{line}"))
    };
    if line.contains("pending: ") {
        ("pending".into(), number("pending: "))
    } else if line.contains("delivered at ") {
        ("delivered".into(), number("(attempt "))
    } else {
        (line.to_owned(), 0)
    }
}

/// Points the JetStream home's config at `url` with `prefix`.
fn point_at(home: &Home, url: &str, prefix: &str) {
    let path = home.path().join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("servers = ") {
                format!("servers = [{url:?}]")
            } else if l.starts_with("prefix = ") {
                format!("prefix = {prefix:?}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

fn prefix_of(home: &Home) -> String {
    let text = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    let line = text.lines().find(|l| l.starts_with("prefix = ")).unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

/// How many times the receiver accepted each event id.
fn delivered(rx: &Receiver) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for h in rx.hits() {
        *n.entry(h.body["id"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    n
}

on_both_stores! {
async fn a_backup_restored_into_a_lost_store_carries_on_where_it_was(store: Store) {
    let mut store = store;
    let jetstream = matches!(store, Store::JetStream(_));
    let (hook, sink) = (Receiver::start().await, Receiver::start().await);
    hook.fail(503);
    sink.fail(400);
    let scans = json!({"name": "scans", "event_pattern": {"source": ["ci"]}, "targets": ["hook"],
                       "dedup": {"window": "6h", "key": ["$.detail.k"]}})
    .to_string();
    let lost = json!({"name": "lost", "event_pattern": {"source": ["bad"]}, "targets": ["sink"]})
        .to_string();
    let targets = format!(
        "{}\n[targets.sink]\ntype = \"webhook\"\nurl = \"http://{}/sink\"\ntimeout = \"2s\"\n",
        hook.target(),
        sink.addr
    );
    let home = Home::on(&store, &targets, &[("scans.json", &scans), ("lost.json", &lost)]);
    let d = home.start();
    let out = home.cli(&["silence", "add", "--match", "detail.team=muted", "--expires", "2h",
                         "--comment", "held", "--url", &d.url("")]);
    exits(&out, 0);
    let silence = stdout(&out).trim().to_owned();
    for i in 0..5 {
        assert_eq!(d.post(ci(&format!("e{i}"), &format!("k{i}"), "web")).await.0, 202);
    }
    assert_eq!(d.post(ci("m0", "km", "muted")).await.0, 202);
    assert_eq!(d.post(bad("b0")).await.0, 202);
    assert_eq!(d.post(bad("b1")).await.0, 202);
    // Every pending delivery tried a few times, the two others dead-lettered, m0 silenced.
    hook.wait_attempts(25, &d).await;
    sink.wait_attempts(2, &d).await;
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"scans\",target=\"hook\",reason=\"silenced\"}",
        1.0,
    )
    .await;
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"sink\",outcome=\"dead_letter\"}",
        2.0,
    )
    .await;
    d.stop();
    let before: Vec<(String, u64)> = (0..5).map(|i| attempts_of(&home, &format!("e{i}"))).collect();
    assert!(
        before.iter().all(|(state, n)| state == "pending" && *n >= 2),
        "{before:?}"
    );

    let copies = tempfile::tempdir().unwrap();
    let file = copies.path().join("store.backup");
    let f = file.to_str().unwrap();
    exits(&home.tool(&["store", "backup", f]), 0);

    // The store is lost: a new data directory, or a new NATS server (and another prefix).
    let _new_server = if jetstream {
        let old = prefix_of(&home);
        store.nats_mut().unwrap().kill();
        let fresh = Store::jetstream();
        let Store::JetStream(nodes) = &fresh else { unreachable!() };
        point_at(&home, &nodes[0].url(), &format!("{old}r"));
        Some(fresh)
    } else {
        std::fs::remove_dir_all(home.path().join("data")).unwrap();
        None
    };
    // A daemon started there first (as after a crash): the store it made holds nothing yet.
    let early = home.start();
    if !jetstream {
        // SQLite: not while that daemon holds the data directory, not even with --replace.
        let out = home.tool(&["store", "restore", f, "--replace"]);
        exits(&out, 2);
        assert!(
            stderr(&out).contains("is in use by `scanbridge serve` (pid ")
                && stderr(&out).contains("stop the daemon before restoring"),
            "{}",
            stderr(&out)
        );
    }
    early.stop();
    let out = home.tool(&["store", "restore", f]);
    exits(&out, 0);
    let text = stdout(&out);
    let prefix = if jetstream { prefix_of(&home) } else { String::new() };
    let (events, outbox, dead) = match jetstream {
        true => (
            format!("{prefix}_EVENTS: 8 message(s)"),
            format!("{prefix}_OUTBOX: 5 message(s)"),
            format!("{prefix}_DEAD: 2 message(s)"),
        ),
        false => (
            "events: 8 row(s)".to_owned(),
            "outbox: 5 row(s)".to_owned(),
            "dead_letters: 2 row(s)".to_owned(),
        ),
    };
    for line in [&events, &outbox, &dead] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}{}", stderr(&out));
    }
    // What the lost store said is what the restored one says, attempts included.
    let after: Vec<(String, u64)> = (0..5).map(|i| attempts_of(&home, &format!("e{i}"))).collect();
    assert_eq!(after, before);

    // Restored once: a second restore finds data and names it.
    let again = home.tool(&["store", "restore", f]);
    exits(&again, 2);
    let named = match jetstream {
        true => format!("stream {prefix}_EVENTS holds 8 message(s)"),
        false => "8 row(s) in events".to_owned(),
    };
    assert!(
        stderr(&again).contains("already holds data") && stderr(&again).contains(&named)
            && stderr(&again).contains("--replace"),
        "{}",
        stderr(&again)
    );
    // A damaged backup is refused and changes nothing.
    let broken = copies.path().join("broken.backup");
    if jetstream {
        let mut lines: Vec<String> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        lines[4] = "{\"stream\": ".into();
        std::fs::write(&broken, lines.join("\n") + "\n").unwrap();
    } else {
        let mut bytes = std::fs::read(&file).unwrap();
        let n = bytes.len();
        bytes[n / 2..].fill(0x55);
        std::fs::write(&broken, bytes).unwrap();
    }
    let out = home.tool(&["store", "restore", broken.to_str().unwrap(), "--replace"]);
    exits(&out, 2);
    let says = if jetstream { "line 5: " } else { "broken.backup" };
    assert!(
        stderr(&out).contains(says) && stderr(&out).contains("nothing was restored"),
        "{}",
        stderr(&out)
    );
    // --replace with a good one replaces; on JetStream with the format's version 1 (no headers:
    // the purge markers the dead letters left in the attempts bucket are read as deletes).
    let good = if jetstream {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"KV-Operation\":[\"PURGE\"]"), "{text}");
        let v1: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| match (i, l.find(",\"headers\":")) {
                (0, _) => l.replace("\"version\":2", "\"version\":1"),
                (_, Some(at)) => format!("{}}}", &l[..at]),
                (_, None) => l.to_owned(),
            })
            .collect();
        let path = copies.path().join("v1.backup");
        std::fs::write(&path, v1.join("\n") + "\n").unwrap();
        path
    } else {
        file.clone()
    };
    let out = home.tool(&["store", "restore", good.to_str().unwrap(), "--replace"]);
    exits(&out, 0);
    if jetstream {
        assert!(
            stdout(&out).contains(&format!("KV_{prefix}_attempts: 5 message(s), 2 delete marker(s)"))
                && stderr(&out).contains("format version 1"),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    assert_eq!(
        (0..5).map(|i| attempts_of(&home, &format!("e{i}"))).collect::<Vec<_>>(),
        before
    );

    // The daemon, receivers up: every pending delivery arrives once, one attempt after those made.
    hook.fail(0);
    sink.fail(0);
    let d = home.start();
    hook.wait_hits(5, &d).await;
    for (i, (_, n)) in before.iter().enumerate() {
        let id = format!("e{i}");
        let want = ("delivered".to_owned(), n + 1);
        let mut got = attempts_of(&home, &id);
        for _ in 0..50 {
            if got == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            got = attempts_of(&home, &id);
        }
        assert_eq!(got, want, "{id}: attempts kept across the restore\n{}", d.logs());
    }
    // The dead letters are listed and redriven.
    let url = d.url("");
    let out = home.cli(&["dlq", "list", "--url", &url]);
    exits(&out, 0);
    assert!(stderr(&out).contains("2 dead letter(s)"), "{}", stderr(&out));
    exits(&home.cli(&["dlq", "redrive", "--all", "--url", &url]), 0);
    sink.wait_hits(2, &d).await;
    // The silence, the dedup claims and the ids seen hold; the suppressed log was kept.
    let out = home.cli(&["silence", "list", "--url", &url]);
    assert!(stdout(&out).contains(&silence), "{}", stdout(&out));
    assert_eq!(d.post(ci("m1", "km1", "muted")).await.0, 202);
    assert_eq!(d.post(ci("e-dup", "k0", "web")).await.0, 202);
    assert_eq!(d.post(ci("e1", "k1", "web")).await.0, 202);
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"scans\",target=\"hook\",reason=\"silenced\"}",
        1.0,
    )
    .await;
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"scans\",target=\"hook\",reason=\"duplicate\"}",
        1.0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = delivered(&hook);
    let want: BTreeMap<String, usize> = (0..5).map(|i| (format!("e{i}"), 1)).collect();
    assert_eq!(got, want, "each pending delivery once; nothing silenced, duplicated or seen");
    let out = home.cli(&["suppressed", "--json", "--url", &url]);
    let rows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |id: &str| rows.iter().find(|r| r["event_id"] == id).map(|r| r["reason"].clone());
    assert_eq!(of("m0"), Some(json!("silenced")), "from before the backup: {rows:?}");
    assert_eq!(of("m1"), Some(json!("silenced")), "{rows:?}");
    assert_eq!(of("e-dup"), Some(json!("duplicate")), "{rows:?}");
    d.stop();
}
}

#[test]
fn a_jetstream_backup_is_checked_whole_before_the_cluster_is_touched() {
    let store = Store::jetstream();
    let home = Home::on(&store, "", &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.jsonl");
    let header = json!({"format": "scanbridge-jetstream-backup", "version": 2, "prefix": "old",
                        "streams": ["old_EVENTS", "KV_old_seen"]});
    let event = json!({"stream": "old_EVENTS", "seq": 1, "subject": "old.events.aa",
                       "data": {"id": "x", "received_at": 1, "body": {"id": "x"}}});
    let lines = [
        header.to_string(),
        event.to_string(),
        "[1, 2]".to_owned(),
        event.to_string(),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = home.tool(&["store", "restore", file.to_str().unwrap()]);
    exits(&out, 2);
    assert!(
        stderr(&out).contains("b.jsonl line 3: not a message line")
            && stderr(&out).contains("nothing was restored"),
        "{}",
        stderr(&out)
    );
    // Nothing was made: the prefix has no store.
    let out = home.tool(&["store", "check"]);
    exits(&out, 2);
    assert!(
        stderr(&out).contains("no scanbridge store with prefix"),
        "{}",
        stderr(&out)
    );
    // Another backend's backup is named as such.
    std::fs::write(&file, b"SQLite format 3\0rest").unwrap();
    let out = home.tool(&["store", "restore", file.to_str().unwrap()]);
    exits(&out, 2);
    assert!(
        stderr(&out).contains("is an SQLite backup"),
        "{}",
        stderr(&out)
    );
}
