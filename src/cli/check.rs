//! `scanbridge check`: validates the configuration, every rule file and every message template,
//! reporting every error at once on stderr, each naming where it is: `FILE: key: message` for the
//! configuration (the file, or the environment variable, that set the value), `FILE: /json/pointer:
//! message` for rules, `template NAME, line N: ...` for templates (each rendered, strictly, with a
//! sample of every kind of event: [`super::check_templates`]). Exit 0 when all is valid, 2 on any
//! error.
//!
//! It also warns (stderr, `warning: FILE: POINTER: MESSAGE`) about patterns AWS accepts that likely
//! mean something else (`crate::lint`); warnings never change the exit code, and `--no-lint` turns
//! them off. With `--json` the verdict is one JSON object on stdout:
//! `{"ok": true|false, "rules": N, "enabled": N, "targets": N, "errors": [{"file", "pointer",
//! "message"}], "lints": [{"file", "rule", "pointer", "message"}]}` (`rules`, `enabled` and `targets`
//! only when the rules load). A configuration error's `file` is where its value came from (the file,
//! `environment variable NAME`, or the built-in defaults); a template error's `file` is the template.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::outcome::Outcome;
use crate::settings::Settings;

/// Arguments of `scanbridge check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file layered over the built-in defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Rules directory (overrides `rules.dir`).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Do not warn about rule patterns that likely mean something else.
    #[arg(long)]
    pub no_lint: bool,
    /// Print the verdict, errors and warnings as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One error: the line printed, and its JSON form.
struct Error {
    line: String,
    json: Value,
}

impl Error {
    fn other(file: &str, message: String) -> Error {
        Error {
            line: message.clone(),
            json: json!({"file": file, "pointer": "", "message": message}),
        }
    }
}

/// Prints the errors (stderr, or the JSON verdict) and says invalid.
fn invalid(json: bool, errors: &[Error]) -> Outcome {
    if json {
        let list: Vec<&Value> = errors.iter().map(|e| &e.json).collect();
        println!("{}", json!({"ok": false, "errors": list, "lints": []}));
    } else {
        for e in errors {
            eprintln!("{}", e.line);
        }
        eprintln!("{} error(s)", errors.len());
    }
    Outcome::Invalid
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(errs) => {
            let errors: Vec<Error> = errs
                .0
                .iter()
                .map(|p| {
                    let line = p.to_string();
                    let message = line
                        .strip_prefix(&format!("{}: ", p.origin))
                        .unwrap_or(&line)
                        .to_owned();
                    Error {
                        json: json!({"file": p.origin, "pointer": "", "message": message}),
                        line,
                    }
                })
                .collect();
            return Ok(invalid(args.json, &errors));
        }
    };
    let mut errors: Vec<Error> = Vec::new();
    if let Err(e) = crate::ingest::sns::door::Sns::new(&settings.sns) {
        errors.push(Error::other("", e.to_string()));
    }
    let known = crate::rules::Known::from_settings(&settings);
    let dir = args.rules.clone().unwrap_or(settings.rules.dir.clone());
    let rules = match crate::rules::load_dir_or_builtin(&dir, &known) {
        Ok(r) => Some(r),
        Err(errs) => {
            errors.extend(errs.0.iter().map(|e| Error {
                line: e.to_string(),
                json: json!({"file": e.file.display().to_string(), "pointer": e.pointer,
                             "message": e.message}),
            }));
            None
        }
    };
    match settings.load_templates() {
        Ok(t) => errors.extend(
            super::check_templates::check(&settings, &t)
                .into_iter()
                .map(|m| Error::other("templates", m)),
        ),
        Err(e) => errors.push(Error::other("templates", e.to_string())),
    }
    let Some((rules, builtin)) = rules.filter(|_| errors.is_empty()) else {
        return Ok(invalid(args.json, &errors));
    };
    let enabled = rules.iter().filter(|r| r.enabled).count();
    let from = if builtin {
        format!(
            "the built-in examples (no {} directory here)",
            dir.display()
        )
    } else {
        dir.display().to_string()
    };
    let lints: Vec<&crate::rules::Rule> = if args.no_lint {
        Vec::new()
    } else {
        rules.iter().filter(|r| !r.lints.is_empty()).collect()
    };
    if args.json {
        let lints: Vec<_> = lints
            .iter()
            .flat_map(|r| {
                r.lints.iter().map(|l| {
                    json!({"file": r.file.display().to_string(), "rule": r.name,
                           "pointer": l.pointer, "message": l.message})
                })
            })
            .collect();
        println!(
            "{}",
            json!({"ok": true, "rules": rules.len(), "enabled": enabled,
                   "targets": known.targets.len(), "errors": [], "lints": lints})
        );
        return Ok(Outcome::Success);
    }
    let mut warnings = 0;
    for r in &lints {
        for line in r.lint_lines() {
            eprintln!("warning: {line}");
            warnings += 1;
        }
    }
    let templates = match &settings.templates.dir {
        Some(d) => format!("templates from {} over the defaults", d.display()),
        None => "the default templates".to_owned(),
    };
    println!(
        "ok: {} rule(s) ({enabled} enabled) in {from}, {} target(s), {templates}{}",
        rules.len(),
        known.targets.len(),
        if warnings > 0 {
            format!(", {warnings} warning(s)")
        } else {
            String::new()
        }
    );
    Ok(Outcome::Success)
}
