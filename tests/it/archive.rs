//! The archive, replay, retention and the store's own tools, through the real binary beside a real
//! daemon: `scanbridge events list|show` and `scanbridge replay` (through the daemon's admin API, and
//! on a data directory with `--data-dir`), `[store] retain_events` and `retain_unmatched`,
//! `scanbridge store check|backup`. The tests that hold for both backends run on each (`::sqlite`,
//! `::jetstream`: a real nats-server); aging rows by hand and restoring a copy are SQLite's alone.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::{Home, PATIENCE, Receiver, event, rule};
use crate::stores::Store;
use crate::support::{exits, stderr, stdout};

/// The JetStream home's first server URL and prefix, from its config.toml.
fn jetstream_of(home: &Home) -> (String, String) {
    let text = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    let value = |key: &str| {
        let line = text
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"));
        line.split('"').nth(1).unwrap().to_owned()
    };
    (value("servers"), value("prefix"))
}

/// A copy of the home's config.toml naming another JetStream prefix (a cluster without that store).
fn other_prefix(home: &Home) -> std::path::PathBuf {
    let (_, prefix) = jetstream_of(home);
    let text = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    let path = home.path().join("other.toml");
    std::fs::write(
        &path,
        text.replace(&format!("prefix = \"{prefix}\""), "prefix = \"nostore\"")
            .replace("connect_timeout = \"30s\"", "connect_timeout = \"3s\""),
    )
    .unwrap();
    path
}

/// `events list --json` of the daemon at `url`: the ids listed, newest first.
fn listed(url: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["events", "list", "--json", "--url", url];
    args.extend(extra);
    let out = crate::daemon::cli(&args);
    exits(&out, 0);
    stdout(&out)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

on_both_stores! {
async fn events_are_archived_browsable_and_replayed_through_todays_rules(store: Store) {
    let rx = Receiver::start().await;
    // With dedup: a replay is never a duplicate of the live delivery that claimed the key first.
    let old = json!({"name": "old", "event_pattern": {"source": ["ci"]}, "targets": ["hook"],
                     "dedup": {"window": "6h", "key": ["$.source"]}})
    .to_string();
    let home = Home::on(&store, &rx.target(), &[("old.json", &old)]);
    let d = home.start();
    assert_eq!(d.post(event("e-ci", "ci").to_string()).await.0, 202);
    assert_eq!(d.post(event("e-other", "other").to_string()).await.0, 202);
    let live = rx.wait_hits(1, &d).await;
    let live_id = live[0].headers["idempotency-key"]
        .to_str()
        .unwrap()
        .to_owned();
    let url = d.url("");
    let u = url.as_str();

    // events list: newest first, both classes; --matched / --unmatched split them.
    assert_eq!(listed(u, &[]), ["e-other", "e-ci"]);
    assert_eq!(listed(u, &["--matched"]), ["e-ci"]);
    assert_eq!(listed(u, &["--unmatched"]), ["e-other"]);
    assert_eq!(listed(u, &["--oldest-first", "--limit", "1"]), ["e-ci"]);
    assert!(
        listed(u, &["--until", "1h"]).is_empty(),
        "accepted just now"
    );
    let table = home.cli(&["events", "list", "--url", u]);
    let text = stdout(&table);
    assert!(
        text.lines().next().unwrap().starts_with("RECEIVED"),
        "{text}"
    );
    let row = text.lines().find(|l| l.contains("e-ci")).unwrap();
    assert!(
        row.contains("yes") && row.contains("old") && row.contains("1 delivered"),
        "{row}"
    );
    // events show: the delivery's state and the event.
    let out = home.cli(&["events", "show", "e-ci", "--url", u]);
    exits(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("delivery {live_id}: delivered at")),
        "{text}"
    );
    assert!(text.contains("\"detail-type\": \"Test\""), "{text}");
    let out = home.cli(&["events", "show", "nope", "--url", u]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no event with id nope"),
        "{}",
        stderr(&out)
    );

    // A rule added today (the daemon reloads it), tried on what was archived: the dry run prints
    // and changes nothing.
    let new = rule("new", json!({"source": ["other"]}), &["hook"]);
    home.write_rule("new.json", &new);
    d.wait_metric("scanbridge_rule_reloads_total", 1.0).await;
    let out = home.cli(&[
        "replay",
        "--since",
        "1h",
        "--rule",
        "new",
        "--dry-run",
        "--url",
        u,
    ]);
    exits(&out, 0);
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("e-other  new -> hook  delivery "),
        "{lines:?}"
    );
    assert!(
        stderr(&out).contains("nothing was queued"),
        "{}",
        stderr(&out)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.hits().len(), 1, "a dry run sends nothing");
    assert_eq!(listed(u, &["--matched"]), ["e-ci"], "and changes nothing");
    let shown = stdout(&home.cli(&["events", "show", "e-other", "--json", "--url", u]));
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["deliveries"], json!([]), "nothing queued: {v}");
    // Bad input: an unknown rule (named, with where the daemon's rules are), a bad time, no --since.
    let out = home.cli(&["replay", "--since", "1h", "--rule", "nosuch", "--url", u]);
    exits(&out, 2);
    let rules_dir = home.path().join("rules").display().to_string();
    assert!(
        stderr(&out).contains(&format!(
            "rule nosuch: no enabled rule of that name in the daemon's rules ({rules_dir})"
        )),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    for bad in [
        &["replay", "--since", "last tuesday", "--url", u][..],
        &["replay", "--rule", "new", "--url", u],
    ] {
        let out = home.cli(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stdout(&out));
        assert!(stderr(&out).contains("error"), "{}", stderr(&out));
    }

    // The replay: every current rule, new delivery ids scoped by the replay, marked for receivers.
    let out = home.cli(&["replay", "--since", "1h", "--url", u]);
    exits(&out, 0);
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let summary = stderr(&out);
    let replay = summary.split(':').next().unwrap().trim().to_owned();
    assert!(replay.starts_with("replay-"), "{summary}");
    assert!(summary.contains("2 delivery(ies) queued"), "{summary}");
    let hits = rx.wait_hits(3, &d).await;
    let replayed: Vec<_> = hits
        .iter()
        .filter(|h| h.headers.contains_key("x-scanbridge-replay"))
        .collect();
    assert_eq!(replayed.len(), 2, "{hits:?}");
    for h in &replayed {
        assert_eq!(h.headers["x-scanbridge-replay"], replay.as_str());
        assert_eq!(h.body["replay-name"], replay.as_str(), "{}", h.body);
        assert_ne!(h.headers["idempotency-key"], live_id.as_str());
        let id = h.body["id"].as_str().unwrap();
        let printed = lines.iter().find(|l| l.starts_with(id)).unwrap();
        assert!(
            printed.ends_with(h.headers["idempotency-key"].to_str().unwrap()),
            "{printed}"
        );
    }
    let mut ids: Vec<&str> = replayed
        .iter()
        .map(|h| h.body["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["e-ci", "e-other"],
        "the old rule's event and the new rule's too"
    );
    // The live delivery was not repeated, and the archive tells the replayed ones apart.
    assert!(
        !hits
            .iter()
            .any(|h| h.headers.contains_key("x-scanbridge-replay")
                && h.headers["idempotency-key"] == live_id.as_str())
    );
    let show = stdout(&home.cli(&["events", "show", "e-ci", "--json", "--url", u]));
    let v: Value = serde_json::from_str(&show).unwrap();
    let ds = v["deliveries"].as_array().unwrap();
    assert_eq!(ds.len(), 2, "{v}");
    let marked: Vec<_> = ds
        .iter()
        .filter(|d| d["replay"] == replay.as_str())
        .collect();
    assert_eq!(marked.len(), 1, "{v}");
    let start = Instant::now();
    loop {
        let shown = stdout(&home.cli(&["events", "show", "e-other", "--json", "--url", u]));
        let v: Value = serde_json::from_str(&shown).unwrap();
        if v["deliveries"][0]["state"] == "delivered" {
            assert_eq!(
                v["matched"], true,
                "a replayed match keeps the event as long as matched ones"
            );
            break;
        }
        assert!(start.elapsed() < PATIENCE, "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The archive opened directly (no daemon in between) lists the same.
    let out = home.tool(&["events", "list", "--json"]);
    exits(&out, 0);
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    // Pointed at a directory (a prefix) with no store, the tools say so and create nothing.
    match store {
        Store::Sqlite => {
            let empty = tempfile::tempdir().unwrap();
            let dir = empty.path().display().to_string();
            for args in [
                &["events", "list", "--data-dir", &dir][..],
                &["store", "check", "--data-dir", &dir],
            ] {
                let out = crate::daemon::cli(args);
                assert_eq!(out.status.code(), Some(2), "{args:?}");
            }
            assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
        }
        Store::JetStream(_) => {
            let other = other_prefix(&home);
            let other = other.to_str().unwrap();
            for args in [
                &["events", "list", "--direct", "--config", other][..],
                &["store", "check", "--config", other],
                &["replay", "--since", "1h", "--direct", "--config", other],
            ] {
                let out = crate::daemon::cli(args);
                assert_eq!(out.status.code(), Some(2), "{args:?}");
                assert!(
                    stderr(&out).contains("no scanbridge store with prefix \"nostore\""),
                    "{}",
                    stderr(&out)
                );
            }
        }
    }
}
}

on_both_stores! {
async fn unmatched_events_go_after_retain_unmatched_and_matched_ones_stay(store: Store) {
    let rx = Receiver::start().await;
    let r = rule("all", json!({"source": ["ci"]}), &["hook"]);
    let home = Home::on(&store, &rx.target(), &[("all.json", &r)]);
    // A one-second window for events no rule matched, a quick pruner; matched events are kept.
    home.store_config("retain_unmatched = \"1s\"\nprune_interval = \"100ms\"");
    let d = home.start();
    let url = d.url("");
    assert_eq!(d.post(event("m1", "ci").to_string()).await.0, 202);
    assert_eq!(d.post(event("u1", "other").to_string()).await.0, 202);
    rx.wait_hits(1, &d).await;
    let start = Instant::now();
    loop {
        let ids = listed(&url, &[]);
        if ids == ["m1"] {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "{ids:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.wait_metric("scanbridge_pruned_total{kind=\"events\"}", 1.0).await;
    let out = home.tool(&["events", "show", "u1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    // The matched one, delivered, is kept with what became of its delivery.
    let out = home.tool(&["events", "show", "m1"]);
    exits(&out, 0);
    assert!(stdout(&out).contains(": delivered at"), "{}", stdout(&out));
    let out = home.tool(&["store", "check"]);
    exits(&out, 0);
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_replay_dry_run_prints_one_line_per_delivery_starting_with_the_event_id() {
    // The shipped console target, no --config: `replay --since 1h --rule NAME --dry-run --data-dir DIR`.
    let r = rule("crit", json!({"source": ["ci"]}), &["console"]);
    let home = Home::new("", &[("crit.json", &r)]);
    let d = home.start();
    for id in ["c1", "c2"] {
        assert_eq!(d.post(event(id, "ci").to_string()).await.0, 202);
    }
    assert_eq!(d.post(event("n1", "other").to_string()).await.0, 202);
    d.stop();
    let out = crate::support::cli_in(
        home.path(),
        &[],
        &[
            "replay",
            "--since",
            "1h",
            "--rule",
            "crit",
            "--dry-run",
            "--data-dir",
            "data",
        ],
    );
    exits(&out, 0);
    let text = stdout(&out);
    let firsts: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(firsts, ["c1", "c2"], "{text}");
    assert!(
        text.lines().all(|l| l.contains("crit -> console")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_unmatched_events_after_a_day_and_matched_ones_after_thirty() {
    let rx = Receiver::start().await;
    let r = rule("all", json!({"source": ["ci"]}), &["hook"]);
    let home = Home::new(&rx.target(), &[("all.json", &r)]);
    // The contract's keys and values (also the defaults), and a quick pruner for the test.
    home.store_config(
        "retain_events = \"30d\"\nretain_unmatched = \"1d\"\nprune_interval = \"100ms\"",
    );
    let d = home.start();
    for (id, source) in [
        ("m-old", "ci"),
        ("u-old", "other"),
        ("m-new", "ci"),
        ("u-new", "other"),
    ] {
        assert_eq!(d.post(event(id, source).to_string()).await.0, 202);
    }
    rx.wait_hits(2, &d).await;
    let age = |id: &str, days: i64| {
        home.db()
            .execute(
                "UPDATE events SET received_at = received_at - ?2 WHERE id = ?1",
                rusqlite::params![id, days * 86_400_000],
            )
            .unwrap();
    };
    // Two days old: the unmatched one goes, the matched one stays.
    age("m-old", 2);
    age("u-old", 2);
    let url = d.url("");
    let wait_for = |want: &'static [&'static str]| {
        let start = Instant::now();
        loop {
            let mut ids = listed(&url, &[]);
            ids.sort();
            if ids == want {
                return;
            }
            assert!(start.elapsed() < PATIENCE, "{ids:?}, want {want:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(&["m-new", "m-old", "u-new"]);
    // Thirty-one days old: the matched one goes too; its delivered record with it.
    age("m-old", 29);
    wait_for(&["m-new", "u-new"]);
    assert!(d.metric("scanbridge_pruned_total{kind=\"events\"}").await >= 2.0);
    let out = home.cli(&["store", "check"]);
    exits(&out, 0);
    // A matched event whose delivery is still pending is never pruned, however old.
    rx.fail(500);
    assert_eq!(d.post(event("m-pending", "ci").to_string()).await.0, 202);
    rx.wait_attempts(3, &d).await;
    age("m-pending", 400);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(listed(&url, &[]).contains(&"m-pending".to_owned()));
}

on_both_stores! {
async fn store_check_and_backup_work_beside_the_daemon_and_find_a_broken_invariant(store: Store) {
    let rx = Receiver::start().await;
    let r = rule("all", json!({"source": ["ci"]}), &["hook"]);
    let home = Home::on(&store, &rx.target(), &[("all.json", &r)]);
    let d = home.start();
    rx.fail(500);
    for i in 0..20 {
        assert_eq!(
            d.post(event(&format!("e{i}"), "ci").to_string()).await.0,
            202
        );
    }
    let out = home.cli(&["store", "check"]);
    exits(&out, 0);
    assert!(stderr(&out).contains("ok"), "{}", stderr(&out));
    // A backup while the daemon runs and retries: complete, checked, and a store of its own.
    let copies = tempfile::tempdir().unwrap();
    let file = copies.path().join("copy.db");
    let out = home.cli(&["store", "backup", file.to_str().unwrap()]);
    exits(&out, 0);
    assert!(
        stdout(&out).contains("20 event(s), 20 pending"),
        "{}",
        stdout(&out)
    );
    let out = home.cli(&["store", "backup", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an existing file is never overwritten"
    );
    if let Store::JetStream(_) = store {
        // The copy: every message of every stream and bucket, as JSON lines.
        let text = std::fs::read_to_string(&file).unwrap();
        let (_, prefix) = jetstream_of(&home);
        let outbox = format!("\"stream\":\"{prefix}_OUTBOX\"");
        assert_eq!(text.lines().filter(|l| l.contains(&outbox)).count(), 20);
        rx.fail(0);
        rx.wait_hits(20, &d).await;
        d.stop();
        // A broken invariant, planted cold: a delivery in the outbox that does not read.
        let (url, prefix) = jetstream_of(&home);
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.publish(format!("{prefix}.outbox.d"), "not a delivery".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let out = home.cli(&["store", "check"]);
        exits(&out, 1);
        let text = stdout(&out);
        assert!(
            text.contains("outbox messages that do not read (1)"),
            "{text}"
        );
        return;
    }
    let restored = copies.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    std::fs::rename(&file, restored.join("scanbridge.db")).unwrap();
    let dir = restored.display().to_string();
    let out = crate::daemon::cli(&["store", "check", "--data-dir", &dir]);
    exits(&out, 0);
    let out = crate::daemon::cli(&["events", "list", "--json", "--data-dir", &dir]);
    assert_eq!(stdout(&out).lines().count(), 20);
    // The receiver back, everything is delivered; the daemon stops (the fault below is planted cold).
    rx.fail(0);
    rx.wait_hits(20, &d).await;
    d.stop();
    // A broken invariant: a delivery whose event is gone. Exit 1, the problem and its id.
    home.db()
        .execute(
            "INSERT INTO outbox (id, event_id, rule, target, created_at, next_attempt_at)
             VALUES ('orphan', 'gone', 'all', 'hook', 0, 0)",
            [],
        )
        .unwrap();
    let out = home.cli(&["store", "check"]);
    exits(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("outbox deliveries whose event is missing (1): orphan"),
        "{text}"
    );
}
}
