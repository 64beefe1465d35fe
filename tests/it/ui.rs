//! The UI through a real headless Chromium (Debian's `chromium`, driven by `playwright-core` from npm;
//! scripts/test installs both), against a real `scanbridge serve` on port 0: the sandbox's verdict as
//! you type and its highlighted errors, a dead letter redriven from the console, a silence added and
//! the next delivery suppressed by it, sign-in with a token and CSRF refusals. The scripts are
//! `tests/ui/*.mjs`; the effects they cause (a redriven delivery reaching the receiver, a suppressed
//! delivery) are checked here, through the daemon's own sockets and metrics.
//!
//! When the browser or playwright-core is missing, each browser test says so and why, and passes
//! without running (scripts/test sets `SCANBRIDGE_REQUIRE_BROWSER=1` once it installed them, which
//! makes a missing browser a failure instead). `SCANBRIDGE_UI_SHOTS=DIR` saves the README screenshots
//! (`ui-sandbox.png`, `ui-console.png`) into DIR.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::{Daemon, Home, Receiver, rule};

/// What runs the browser scripts.
struct Browser {
    chromium: PathBuf,
    playwright: PathBuf,
}

fn browser(test: &str) -> Option<Browser> {
    let chromium = std::env::var_os("SCANBRIDGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let modules = std::env::var_os("SCANBRIDGE_UI_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-test/node_modules")
        });
    let playwright = modules.join("playwright-core/index.mjs");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why = if !chromium.is_file() {
        Some(format!("no browser at {}", chromium.display()))
    } else if !playwright.is_file() {
        Some(format!(
            "playwright-core is not installed at {}",
            modules.display()
        ))
    } else if !node {
        Some("node is not on PATH".to_owned())
    } else {
        None
    };
    match why {
        None => Some(Browser {
            chromium,
            playwright,
        }),
        Some(why) if std::env::var_os("SCANBRIDGE_REQUIRE_BROWSER").is_some() => {
            panic!("{test}: {why}, but SCANBRIDGE_REQUIRE_BROWSER is set")
        }
        Some(why) => {
            // Straight to the process's stderr: libtest captures eprintln! of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {why} (scripts/test installs Debian's chromium and playwright-core into target/ui-test)"
            );
            None
        }
    }
}

impl Browser {
    /// Runs `tests/ui/SCRIPT` against `daemon` with `env`; fails the test with its output unless it
    /// succeeds. Returns its standard output.
    fn run(&self, script: &str, daemon: &Daemon, env: &[(&str, &str)]) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cmd = Command::new("node");
        cmd.arg(root.join("tests/ui").join(script))
            .env(
                "PLAYWRIGHT_CORE",
                format!("file://{}", self.playwright.display()),
            )
            .env("CHROMIUM", &self.chromium)
            .env("BASE_URL", daemon.url(""))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = std::env::var_os("SCANBRIDGE_UI_SHOTS") {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            cmd.env("SHOTS", dir);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn node");
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "{script} failed ({}):\n{stdout}\n{stderr}\n--- daemon log ---\n{}",
            out.status,
            daemon.logs()
        );
        stdout
    }
}

/// The id of the critical sample.
const CRITICAL_ID: &str = "3f6a1c52-8e0b-4d1e-9a8f-5b2c7d9e1a01";

fn critical() -> Value {
    json!({"source": ["aws.ecr"], "detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}})
}

fn fixture(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let p = if name == "ecr-image-scan-critical.json" {
        root.join(name)
    } else {
        root.join("samples").join(name)
    };
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The critical sample under another event id (a re-sent scan).
fn critical_again(id: &str) -> String {
    let mut v: Value = serde_json::from_str(&fixture("ecr-image-scan-critical.json")).unwrap();
    v["id"] = id.into();
    v.to_string()
}

async fn get(d: &Daemon, path: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(d.url(path))
        .send()
        .await
        .unwrap()
}

const PREVIEW_TARGETS: &str = r#"
[targets.slack]
type = "slack"
webhook_url = "http://127.0.0.1:9/services/T000/B000/SLACKSECRET"
[targets.mail]
type = "email"
host = "127.0.0.1"
port = 9
tls = "none"
from = "scanbridge <scanbridge@example.org>"
to = ["oncall@example.org"]
[targets.hook]
type = "webhook"
url = "http://127.0.0.1:9/hook?token=HOOKSECRET"
headers = { Authorization = "Bearer HEADERSECRET" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_verdict_follows_typing_and_marks_errors_in_a_real_browser() {
    let Some(b) = browser("sandbox_verdict_follows_typing_and_marks_errors_in_a_real_browser")
    else {
        return;
    };
    let home = Home::new(
        PREVIEW_TARGETS,
        &[(
            "critical.json",
            &rule(
                "critical-to-all",
                critical(),
                &["slack", "mail", "hook", "console"],
            ),
        )],
    );
    let d = home.start();
    b.run("sandbox.mjs", &d, &[]);
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_redriven_from_the_console_in_a_real_browser() {
    let Some(b) = browser("a_dead_letter_is_redriven_from_the_console_in_a_real_browser") else {
        return;
    };
    let rx = Receiver::start().await;
    rx.fail(400);
    // `pager` has no server: it keeps retrying, with a long backoff, while the test looks at it.
    let config = format!(
        "{}[targets.pager]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/page\"\ntimeout = \"1s\"\n\
         [targets.pager.retry]\ninitial_backoff = \"10m\"\nmax_backoff = \"1h\"\n\
         [targets.console]\ntype = \"console\"\n",
        rx.target()
    );
    let mut critical_rule: Value = serde_json::from_str(&rule(
        "critical-findings",
        critical(),
        &["hook", "pager", "console"],
    ))
    .unwrap();
    critical_rule["dedup"] = json!({"window": "1h"});
    let home = Home::new(
        &config,
        &[
            ("critical.json", &critical_rule.to_string()),
            (
                "scans.json",
                &rule(
                    "scans-to-console",
                    json!({"detail-type": ["ECR Image Scan", "Inspector2 Scan"]}),
                    &["console"],
                ),
            ),
        ],
    );
    let d = home.start();
    for name in [
        "ecr-image-action-push.json",
        "inspector2-finding.json",
        "ecr-image-scan-failed.json",
        "ecr-image-scan-high-only.json",
        "ecr-image-scan-critical.json",
    ] {
        assert_eq!(d.post(fixture(name)).await.0, 202, "{name}");
    }
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"hook\",outcome=\"dead_letter\"}",
        1.0,
    )
    .await;
    // The same scan again, under a new id: a duplicate within the window, suppressed.
    assert_eq!(d.post(critical_again("resent-scan-1")).await.0, 202);
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"critical-findings\",target=\"hook\",reason=\"duplicate\"}",
        1.0,
    )
    .await;
    rx.fail(0);
    b.run("console-redrive.mjs", &d, &[("EVENT", CRITICAL_ID)]);
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["id"], CRITICAL_ID);
    let left: Value = get(&d, "/api/v1/deadletters").await.json().await.unwrap();
    assert_eq!(left["deadletters"], json!([]));
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_added_in_the_console_suppresses_the_next_delivery_in_a_real_browser() {
    let Some(b) =
        browser("a_silence_added_in_the_console_suppresses_the_next_delivery_in_a_real_browser")
    else {
        return;
    };
    let rx = Receiver::start().await;
    let home = Home::new(
        &rx.target(),
        &[(
            "critical.json",
            &rule("critical-findings", critical(), &["hook"]),
        )],
    );
    let d = home.start();
    let out = b.run("console-silence.mjs", &d, &[("PHASE", "add")]);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("silence: "))
        .unwrap_or_else(|| panic!("no silence id in:\n{out}"))
        .trim()
        .to_owned();
    let listed: Value = get(&d, "/api/v1/silences").await.json().await.unwrap();
    assert_eq!(listed["silences"][0]["id"], id.as_str());
    assert_eq!(listed["silences"][0]["created_by"], "alice");

    assert_eq!(d.post(fixture("ecr-image-scan-critical.json")).await.0, 202);
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"critical-findings\",target=\"hook\",reason=\"silenced\"}",
        1.0,
    )
    .await;
    assert!(rx.hits().is_empty(), "a silenced delivery was sent");
    b.run(
        "console-silence.mjs",
        &d,
        &[("PHASE", "check"), ("SILENCE", &id)],
    );
    // Expired from the console: the next scan is sent.
    assert_eq!(d.post(critical_again("after-expiry")).await.0, 202);
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["id"], "after-expiry");
    d.stop();
}

const TOKEN: &str = "ui-TOKEN-4242-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_a_token_and_csrf_refusals() {
    let home = Home::new(
        &format!("[server]\ntoken = \"{TOKEN}\"\n"),
        &[(
            "critical.json",
            &rule("critical-findings", critical(), &["console"]),
        )],
    );
    let d = home.start();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Programs: a bearer token, no CSRF token; nothing without one; never cross-site.
    let r = http.get(d.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = http
        .get(d.url("/api/v1/events"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.text().await.unwrap().contains("wrong"));
    let silence =
        json!({"matchers": ["detail.repository-name=x/*"], "expires": "1h", "comment": "bearer"});
    let r = http
        .post(d.url("/api/v1/silences"))
        .bearer_auth(TOKEN)
        .json(&silence)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["silence"]["created_by"], "api");
    let r = http
        .post(d.url("/api/v1/silences"))
        .bearer_auth(TOKEN)
        .header("origin", "https://evil.example")
        .json(&silence)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a cross-site change");
    // Pages send people to sign in; a wrong token is refused with no cookie.
    let r = http.get(d.url("/ui/console")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login?next=console");
    let r = http
        .post(d.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=wrong&next=console")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let r = http
        .post(d.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}&next=https%3A%2F%2Fevil.example%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/console", "no open redirect");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains(TOKEN),
        "{cookie}"
    );
    assert!(!d.logs().contains(TOKEN), "the token was logged");

    if let Some(b) = browser("sign_in_with_a_token_and_csrf_refusals (browser part)") {
        b.run("signin.mjs", &d, &[("TOKEN", TOKEN)]);
    }
    assert!(!d.logs().contains(TOKEN), "the token was logged");
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanbridge_sandbox_serves_the_sandbox_alone_with_security_headers() {
    let d = Daemon::spawn(&["sandbox", "--listen", "127.0.0.1:0"]);
    let r = get(&d, "/ui/sandbox").await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let script_src = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap();
    assert_eq!(script_src.trim(), "script-src 'self'", "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let page = r.text().await.unwrap();
    for id in ["pattern", "event", "verdict", "explain", "run"] {
        assert!(page.contains(&format!("data-testid=\"{id}\"")), "{id}");
    }
    assert_eq!(get(&d, "/").await.headers()["location"], "/ui/sandbox");
    assert_eq!(
        get(&d, "/ui/console").await.headers()["location"],
        "/ui/sandbox"
    );
    let session: Value = get(&d, "/ui/session").await.json().await.unwrap();
    assert_eq!(session["mode"], "sandbox");
    assert_eq!(get(&d, "/api/v1/events").await.status(), 404, "no store");

    let http = reqwest::Client::new();
    let v: Value = http
        .post(d.url("/api/v1/test-pattern"))
        .json(
            &json!({"pattern": "{\"detail\": {\"scan-status\": [\"FAILED\"]}}",
            "event": fixture("ecr-image-scan-failed.json")}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["result"], "match", "{v}");
    // The built-in rules route the critical sample to the console target, rendered, sending nothing.
    let v: Value = http
        .post(d.url("/api/v1/route"))
        .json(&json!({"event": fixture("ecr-image-scan-critical.json")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["rules"][0]["name"], "critical-findings", "{v}");
    let preview = &v["rules"][0]["deliveries"][0]["preview"];
    assert_eq!(preview["kind"], "console");
    assert!(
        preview["text"]
            .as_str()
            .unwrap()
            .contains("payments/api:v2.14.0")
    );
    let r = http
        .post(d.url("/api/v1/route"))
        .json(&json!({"event": "{\"source\": 1}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid event"));
    d.stop();
}
