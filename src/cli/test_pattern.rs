//! `scanbridge test-pattern`: evaluate an EventBridge pattern against events, offline, in AWS's words.
//!
//! Three ways in:
//! - one pattern, one or more events (`--event` repeated, a directory of `*.json`, or NDJSON on stdin);
//! - `--explain` adds the field-by-field reasons, `--json` prints one JSON object per event;
//! - patterns AWS accepts that likely mean something else get warnings on stderr (`crate::lint`), and
//!   with `--json` a `lints` array (`[{"pointer", "message"}]`) on each line; `--no-lint` turns them
//!   off. Warnings never change the exit code;
//! - `--cases FILE.jsonl` runs a conformance suite: each line has `name`, `event`, `pattern` (an object,
//!   or a string holding raw pattern text) and gets one output line
//!   `{"name": ..., "result": "match"|"nomatch"|"error", "message": ...}` (message on errors only).
//!   Each case is judged as AWS `TestEventPattern` would, so an event lacking the envelope fields AWS
//!   requires is an error.
//!
//! Exit codes: 0 every event matched (or, with `--cases`, every case was evaluated); 1 some event did
//! not match; 2 the pattern or an event is invalid (the message goes to stderr).

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use scanbridge_pattern::{Event, Limits, Pattern};
use serde_json::{Value, json};

use super::outcome::Outcome;

/// The envelope fields AWS `TestEventPattern` requires of an event.
const ENVELOPE: [&str; 6] = ["id", "source", "detail-type", "account", "region", "time"];

/// Arguments of `scanbridge test-pattern`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["pattern", "cases"])))]
pub struct Args {
    /// The pattern: a file path, inline JSON, or `-` for stdin.
    #[arg(long, short = 'p', value_name = "P")]
    pub pattern: Option<String>,

    /// An event: a file path, inline JSON, a directory (every *.json in it), or `-` for NDJSON on
    /// stdin. Repeat for several.
    #[arg(long, short = 'e', value_name = "E", requires = "pattern")]
    pub event: Vec<String>,

    /// Print field by field why each event matched or not.
    #[arg(long)]
    pub explain: bool,

    /// Print one JSON object per event instead of text.
    #[arg(long)]
    pub json: bool,

    /// Require the six envelope fields AWS TestEventPattern requires (id, source, detail-type,
    /// account, region, time).
    #[arg(long)]
    pub require_envelope: bool,

    /// Run a conformance suite: JSON lines with name, event, pattern.
    #[arg(long, value_name = "FILE.jsonl", conflicts_with_all = ["pattern", "event", "explain"])]
    pub cases: Option<PathBuf>,

    /// Longest pattern accepted, in characters (EventBridge: 2048 by default, up to 4096 by quota).
    #[arg(long, default_value_t = Limits::default().max_len, value_name = "CHARS")]
    pub max_pattern_length: usize,

    /// Do not warn about patterns that AWS accepts but that likely mean something else.
    #[arg(long)]
    pub no_lint: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let limits = Limits {
        max_len: args.max_pattern_length,
        ..Limits::default()
    };
    if let Some(cases) = &args.cases {
        return run_cases(cases, &limits);
    }
    let Some(pattern_arg) = &args.pattern else {
        bail!("--pattern or --cases is required");
    };
    let (pattern_name, pattern_text) = read_input(pattern_arg, "pattern")?;
    let (pattern_name, pattern_text) = match rule_pattern(&pattern_name, pattern_text) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("scanbridge: pattern {pattern_name}: {msg}");
            return Ok(Outcome::Invalid);
        }
    };
    let pattern = match Pattern::parse_with_limits(&pattern_text, &limits) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("scanbridge: pattern {pattern_name}: {}", e.detailed());
            return Ok(Outcome::Invalid);
        }
    };
    for w in pattern.warnings() {
        eprintln!("scanbridge: pattern {pattern_name}: warning: {w}");
    }
    let lints = if args.no_lint {
        Vec::new()
    } else {
        crate::lint::lint(&pattern_text)
    };
    for l in &lints {
        eprintln!("scanbridge: pattern {pattern_name}: warning: {l}");
    }

    if args.event.is_empty() {
        bail!(
            "no event given: use --event FILE, --event DIR, --event '{{...}}' or --event - (stdin)"
        );
    }
    let events = super::input::read(&args.event);
    let many = events.len() > 1;
    let mut stdout = std::io::stdout().lock();
    let (mut all_matched, mut any_invalid) = (true, false);
    for item in events {
        let parsed = item.and_then(|doc| {
            parse_event(&doc.text, args.require_envelope)
                .map(|ev| (doc.name.clone(), ev))
                .map_err(|message| super::input::Failed {
                    name: doc.name,
                    message,
                })
        });
        let (name, event) = match parsed {
            Ok(p) => p,
            Err(super::input::Failed { name, message: msg }) => {
                any_invalid = true;
                if args.json {
                    let mut out = json!({"event": name, "result": "error", "message": msg});
                    if !lints.is_empty() {
                        out["lints"] = json!(lints);
                    }
                    writeln!(stdout, "{out}")?;
                }
                eprintln!("scanbridge: event {name}: {msg}");
                continue;
            }
        };
        let matched = pattern.matches_event(&event);
        all_matched &= matched;
        if args.json {
            let mut out =
                json!({"event": name, "result": if matched { "match" } else { "nomatch" }});
            if args.explain {
                out["explain"] = pattern.explain(&event).to_json();
            }
            if !lints.is_empty() {
                out["lints"] = json!(lints);
            }
            writeln!(stdout, "{out}")?;
        } else if args.explain {
            let head = if many {
                format!("{name}: ")
            } else {
                String::new()
            };
            write!(stdout, "{head}{}", pattern.explain(&event))?;
        } else if many {
            writeln!(
                stdout,
                "{name}: {}",
                if matched { "match" } else { "no match" }
            )?;
        } else {
            writeln!(stdout, "{}", if matched { "match" } else { "no match" })?;
        }
    }
    Ok(if any_invalid {
        Outcome::Invalid
    } else if all_matched {
        Outcome::Success
    } else {
        Outcome::NoMatch
    })
}

/// Reads `-` (stdin), inline JSON, or a file; returns a name for messages and the text.
fn read_input(arg: &str, what: &str) -> anyhow::Result<(String, String)> {
    if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        return Ok(("<stdin>".into(), s));
    }
    if looks_inline(arg) {
        return Ok(("<inline>".into(), arg.to_string()));
    }
    let text = std::fs::read_to_string(arg).with_context(|| {
        format!("cannot read {what} {arg:?} (expected a file path, inline JSON, or - for stdin)")
    })?;
    Ok((arg.to_string(), text))
}

fn looks_inline(arg: &str) -> bool {
    super::input::is_inline(arg)
}

/// A pattern given as a rule file (JSON or YAML, as in `rules/`) is that rule's `event_pattern`: its
/// name becomes `FILE (event_pattern)` and pointers stay those of the pattern. Anything else is the
/// pattern itself. A `.yaml`/`.yml` file must be a rule file.
fn rule_pattern(name: &str, text: String) -> Result<(String, String), String> {
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    let doc: Value = if yaml {
        serde_norway::from_str(&text).map_err(|e| format!("not valid YAML: {e}"))?
    } else {
        match serde_json::from_str(&text) {
            Ok(v) => v,
            // Not JSON at all: the pattern parser says why, in AWS's words.
            Err(_) => return Ok((name.to_owned(), text)),
        }
    };
    let is_rule = doc.as_object().is_some_and(|m| {
        m.contains_key("event_pattern")
            && m.keys()
                .all(|k| crate::rules::RULE_KEYS.contains(&k.as_str()))
    });
    if !is_rule {
        return if yaml {
            Err("a YAML pattern file must be a rule file (with `event_pattern`)".into())
        } else {
            Ok((name.to_owned(), text))
        };
    }
    let pattern = match &doc["event_pattern"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok((format!("{name} (event_pattern)"), pattern))
}

/// Parses an event; with `envelope`, also demands AWS's six fields.
fn parse_event(text: &str, envelope: bool) -> Result<Event, String> {
    let event = Event::from_bytes(text.as_bytes()).map_err(|e| e.to_string())?;
    if envelope {
        let missing: Vec<&str> = ENVELOPE
            .iter()
            .copied()
            .filter(|k| !event.fields().iter().any(|f| f.path == *k))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "Parameter Event is not valid (AWS requires the envelope fields {}; missing: {})",
                ENVELOPE.join(", "),
                missing.join(", ")
            ));
        }
    }
    Ok(event)
}

/// Batch mode: one output line per case; exit 0 once every case was evaluated.
fn run_cases(path: &Path, limits: &Limits) -> anyhow::Result<Outcome> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut stdout = std::io::stdout().lock();
    let mut bad_lines = 0;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let where_ = format!("{}:{}", path.display(), i + 1);
        let case: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("scanbridge: {where_}: not a JSON object: {e}");
                bad_lines += 1;
                continue;
            }
        };
        let (Some(name), Some(pattern), Some(event)) =
            (case.get("name"), case.get("pattern"), case.get("event"))
        else {
            eprintln!("scanbridge: {where_}: a case needs name, pattern and event");
            bad_lines += 1;
            continue;
        };
        let raw = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let result = match Pattern::parse_with_limits(&raw(pattern), limits) {
            Err(e) => {
                json!({"name": name, "result": "error", "message": e.to_string(), "pointer": e.pointer()})
            }
            Ok(p) => match parse_event(&raw(event), true) {
                Err(msg) => {
                    json!({"name": name, "result": "error", "message": msg, "error_in": "event"})
                }
                Ok(ev) => {
                    json!({"name": name, "result": if p.matches_event(&ev) { "match" } else { "nomatch" }})
                }
            },
        };
        writeln!(stdout, "{result}")?;
    }
    Ok(if bad_lines == 0 {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}
