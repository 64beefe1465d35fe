//! `scanbridge check`: validates the configuration and every rule file, reporting every error
//! (file, JSON pointer, AWS-style message) on stderr. Exit 0 when all is valid, 2 on any error.

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
        Err(e) => {
            eprintln!("{e}");
            return Ok(Outcome::Invalid);
        }
    };
    if let Err(e) = crate::ingest::sns::door::Sns::new(&settings.sns) {
        eprintln!("{e}");
        return Ok(Outcome::Invalid);
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
            println!(
                "ok: {} rule(s) ({enabled} enabled) in {from}, {} target(s)",
                rules.len(),
                known.targets.len()
            );
            Ok(Outcome::Success)
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errs.0.len());
            Ok(Outcome::Invalid)
        }
    }
}
