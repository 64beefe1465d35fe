//! README.md's examples, run as written, so that the README cannot drift from the program.
//!
//! Every shell block (```sh / ```console) of README.md is found and looked up in [`EXAMPLES`] by its
//! first command (and first output line, for blocks that start alike); a block that is not listed fails the test, so a new example must say how it runs.
//! A block runs with `scanbridge` on PATH (the binary under test, as after `cargo install`), in the
//! listed directory, under `sh`: its commands exactly as printed, one script (so `echo $?`
//! sees the command before it). Blocks with a `$ ` prompt show their output: every line shown must come
//! out (`...` in a line matches anything; ids, times and the port are compared as placeholders; a daemon block's `127.0.0.1:8080` is the test daemon's address), and
//! an offline block with no `...` shows all of its output, in order.
//! Blocks that need a tool this machine lacks (trivy, cdk, terraform, the AWS account) are listed with
//! the reason and only their scanbridge part runs, or are said to be skipped when the test runs. A
//! block that shows no output must exit 0.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::daemon::Daemon;

/// How a block runs.
enum How {
    /// In this directory (relative to the repository), offline.
    In(&'static str),
    /// In this directory, with these (from, to) replacements of the script first (a tool this
    /// machine lacks, named in `why`).
    Rewritten {
        dir: &'static str,
        edits: &'static [(&'static str, &'static str)],
        why: &'static str,
    },
    /// In a fresh directory (with `tests/` and `rules/` of the repository), next to a daemon
    /// started with the shipped defaults (`scanbridge serve`, as the block starts it) on a free
    /// port, given to the block as `SCANBRIDGE__SERVER__LISTEN`.
    Daemon,
    /// Not run, and why.
    Not(&'static str),
}

/// Every README block, by its first command.
const EXAMPLES: &[(&str, How)] = &[
    (
        "cargo run --release -- serve",
        How::Not("the daemon itself: the `cargo run --release -- serve &` block runs it"),
    ),
    ("cargo run --release -- serve &", How::Daemon),
    ("scripts/test", How::Not("the test suite itself")),
    ("scanbridge test-pattern \\", How::In(".")),
    (
        "scanbridge test-pattern --cases ../shared/conformance/aws-event-patterns.jsonl",
        How::In("."),
    ),
    (
        "scanbridge check-patterns template.yaml\ntemplate.yaml: CriticalScans: ok",
        How::In("tests/fixtures/infra/checks/contract"),
    ),
    (
        "scanbridge check-patterns template.yaml\ntemplate.yaml: OperatorAsLiteral: ok",
        How::In("tests/fixtures/infra/checks/lints"),
    ),
    (
        "scanbridge check-patterns log-setup-management.yaml log-setup-target-accounts.json",
        How::In("tests/fixtures/infra/cloudformation"),
    ),
    (
        "scanbridge check-patterns eventbridge-lambda-rust.yml eventbridge-pipes-sqs-to-cwlog.yaml",
        How::In("tests/fixtures/infra/sam"),
    ),
    (
        "cdk synth -q && scanbridge check-patterns cdk.out",
        How::Rewritten {
            dir: "tests/fixtures/infra/cdk",
            edits: &[("cdk synth -q && ", "")],
            why: "no CDK here: the synthesized cdk.out is a fixture",
        },
    ),
    (
        "scanbridge check-patterns apigw-http-eventbridge eventbridge-complete",
        How::In("tests/fixtures/infra/terraform"),
    ),
    (
        "terraform plan -out plan.out && terraform show -json plan.out > plan.json",
        How::Rewritten {
            dir: "tests/fixtures/infra/terraform-json",
            edits: &[(
                "terraform plan -out plan.out && terraform show -json plan.out > plan.json",
                "cp eventbridge.tfplan.json \"$TMPDIR/plan.json\" && cd \"$TMPDIR\"",
            )],
            why: "no terraform here: the plan is a fixture",
        },
    ),
    (
        "scanbridge check-patterns eventbridge-lambda-sls eventbridge-sqs-sls",
        How::In("tests/fixtures/infra/serverless"),
    ),
    ("scanbridge check-patterns rules", How::In(".")),
    (
        "scanbridge check-patterns .",
        How::In("tests/fixtures/infra/checks/failing"),
    ),
    (
        "trivy image --format json --output report.json registry.example.org/payments/api:v2.15.0",
        How::Rewritten {
            dir: "tests/fixtures/reports",
            edits: &[
                (
                    "trivy image --format json --output report.json registry.example.org/payments/api:v2.15.0",
                    "cp trivy-alpine-39-high-critical.json \"$TMPDIR/report.json\" && ln -s \"$REPO/rules\" \"$TMPDIR/rules\" && cd \"$TMPDIR\"",
                ),
                (
                    "case $? in 0) echo \"CRITICAL findings: do not deploy\"; exit 1 ;;",
                    "case $? in 0) echo \"CRITICAL findings: do not deploy\" ;;",
                ),
                (
                    "scanbridge send --report report.json --url https://scanbridge.internal:8080 --token \"$SCANBRIDGE__SERVER__TOKEN\"",
                    "",
                ),
            ],
            why: "no trivy here (its published report is a fixture) and no daemon at scanbridge.internal",
        },
    ),
    (
        "grype -o json registry.example.org/payments/api:v2.15.0 > grype.json",
        How::Not(
            "needs grype and a daemon at the default address; POST /reports?format=grype is tested in reports.rs",
        ),
    ),
    (
        "aws sns subscribe --topic-arn arn:aws:sns:us-east-1:123456789012:ecr-scan-findings \\",
        How::Not("needs an AWS account"),
    ),
    (
        "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1 \\",
        How::Daemon,
    ),
    (
        "AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=... AWS_DEFAULT_REGION=us-east-1 \\",
        How::Not(
            "`...` is the secret of a configured key pair: aws_cli.rs signs put-events with the real AWS CLI",
        ),
    ),
    (
        "SCANBRIDGE__TARGETS__HOOK__TYPE=webhook SCANBRIDGE__TARGETS__HOOK__URL=https://hooks.example.org/x scanbridge check",
        How::In("."),
    ),
    (
        "scanbridge route --event tests/fixtures/ecr-image-scan-critical.json --config my.toml      # what would be sent, to whom (sends nothing; exit 0 match, 1 none, 2 error)",
        How::Not("`my.toml` is the reader's own configuration"),
    ),
    (
        "scripts/bench-match                                   # all 18 sets, 213,068 events, counts checked",
        How::Not("a benchmark, minutes long"),
    ),
    (
        "scripts/crash     # kill -9 the daemon 20 times under load; lost must be 0",
        How::Not("soak scripts, minutes long"),
    ),
    (
        "id=$(scanbridge silence add --match 'detail.repository-name=payments/*' --expires 7d \\",
        How::Daemon,
    ),
    (
        "scanbridge silence add --cve CVE-2026-10001 --package libssl3 --repository payments/worker \\",
        How::Daemon,
    ),
    (
        "scanbridge route --event clean.json",
        How::Not("needs an open PagerDuty alert: resolve.rs runs this route and checks its output"),
    ),
];

/// One shell block: its line in README.md, the script and the output it shows.
struct Block {
    line: usize,
    first: String,
    script: String,
    shown: Vec<String>,
}

impl Block {
    /// Whether `key` names this block: its first command, or (for two blocks that start alike) its
    /// first command, a line feed and the first line of output it shows.
    fn is(&self, key: &str) -> bool {
        match key.split_once('\n') {
            Some((first, shown)) => {
                first == self.first && self.shown.first().is_some_and(|s| s == shown)
            }
            None => key == self.first,
        }
    }
}

fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let lines: Vec<&str> = readme.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        let lang = fence.strip_prefix("```").map(str::trim);
        if !matches!(lang, Some("sh" | "console")) {
            i += 1;
            continue;
        }
        let start = i + 1;
        // A block inside a list item is indented like its fence.
        let indent = lines[i].len() - fence.len();
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            let l = lines[i];
            body.push(if l.len() >= indent && l[..indent].trim().is_empty() {
                &l[indent..]
            } else {
                l
            });
            i += 1;
        }
        i += 1;
        let prompted = body.iter().any(|l| l.starts_with("$ "));
        let (mut script, mut shown, mut first) = (Vec::new(), Vec::new(), None);
        let mut continued = false;
        for l in body {
            let command = if continued {
                Some(l)
            } else if prompted {
                l.strip_prefix("$ ")
            } else if l.trim_start().starts_with('#') || l.trim().is_empty() {
                None
            } else {
                Some(l)
            };
            match command {
                Some(c) => {
                    first.get_or_insert_with(|| c.to_owned());
                    script.push(c.to_owned());
                    continued = c.ends_with('\\');
                }
                None if prompted => shown.push(l.to_owned()),
                None => {}
            }
        }
        if let Some(first) = first {
            out.push(Block {
                line: start,
                first,
                script: script.join("\n"),
                shown,
            });
        }
    }
    out
}

/// Ids, times, ports and the user in a form that compares across runs.
fn normal(line: &str) -> String {
    let mut s = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, s: &mut String| {
        let mut w = std::mem::take(word);
        let colon = w.ends_with(':') && w.len() == 13;
        if colon {
            w.pop();
        }
        let hex = w.len() >= 12
            && w.chars().all(|c| c.is_ascii_hexdigit())
            && w.chars().any(|c| c.is_ascii_digit());
        let time = w.len() == 20 && w.as_bytes()[4] == b'-' && w.ends_with('Z') && w.contains('T');
        s.push_str(if hex {
            "<id>"
        } else if time {
            "<time>"
        } else {
            &w
        });
        if colon {
            s.push(':');
        }
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | ':') {
            word.push(c);
        } else {
            flush(&mut word, &mut s);
            s.push(c);
        }
    }
    flush(&mut word, &mut s);
    s.trim_end().to_owned()
}

/// Whether `got` is `want`, where `...` in `want` matches anything.
fn like(want: &str, got: &str) -> bool {
    let parts: Vec<&str> = want.split("...").collect();
    if parts.len() == 1 {
        return want == got;
    }
    let mut rest = got;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(at) = rest.find(p) else { return false };
            rest = &rest[at + p.len()..];
        }
    }
    true
}

/// The lines of `shown` missing from `got` (each shown line matches a distinct output line).
fn missing(shown: &[String], got: &str) -> Vec<String> {
    let mut pool: Vec<String> = got.lines().map(normal).collect();
    let mut lost = Vec::new();
    for want in shown {
        let w = normal(want);
        if w.trim() == "..." || w.trim().is_empty() {
            continue;
        }
        match pool
            .iter()
            .position(|g| like(w.trim_start(), g.trim_start()))
        {
            Some(i) => {
                pool.remove(i);
            }
            None => lost.push(want.clone()),
        }
    }
    lost
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `script` with sh in `dir`, `scanbridge` first on PATH, `env` set; stdout and stderr together.
fn sh(dir: &Path, script: &str, env: &[(&str, String)]) -> Output {
    let path = crate::daemon::path_with_binary();
    let mut c = std::process::Command::new("sh");
    c.args(["-c", &format!("exec 2>&1\n{script}")])
        .current_dir(dir)
        .env("PATH", path)
        .env("REPO", repo())
        .env("USER", "alice")
        .env_remove("SCANBRIDGE__SERVER__TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Whether `tool` is on PATH.
fn has(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
}

/// A free port on loopback (bound and released; the daemon binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a block beside a daemon with the shipped defaults; its output and the daemon's, and whether
/// the block's script exited 0.
fn with_daemon(b: &Block) -> (String, bool) {
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo().join("tests"), home.path().join("tests")).unwrap();
    std::os::unix::fs::symlink(repo().join("rules"), home.path().join("rules")).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // The block's own `serve &` line starts the daemon: here it is started by the test, to wait for
    // it and to stop it; the rest of the block runs as printed.
    let serve = "cargo run --release -- serve &";
    let script: String = b
        .script
        .lines()
        .filter(|l| l.trim() != serve)
        .collect::<Vec<_>>()
        .join("\n")
        .replace("127.0.0.1:8080", &listen);
    let d = Daemon::spawn_env(
        home.path(),
        &["serve"],
        std::process::Stdio::null(),
        &[("SCANBRIDGE__SERVER__LISTEN", &listen)],
    );
    let o = sh(
        home.path(),
        &script,
        &[("SCANBRIDGE__SERVER__LISTEN", listen.clone())],
    );
    let mut text = String::from_utf8_lossy(&o.stdout).replace(&port.to_string(), "8080");
    // What the daemon prints (the console alert) arrives after the 202.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all =
            format!("{text}\n{}\n{}", d.stdout(), d.logs()).replace(&port.to_string(), "8080");
        if missing(&b.shown, &all).is_empty() || Instant::now() > deadline {
            text = all;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    d.stop();
    (text, o.status.success())
}

#[test]
fn every_readme_example_runs_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let found = blocks(&readme);
    assert!(found.len() >= 20, "{} blocks", found.len());
    let mut failures = Vec::new();
    for b in &found {
        let Some((_, how)) = EXAMPLES.iter().find(|(key, _)| b.is(key)) else {
            failures.push(format!(
                "README.md line {}: a new example, not in tests/it/readme.rs EXAMPLES: {:?}",
                b.line, b.first
            ));
            continue;
        };
        let scratch = tempfile::tempdir().unwrap();
        let tmp = [("TMPDIR", scratch.path().display().to_string())];
        let got = match how {
            How::Not(why) => {
                eprintln!("README.md line {}: not run: {why}", b.line);
                continue;
            }
            How::In(dir) => {
                if b.script.contains("../shared/") && !repo().join("../shared").is_dir() {
                    eprintln!(
                        "SKIPPED README.md line {}: the shared kit (../shared) is not beside this checkout",
                        b.line
                    );
                    continue;
                }
                let o = sh(&repo().join(dir), &b.script, &tmp);
                (
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                    o.status.success(),
                )
            }
            How::Rewritten { dir, edits, why } => {
                eprintln!("README.md line {}: run with edits: {why}", b.line);
                let mut script = b.script.clone();
                for (from, to) in *edits {
                    assert!(
                        script.contains(from),
                        "README.md line {}: {from:?} is gone",
                        b.line
                    );
                    script = script.replace(from, to);
                }
                let o = sh(&repo().join(dir), &script, &tmp);
                (
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                    o.status.success(),
                )
            }
            How::Daemon => {
                if b.script.contains("aws events") && !has("aws") {
                    eprintln!(
                        "SKIPPED README.md line {}: the AWS CLI is not on PATH (scripts/test installs it)",
                        b.line
                    );
                    continue;
                }
                with_daemon(b)
            }
        };
        let (got, ok) = got;
        // A block that shows no output says it works by its exit status.
        if b.shown.is_empty() && !ok {
            failures.push(format!(
                "README.md line {}: `{}` failed:\n{got}",
                b.line, b.first
            ));
            continue;
        }
        let mut lost = missing(&b.shown, &got);
        // An offline block that shows its output without `...` shows all of it, in order.
        let whole = !matches!(how, How::Daemon)
            && !b.shown.is_empty()
            && !b.shown.iter().any(|l| l.contains("..."));
        if whole && lost.is_empty() {
            let want: Vec<String> = b
                .shown
                .iter()
                .map(|l| normal(l))
                .filter(|l| !l.is_empty())
                .collect();
            let have: Vec<String> = got.lines().map(normal).filter(|l| !l.is_empty()).collect();
            if want != have {
                lost.push(format!(
                    "(all of its output, in order: {} line(s) shown, {} printed)",
                    want.len(),
                    have.len()
                ));
            }
        }
        if !lost.is_empty() {
            failures.push(format!(
                "README.md line {}: `{}` did not print:\n  {}\nit printed:\n{got}",
                b.line,
                b.first,
                lost.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    for (first, _) in EXAMPLES {
        assert!(
            found.iter().any(|b| b.is(first)),
            "EXAMPLES lists {first:?}, which README.md no longer has"
        );
    }
}
