//! `scanbridge events` and `scanbridge replay` talk to the running daemon's admin API like the other
//! store commands (`GET /api/v1/archive`, `POST /api/v1/replay`), behind the same tokens, and print
//! exactly what they print on a data directory opened with `--data-dir` (which says which store it
//! opened, and must already hold one).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::{Home, PATIENCE, Receiver, event, rule};
use crate::support::{cli_in, exits, stderr, stdout};

/// A replay's stdout with each line's delivery id (scoped by the replay's own id) cut off.
fn without_ids(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.rsplit_once("  delivery ").unwrap().0.to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_replay_print_the_same_through_the_daemon_and_on_the_data_directory() {
    let rx = Receiver::start().await;
    let r = rule("ci", json!({"source": ["ci"]}), &["hook"]);
    let home = Home::new(&rx.target(), &[("ci.json", &r)]);
    let d = home.start();
    for (id, source) in [("e1", "ci"), ("e2", "other"), ("e3", "ci")] {
        assert_eq!(d.post(event(id, source).to_string()).await.0, 202);
    }
    rx.wait_hits(2, &d).await;
    let url = d.url("");
    let data = home.path().join("data").display().to_string();
    let api = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--url", &url]);
        cli_in(home.path(), &[], &all)
    };
    let dir = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", &data]);
        cli_in(home.path(), &[], &all)
    };
    // Both deliveries acknowledged, so the two ways read one state.
    let start = Instant::now();
    loop {
        let t = stdout(&api(&["events", "list", "--matched"]));
        if t.lines().filter(|l| l.contains("1 delivered")).count() == 2 {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "never delivered: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for args in [
        &["events", "list"][..],
        &["events", "list", "--json"],
        &[
            "events",
            "list",
            "--matched",
            "--oldest-first",
            "--limit",
            "1",
        ],
        &["events", "list", "--unmatched", "--json"],
        &["events", "list", "--limit", "2"],
        &["events", "show", "e1"],
        &["events", "show", "e2", "--json"],
    ] {
        let (a, b) = (api(args), dir(args));
        exits(&a, 0);
        exits(&b, 0);
        assert!(!stdout(&a).is_empty(), "{args:?}");
        assert_eq!(
            stdout(&a),
            stdout(&b),
            "{args:?}: the same lines either way"
        );
        // The directory says which store it opened; the daemon's answer needs no such line.
        assert!(
            stderr(&b).starts_with("store: /") && stderr(&b).contains("data/scanbridge.db"),
            "{args:?}: {}",
            stderr(&b)
        );
        assert!(!stderr(&a).contains("store: "), "{}", stderr(&a));
    }
    let listing = stdout(&api(&["events", "list", "--json"]));
    let ids: Vec<String> = listing
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["e3", "e2", "e1"], "newest first");
    let out = api(&["events", "list", "--limit", "2"]);
    assert_eq!(stdout(&out).lines().count(), 3, "header and two rows");
    assert!(stderr(&out).contains("2 event(s)"), "{}", stderr(&out));
    let out = api(&["events", "show", "nope"]);
    exits(&out, 2);
    assert!(
        stderr(&out).contains("no event with id nope in the archive"),
        "{}",
        stderr(&out)
    );

    // A dry run plans the same deliveries through the daemon's rules as through the directory's.
    let a = api(&["replay", "--since", "1h", "--dry-run"]);
    let b = cli_in(
        home.path(),
        &[],
        &[
            "replay",
            "--since",
            "1h",
            "--dry-run",
            "--data-dir",
            &data,
            "--config",
            "config.toml",
        ],
    );
    exits(&a, 0);
    exits(&b, 0);
    assert_eq!(
        without_ids(&stdout(&a)),
        ["e1  ci -> hook", "e3  ci -> hook"],
        "{}",
        stdout(&a)
    );
    assert_eq!(without_ids(&stdout(&a)), without_ids(&stdout(&b)));
    for out in [&a, &b] {
        assert!(
            stderr(out).contains(
                "dry run: 2 delivery(ies) for 2 of 3 archived event(s); nothing was queued"
            ),
            "{}",
            stderr(out)
        );
    }
    // --rules is for the directory: the daemon replays through its own live rules.
    let out = api(&["replay", "--since", "1h", "--rules", "rules"]);
    exits(&out, 2);
    assert!(stderr(&out).contains("--data-dir"), "{}", stderr(&out));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits().len(), 2, "dry runs send nothing");

    // A replay on the data directory beside the daemon: queued there, sent by the daemon.
    let out = cli_in(
        home.path(),
        &[],
        &[
            "replay",
            "--since",
            "1h",
            "--rule",
            "ci",
            "--data-dir",
            &data,
            "--config",
            "config.toml",
        ],
    );
    exits(&out, 0);
    assert!(
        stderr(&out).contains("2 delivery(ies) queued for 2 of 3 archived event(s)"),
        "{}",
        stderr(&out)
    );
    let hits = rx.wait_hits(4, &d).await;
    assert_eq!(
        hits.iter()
            .filter(|h| h.headers.contains_key("x-scanbridge-replay"))
            .count(),
        2
    );
    let out = cli_in(
        home.path(),
        &[],
        &[
            "replay",
            "--since",
            "1h",
            "--rule",
            "nosuch",
            "--data-dir",
            &data,
            "--config",
            "config.toml",
        ],
    );
    exits(&out, 2);
    assert!(
        stderr(&out).contains("--rule nosuch: no enabled rule of that name in"),
        "{}",
        stderr(&out)
    );
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_and_replay_need_the_daemons_token_when_it_has_one() {
    let r = rule("all", json!({"source": ["ci"]}), &["console"]);
    let home = Home::new("[server]\ntoken = \"arch1ve-t0ken\"\n", &[("all.json", &r)]);
    let d = home.start();
    let http = reqwest::Client::new();
    let status = http
        .post(d.url("/events"))
        .bearer_auth("arch1ve-t0ken")
        .body(event("t1", "ci").to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    let url = d.url("");
    let dir = home.path();
    for args in [
        &["events", "list", "--url", &url][..],
        &["events", "show", "t1", "--url", &url],
        &["replay", "--since", "1h", "--dry-run", "--url", &url],
        &["replay", "--since", "1h", "--url", &url],
    ] {
        let out = cli_in(dir, &[], args);
        exits(&out, 2);
        assert!(
            stderr(&out).contains("refused (HTTP 401)")
                && stderr(&out).contains("give --token or set SCANBRIDGE__SERVER__TOKEN"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        let wrong = cli_in(dir, &[], &[args, &["--token", "wrong"]].concat());
        exits(&wrong, 2);
    }
    let token = [("SCANBRIDGE__SERVER__TOKEN", "arch1ve-t0ken")];
    let out = cli_in(dir, &token, &["events", "list", "--json", "--url", &url]);
    exits(&out, 0);
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["id"], "t1");
    let out = cli_in(dir, &token, &["events", "show", "t1", "--url", &url]);
    exits(&out, 0);
    assert!(stdout(&out).starts_with("event t1: "), "{}", stdout(&out));
    let out = cli_in(
        dir,
        &token,
        &["replay", "--since", "1h", "--dry-run", "--url", &url],
    );
    exits(&out, 0);
    assert!(
        stdout(&out).starts_with("t1  all -> console  delivery "),
        "{}",
        stdout(&out)
    );
    // Without --url, the configuration names the daemon and its token, as for the other commands.
    std::fs::write(
        dir.join("client.toml"),
        format!(
            "[server]\nlisten = \"{}\"\ntoken = \"arch1ve-t0ken\"\n",
            d.addr
        ),
    )
    .unwrap();
    let out = cli_in(dir, &[], &["events", "list", "--config", "client.toml"]);
    exits(&out, 0);
    assert!(stdout(&out).contains("t1"), "{}", stdout(&out));

    // The endpoints themselves: the token, unknown parameters and fields refused, the shapes.
    let get = |path: &str, token: Option<&str>| {
        let mut req = http.get(d.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(get("/api/v1/archive", None).await.unwrap().status(), 401);
    assert_eq!(get("/api/v1/archive/t1", None).await.unwrap().status(), 401);
    let replay = |body: Value, token: Option<&str>| {
        let mut req = http.post(d.url("/api/v1/replay")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let resp = replay(json!({"since_ms": 0, "dry_run": true}), None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let t = Some("arch1ve-t0ken");
    let resp = get("/api/v1/archive?matchd=true", t).await.unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("matchd"), "{v}");
    let resp = get("/api/v1/archive?limit=1&bodies=false", t)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["events"][0]["id"], "t1", "{v}");
    assert_eq!(v["events"][0]["matched"], true, "{v}");
    assert_eq!(v["events"][0]["rules"], json!(["all"]), "{v}");
    assert!(v["events"][0].get("body").is_none(), "{v}");
    let v: Value = get("/api/v1/archive/t1", t)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["id"], "t1", "{v}");
    let resp = get("/api/v1/archive/nope", t).await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = replay(json!({"since_ms": 0, "dryrun": true}), t)
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        400,
        "an unknown field is refused, not ignored"
    );
    let resp = replay(json!({"since_ms": 0, "rules": ["nosuch"]}), t)
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("rule nosuch: no enabled rule of that name"),
        "{v}"
    );
    let v: Value = replay(json!({"since_ms": 0, "dry_run": true}), t)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&v["dry_run"], &v["events"], &v["replayed"], &v["queued"]),
        (&json!(true), &json!(1), &json!(1), &json!(0)),
        "{v}"
    );
    assert!(v["replay"].as_str().unwrap().starts_with("replay-"), "{v}");
    let planned = &v["deliveries"][0];
    assert_eq!(
        (
            &planned["event_id"],
            &planned["rule"],
            &planned["target"],
            &planned["topic"]
        ),
        (&json!("t1"), &json!("all"), &json!("console"), &Value::Null),
        "{v}"
    );
    assert_eq!(planned["delivery_id"].as_str().unwrap().len(), 32, "{v}");
    d.stop();
}
