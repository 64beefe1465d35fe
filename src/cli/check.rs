//! `scanbridge check`: validates the configuration and every rule file, reporting every error
//! (file, JSON pointer, AWS-style message) on stderr. Exit 0 when all is valid, 2 on any error.
//!
//! It also warns (stderr, `warning: FILE: POINTER: MESSAGE`) about patterns AWS accepts that likely
//! mean something else (`crate::lint`); warnings never change the exit code, and `--no-lint` turns
//! them off. With `--json` the verdict is one JSON object on stdout:
//! `{"ok": true|false, "rules": N, "enabled": N, "targets": N, "errors": [{"file", "pointer",
//! "message"}], "lints": [{"file", "rule", "pointer", "message"}]}` (`rules`, `enabled` and `targets`
//! only when the rules load).

use std::path::PathBuf;

use serde_json::json;

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

/// Prints a configuration error: on stderr, or as the JSON verdict.
fn config_error(json: bool, e: impl std::fmt::Display) -> Outcome {
    if json {
        println!(
            "{}",
            json!({"ok": false, "errors": [{"file": "", "pointer": "", "message": e.to_string()}], "lints": []})
        );
    } else {
        eprintln!("{e}");
    }
    Outcome::Invalid
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => return Ok(config_error(args.json, e)),
    };
    if let Err(e) = crate::ingest::sns::door::Sns::new(&settings.sns) {
        return Ok(config_error(args.json, e));
    }
    let known = crate::rules::Known::from_settings(&settings);
    let dir = args.rules.unwrap_or(settings.rules.dir);
    match crate::rules::load_dir_or_builtin(&dir, &known) {
        Ok((rules, builtin)) => {
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
            println!(
                "ok: {} rule(s) ({enabled} enabled) in {from}, {} target(s){}",
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
        Err(errs) => {
            if args.json {
                let errors: Vec<_> = errs
                    .0
                    .iter()
                    .map(|e| {
                        json!({"file": e.file.display().to_string(), "pointer": e.pointer,
                               "message": e.message})
                    })
                    .collect();
                println!("{}", json!({"ok": false, "errors": errors, "lints": []}));
                return Ok(Outcome::Invalid);
            }
            for e in &errs.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errs.0.len());
            Ok(Outcome::Invalid)
        }
    }
}
