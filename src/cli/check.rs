//! `scanbridge check`: validates the configuration, every rule file and every message template,
//! reporting every error at once on stderr, each naming where it is: `FILE: key: message` for the
//! configuration (the file, or the environment variable, that set the value), `FILE: /json/pointer:
//! message` for rules, `template NAME, line N: ...` for templates (each rendered, strictly, with a
//! sample of every kind of event: [`super::check_templates`]). Exit 0 when all is valid, 2 on any
//! error.

use std::path::PathBuf;

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
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(errs) => {
            for p in &errs.0 {
                eprintln!("{p}");
            }
            eprintln!("{} error(s)", errs.0.len());
            return Ok(Outcome::Invalid);
        }
    };
    let mut errors: Vec<String> = Vec::new();
    if let Err(e) = crate::ingest::sns::door::Sns::new(&settings.sns) {
        errors.push(e.to_string());
    }
    let known = crate::rules::Known::from_settings(&settings);
    let dir = args.rules.clone().unwrap_or(settings.rules.dir.clone());
    let rules = match crate::rules::load_dir_or_builtin(&dir, &known) {
        Ok(r) => Some(r),
        Err(errs) => {
            errors.extend(errs.0.iter().map(ToString::to_string));
            None
        }
    };
    match settings.load_templates() {
        Ok(t) => errors.extend(super::check_templates::check(&settings, &t)),
        Err(e) => errors.push(e.to_string()),
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("{} error(s)", errors.len());
        return Ok(Outcome::Invalid);
    }
    let (rules, builtin) = rules.expect("no errors");
    let enabled = rules.iter().filter(|r| r.enabled).count();
    let from = if builtin {
        format!(
            "the built-in examples (no {} directory here)",
            dir.display()
        )
    } else {
        dir.display().to_string()
    };
    let templates = match &settings.templates.dir {
        Some(d) => format!("templates from {} over the defaults", d.display()),
        None => "the default templates".to_owned(),
    };
    println!(
        "ok: {} rule(s) ({enabled} enabled) in {from}, {} target(s), {templates}",
        rules.len(),
        known.targets.len()
    );
    Ok(Outcome::Success)
}
