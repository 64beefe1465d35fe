//! Pattern unit tests: files that say "this resource's pattern must match these events and must not
//! match those" (README: "Test your infrastructure's patterns").
//!
//! ```yaml
//! # template.pattern-tests.yaml (YAML or JSON)
//! template: template.yaml        # optional: the file or directory the resources are in, relative to
//!                                # this file; default: this file's directory
//! parameters:                    # optional: values for parts known only at deploy time, by name:
//!   AWS::AccountId: "111122223333"   #   !Ref / ${X} names, Terraform references (var.x), Serverless
//!                                #   variables (self:custom.x)
//! tests:
//!   - resource: CriticalScans    # as check-patterns prints it
//!     name: critical scans page  # optional
//!     parameters: {Env: prod}    # optional, over the file's
//!     match:                     # events that must match: a file (relative to this file), a
//!       - events/critical.json   #   directory (every *.json in it), or an event written inline
//!     no_match:
//!       - {source: aws.ecr, detail-type: ECR Image Scan, detail: {scan-status: FAILED}}
//! ```
//!
//! Loading reports every structural fault with the file and JSON pointer and reads every event up
//! front, so a run either has all its inputs or fails as "could not read the input" (exit 2). Each
//! case is judged with the pattern crate's reference matcher; a failing case carries the
//! field-by-field explanation `test-pattern --explain` prints.

use std::path::{Path, PathBuf};

use scanbridge_pattern::{Event, Explanation, Limits};
use serde_json::{Map, Value};

use super::check::{Verdict, check};
use super::found::{Body, Found, InfraError};
use super::yaml;

/// What a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Match,
    NoMatch,
}

impl Expect {
    pub fn words(self) -> &'static str {
        match self {
            Expect::Match => "must match",
            Expect::NoMatch => "must not match",
        }
    }
}

/// One event of a test.
#[derive(Debug, Clone)]
pub struct Case {
    pub expect: Expect,
    /// The file as written, or an inline event's JSON (shortened).
    pub event_name: String,
    pub event: Event,
}

/// One entry of `tests`.
#[derive(Debug, Clone)]
pub struct Test {
    pub resource: String,
    pub name: Option<String>,
    pub parameters: Map<String, Value>,
    pub cases: Vec<Case>,
    /// `/tests/N`, for messages.
    pub pointer: String,
}

/// A loaded test file.
#[derive(Debug, Clone)]
pub struct TestFile {
    pub path: PathBuf,
    /// Where its resources are (a file or a directory).
    pub template: PathBuf,
    pub tests: Vec<Test>,
}

/// The verdict on one case.
#[derive(Debug, Clone)]
pub enum Outcome {
    Passed,
    /// The event matched when it must not, or did not when it must; why, field by field.
    Failed(Explanation),
    /// The case could not be judged (the pattern is invalid or has unresolved parts).
    Error(String),
}

const FILE_KEYS: [&str; 3] = ["template", "parameters", "tests"];
const TEST_KEYS: [&str; 5] = ["resource", "name", "parameters", "match", "no_match"];

/// Loads a test file and every event it names.
pub fn load(path: &Path) -> Result<TestFile, InfraError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InfraError::new(path, format!("cannot read: {e}")))?;
    let doc = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text)
            .map_err(|e| InfraError::at(path, Some(e.line()), format!("not valid JSON: {e}")))?
    } else {
        let mut docs =
            yaml::documents(&text).map_err(|e| InfraError::at(path, e.line, e.to_string()))?;
        if docs.len() != 1 {
            return Err(InfraError::new(
                path,
                "a pattern test file holds one document",
            ));
        }
        docs.remove(0)
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fail = |pointer: &str, message: String| {
        InfraError::new(
            path,
            if pointer.is_empty() {
                message
            } else {
                format!("{pointer}: {message}")
            },
        )
    };
    let Value::Object(m) = &doc else {
        return Err(fail(
            "",
            "a pattern test file holds an object with \"tests\"".into(),
        ));
    };
    if let Some(k) = m.keys().find(|k| !FILE_KEYS.contains(&k.as_str())) {
        return Err(fail(
            &super::pointer::pointer_push("", k),
            format!(
                "unknown key {k:?}; expected one of {}",
                FILE_KEYS.join(", ")
            ),
        ));
    }
    let template = match m.get("template") {
        None => dir.to_owned(),
        Some(Value::String(t)) => dir.join(t),
        Some(_) => return Err(fail("/template", "template must be a path".into())),
    };
    let file_params = parameters(m.get("parameters"), "/parameters", &fail)?;
    let Some(Value::Array(items)) = m.get("tests") else {
        return Err(fail("/tests", "tests must be a list of tests".into()));
    };
    let mut tests = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("/tests/{i}");
        let Value::Object(t) = item else {
            return Err(fail(
                &at,
                "a test is an object with resource, match and no_match".into(),
            ));
        };
        if let Some(k) = t.keys().find(|k| !TEST_KEYS.contains(&k.as_str())) {
            return Err(fail(
                &super::pointer::pointer_push(&at, k),
                format!(
                    "unknown key {k:?}; expected one of {}",
                    TEST_KEYS.join(", ")
                ),
            ));
        }
        let Some(Value::String(resource)) = t.get("resource") else {
            return Err(fail(
                &format!("{at}/resource"),
                "a test needs \"resource\": NAME".into(),
            ));
        };
        let name = match t.get("name") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(fail(&format!("{at}/name"), "name must be a string".into())),
        };
        let mut params = file_params.clone();
        params.extend(parameters(
            t.get("parameters"),
            &format!("{at}/parameters"),
            &fail,
        )?);
        let mut cases = Vec::new();
        for (key, expect) in [("match", Expect::Match), ("no_match", Expect::NoMatch)] {
            let list = match t.get(key) {
                None => continue,
                Some(Value::Array(a)) => a,
                Some(_) => {
                    return Err(fail(
                        &format!("{at}/{key}"),
                        format!("{key} must be a list of event files or events"),
                    ));
                }
            };
            for (j, e) in list.iter().enumerate() {
                let where_ = format!("{at}/{key}/{j}");
                for (event_name, event) in events(e, dir, &where_, path)? {
                    cases.push(Case {
                        expect,
                        event_name,
                        event,
                    });
                }
            }
        }
        if cases.is_empty() {
            return Err(fail(
                &at,
                "a test needs at least one event under match or no_match".into(),
            ));
        }
        tests.push(Test {
            resource: resource.clone(),
            name,
            parameters: params,
            cases,
            pointer: at,
        });
    }
    Ok(TestFile {
        path: path.to_owned(),
        template,
        tests,
    })
}

fn parameters(
    v: Option<&Value>,
    at: &str,
    fail: &dyn Fn(&str, String) -> InfraError,
) -> Result<Map<String, Value>, InfraError> {
    match v {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(fail(at, "parameters must map names to values".into())),
    }
}

/// The events of one `match`/`no_match` item: a file, a directory, or an inline event.
fn events(
    e: &Value,
    dir: &Path,
    at: &str,
    test_file: &Path,
) -> Result<Vec<(String, Event)>, InfraError> {
    let bad = |m: String| InfraError::new(test_file, format!("{at}: {m}"));
    match e {
        Value::String(rel) => {
            let p = dir.join(rel);
            let files: Vec<(String, PathBuf)> = if p.is_dir() {
                let mut f: Vec<PathBuf> = std::fs::read_dir(&p)
                    .map_err(|e| bad(format!("cannot list {}: {e}", p.display())))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "json"))
                    .collect();
                f.sort();
                f.into_iter()
                    .map(|f| {
                        let name = Path::new(rel)
                            .join(f.file_name().unwrap_or_default())
                            .display()
                            .to_string();
                        (name, f)
                    })
                    .collect()
            } else {
                vec![(rel.clone(), p)]
            };
            files
                .into_iter()
                .map(|(name, f)| {
                    let bytes = std::fs::read(&f)
                        .map_err(|e| bad(format!("cannot read event {}: {e}", f.display())))?;
                    let ev = Event::from_bytes(&bytes)
                        .map_err(|e| bad(format!("event {}: {e}", f.display())))?;
                    Ok((name, ev))
                })
                .collect()
        }
        Value::Object(_) => {
            let text = e.to_string();
            let ev = Event::from_bytes(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
            // Named by its content, shortened.
            let name = if text.chars().count() > 60 {
                text.chars().take(57).collect::<String>() + "..."
            } else {
                text
            };
            Ok(vec![(name, ev)])
        }
        _ => Err(bad("an event is a file path or an object".into())),
    }
}

/// The pattern a test is about, among the patterns found: the one named `resource` in the test
/// file's template (a file, or any file under a directory).
pub fn select<'a>(
    test: &Test,
    file: &TestFile,
    found: impl Iterator<Item = &'a Found>,
) -> Result<&'a Found, String> {
    let template = super::found::same_file(&file.template);
    let under = |f: &Found| super::found::same_file(&f.file).starts_with(&template);
    let candidates: Vec<&Found> = found.filter(|f| under(f)).collect();
    let named: Vec<&Found> = candidates
        .iter()
        .copied()
        .filter(|f| f.resource == test.resource)
        .collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => {
            let mut names: Vec<&str> = candidates.iter().map(|f| f.resource.as_str()).collect();
            names.dedup();
            Err(format!(
                "no pattern for resource {:?} in {}{}",
                test.resource,
                file.template.display(),
                if names.is_empty() {
                    " (it has no patterns)".to_owned()
                } else {
                    format!("; its patterns: {}", names.join(", "))
                }
            ))
        }
        many => Err(format!(
            "resource {:?} has patterns in several files ({}); say which with template:",
            test.resource,
            many.iter()
                .map(|f| f.file.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Runs the cases of one test against its pattern.
pub fn run(test: &Test, found: &Found, limits: &Limits) -> Vec<Outcome> {
    let body = match &found.body {
        Body::Holed(h) => Body::Holed(h.resolve(&test.parameters)),
        opaque => opaque.clone(),
    };
    let checked = check(&body, limits);
    let pattern = match (checked.verdict, &checked.pattern) {
        (Verdict::Ok, Some(p)) => p,
        (Verdict::Invalid, _) => {
            let msg = format!(
                "the pattern is invalid: {}",
                checked.message.unwrap_or_default()
            );
            return test
                .cases
                .iter()
                .map(|_| Outcome::Error(msg.clone()))
                .collect();
        }
        _ => {
            let parts: Vec<String> = checked
                .unresolved
                .iter()
                .map(|u| {
                    format!(
                        "{} ({})",
                        u.shown,
                        if u.pointer.is_empty() {
                            "the pattern"
                        } else {
                            &u.pointer
                        }
                    )
                })
                .collect();
            let msg = format!(
                "the pattern depends on values known only at deploy time: {}; give them under parameters",
                parts.join(", ")
            );
            return test
                .cases
                .iter()
                .map(|_| Outcome::Error(msg.clone()))
                .collect();
        }
    };
    test.cases
        .iter()
        .map(|c| {
            let matched = pattern.matches_event(&c.event);
            if matched == (c.expect == Expect::Match) {
                Outcome::Passed
            } else {
                Outcome::Failed(pattern.explain(&c.event))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::discover::extract_text;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    const TEMPLATE: &str = "Resources:
  Scans:
    Type: AWS::Events::Rule
    Properties:
      EventPattern:
        source: [aws.ecr]
        account: [!Ref AWS::AccountId]
        detail: {scan-status: [COMPLETE]}
";

    #[test]
    fn cases_pass_fail_and_need_parameters() {
        let d = tempfile::tempdir().unwrap();
        let t = write(d.path(), "template.yaml", TEMPLATE);
        write(
            d.path(),
            "events/complete.json",
            r#"{"source": "aws.ecr", "account": "1", "detail": {"scan-status": "COMPLETE"}}"#,
        );
        let tf = write(
            d.path(),
            "template.pattern-tests.yaml",
            "tests:
  - resource: Scans
    parameters: {AWS::AccountId: '1'}
    match: [events/complete.json, events]
    no_match:
      - {source: aws.ecr, account: '1', detail: {scan-status: FAILED}}
      - events/complete.json
  - resource: Scans
    match: [events/complete.json]
",
        );
        let found = extract_text(&t, TEMPLATE, true).unwrap();
        let file = load(&tf).unwrap();
        assert_eq!(file.tests[0].cases.len(), 4);
        let f = select(&file.tests[0], &file, found.iter()).unwrap();
        let out = run(&file.tests[0], f, &Limits::default());
        assert!(matches!(out[0], Outcome::Passed));
        assert!(matches!(out[1], Outcome::Passed));
        assert!(matches!(out[2], Outcome::Passed));
        let Outcome::Failed(why) = &out[3] else {
            panic!("{out:?}")
        };
        assert!(why.matched);
        let out = run(&file.tests[1], f, &Limits::default());
        let Outcome::Error(msg) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(msg.contains("!Ref AWS::AccountId (/account/0)"), "{msg}");
    }

    #[test]
    fn faults_name_the_file_and_pointer() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            (
                "tests: [{resource: R, match: [nope.json]}]",
                "/tests/0/match/0: cannot read event",
            ),
            (
                "tests: [{resource: R, matches: []}]",
                "/tests/0/matches: unknown key",
            ),
            (
                "tests: [{resource: R}]",
                "/tests/0: a test needs at least one event",
            ),
            ("test: []", "/test: unknown key"),
            (
                "tests: [{resource: R, match: [{not: json, x: [}]}]",
                "not valid YAML",
            ),
        ];
        for (text, want) in cases {
            let p = write(d.path(), "x.pattern-tests.yaml", text);
            let e = load(&p).unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn select_says_what_there_is() {
        let d = tempfile::tempdir().unwrap();
        let t = write(d.path(), "template.yaml", TEMPLATE);
        let found = extract_text(&t, TEMPLATE, true).unwrap();
        let tf = write(
            d.path(),
            "a.pattern-tests.yaml",
            "tests: [{resource: Nope, match: [{a: 1}]}]",
        );
        let file = load(&tf).unwrap();
        let e = select(&file.tests[0], &file, found.iter()).unwrap_err();
        assert!(e.contains("its patterns: Scans"), "{e}");
    }
}
