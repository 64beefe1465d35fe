//! A new user's first hour, through the real binary: configuration errors all at once with where each
//! value came from, environment overrides set from a real shell (target names with `-`), strict
//! templates (`check`, `notify-test`, and the daemon's permanent failure), metrics that count what
//! their names say.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::daemon::{Home, Receiver, rule};

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `sh -c SCRIPT` in `dir`, with the binary's directory first on PATH (as after `cargo install`).
fn shell(dir: &Path, script: &str) -> Output {
    let path = crate::daemon::path_with_binary();
    std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("SCANBRIDGE__SERVER__TOKEN")
        .output()
        .unwrap()
}

const MAIL: &str = "[targets.oncall-mail]\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = 2525\n\
                    from = \"scanbridge@example.org\"\nto = [\"oncall@example.org\"]\ntls = \"none\"\n";

#[test]
fn check_reports_every_configuration_error_at_once_naming_the_file_or_variable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("my.toml"),
        format!("[server]\nlisten = \"nope\"\nbogus = 1\n\n[rules]\nwatchh = true\n\n{MAIL}"),
    )
    .unwrap();
    let o = shell(
        dir.path(),
        "SCANBRIDGE__TARGETS__ONCALL_MAIL__PORT=notaport scanbridge check --config my.toml",
    );
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let e = err(&o);
    for needle in [
        "my.toml: server.bogus: unknown key",
        "my.toml: server.listen: invalid socket address syntax",
        "my.toml: rules.watchh: unknown key",
        "environment variable SCANBRIDGE__TARGETS__ONCALL_MAIL__PORT: targets.oncall-mail: invalid type: string \"***\"",
        "4 error(s)",
    ] {
        assert!(e.contains(needle), "{needle:?} in:\n{e}");
    }
    assert_eq!(e.matches("configuration file not found").count(), 0, "{e}");
    // A missing file: said once.
    let o = shell(dir.path(), "scanbridge check --config absent.toml");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(err(&o).matches("absent.toml").count(), 1, "{}", err(&o));
}

#[test]
fn an_env_override_reaches_a_target_whose_name_has_a_dash_from_a_real_shell() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("my.toml"), MAIL).unwrap();
    // The password set through the environment: notify-test's preview shows it is set, never its value.
    let o = shell(
        dir.path(),
        "export SCANBRIDGE__TARGETS__ONCALL_MAIL__USERNAME=alice SCANBRIDGE__TARGETS__ONCALL_MAIL__PASSWORD='pa55 w0rd'\n\
         scanbridge check --config my.toml && scanbridge route --config my.toml --event '{\"source\": \"x\", \"detail-type\": \"t\", \"detail\": {}}'; echo \"route exit $?\"",
    );
    assert!(out(&o).contains("ok: "), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("route exit 1"), "{}{}", out(&o), err(&o));
    assert!(!out(&o).contains("pa55") && !err(&o).contains("pa55"));
    // The README's example: a new target from the environment alone, with its type.
    let o = shell(
        dir.path(),
        "SCANBRIDGE__TARGETS__HOOK__TYPE=webhook SCANBRIDGE__TARGETS__HOOK__URL=https://hooks.example.org/x scanbridge check",
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains(", 2 target(s),"), "{}", out(&o));
    // Without the type: what is missing and how to give it.
    let o = shell(
        dir.path(),
        "SCANBRIDGE__TARGETS__HOOK__URL=https://hooks.example.org/x scanbridge check",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("environment variable SCANBRIDGE__TARGETS__HOOK__URL: targets.hook:")
            && err(&o).contains("SCANBRIDGE__TARGETS__NAME__TYPE"),
        "{}",
        err(&o)
    );
    // Two targets one variable could mean: an error naming both, never a guess.
    std::fs::write(
        dir.path().join("two.toml"),
        format!("{MAIL}\n{}", MAIL.replace("oncall-mail", "oncall_mail")),
    )
    .unwrap();
    let o = shell(
        dir.path(),
        "SCANBRIDGE__TARGETS__ONCALL_MAIL__PASSWORD=x scanbridge check --config two.toml",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("\"oncall-mail\" and \"oncall_mail\""),
        "{}",
        err(&o)
    );
}

#[test]
fn templates_are_strict_in_check_and_notify_test() {
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("tpl");
    std::fs::create_dir_all(tpl.join("email")).unwrap();
    std::fs::write(
        tpl.join("email/subject.txt"),
        "{# subject #}\n[{{ scan.worst or 'scan' }}] {{ scan.sumary }}",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("my.toml"),
        format!("[templates]\ndir = \"tpl\"\n\n{MAIL}"),
    )
    .unwrap();
    let o = shell(dir.path(), "scanbridge check --config my.toml");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o)
            .contains("template email/subject.txt, line 2: undefined variable or key: scan.sumary"),
        "{}",
        err(&o)
    );
    let o = shell(
        dir.path(),
        "scanbridge notify-test oncall-mail --config my.toml",
    );
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        err(&o).contains("oncall-mail: cannot render the message: template email/subject.txt, line 2: undefined variable or key: scan.sumary"),
        "{}",
        err(&o)
    );
    // A target's own subject is as strict.
    std::fs::remove_dir_all(&tpl).unwrap();
    std::fs::write(
        dir.path().join("my.toml"),
        format!("{MAIL}subject = \"{{{{ scan.headlin }}}}\"\n"),
    )
    .unwrap();
    let o = shell(dir.path(), "scanbridge check --config my.toml");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains(
            "template targets.oncall-mail.subject, line 1: undefined variable or key: scan.headlin"
        ),
        "{}",
        err(&o)
    );
    // templates.dir must exist, and hold only names scanbridge uses.
    std::fs::write(dir.path().join("my.toml"), "[templates]\ndir = \"tpl\"\n").unwrap();
    let o = shell(dir.path(), "scanbridge check --config my.toml");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("templates.dir: tpl: no such directory"),
        "{}",
        err(&o)
    );
    std::fs::create_dir_all(tpl.join("slak")).unwrap();
    std::fs::write(tpl.join("slak/text.txt"), "x").unwrap();
    let o = shell(dir.path(), "scanbridge check --config my.toml");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("slak/text.txt is not a template scanbridge uses"),
        "{}",
        err(&o)
    );
    // Inspector findings read well with the default subject (never "(no findings)").
    std::fs::remove_dir_all(&tpl).unwrap();
    std::fs::write(dir.path().join("my.toml"), MAIL).unwrap();
    let o = shell(dir.path(), "scanbridge check --config my.toml");
    assert!(o.status.success(), "{}", err(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_error_in_the_daemon_is_a_permanent_failure_with_the_reason() {
    let slack = Receiver::start().await;
    let home = Home::new(
        &format!(
            "[templates]\ndir = \"{}\"\n\n[targets.chat]\ntype = \"slack\"\nwebhook_url = \"{}\"\n",
            "TPL",
            slack.url()
        ),
        &[(
            "r.json",
            &rule("findings", json!({"source": ["aws.inspector2"]}), &["chat"]),
        )],
    );
    let tpl = home.path().join("tpl");
    std::fs::create_dir_all(tpl.join("slack")).unwrap();
    // Fine for a scan, undefined for the key this template reads only on a finding.
    std::fs::write(
        tpl.join("slack/text.txt"),
        "{% if scan.kind == 'inspector_finding' %}{{ scan.finding.cvss }}{% else %}{{ scan.headline }}{% endif %}",
    )
    .unwrap();
    let config = home.path().join("config.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("TPL", &tpl.display().to_string());
    std::fs::write(&config, text).unwrap();
    let d = home.start();
    let finding: Value =
        serde_json::from_str(include_str!("../fixtures/samples/inspector2-finding.json")).unwrap();
    let (s, _) = d.post(finding.to_string()).await;
    assert_eq!(s, 202);
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"chat\",outcome=\"dead_letter\"}",
        1.0,
    )
    .await;
    assert_eq!(slack.attempts(), 0, "nothing was sent");
    let o = crate::daemon::cli(&["dlq", "list", "--json", "--url", &d.url("")]);
    let dl: Value = serde_json::from_str(out(&o).lines().next().expect("one")).unwrap();
    assert_eq!(dl["attempts"], 1, "permanent: not retried");
    let reason = dl["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "template slack/text.txt, line 1: undefined variable or key: scan.finding.cvss"
        ),
        "{reason}"
    );
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_matches_count_matches_and_deliveries_count_per_target_and_outcome() {
    let rx = Receiver::start().await;
    let home = Home::new(
        &format!(
            "{}\n[targets.hook2]\ntype = \"webhook\"\nurl = \"{}\"\n",
            rx.target(),
            rx.url()
        ),
        &[(
            "r.json",
            &rule("both", json!({"source": ["ci"]}), &["hook", "hook2"]),
        )],
    );
    let d = home.start();
    for id in ["m1", "m2"] {
        let (s, _) = d.post(crate::daemon::event(id, "ci").to_string()).await;
        assert_eq!(s, 202);
    }
    rx.wait_hits(4, &d).await;
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"hook2\",outcome=\"delivered\"}",
        2.0,
    )
    .await;
    assert_eq!(
        d.metric("scanbridge_rule_matches_total{rule=\"both\"}")
            .await,
        2.0
    );
    assert_eq!(
        d.metric("scanbridge_deliveries_total{target=\"hook\",outcome=\"delivered\"}")
            .await,
        2.0
    );
    d.stop();
}

#[test]
fn the_container_build_context_leaves_out_build_output_and_stores() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.dockerignore"))
        .expect(".dockerignore: without it a build sends the whole target/ as its context");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target/", "data/", ".git/"] {
        assert!(lines.contains(&needed), "{needed} in {lines:?}");
    }
    // What the image copies is not ignored.
    for copied in ["config.toml", "rules/", "src/", "Cargo.lock"] {
        assert!(
            !lines.iter().any(|l| copied.starts_with(l)),
            "{copied} ignored"
        );
    }
}

#[test]
fn every_command_takes_events_the_same_ways() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let critical: Value =
        serde_json::from_str(include_str!("../fixtures/ecr-image-scan-critical.json")).unwrap();
    let clean: Value = serde_json::from_str(include_str!(
        "../fixtures/samples/ecr-image-scan-clean.json"
    ))
    .unwrap();
    std::fs::write(
        dir.path().join("pretty.json"),
        serde_json::to_string_pretty(&critical).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("both.json"),
        json!([critical, clean]).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("both.ndjson"),
        format!("{critical}\n{clean}\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink(repo.join("rules"), dir.path().join("rules")).unwrap();
    // A pretty-printed event on stdin, with the pattern of a rule file.
    let o = shell(
        dir.path(),
        "scanbridge test-pattern -p rules/critical-findings.json -e - < pretty.json",
    );
    assert_eq!(
        (o.status.code(), out(&o).trim()),
        (Some(0), "match"),
        "{}",
        err(&o)
    );
    // A JSON array and NDJSON: each event reported.
    // (An array's events are named FILE[i], NDJSON's FILE:LINE.)
    for (file, first, second) in [
        ("both.json", "both.json[0]", "both.json[1]"),
        ("both.ndjson", "both.ndjson:1", "both.ndjson:2"),
    ] {
        let o = shell(
            dir.path(),
            &format!("scanbridge test-pattern -p rules/critical-findings.json -e {file}"),
        );
        let text = out(&o);
        assert!(
            text.contains(&format!("{first}: match"))
                && text.contains(&format!("{second}: no match")),
            "{text}{}",
            err(&o)
        );
        // notify-test sends each of them.
        let o = shell(
            dir.path(),
            &format!("scanbridge notify-test console --event {file}"),
        );
        assert!(o.status.success(), "{}", err(&o));
        assert_eq!(
            out(&o).matches("=== scanbridge alert").count(),
            2,
            "{}",
            out(&o)
        );
    }
    // Inline JSON to route, and a directory.
    let o = shell(
        dir.path(),
        &format!("scanbridge route --event '{}'", critical),
    );
    assert!(
        out(&o).contains("1 of 6 rules matched; 1 delivery would be sent"),
        "{}{}",
        out(&o),
        err(&o)
    );
    std::fs::create_dir(dir.path().join("events")).unwrap();
    std::fs::copy(
        dir.path().join("pretty.json"),
        dir.path().join("events/a.json"),
    )
    .unwrap();
    let o = shell(
        dir.path(),
        "scanbridge test-pattern -p rules/critical-findings.json -e events",
    );
    assert!(out(&o).contains("match"), "{}{}", out(&o), err(&o));
    assert_eq!(o.status.code(), Some(0));
}
