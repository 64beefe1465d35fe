//! `scanbridge report-event FILE|-`: prints the event a scanner report becomes (one line of JSON, as the
//! daemon would store it), so a CI job can test its rules with no daemon:
//! `trivy image -f json IMG | scanbridge report-event - | scanbridge test-pattern --pattern P --event -`.
//!
//! `account`, `region` and the event size limit come from the configuration (`--config`, defaults as
//! `serve`). Exit 0 with the event on stdout; 2 (the reason on stderr) for a body that is no report, or a
//! report kind that carries no vulnerabilities.

use crate::alerting::system_clock;
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;

use super::outcome::Outcome;
use crate::event::EnvelopeRules;
use crate::ingest::reports::{self, Converted, Format};
use crate::settings::Settings;

/// Arguments of `scanbridge report-event`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The report: a file, or `-` for stdin.
    pub report: String,
    /// Force the format instead of detecting it: trivy, grype or trivy-operator.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Configuration file layered over the built-in defaults (for `[aws]` account and region).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let settings = Settings::load(args.config.as_deref())?;
    let (name, body) = if args.report == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut b)
            .context("reading stdin")?;
        ("<stdin>".to_owned(), b)
    } else {
        let b = std::fs::read(&args.report).with_context(|| format!("reading {}", args.report))?;
        (args.report.clone(), b)
    };
    let forced = match args.format.as_deref().map(Format::parse).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("scanbridge: {e}");
            return Ok(Outcome::Invalid);
        }
    };
    let rules = EnvelopeRules {
        max_event_bytes: settings.server.max_event_bytes,
        account: settings.aws.account.clone(),
        region: settings.aws.region.clone(),
    };
    match reports::convert(&body, forced, &rules) {
        Err(e) => {
            eprintln!("scanbridge: {name}: {e}");
            Ok(Outcome::Invalid)
        }
        Ok(Converted::Ignored(why)) => {
            eprintln!("scanbridge: {name}: skipped: {why}");
            Ok(Outcome::Invalid)
        }
        Ok(Converted::Event { event, omitted, .. }) => {
            // Exactly what the daemon stores: the same validation and normalisation.
            let ev = match crate::event::validate_built(event, &rules, system_clock().now_ms()) {
                Ok(ev) => ev,
                Err(e) => {
                    eprintln!("scanbridge: {name}: {e}");
                    return Ok(Outcome::Invalid);
                }
            };
            if omitted > 0 {
                eprintln!(
                    "scanbridge: {name}: {omitted} findings left out of detail.findings to keep the event within {} bytes (the counts include them)",
                    rules.max_event_bytes
                );
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", ev.body)?;
            Ok(Outcome::Success)
        }
    }
}
