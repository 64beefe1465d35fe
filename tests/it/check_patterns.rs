//! `scanbridge check-patterns`: the published templates of tests/fixtures/infra (data-driven from
//! `expected.json`), the text and JSON contract, pattern test files, JUnit, GitHub annotations, and
//! the pre-commit hook and composite action run by the real tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{bin, run, stderr, stdout};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/infra")
}

/// Runs the binary in the repository root (fixture paths stay relative, as users pass them).
fn check(args: &[&str]) -> Output {
    bin()
        .arg("check-patterns")
        .args(args)
        .current_dir(root())
        .env_remove("GITHUB_ACTIONS")
        .stdin(Stdio::null())
        .output()
        .expect("run scanbridge")
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn published_templates_give_the_expected_verdicts_lines_and_exit_codes() {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 10);
    let mut patterns = 0;
    for case in &cases {
        let path = format!("tests/fixtures/infra/{}", case["path"].as_str().unwrap());
        let o = check(&["--json", &path]);
        assert_eq!(
            o.status.code(),
            case["exit"].as_i64().map(|c| c as i32),
            "{path}: {}",
            stderr(&o)
        );
        let got = json_lines(&o);
        let want = case["patterns"].as_array().unwrap();
        let names =
            |v: &[Value]| -> Vec<String> { v.iter().map(|p| p["resource"].to_string()).collect() };
        assert_eq!(names(&got), names(want), "{path}");
        for (g, w) in got.iter().zip(want) {
            let file = g["file"]
                .as_str()
                .unwrap()
                .strip_prefix("tests/fixtures/infra/")
                .unwrap();
            assert_eq!(file, w["file"], "{path}");
            for key in ["resource", "format", "result", "line"] {
                assert_eq!(g[key], w[key], "{path} {}: {key}", w["resource"]);
            }
            if w["result"] == "invalid" {
                assert_eq!(g["pointer"], w["pointer"], "{path}");
                assert_eq!(g["pointer_line"], w["pointer_line"], "{path}");
                assert!(
                    g["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("Event pattern is not valid. Reason: "),
                    "{g}"
                );
            }
            let unchecked: Vec<&Value> = g["unchecked"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| &u["pointer"])
                .collect();
            let want_unchecked: Vec<&Value> = w["unchecked"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            assert_eq!(unchecked, want_unchecked, "{path} {}", w["resource"]);
            patterns += 1;
        }
    }
    assert!(patterns >= 40, "{patterns}");
}

#[test]
fn contract_one_line_per_pattern_with_aws_messages_exit_1() {
    let file = "tests/fixtures/infra/checks/contract/template.yaml";
    let o = check(&[file]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let want = [
        format!("{file}: CriticalScans: ok"),
        format!(
            "{file}: BadOperator: /detail/finding-severity-counts/HIGH/0/numeric/0: Event pattern is not valid. Reason: Unrecognized numeric range operator: >>"
        ),
        format!(
            "{file}: EmptyList: /detail/scan-status: Event pattern is not valid. Reason: Empty arrays are not allowed"
        ),
        format!(
            "{file}: ThisAccount: unchecked: not checkable statically: /account/0 is !Ref AWS::AccountId, /detail/repository-name/0/prefix is ${{Env}}; the rest of the pattern is valid"
        ),
        format!(
            "{file}: ByCondition: unchecked: not checkable statically: the pattern is !If [\"IsProd\",{{\"source\":[\"aws.ecr\"]}},{{\"source\":[\"aws.inspector2\"]}}], computed at deploy time"
        ),
    ];
    assert_eq!(stdout(&o).lines().collect::<Vec<_>>(), want);
    assert!(
        stderr(&o).contains("5 pattern(s) in 1 file(s): 1 ok, 2 invalid, 2 unchecked"),
        "{}",
        stderr(&o)
    );

    // --json: one object per pattern, with file, resource, result and message.
    let o = check(&["--json", file]);
    assert_eq!(o.status.code(), Some(1));
    let objs = json_lines(&o);
    assert_eq!(objs.len(), 5);
    let results: Vec<&str> = objs.iter().map(|o| o["result"].as_str().unwrap()).collect();
    assert_eq!(
        results,
        ["ok", "invalid", "invalid", "unchecked", "unchecked"]
    );
    for (obj, line) in objs.iter().zip(&want) {
        assert_eq!(obj["file"], file);
        assert!(line.contains(obj["resource"].as_str().unwrap()));
        match obj["result"].as_str().unwrap() {
            "ok" => assert!(obj["message"].is_null()),
            _ => assert!(line.ends_with(obj["message"].as_str().unwrap()), "{obj}"),
        }
    }
    // Only valid patterns and unchecked ones: exit 0.
    let o = check(&["tests/fixtures/infra/serverless/eventbridge-sqs-sls"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn pattern_tests_pass_fail_and_explain_as_test_pattern_does() {
    let o = check(&["tests/fixtures/infra/checks/tested"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.lines().filter(|l| l.ends_with(": ok")).count(),
        8,
        "{out}"
    );
    assert!(out.contains("scan-alerts.pattern-tests.yaml: CriticalScans: critical scans page: must match ../../../ecr-image-scan-critical.json: ok"), "{out}");

    let o = check(&["tests/fixtures/infra/checks/failing"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let tf = "tests/fixtures/infra/checks/failing/template.pattern-tests.json";
    assert!(
        out.contains(&format!(
            "{tf}: HighOnProd: must match ../../../ecr-image-scan-critical.json: FAILED (no match)\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("{tf}: HighOnProd: must not match {{\"source\":\"aws.ecr\",\"detail\":{{\"repository-name\":\"prod/api...: FAILED (it matched)")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{tf}: LowOnProd: error: /tests/1: no pattern for resource \"LowOnProd\" in tests/fixtures/infra/checks/failing; its patterns: HighOnProd"
        )),
        "{out}"
    );
    // The reasons under the failing case are `test-pattern --explain`'s, line for line.
    let pattern = r#"{"source": ["aws.ecr"], "detail": {"repository-name": [{"prefix": "prod/"}], "finding-severity-counts": {"HIGH": [{"numeric": [">=", 5]}]}}}"#;
    let event = root().join("tests/fixtures/ecr-image-scan-critical.json");
    let explain = run(
        &[
            "test-pattern",
            "-p",
            pattern,
            "-e",
            event.to_str().unwrap(),
            "--explain",
        ],
        "",
    );
    let reasons: Vec<String> = stdout(&explain)
        .lines()
        .skip(1)
        .map(|l| format!("  {l}"))
        .collect();
    assert_eq!(reasons.len(), 3);
    let after: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("FAILED (no match)"))
        .skip(1)
        .take(3)
        .collect();
    assert_eq!(after, reasons);

    // In --json the failing case carries test-pattern --json --explain's reasons.
    let o = check(&["--json", "tests/fixtures/infra/checks/failing"]);
    let obj = &json_lines(&o)[0];
    let tests = obj["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 3);
    assert_eq!(tests[0]["result"], "failed");
    assert_eq!(tests[1]["result"], "passed");
    let j = run(
        &[
            "test-pattern",
            "-p",
            pattern,
            "-e",
            event.to_str().unwrap(),
            "--explain",
            "--json",
        ],
        "",
    );
    let tp: Value = serde_json::from_str(stdout(&j).trim()).unwrap();
    assert_eq!(tests[0]["explain"], tp["explain"]);
}

#[test]
fn a_tests_flag_reads_the_template_it_names() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("suite.pattern-tests.yaml");
    std::fs::write(
        &t,
        format!(
            "template: {}\nparameters: {{Env: payments}}\ntests:\n  - resource: ProdRepositories\n    match: [{{source: aws.ecr, detail: {{repository-name: payments/x}}}}]\n",
            fixtures().join("checks/tested/scan-alerts.yaml").display()
        ),
    )
    .unwrap();
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = check(&["--tests", t.to_str().unwrap(), empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("ProdRepositories: must match"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("scan-alerts.yaml: CriticalScans: ok"));
}

#[test]
fn unreadable_input_exits_2_naming_the_file_and_line() {
    let o = check(&["tests/fixtures/infra/unreadable/python-hcl2-cloudwatch.tf"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "scanbridge: tests/fixtures/infra/unreadable/python-hcl2-cloudwatch.tf:8: not valid HCL"
        ),
        "{}",
        stderr(&o)
    );
    let o = check(&["tests/fixtures/infra/checks/contract", "no/such/dir"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an invalid pattern does not hide the error"
    );
    assert!(stderr(&o).contains("no/such/dir: no such file or directory"));
    assert_eq!(
        stdout(&o).lines().count(),
        5,
        "readable files are still reported"
    );

    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("x.pattern-tests.yaml");
    std::fs::write(&bad, "tests: [{resource: R, match: [missing.json]}]").unwrap();
    let o = check(&[d.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/tests/0/match/0: cannot read event"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn files_that_are_not_infrastructure_code_pass_untouched() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("k8s.yaml"),
        "apiVersion: v1\nkind: Service\n---\nkind: Pod\n",
    )
    .unwrap();
    std::fs::write(d.path().join("package.json"), r#"{"name": "x"}"#).unwrap();
    std::fs::write(d.path().join("chart.yaml"), "name: {{ .Values.name }}-x\n").unwrap();
    let o = check(&[d.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("no event patterns found"),
        "{}",
        stderr(&o)
    );
    // Named explicitly, a file that does not parse is an error.
    let o = check(&[d.path().join("chart.yaml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

/// The elements of an XML document: (name, attributes), in document order.
fn xml_elements(xml: &str) -> Vec<(String, Vec<(String, String)>)> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        (
                            String::from_utf8(a.key.as_ref().as_bytes().to_vec()).unwrap(),
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .unwrap()
                                .into_owned(),
                        )
                    })
                    .collect();
                out.push((
                    String::from_utf8(e.name().as_ref().as_bytes().to_vec()).unwrap(),
                    attrs,
                ));
            }
            Event::Eof => return out,
            _ => {}
        }
    }
}

#[test]
fn junit_report_as_ci_systems_read_it() {
    let d = tempfile::tempdir().unwrap();
    let report = d.path().join("report.xml");
    let o = check(&[
        "--junit",
        report.to_str().unwrap(),
        "tests/fixtures/infra/checks/contract",
        "tests/fixtures/infra/checks/failing",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let xml = std::fs::read_to_string(&report).unwrap();
    let els = xml_elements(&xml);
    let attr = |el: &(String, Vec<(String, String)>), k: &str| {
        el.1.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    };
    assert_eq!(els[0].0, "testsuites");
    // contract: 5 patterns (2 invalid, 2 unchecked); failing: 1 pattern, 3 cases (2 fail), 1 orphan.
    assert_eq!(attr(&els[0], "tests").as_deref(), Some("10"));
    assert_eq!(attr(&els[0], "failures").as_deref(), Some("5"));
    assert_eq!(attr(&els[0], "skipped").as_deref(), Some("2"));
    let suites: Vec<String> = els
        .iter()
        .filter(|e| e.0 == "testsuite")
        .map(|e| attr(e, "name").unwrap())
        .collect();
    assert_eq!(
        suites,
        [
            "tests/fixtures/infra/checks/contract/template.yaml",
            "tests/fixtures/infra/checks/failing/template.yaml",
            "tests/fixtures/infra/checks/failing/template.pattern-tests.json",
        ]
    );
    let bad = els
        .iter()
        .position(|e| e.0 == "testcase" && attr(e, "name").as_deref() == Some("BadOperator"))
        .unwrap();
    assert_eq!(attr(&els[bad], "line").as_deref(), Some("24"));
    assert_eq!(els[bad + 1].0, "failure");
    assert_eq!(
        attr(&els[bad + 1], "message").as_deref(),
        Some(
            "/detail/finding-severity-counts/HIGH/0/numeric/0: Event pattern is not valid. Reason: Unrecognized numeric range operator: >>"
        )
    );
    assert_eq!(
        els.iter().filter(|e| e.0 == "testcase").count(),
        10,
        "{xml}"
    );
}

#[test]
fn github_annotations_point_at_lines_and_escape_what_files_contain() {
    let d = tempfile::tempdir().unwrap();
    // A file name and a pattern key that would break a workflow command if not escaped.
    let name = "odd,name:100%.json";
    std::fs::write(
        d.path().join(name),
        "{\"Resources\": {\"R\": {\"Type\": \"AWS::Events::Rule\", \"Properties\": {\n  \"EventPattern\": {\n    \"de%tail\\nx::error::\": []\n  }}}}}\n",
    )
    .unwrap();
    let o = bin()
        .args(["check-patterns", d.path().join(name).to_str().unwrap()])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", d.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let want = "::error file=odd%2Cname%3A100%25.json,line=3,title=Invalid event pattern%3A R::/de%25tail%0Ax::error::: Event pattern is not valid. Reason: Empty arrays are not allowed";
    assert!(err.lines().any(|l| l == want), "{err}");
    // stdout keeps the contract line only: the newline in the key cannot start a line.
    assert_eq!(
        stdout(&o),
        format!(
            "{}: R: /de%tail\\nx::error::: Event pattern is not valid. Reason: Empty arrays are not allowed\n",
            d.path().join(name).display()
        )
    );
    // Not in GitHub Actions: no annotations.
    let o = bin()
        .args(["check-patterns", d.path().join(name).to_str().unwrap()])
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    assert!(!stderr(&o).contains("::error"), "{}", stderr(&o));
    // Unchecked patterns and failing tests are annotated too.
    let o = bin()
        .args(["check-patterns", "--annotations", "always"])
        .arg(fixtures().join("checks/failing"))
        .arg(fixtures().join("serverless/eventbridge-sqs-sls"))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(err.contains("::warning file="), "{err}");
    assert!(err.contains("serverless.yml,line=29,title=Event pattern partly unchecked%3A EventRule::not checkable statically"), "{err}");
    assert!(err.contains("title=Pattern test failed%3A HighOnProd::must match ../../../ecr-image-scan-critical.json: no match%0Ano match%0A  ok   source"), "{err}");
}

#[test]
fn scanbridge_rule_files_are_checked_by_name() {
    let o = check(&["rules"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "rules/critical-findings.json: critical-findings: ok",
            "rules/high-findings-production.yaml: high-findings-production: ok",
            "rules/inspector-critical-findings.json: inspector-critical-findings: ok",
            "rules/inspector-high-findings-fixable.json: inspector-high-findings-fixable: ok",
            "rules/report-critical-findings.json: report-critical-findings: ok",
            "rules/scan-failed.json: scan-failed: ok",
        ]
    );
}

/// A tool installed by scripts/test, or `None` with the reason printed.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "SKIPPED: `{name}` is not on PATH; run the suite through scripts/test, which installs it"
        );
    }
    found
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_scanbridge"))
        .parent()
        .unwrap()
        .to_owned()
}

fn path_with_binary() -> std::ffi::OsString {
    let mut paths = vec![bin_dir()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

fn git(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .env("PATH", path_with_binary())
        .env("PRE_COMMIT_HOME", home.join("pre-commit-cache"))
        .output()
        .expect("git")
}

#[test]
fn the_pre_commit_hook_stops_a_commit_with_an_invalid_pattern() {
    let Some(pre_commit) = tool("pre-commit") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    // The hook repository: this repository's .pre-commit-hooks.yaml, committed.
    let hooks = tmp.path().join("hooks");
    std::fs::create_dir(&hooks).unwrap();
    std::fs::copy(
        root().join(".pre-commit-hooks.yaml"),
        hooks.join(".pre-commit-hooks.yaml"),
    )
    .unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "."],
        &["commit", "-qm", "hooks"],
    ] {
        assert!(git(&hooks, &home, args).status.success());
    }
    let rev = stdout(&git(&hooks, &home, &["rev-parse", "HEAD"]))
        .trim()
        .to_owned();
    // A user's repository using the hook.
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    assert!(git(&repo, &home, &["init", "-q"]).status.success());
    std::fs::write(
        repo.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: scanbridge-check-patterns\n",
            hooks.display()
        ),
    )
    .unwrap();
    let run_pc = |args: &[&str]| {
        Command::new(&pre_commit)
            .args(args)
            .current_dir(&repo)
            .env("HOME", &home)
            .env("PATH", path_with_binary())
            .env("PRE_COMMIT_HOME", home.join("pre-commit-cache"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap()
    };
    let o = run_pc(&["install"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));

    // A good template with its tests, and a file that is not infrastructure code: committed.
    let tested = fixtures().join("checks/tested");
    std::fs::copy(
        tested.join("scan-alerts.yaml"),
        repo.join("scan-alerts.yaml"),
    )
    .unwrap();
    std::fs::write(
        repo.join("scan-alerts.pattern-tests.yaml"),
        "tests:\n  - resource: CriticalScans\n    match: [{source: aws.ecr, detail-type: ECR Image Scan, detail: {finding-severity-counts: {CRITICAL: 1}}}]\n",
    )
    .unwrap();
    std::fs::write(repo.join("notes.yaml"), "todo: [a, b]\n").unwrap();
    assert!(git(&repo, &home, &["add", "."]).status.success());
    let o = git(&repo, &home, &["commit", "-m", "good"]);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("scanbridge check-patterns") && out.contains("Passed"),
        "{out}"
    );

    // An invalid pattern: the commit is refused, with AWS's message.
    std::fs::copy(
        fixtures().join("checks/contract/template.yaml"),
        repo.join("alerts.yaml"),
    )
    .unwrap();
    assert!(git(&repo, &home, &["add", "alerts.yaml"]).status.success());
    let o = git(&repo, &home, &["commit", "-m", "bad"]);
    assert!(!o.status.success(), "the hook lets an invalid pattern in");
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(out.contains("Failed"), "{out}");
    assert!(
        out.contains("alerts.yaml: EmptyList: /detail/scan-status: Event pattern is not valid. Reason: Empty arrays are not allowed"),
        "{out}"
    );
    let log = stdout(&git(&repo, &home, &["log", "--oneline"]));
    assert_eq!(log.lines().count(), 1, "{log}");

    // A failing test beside a template fails the hook even when only the template changed.
    std::fs::remove_file(repo.join("alerts.yaml")).unwrap();
    assert!(
        git(&repo, &home, &["rm", "-q", "--cached", "alerts.yaml"])
            .status
            .success()
    );
    std::fs::write(
        repo.join("scan-alerts.pattern-tests.yaml"),
        "tests:\n  - resource: CriticalScans\n    no_match: [{source: aws.ecr, detail-type: ECR Image Scan, detail: {finding-severity-counts: {CRITICAL: 1}}}]\n",
    )
    .unwrap();
    let o = run_pc(&["run", "--files", "scan-alerts.yaml"]);
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("must not match") && stdout(&o).contains("FAILED (it matched)"),
        "{}",
        stdout(&o)
    );
}

/// Replaces `${{ inputs.X }}` and `${{ github.action_path }}` as the runner does.
fn expand(s: &str, inputs: &serde_json::Map<String, Value>, action_path: &Path) -> String {
    let mut out = s.to_owned();
    while let Some(i) = out.find("${{") {
        let end = out[i..]
            .find("}}")
            .map(|e| i + e + 2)
            .expect("closed expression");
        let expr = out[i + 3..end - 2].trim();
        let value = if let Some(name) = expr.strip_prefix("inputs.") {
            inputs[name].as_str().expect("input").to_owned()
        } else if expr == "github.action_path" {
            action_path.display().to_string()
        } else {
            panic!("unexpected expression {expr}");
        };
        out.replace_range(i..end, &value);
    }
    out
}

#[test]
fn the_github_action_is_well_formed_and_its_steps_run() {
    let text = std::fs::read_to_string(root().join("action.yml")).unwrap();
    let action: Value = serde_norway::from_str(&text).unwrap();
    assert!(action["name"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        action["description"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(action["runs"]["using"], "composite");
    let inputs = action["inputs"].as_object().unwrap();
    for (name, i) in inputs {
        assert!(
            i["description"].is_string(),
            "input {name} needs a description"
        );
        assert!(i["default"].is_string(), "input {name} needs a default");
    }
    let steps = action["runs"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for s in steps {
        assert_eq!(s["shell"], "bash", "{s}");
        let run = s["run"].as_str().unwrap();
        // Inputs reach scripts through the environment only (no expression injection).
        assert!(!run.contains("${{"), "{run}");
        for v in s["env"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, v)| v.as_str().unwrap())
        {
            for name in v.split("inputs.").skip(1) {
                let name = name.split([' ', '}']).next().unwrap();
                assert!(inputs.contains_key(name), "undefined input {name}");
            }
        }
    }

    // Run the steps as the runner would: `bash --noprofile --norc -eo pipefail {0}`, inputs in
    // the environment, annotations read from the output.
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report.xml");
    let mut values = serde_json::Map::new();
    for (name, i) in inputs {
        values.insert(name.clone(), i["default"].clone());
    }
    values.insert(
        "paths".into(),
        Value::from("tests/fixtures/infra/checks/contract\ntests/fixtures/infra/checks/tested"),
    );
    values.insert("junit".into(), Value::from(report.display().to_string()));
    let github_path = tmp.path().join("github_path");
    let mut outputs = Vec::new();
    for (n, s) in steps.iter().enumerate() {
        let script = tmp.path().join(format!("step{n}.sh"));
        std::fs::write(&script, s["run"].as_str().unwrap()).unwrap();
        if let Some(sc) = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("shellcheck"))
                .find(|p| p.is_file())
        }) {
            let o = Command::new(sc)
                .args(["-s", "bash"])
                .arg(&script)
                .output()
                .unwrap();
            assert!(o.status.success(), "shellcheck step {n}: {}", stdout(&o));
        } else {
            eprintln!(
                "SKIPPED shellcheck of the action's steps: not on PATH (scripts/test installs it)"
            );
        }
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script)
            .current_dir(root())
            .env("PATH", path_with_binary())
            .env("RUNNER_TEMP", tmp.path())
            .env("GITHUB_PATH", &github_path)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", root());
        for (k, v) in s["env"].as_object().into_iter().flatten() {
            cmd.env(k, expand(v.as_str().unwrap(), &values, &root()));
        }
        outputs.push(cmd.output().unwrap());
    }
    // The binary is on PATH, so the install step keeps it (building it would take minutes).
    assert!(outputs[0].status.success());
    assert!(
        stdout(&outputs[0]).contains("scanbridge: using "),
        "{}",
        stdout(&outputs[0])
    );
    let o = &outputs[1];
    assert_eq!(
        o.status.code(),
        Some(1),
        "invalid patterns fail the step: {}",
        stderr(o)
    );
    assert!(stdout(o).contains("tests/fixtures/infra/checks/contract/template.yaml: EmptyList: /detail/scan-status: Event pattern is not valid."));
    assert!(stdout(o).contains(
        "scan-alerts.pattern-tests.yaml: CriticalScans: critical scans page: must match"
    ));
    assert!(
        stderr(o).contains("::error file=tests/fixtures/infra/checks/contract/template.yaml,line=28,title=Invalid event pattern%3A EmptyList::"),
        "{}",
        stderr(o)
    );
    assert!(
        std::fs::read_to_string(&report)
            .unwrap()
            .contains("<testsuites")
    );
}

#[test]
fn lints_are_warnings_naming_file_resource_and_pointer_and_no_lint_turns_them_off() {
    let file = "tests/fixtures/infra/checks/lints/template.yaml";
    let literal = "/detail/finding-severity-counts/CRITICAL/0";
    let wildcard = "/detail/repository-name/0";
    let o = check(&[file]);
    // Lints are warnings: every pattern is valid, so exit 0 and stdout keeps the contract lines.
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).lines().next(),
        Some(format!("{file}: OperatorAsLiteral: ok").as_str())
    );
    let err = stderr(&o);
    let warned: Vec<&str> = err.lines().filter(|l| l.contains(": warning: ")).collect();
    assert_eq!(warned.len(), 2, "{err}");
    assert!(
        warned[0].starts_with(&format!(
            "{file}: OperatorAsLiteral: warning: {literal}: [\">\", 0] matches the string \">\" or the number 0"
        )),
        "{err}"
    );
    assert!(warned[0].contains("[{\"numeric\": [\">\", 0]}]"), "{err}");
    // An unchecked pattern is linted too, but not where a placeholder stands in for a deploy-time
    // value (/detail/image-tags/0/wildcard is ${Env}).
    assert!(
        warned[1].starts_with(&format!(
            "{file}: WildcardWithoutStar: warning: {wildcard}: {{\"wildcard\": \"prod\"}} has no *"
        )),
        "{err}"
    );

    // --json: a lints array on every object, with the line of the node at fault.
    let o = check(&["--json", file]);
    assert_eq!(o.status.code(), Some(0));
    let objs = json_lines(&o);
    let lints: Vec<(String, Vec<(String, i64)>)> = objs
        .iter()
        .map(|o| {
            let l = o["lints"].as_array().unwrap_or_else(|| panic!("{o}"));
            (
                o["resource"].as_str().unwrap().to_owned(),
                l.iter()
                    .map(|l| {
                        assert!(!l["message"].as_str().unwrap().is_empty());
                        (
                            l["pointer"].as_str().unwrap().to_owned(),
                            l["line"].as_i64().unwrap(),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        lints,
        [
            ("OperatorAsLiteral".into(), vec![(literal.into(), 18)]),
            ("WildcardWithoutStar".into(), vec![(wildcard.into(), 26)]),
            ("Clean".into(), vec![]),
        ]
    );
    assert_eq!(objs[1]["result"], "unchecked");
    assert!(
        objs.iter().all(|o| o["warnings"] == serde_json::json!([])),
        "lints are not the pattern crate's warnings"
    );

    // GitHub annotations: a ::warning on the line of the node.
    let o = check(&["--annotations", "always", file]);
    assert!(
        stderr(&o).lines().any(|l| l.starts_with(&format!(
            "::warning file={file},line=18,title=Event pattern warning%3A OperatorAsLiteral::{literal}: "
        ))),
        "{}",
        stderr(&o)
    );

    // --no-lint: none of it, same verdicts and exit code.
    let o = check(&["--no-lint", "--annotations", "always", file]);
    assert_eq!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(
        !err.contains(": warning: ") && !err.contains("Event pattern warning"),
        "{err}"
    );
    // (the unchecked pattern's own ::warning annotation stays)
    assert!(
        err.contains("partly unchecked%3A WildcardWithoutStar"),
        "{err}"
    );
    let o = check(&["--no-lint", "--json", file]);
    assert!(
        json_lines(&o)
            .iter()
            .all(|o| o["lints"] == serde_json::json!([]))
    );
}
