//! The store commands talk to the running daemon like `amtool` to Alertmanager: `--url` (default: the
//! configured `server.listen`), the daemon's own token variable, and the admin API's answers; a data
//! directory is opened directly only with `--data-dir`, which must already hold a store: no read or
//! change of an absent store creates one.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::daemon::{Daemon, Home, Receiver, cli, rule};
use crate::support::cli_in;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn scan(id: &str, repo: &str) -> Value {
    let mut e: Value =
        serde_json::from_str(include_str!("../fixtures/ecr-image-scan-critical.json")).unwrap();
    e["id"] = json!(id);
    e["detail"]["repository-name"] = json!(repo);
    e
}

/// A config file that only says where the daemon listens, as a client machine's would.
fn client_config(dir: &Path, d: &Daemon) -> String {
    let p = dir.join("client.toml");
    std::fs::write(&p, format!("[server]\nlisten = \"{}\"\n", d.addr)).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_and_listings_go_through_the_daemon_from_any_directory() {
    let rx = Receiver::start().await;
    let r = rule("scans", json!({"source": ["aws.ecr"]}), &["hook"]);
    let home = Home::new(&rx.target(), &[("scans.json", &r)]);
    let d = home.start();
    // Another directory, with no data directory and no config of its own but the daemon's address.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = client_config(elsewhere.path(), &d);

    let o = cli_in(
        elsewhere.path(),
        &[],
        &[
            "silence",
            "add",
            "--config",
            &config,
            "--match",
            "detail.repository-name=payments/*",
            "--expires",
            "2h",
            "--comment",
            "payments rebuild",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    let id = out(&o).trim().to_owned();
    assert_eq!(id.len(), 12, "{}", out(&o));
    assert!(
        err(&o).contains(&format!("silence {id} in force until "))
            && err(&o).contains("(2h from now) in the daemon at http://"),
        "{}",
        err(&o)
    );
    assert!(
        !elsewhere.path().join("data").exists(),
        "no store was made where the command ran"
    );

    // The daemon applies it: the payments scan is suppressed, another repository's is delivered.
    let (s, _) = d.post(scan("muted", "payments/api").to_string()).await;
    assert_eq!(s, 202);
    let (s, _) = d.post(scan("loud", "web/front").to_string()).await;
    assert_eq!(s, 202);
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["id"], "loud");
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"scans\",target=\"hook\",reason=\"silenced\"}",
        1.0,
    )
    .await;

    let url = d.url("");
    let o = cli_in(elsewhere.path(), &[], &["silence", "list", "--url", &url]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains(&id) && out(&o).contains("payments rebuild"),
        "{}",
        out(&o)
    );
    assert!(
        err(&o).contains("1 silence(s) in the daemon at http://"),
        "{}",
        err(&o)
    );

    let o = cli_in(
        elsewhere.path(),
        &[],
        &["suppressed", "--json", "--url", &url],
    );
    assert!(o.status.success(), "{}", err(&o));
    let sup: Value = serde_json::from_str(out(&o).lines().next().expect("one")).unwrap();
    assert_eq!(
        (sup["event_id"].as_str(), sup["reason"].as_str()),
        (Some("muted"), Some("silenced"))
    );
    assert_eq!(sup["detail"], format!("silence {id} (payments rebuild)"));

    // events reads the archive through the daemon too, and the same lines from the directory.
    let data = home.path().join("data").display().to_string();
    let o = cli_in(elsewhere.path(), &[], &["events", "list", "--url", &url]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("muted") && out(&o).contains("loud"),
        "{}",
        out(&o)
    );
    let listed = out(&o);
    let o = cli_in(
        elsewhere.path(),
        &[],
        &["events", "list", "--data-dir", &data],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), listed);
    assert!(err(&o).starts_with("store: /"), "{}", err(&o));

    // The same answers from the data directory itself, which says which store it opened.
    let o = cli_in(
        elsewhere.path(),
        &[],
        &["silence", "list", "--json", "--data-dir", &data],
    );
    assert!(o.status.success(), "{}", err(&o));
    let listed: Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(
        (listed["id"].as_str(), listed["active"].as_bool()),
        (Some(id.as_str()), Some(true))
    );
    assert!(
        err(&o).starts_with("store: /") && err(&o).contains("data/scanbridge.db"),
        "{}",
        err(&o)
    );

    let o = cli_in(
        elsewhere.path(),
        &[],
        &["silence", "expire", &id, "--url", &url],
    );
    assert_eq!(out(&o).trim(), format!("expired: {id}"), "{}", err(&o));
    let o = cli_in(
        elsewhere.path(),
        &[],
        &["silence", "expire", "nope", "--url", &url],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("no silence with id nope"), "{}", err(&o));
    // A bad matcher is refused before anything is asked of the daemon.
    let o = cli_in(
        elsewhere.path(),
        &[],
        &[
            "silence",
            "add",
            "--url",
            "http://127.0.0.1:9",
            "--match",
            "nope",
            "--expires",
            "1h",
            "--comment",
            "x",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!err(&o).contains("no daemon answered"), "{}", err(&o));
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_token_variable_is_the_clients_and_refusals_say_what_to_set() {
    let home = Home::new("[server]\ntoken = \"s3cret-t0ken\"\n", &[]);
    let d = home.start();
    let url = d.url("");
    let dir = home.path();

    let o = cli_in(dir, &[], &["dlq", "list", "--url", &url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("refused (HTTP 401)")
            && err(&o).contains("give --token or set SCANBRIDGE__SERVER__TOKEN"),
        "{}",
        err(&o)
    );
    let o = cli_in(
        dir,
        &[("SCANBRIDGE__SERVER__TOKEN", "s3cret-t0ken")],
        &["dlq", "list", "--url", &url],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("0 dead letter(s) in the daemon at"),
        "{}",
        err(&o)
    );
    assert!(!err(&o).contains("deprecated"), "{}", err(&o));
    // The old name still works, with a note.
    let o = cli_in(
        dir,
        &[("SCANBRIDGE_TOKEN", "s3cret-t0ken")],
        &["dlq", "list", "--url", &url],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("SCANBRIDGE_TOKEN is deprecated: set SCANBRIDGE__SERVER__TOKEN"),
        "{}",
        err(&o)
    );
    // Without --url, the config names the daemon (its listen address) and its token.
    std::fs::write(
        dir.join("client.toml"),
        format!(
            "[server]\nlisten = \"{}\"\ntoken = \"s3cret-t0ken\"\n",
            d.addr
        ),
    )
    .unwrap();
    let o = cli_in(dir, &[], &["dlq", "list", "--config", "client.toml"]);
    assert!(o.status.success(), "{}", err(&o));
    // health prints ok.
    let o = cli_in(dir, &[], &["health", "--url", &url]);
    assert_eq!(
        (o.status.code(), out(&o).trim()),
        (Some(0), "ok"),
        "{}",
        err(&o)
    );
    d.stop();

    // No daemon: one error naming the URL and where it came from.
    let o = cli_in(dir, &[], &["dlq", "list", "--url", &url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains(&format!("no daemon answered at {url} (--url)")),
        "{}",
        err(&o)
    );
    assert_eq!(err(&o).lines().count(), 1, "one message: {}", err(&o));
}

#[test]
fn a_data_dir_is_never_created_by_a_command_that_reads_or_queues() {
    let tmp = tempfile::tempdir().unwrap();
    let absent = tmp.path().join("nonexistent");
    let a = absent.display().to_string();
    for args in [
        vec!["dlq", "list"],
        vec!["suppressed"],
        vec!["silence", "list"],
        vec![
            "silence",
            "add",
            "--match",
            "detail.n=1",
            "--expires",
            "1h",
            "--comment",
            "x",
        ],
        vec!["dlq", "redrive", "--all"],
        vec!["events", "list"],
        vec!["events", "show", "e1"],
        vec!["replay", "--since", "1h", "--dry-run"],
        vec!["replay", "--since", "1h"],
    ] {
        let mut all = args.clone();
        all.extend(["--data-dir", &a]);
        let o = cli(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", out(&o));
        assert!(
            err(&o).contains(&format!("--data-dir {a}: no such directory")),
            "{args:?}: {}",
            err(&o)
        );
        assert!(!absent.exists(), "{args:?} created {a}");
    }
    // A directory that exists but holds no store: refused, nothing written into it.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = empty.display().to_string();
    let o = cli(&[
        "silence",
        "add",
        "--match",
        "detail.n=1",
        "--expires",
        "2026-12-31",
        "--comment",
        "x",
        "--data-dir",
        &e,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("holds no store (no scanbridge.db); nothing was created"),
        "{}",
        err(&o)
    );
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "nothing written"
    );
    for args in [
        &["events", "list", "--data-dir", &e][..],
        &["replay", "--since", "1h", "--data-dir", &e],
    ] {
        let o = cli(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(err(&o).contains("holds no store"), "{args:?}: {}", err(&o));
    }
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "nothing written"
    );
    // --url and --data-dir are two different stores: asking for both is an error.
    let o = cli(&[
        "dlq",
        "list",
        "--data-dir",
        &e,
        "--url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_takes_a_date_as_the_end_of_that_day_and_says_so() {
    let home = Home::new("", &[]);
    let d = home.start();
    let url = d.url("");
    let o = cli(&[
        "silence",
        "add",
        "--url",
        &url,
        "--match",
        "detail.n=1",
        "--expires",
        "2099-12-31",
        "--comment",
        "x",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("in force until 2100-01-01T00:00:00Z (the end of 2099-12-31, UTC)"),
        "{}",
        err(&o)
    );
    let o = cli(&[
        "silence",
        "add",
        "--url",
        &url,
        "--match",
        "detail.n=1",
        "--expires",
        "2099-12-31T18:00:00Z",
        "--comment",
        "x",
    ]);
    assert!(
        err(&o).contains("in force until 2099-12-31T18:00:00Z (a UTC time)"),
        "{}",
        err(&o)
    );
    d.stop();
}
