//! `scanbridge check-patterns PATH...`: validate, and test, the event patterns in infrastructure code
//! (CloudFormation, SAM, CDK's `cdk.out`, Terraform configuration, plans and state, Serverless
//! Framework files, scanbridge rule files), offline, in CI (issue 20).
//!
//! Output (stdout), one line per pattern found, in file and document order (the contract):
//! `FILE: RESOURCE: ok`, `FILE: RESOURCE: /pointer: MESSAGE` (AWS's message) or
//! `FILE: RESOURCE: unchecked: WHAT` (parts known only at deploy time; the rest was checked);
//! then one line per pattern test case, with `--explain`'s field-by-field reasons under a failing one.
//! `--json` prints one object per pattern instead (`file`, `resource`, `result`, `message`, ...).
//! Warnings, unreadable files, the summary and GitHub annotations go to stderr (GitHub reads
//! workflow commands from both streams), so stdout stays exactly that.
//!
//! Pattern lints (`crate::lint`: valid patterns that likely mean something else) are warnings like a
//! repeated key: `FILE: RESOURCE: warning: /pointer: MESSAGE` on stderr, a `lints` array
//! (`[{pointer, message, line}]`) in `--json`, `::warning` annotations; they change no verdict and
//! no exit code. `--no-lint` turns them off.
//!
//! Exit codes: 0 all valid and every test passed; 1 a pattern is invalid or a test failed; 2 some
//! input could not be read (a path, a file that does not parse, a test file or an event).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use scanbridge_pattern::{Explanation, Limits};
use serde_json::{Value, json};

use super::outcome::Outcome;
use crate::infra::check::{Checked, Verdict, check};
use crate::infra::github::{self, Annotation, Level};
use crate::infra::pattern_tests::{self, Expect, TestFile};
use crate::infra::{Found, InfraError, discover, junit, one_line};

/// When to print GitHub Actions annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Annotations {
    /// When `GITHUB_ACTIONS=true`.
    Auto,
    Always,
    Never,
}

/// Arguments of `scanbridge check-patterns`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to read (directories recursively); default: the current directory.
    pub paths: Vec<PathBuf>,

    /// A pattern test file to run (repeatable), besides the `*.pattern-tests.{yaml,yml,json}` files
    /// found under PATHS.
    #[arg(long = "tests", value_name = "FILE")]
    pub tests: Vec<PathBuf>,

    /// Print one JSON object per pattern instead of text.
    #[arg(long)]
    pub json: bool,

    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// GitHub Actions annotations (`::error file=...,line=...::`) on stderr.
    #[arg(long, value_enum, default_value_t = Annotations::Auto)]
    pub annotations: Annotations,

    /// Longest pattern accepted, in characters (EventBridge: 2048 by default, up to 4096 by quota).
    #[arg(long, default_value_t = Limits::default().max_len, value_name = "CHARS")]
    pub max_pattern_length: usize,

    /// Do not warn about patterns AWS accepts that likely mean something else.
    #[arg(long)]
    pub no_lint: bool,
}

/// One pattern and what became of it.
struct Entry {
    found: Found,
    checked: Checked,
    tests: Vec<TestResult>,
}

/// One test case's verdict.
struct TestResult {
    test_file: PathBuf,
    name: Option<String>,
    expect: Expect,
    event: String,
    outcome: pattern_tests::Outcome,
}

/// A test that could not be tied to a pattern.
struct Orphan {
    test_file: PathBuf,
    resource: String,
    message: String,
}

#[derive(Default)]
struct Run {
    entries: Vec<Entry>,
    orphans: Vec<Orphan>,
    errors: Vec<InfraError>,
    read: HashSet<PathBuf>,
    files: usize,
    /// Whether the patterns' lints are kept (`--no-lint` clears them).
    lint: bool,
}

impl Run {
    fn read_files(&mut self, files: Vec<(PathBuf, bool)>, limits: &Limits) {
        for (file, explicit) in files {
            if !self.read.insert(normal(&file)) {
                continue;
            }
            self.files += 1;
            match discover::extract_file(&file, explicit) {
                Ok(found) => {
                    for found in found {
                        let mut checked = check(&found.body, limits);
                        if !self.lint {
                            checked.lints.clear();
                        }
                        self.entries.push(Entry {
                            checked,
                            found,
                            tests: Vec::new(),
                        });
                    }
                }
                Err(e) => self.errors.push(e),
            }
        }
    }

    fn run_tests(&mut self, file: &TestFile, limits: &Limits) {
        // The template may lie outside PATHS: read it too.
        let walked = discover::walk(std::slice::from_ref(&file.template));
        self.errors.extend(walked.errors);
        self.read_files(walked.files, limits);
        for test in &file.tests {
            let pick = pattern_tests::select(test, file, self.entries.iter().map(|e| &e.found))
                .map(|f| (f.file.clone(), f.resource.clone()));
            let (pfile, resource) = match pick {
                Ok(p) => p,
                Err(message) => {
                    self.orphans.push(Orphan {
                        test_file: file.path.clone(),
                        resource: test.resource.clone(),
                        message: format!("{}: {message}", test.pointer),
                    });
                    continue;
                }
            };
            let entry = self
                .entries
                .iter_mut()
                .find(|e| e.found.file == pfile && e.found.resource == resource)
                .expect("selected from the entries");
            let outcomes = pattern_tests::run(test, &entry.found, limits);
            for (case, outcome) in test.cases.iter().zip(outcomes) {
                entry.tests.push(TestResult {
                    test_file: file.path.clone(),
                    name: test.name.clone(),
                    expect: case.expect,
                    event: case.event_name.clone(),
                    outcome,
                });
            }
        }
    }
}

fn normal(p: &Path) -> PathBuf {
    crate::infra::same_file(p)
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let limits = Limits {
        max_len: args.max_pattern_length,
        ..Limits::default()
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let walked = discover::walk(&paths);
    let mut run = Run {
        errors: walked.errors,
        lint: !args.no_lint,
        ..Run::default()
    };
    run.read_files(walked.files, &limits);
    let mut test_files: Vec<PathBuf> = walked.tests;
    for t in &args.tests {
        if !test_files.iter().any(|x| normal(x) == normal(t)) {
            test_files.push(t.clone());
        }
    }
    for t in &test_files {
        match pattern_tests::load(t) {
            Ok(file) => run.run_tests(&file, &limits),
            Err(e) => run.errors.push(e),
        }
    }

    let mut stdout = std::io::stdout().lock();
    if args.json {
        for e in &run.entries {
            writeln!(stdout, "{}", entry_json(e))?;
        }
    } else {
        for e in &run.entries {
            writeln!(stdout, "{}", entry_line(e))?;
        }
        for e in &run.entries {
            for t in &e.tests {
                write_test_line(&mut stdout, &e.found, t)?;
            }
        }
        for o in &run.orphans {
            let line = format!(
                "{}: {}: error: {}",
                o.test_file.display(),
                o.resource,
                o.message
            );
            writeln!(stdout, "{}", one_line(&line))?;
        }
    }
    stdout.flush()?;
    drop(stdout);

    let mut stderr = std::io::stderr().lock();
    for e in &run.entries {
        for (pointer, message) in warnings(&e.checked) {
            let line = format!(
                "{}: {}: warning: {pointer}: {message}",
                e.found.file.display(),
                e.found.resource,
            );
            writeln!(stderr, "{}", one_line(&line))?;
        }
    }
    for e in &run.errors {
        let line = match e.line {
            Some(l) => format!("scanbridge: {}:{l}: {}", e.file.display(), e.message),
            None => format!("scanbridge: {e}"),
        };
        writeln!(stderr, "{}", one_line(&line))?;
    }
    let annotate = match args.annotations {
        Annotations::Auto => github::running_in_actions(),
        Annotations::Always => true,
        Annotations::Never => false,
    };
    if annotate {
        for a in annotations(&run) {
            writeln!(stderr, "{}", github::command(&a))?;
        }
    }
    writeln!(stderr, "{}", summary(&run, &paths))?;

    if let Some(path) = &args.junit {
        std::fs::write(
            path,
            junit::render("scanbridge check-patterns", &junit_suites(&run)),
        )
        .with_context(|| format!("writing the JUnit report {}", path.display()))?;
    }

    let failed = run
        .entries
        .iter()
        .any(|e| e.checked.verdict == Verdict::Invalid || e.tests.iter().any(|t| !passed(t)))
        || !run.orphans.is_empty();
    Ok(if !run.errors.is_empty() {
        Outcome::Invalid
    } else if failed {
        Outcome::NoMatch
    } else {
        Outcome::Success
    })
}

/// Every warning of a pattern, as (pointer, message): the pattern crate's (a repeated key), then the
/// lints.
fn warnings(c: &Checked) -> impl Iterator<Item = (&str, &str)> {
    c.warnings
        .iter()
        .map(|w| (w.pointer.as_str(), w.message.as_str()))
        .chain(
            c.lints
                .iter()
                .map(|l| (l.pointer.as_str(), l.message.as_str())),
        )
}

fn passed(t: &TestResult) -> bool {
    matches!(t.outcome, pattern_tests::Outcome::Passed)
}

/// The contract line of a pattern.
fn entry_line(e: &Entry) -> String {
    one_line(&entry_text(e))
}

fn entry_text(e: &Entry) -> String {
    let head = format!("{}: {}", e.found.file.display(), e.found.resource);
    let c = &e.checked;
    let msg = c.message.as_deref().unwrap_or("");
    match c.verdict {
        Verdict::Ok => format!("{head}: ok"),
        Verdict::Invalid => match c.pointer.as_deref() {
            Some(p) if !p.is_empty() => format!("{head}: {p}: {msg}"),
            _ => format!("{head}: {msg}"),
        },
        Verdict::Unchecked => format!("{head}: unchecked: {msg}"),
    }
}

fn test_label(found: &Found, t: &TestResult) -> String {
    let name = t
        .name
        .as_ref()
        .map(|n| format!("{n}: "))
        .unwrap_or_default();
    format!(
        "{}: {}: {name}{} {}",
        t.test_file.display(),
        found.resource,
        t.expect.words(),
        t.event
    )
}

fn write_test_line(out: &mut impl Write, found: &Found, t: &TestResult) -> std::io::Result<()> {
    let label = one_line(&test_label(found, t));
    match &t.outcome {
        pattern_tests::Outcome::Passed => writeln!(out, "{label}: ok"),
        pattern_tests::Outcome::Failed(why) => {
            writeln!(out, "{label}: FAILED ({})", failed_because(why))?;
            // `--explain`'s lines, under the case.
            for line in why.to_string().lines().skip(1) {
                writeln!(out, "  {}", one_line(line))?;
            }
            Ok(())
        }
        pattern_tests::Outcome::Error(m) => writeln!(out, "{label}: error: {}", one_line(m)),
    }
}

fn failed_because(why: &Explanation) -> &'static str {
    if why.matched {
        "it matched"
    } else {
        "no match"
    }
}

fn entry_json(e: &Entry) -> Value {
    let f = &e.found;
    let c = &e.checked;
    let mut out = json!({
        "file": f.file.display().to_string(),
        "resource": f.resource,
        "result": c.verdict.name(),
        "message": c.message,
        "pointer": c.pointer,
        "line": f.line(),
        "pointer_line": c.pointer.as_deref().and_then(|p| f.lines.line_of(p)),
        "format": f.format.name(),
        "resource_type": f.resource_type,
        "unchecked": c.unresolved.iter().map(|u| json!({"pointer": u.pointer, "expression": u.shown})).collect::<Vec<_>>(),
        "warnings": c.warnings.iter().map(|w| json!({"pointer": w.pointer, "message": w.message})).collect::<Vec<_>>(),
        "lints": c.lints.iter().map(|l| json!({"pointer": l.pointer, "message": l.message, "line": f.lines.line_of(&l.pointer)})).collect::<Vec<_>>(),
    });
    if let Some(p) = &f.construct_path {
        out["construct_path"] = json!(p);
    }
    if !e.tests.is_empty() {
        out["tests"] = Value::Array(
            e.tests
                .iter()
                .map(|t| {
                    let mut o = json!({
                        "test_file": t.test_file.display().to_string(),
                        "name": t.name,
                        "expect": match t.expect { Expect::Match => "match", Expect::NoMatch => "no_match" },
                        "event": t.event,
                    });
                    match &t.outcome {
                        pattern_tests::Outcome::Passed => o["result"] = json!("passed"),
                        pattern_tests::Outcome::Failed(why) => {
                            o["result"] = json!("failed");
                            o["message"] = json!(failed_because(why));
                            o["explain"] = why.to_json();
                        }
                        pattern_tests::Outcome::Error(m) => {
                            o["result"] = json!("error");
                            o["message"] = json!(m);
                        }
                    }
                    o
                })
                .collect(),
        );
    }
    out
}

fn summary(run: &Run, paths: &[PathBuf]) -> String {
    let count = |v: Verdict| {
        run.entries
            .iter()
            .filter(|e| e.checked.verdict == v)
            .count()
    };
    let mut s = if run.entries.is_empty() {
        format!(
            "check-patterns: no event patterns found in {} ({} file(s) read)",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            run.files
        )
    } else {
        format!(
            "check-patterns: {} pattern(s) in {} file(s): {} ok, {} invalid, {} unchecked",
            run.entries.len(),
            run.files,
            count(Verdict::Ok),
            count(Verdict::Invalid),
            count(Verdict::Unchecked)
        )
    };
    let cases: Vec<&TestResult> = run.entries.iter().flat_map(|e| e.tests.iter()).collect();
    if !cases.is_empty() || !run.orphans.is_empty() {
        let ok = cases.iter().filter(|t| passed(t)).count();
        s.push_str(&format!(
            "; {} test case(s): {ok} passed, {} failed",
            cases.len(),
            cases.len() - ok
        ));
        if !run.orphans.is_empty() {
            s.push_str(&format!(
                ", {} test(s) without a pattern",
                run.orphans.len()
            ));
        }
    }
    if !run.errors.is_empty() {
        s.push_str(&format!(
            "; {} input(s) could not be read",
            run.errors.len()
        ));
    }
    s
}

fn annotations(run: &Run) -> Vec<Annotation> {
    let mut out = Vec::new();
    for e in &run.entries {
        let f = &e.found;
        let file = Some(github::workspace_path(&f.file));
        let c = &e.checked;
        match c.verdict {
            Verdict::Ok => {}
            Verdict::Invalid => {
                let p = c.pointer.clone().unwrap_or_default();
                out.push(Annotation {
                    level: Level::Error,
                    file: file.clone(),
                    line: f.lines.line_of(&p),
                    title: Some(format!("Invalid event pattern: {}", f.resource)),
                    message: if p.is_empty() {
                        c.message.clone().unwrap_or_default()
                    } else {
                        format!("{p}: {}", c.message.as_deref().unwrap_or(""))
                    },
                });
            }
            Verdict::Unchecked => out.push(Annotation {
                level: Level::Warning,
                file: file.clone(),
                line: f.line(),
                title: Some(format!("Event pattern partly unchecked: {}", f.resource)),
                message: c.message.clone().unwrap_or_default(),
            }),
        }
        for (pointer, message) in warnings(c) {
            out.push(Annotation {
                level: Level::Warning,
                file: file.clone(),
                line: f.lines.line_of(pointer),
                title: Some(format!("Event pattern warning: {}", f.resource)),
                message: format!("{pointer}: {message}"),
            });
        }
        for t in e.tests.iter().filter(|t| !passed(t)) {
            let detail = match &t.outcome {
                pattern_tests::Outcome::Failed(why) => {
                    format!("{}\n{why}", failed_because(why))
                }
                pattern_tests::Outcome::Error(m) => m.clone(),
                pattern_tests::Outcome::Passed => unreachable!("failures only"),
            };
            out.push(Annotation {
                level: Level::Error,
                file: Some(github::workspace_path(&t.test_file)),
                line: None,
                title: Some(format!("Pattern test failed: {}", f.resource)),
                message: format!("{} {}: {detail}", t.expect.words(), t.event),
            });
        }
    }
    for o in &run.orphans {
        out.push(Annotation {
            level: Level::Error,
            file: Some(github::workspace_path(&o.test_file)),
            line: None,
            title: Some(format!("Pattern test failed: {}", o.resource)),
            message: o.message.clone(),
        });
    }
    for e in &run.errors {
        out.push(Annotation {
            level: Level::Error,
            file: Some(github::workspace_path(&e.file)),
            line: e.line,
            title: Some("check-patterns could not read this file".into()),
            message: e.message.clone(),
        });
    }
    out
}

fn junit_suites(run: &Run) -> Vec<junit::Suite> {
    // (suite name, case), in output order; grouped by suite at the end.
    let mut placed: Vec<(String, junit::Case)> = Vec::new();
    for e in &run.entries {
        let f = &e.found;
        let file = f.file.display().to_string();
        let c = &e.checked;
        let outcome = match c.verdict {
            Verdict::Ok => junit::Outcome::Passed,
            Verdict::Invalid => {
                let p = c.pointer.clone().unwrap_or_default();
                let m = c.message.clone().unwrap_or_default();
                let message = if p.is_empty() {
                    m.clone()
                } else {
                    format!("{p}: {m}")
                };
                junit::Outcome::Failed {
                    kind: "invalid".into(),
                    detail: message.clone(),
                    message,
                }
            }
            Verdict::Unchecked => junit::Outcome::Skipped {
                message: c.message.clone().unwrap_or_default(),
            },
        };
        placed.push((
            file.clone(),
            junit::Case {
                name: f.resource.clone(),
                classname: file.clone(),
                file: Some(file.clone()),
                line: c
                    .pointer
                    .as_deref()
                    .and_then(|p| f.lines.line_of(p))
                    .or_else(|| f.line()),
                outcome,
            },
        ));
        for t in &e.tests {
            let tf = t.test_file.display().to_string();
            let outcome = match &t.outcome {
                pattern_tests::Outcome::Passed => junit::Outcome::Passed,
                pattern_tests::Outcome::Failed(why) => junit::Outcome::Failed {
                    kind: "test".into(),
                    message: failed_because(why).into(),
                    detail: why.to_string(),
                },
                pattern_tests::Outcome::Error(m) => junit::Outcome::Failed {
                    kind: "test".into(),
                    message: m.clone(),
                    detail: m.clone(),
                },
            };
            placed.push((
                tf.clone(),
                junit::Case {
                    name: test_label(f, t)
                        .strip_prefix(&format!("{tf}: "))
                        .unwrap_or_default()
                        .to_owned(),
                    classname: tf.clone(),
                    file: Some(tf),
                    line: None,
                    outcome,
                },
            ));
        }
    }
    for o in &run.orphans {
        let tf = o.test_file.display().to_string();
        placed.push((
            tf.clone(),
            junit::Case {
                name: o.resource.clone(),
                classname: tf.clone(),
                file: Some(tf),
                line: None,
                outcome: junit::Outcome::Failed {
                    kind: "test".into(),
                    message: o.message.clone(),
                    detail: o.message.clone(),
                },
            },
        ));
    }
    for e in &run.errors {
        let file = e.file.display().to_string();
        placed.push((
            file.clone(),
            junit::Case {
                name: "read".into(),
                classname: file.clone(),
                file: Some(file),
                line: e.line,
                outcome: junit::Outcome::Error {
                    message: e.message.clone(),
                },
            },
        ));
    }
    let mut suites: Vec<junit::Suite> = Vec::new();
    for (name, case) in placed {
        match suites.iter_mut().find(|s| s.name == name) {
            Some(s) => s.cases.push(case),
            None => suites.push(junit::Suite {
                name,
                cases: vec![case],
            }),
        }
    }
    suites
}
