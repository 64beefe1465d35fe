//! Rule files: `rules/*.json`, `*.yaml`, `*.yml`, one rule per file, turned into [`Rule`]s.
//!
//! A rule file holds `name`, `event_pattern` (EventBridge JSON, as an object or a JSON string),
//! `targets` (target names from config.toml, each either a string or an object `{target, input,
//! input_path, input_transformer}` with an EventBridge input transformation, see `render::transform`), and optional
//! `description` and `enabled` (default true), and the alerting options of [`crate::alerting`]:
//! `dedup`, `notify_on`, `group_by`, `group_wait`, `group_interval`, `notify_resolved`. Unknown keys
//! are errors.
//!
//! Promise: loading reports every error at once, each with the file, the JSON pointer of the node at
//! fault (pattern errors point inside `/event_pattern`) and an AWS-style message. A rule whose pattern
//! AWS accepts but that likely means something else loads all the same, with its warnings
//! (`Rule::lints`, from `crate::lint`) for the commands and the log to show. A directory loads
//! all-or-nothing, so a broken file never yields a partial rule set. Files starting with `.` or ending
//! with `~` (editor droppings) and other extensions are ignored.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use scanbridge_pattern::Pattern;
use serde_json::{Map, Value};

/// One rule, validated.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// For the people reading the rule (the console shows it).
    pub description: Option<String>,
    pub enabled: bool,
    pub pattern: Pattern,
    /// The pattern as the rule file gives it (JSON), for people and the sandbox.
    pub pattern_json: Value,
    pub targets: Vec<RuleTarget>,
    pub file: PathBuf,
    /// Deduplication, notify_on and digest options.
    pub alert: crate::alerting::AlertOptions,
    /// Warnings about the pattern (`crate::lint`), pointers from the rule file's root
    /// (`/event_pattern/...`). They never stop a rule from loading.
    pub lints: Vec<crate::lint::Lint>,
}

impl Rule {
    /// The rule's lints as lines for people: `FILE: POINTER: MESSAGE`.
    pub fn lint_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.lints
            .iter()
            .map(|l| format!("{}: {}: {}", self.file.display(), l.pointer, l.message))
    }
}

/// A target of a rule, with the optional input transformation (validated at load by
/// [`crate::render::Input::parse`]; stored with each delivery so that a later reload never changes
/// what a delivery sends).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleTarget {
    pub target: String,
    /// `{"input": ...}`, `{"input_path": ...}` or `{"input_transformer": ...}`, as written.
    pub input: Option<Value>,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    pub file: PathBuf,
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.pointer,
                self.message
            )
        }
    }
}

/// Every error found while loading a directory.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

fn is_rule_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("json" | "yaml" | "yml")
    )
}

/// What rule files are checked against: the configured target names and the pattern limits
/// (`[rules] max_pattern_length`).
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub targets: BTreeSet<String>,
    pub limits: scanbridge_pattern::Limits,
}

impl Known {
    pub fn from_settings(settings: &crate::settings::Settings) -> Known {
        Known {
            targets: settings.targets.keys().cloned().collect(),
            limits: scanbridge_pattern::Limits {
                max_len: settings.rules.max_pattern_length,
                ..scanbridge_pattern::Limits::default()
            },
        }
    }
}

/// Loads every rule file of `dir`, checking target names and pattern limits against `known`.
pub fn load_dir(dir: &Path, known: &Known) -> Result<Vec<Rule>, RuleErrors> {
    let err = |message: String| {
        RuleErrors(vec![RuleError {
            file: dir.to_owned(),
            pointer: String::new(),
            message,
        }])
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| err(format!("cannot read rules directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_rule_file(p))
        .collect();
    files.sort();
    let mut rules: Vec<Rule> = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load_file(&file, known) {
            Ok(rule) => {
                if let Some(other) = rules.iter().find(|r| r.name == rule.name) {
                    errors.push(RuleError {
                        file: file.clone(),
                        pointer: "/name".into(),
                        message: format!(
                            "duplicate rule name {:?}, also in {}",
                            rule.name,
                            other.file.display()
                        ),
                    });
                } else {
                    rules.push(rule);
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(RuleErrors(errors))
    }
}

/// Loads one rule file; returns all its errors.
pub fn load_file(file: &Path, known: &Known) -> Result<Rule, Vec<RuleError>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![RuleError {
            file: file.to_owned(),
            pointer: String::new(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    load_text(file, &text, known)
}

/// The example rules shipped in `rules/`, embedded in the binary so that `serve` run from any
/// directory (a container, an installed binary) still routes scan events to the console.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "critical-findings.json",
        include_str!("../rules/critical-findings.json"),
    ),
    (
        "high-findings-production.yaml",
        include_str!("../rules/high-findings-production.yaml"),
    ),
    (
        "inspector-critical-findings.json",
        include_str!("../rules/inspector-critical-findings.json"),
    ),
    (
        "inspector-high-findings-fixable.json",
        include_str!("../rules/inspector-high-findings-fixable.json"),
    ),
    (
        "report-critical-findings.json",
        include_str!("../rules/report-critical-findings.json"),
    ),
    (
        "scan-failed.json",
        include_str!("../rules/scan-failed.json"),
    ),
];

/// The rules of `dir`; when `dir` is the default `rules` and does not exist, the [`BUILTIN`] rules
/// (named `<built-in>/FILE` in messages). Returns whether the built-ins were used.
pub fn load_dir_or_builtin(dir: &Path, known: &Known) -> Result<(Vec<Rule>, bool), RuleErrors> {
    if dir != Path::new(DEFAULT_DIR) || dir.exists() {
        return load_dir(dir, known).map(|r| (r, false));
    }
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in BUILTIN {
        match load_text(&Path::new("<built-in>").join(name), text, known) {
            Ok(r) => rules.push(r),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok((rules, true))
    } else {
        Err(RuleErrors(errors))
    }
}

/// The default rules directory (relative to where the daemon runs).
pub const DEFAULT_DIR: &str = "rules";

/// Parses one rule from its text; `file` names it in errors and decides JSON (`.json`) or YAML.
pub fn load_text(file: &Path, text: &str, known: &Known) -> Result<Rule, Vec<RuleError>> {
    let one = |pointer: &str, message: String| {
        vec![RuleError {
            file: file.to_owned(),
            pointer: pointer.to_owned(),
            message,
        }]
    };
    let is_json = file.extension().is_some_and(|e| e == "json");
    let doc: Value = if is_json {
        serde_json::from_str(text).map_err(|e| one("", format!("not valid JSON: {e}")))?
    } else {
        serde_norway::from_str(text).map_err(|e| one("", format!("not valid YAML: {e}")))?
    };
    parse_rule(&doc, known)
        .map(|mut r| {
            r.file = file.to_owned();
            r
        })
        .map_err(|errs| {
            errs.into_iter()
                .map(|(pointer, message)| RuleError {
                    file: file.to_owned(),
                    pointer,
                    message,
                })
                .collect()
        })
}

/// The keys of a rule file.
pub const RULE_KEYS: [&str; 11] = [
    "name",
    "description",
    "enabled",
    "event_pattern",
    "targets",
    "dedup",
    "notify_on",
    "group_by",
    "group_wait",
    "group_interval",
    "notify_resolved",
];
const TARGET_KEYS: [&str; 4] = ["target", "input", "input_path", "input_transformer"];

/// Validates a parsed rule document; errors are (pointer, message).
pub fn parse_rule(doc: &Value, known: &Known) -> Result<Rule, Vec<(String, String)>> {
    let mut errs: Vec<(String, String)> = Vec::new();
    let Value::Object(m) = doc else {
        return Err(vec![(
            String::new(),
            "a rule file must hold one object".into(),
        )]);
    };
    for k in m.keys().filter(|k| !RULE_KEYS.contains(&k.as_str())) {
        errs.push((
            format!("/{}", escape(k)),
            format!(
                "unknown key {k:?}; expected one of {}",
                RULE_KEYS.join(", ")
            ),
        ));
    }
    let name = match m.get("name") {
        Some(Value::String(s)) if valid_name(s) => Some(s.clone()),
        Some(Value::String(_)) => {
            errs.push((
                "/name".into(),
                "name must be 1 to 64 characters of letters, digits, '.', '-' or '_'".into(),
            ));
            None
        }
        Some(_) => {
            errs.push(("/name".into(), "name must be a string".into()));
            None
        }
        None => {
            errs.push(("/name".into(), "missing required key \"name\"".into()));
            None
        }
    };
    let description = match m.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errs.push(("/description".into(), "description must be a string".into()));
            None
        }
    };
    let enabled = match m.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errs.push(("/enabled".into(), "enabled must be true or false".into()));
            true
        }
    };
    let mut lints = Vec::new();
    let pattern = match m.get("event_pattern") {
        None => {
            errs.push((
                "/event_pattern".into(),
                "missing required key \"event_pattern\"".into(),
            ));
            None
        }
        Some(v) => {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match Pattern::parse_with_limits(&text, &known.limits) {
                Ok(p) => {
                    lints = crate::lint::lint(&text)
                        .into_iter()
                        .map(|mut l| {
                            l.pointer = format!("/event_pattern{}", l.pointer);
                            l
                        })
                        .collect();
                    let shown = match v {
                        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
                        other => other.clone(),
                    };
                    Some((p, shown))
                }
                Err(e) => {
                    errs.push((format!("/event_pattern{}", e.pointer()), e.to_string()));
                    None
                }
            }
        }
    };
    let rule_targets = parse_targets(m, &known.targets, &mut errs);
    let alert = crate::alerting::AlertOptions::parse(m, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    let (pattern, pattern_json) = pattern.expect("no errors");
    Ok(Rule {
        name: name.expect("no errors"),
        description,
        enabled,
        pattern,
        pattern_json,
        targets: rule_targets,
        file: PathBuf::new(),
        alert,
        lints,
    })
}

fn parse_targets(
    m: &Map<String, Value>,
    known: &BTreeSet<String>,
    errs: &mut Vec<(String, String)>,
) -> Vec<RuleTarget> {
    let mut out = Vec::new();
    let items = match m.get("targets") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            errs.push(("/targets".into(), "a rule needs at least one target".into()));
            return out;
        }
        Some(_) => {
            errs.push((
                "/targets".into(),
                "targets must be a list of target names".into(),
            ));
            return out;
        }
        None => {
            errs.push(("/targets".into(), "missing required key \"targets\"".into()));
            return out;
        }
    };
    for (i, item) in items.iter().enumerate() {
        let at = format!("/targets/{i}");
        let (name, input, name_at) = match item {
            Value::String(s) => (s.clone(), None, at.clone()),
            Value::Object(o) => {
                for k in o.keys().filter(|k| !TARGET_KEYS.contains(&k.as_str())) {
                    errs.push((
                        format!("{at}/{}", escape(k)),
                        format!(
                            "unknown key {k:?}; expected one of {}",
                            TARGET_KEYS.join(", ")
                        ),
                    ));
                }
                let inputs: Vec<&String> = o.keys().filter(|k| k.starts_with("input")).collect();
                if inputs.len() > 1 {
                    errs.push((
                        at.clone(),
                        "use only one of input, input_path, input_transformer".into(),
                    ));
                }
                let input = inputs.first().map(|k| {
                    let mut one = Map::new();
                    one.insert((*k).clone(), o[k.as_str()].clone());
                    Value::Object(one)
                });
                // Validate the transformation now, so a bad path or placeholder fails the load.
                if let Some(spec) = &input
                    && let Err(e) = crate::render::Input::parse(spec)
                {
                    errs.extend(e.into_iter().map(|(p, m)| (format!("{at}{p}"), m)));
                }
                match o.get("target") {
                    Some(Value::String(s)) => (s.clone(), input, format!("{at}/target")),
                    _ => {
                        errs.push((
                            format!("{at}/target"),
                            "a target object needs \"target\": NAME".into(),
                        ));
                        continue;
                    }
                }
            }
            _ => {
                errs.push((at, "a target is a name or an object with \"target\"".into()));
                continue;
            }
        };
        if !known.contains(&name) {
            let list: Vec<&str> = known.iter().map(String::as_str).collect();
            errs.push((
                name_at,
                format!(
                    "unknown target {name:?}; configured targets: {}",
                    list.join(", ")
                ),
            ));
            continue;
        }
        if out.iter().any(|t: &RuleTarget| t.target == name) {
            errs.push((at, format!("target {name:?} listed twice")));
            continue;
        }
        out.push(RuleTarget {
            target: name,
            input,
        });
    }
    out
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known() -> Known {
        Known {
            targets: ["console".to_owned(), "hook".to_owned()].into(),
            ..Known::default()
        }
    }

    #[test]
    fn the_pattern_size_limit_is_configurable() {
        let long = format!(r#"{{"source": ["{}"]}}"#, "x".repeat(3000));
        let doc = json!({"name": "r", "event_pattern": long, "targets": ["console"]});
        let errs = parse_rule(&doc, &known()).unwrap_err();
        assert!(errs[0].1.contains("the limit is 2048"), "{errs:?}");
        let roomy = Known {
            limits: scanbridge_pattern::Limits {
                max_len: 4096,
                ..Default::default()
            },
            ..known()
        };
        assert!(parse_rule(&doc, &roomy).is_ok());
    }

    #[test]
    fn a_valid_rule_with_defaults() {
        let r = parse_rule(
            &json!({"name":"r1","event_pattern":{"source":["aws.ecr"]},"targets":["console",{"target":"hook","input_path":"$.detail"}]}),
            &known(),
        )
        .unwrap();
        assert!(r.enabled);
        assert_eq!(
            r.targets[0],
            RuleTarget {
                target: "console".into(),
                input: None
            }
        );
        assert_eq!(r.targets[1].input, Some(json!({"input_path":"$.detail"})));
        assert!(r.pattern.matches(&json!({"source":"aws.ecr"})));
    }

    #[test]
    fn alerting_options_parse_and_errors_have_pointers() {
        let r = parse_rule(
            &json!({"name":"r","event_pattern":{"source":["x"]},"targets":["console"],
                "dedup": {"window": "1h"}, "notify_on": "new_findings",
                "group_by": ["$.detail.repository-name"], "group_wait": "2s"}),
            &known(),
        )
        .unwrap();
        assert_eq!(
            r.alert.dedup.unwrap().window,
            std::time::Duration::from_secs(3600)
        );
        assert_eq!(r.alert.notify_on, crate::alerting::NotifyOn::NewFindings);
        assert_eq!(
            r.alert.group.unwrap().wait,
            std::time::Duration::from_secs(2)
        );
        let errs = parse_rule(
            &json!({"name":"r","event_pattern":{"source":["x"]},"targets":["console"],
                "dedup": {"window": 5}, "notify_on": "sometimes", "group_interval": "1m"}),
            &known(),
        )
        .unwrap_err();
        let ptrs: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            ptrs,
            ["/dedup/window", "/notify_on", "/group_interval"],
            "{errs:?}"
        );
    }

    #[test]
    fn every_error_with_its_pointer() {
        let errs = parse_rule(
            &json!({"nme":"x","event_pattern":{"detail":{"n":[{"numeric":[">>",0]}]}},"targets":["nope",7]}),
            &known(),
        )
        .unwrap_err();
        let ptrs: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
        assert!(ptrs.contains(&"/nme"), "{errs:?}");
        assert!(ptrs.contains(&"/name"), "{errs:?}");
        assert!(ptrs.contains(&"/targets/0"), "{errs:?}");
        assert!(ptrs.contains(&"/targets/1"), "{errs:?}");
        let (p, m) = errs
            .iter()
            .find(|(p, _)| p.starts_with("/event_pattern"))
            .expect("pattern error");
        assert!(p.starts_with("/event_pattern/detail/n"), "{p}");
        assert!(m.starts_with("Event pattern is not valid. Reason: "), "{m}");
        let unknown = errs.iter().find(|(p, _)| p == "/targets/0").unwrap();
        assert!(
            unknown.1.contains("\"nope\"") && unknown.1.contains("console"),
            "{unknown:?}"
        );
    }

    #[test]
    fn bad_input_transformation_fails_the_load_with_its_pointer() {
        let errs = parse_rule(
            &json!({"name":"r","event_pattern":{"source":["x"]},"targets":[{"target":"hook",
                "input_transformer":{"input_paths_map":{"repo":"detail.repository-name"},
                "input_template":"\"<repo> <nope>\""}}]}),
            &known(),
        )
        .unwrap_err();
        let ptrs: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
        assert!(
            ptrs.contains(&"/targets/0/input_transformer/input_paths_map/repo"),
            "{errs:?}"
        );
        assert!(
            ptrs.contains(&"/targets/0/input_transformer/input_template"),
            "{errs:?}"
        );
    }

    #[test]
    fn directory_reports_file_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let good = r#"{"name":"a","event_pattern":{"source":["x"]},"targets":["console"]}"#;
        std::fs::write(dir.path().join("a.json"), good).unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "name: a\nevent_pattern:\n  source: [x]\ntargets: [console]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("c.json"), "{ not json").unwrap();
        std::fs::write(dir.path().join("README.md"), "ignored").unwrap();
        let errs = load_dir(dir.path(), &known()).unwrap_err().0;
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].file.ends_with("b.yaml") && errs[0].message.contains("duplicate"));
        assert!(errs[1].file.ends_with("c.json") && errs[1].message.contains("not valid JSON"));
        assert!(errs[1].to_string().contains("c.json: not valid JSON"));
    }

    #[test]
    fn shipped_rules_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let rules = load_dir(&dir, &known()).unwrap();
        assert_eq!(rules.len(), 6);
    }

    #[test]
    fn built_in_rules_are_the_shipped_rules_and_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut shipped: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        shipped.sort();
        let builtin: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            shipped, builtin,
            "every file of rules/ must be embedded in BUILTIN"
        );
        for (name, text) in BUILTIN {
            load_text(&Path::new("<built-in>").join(name), text, &known()).unwrap();
        }
    }
}
