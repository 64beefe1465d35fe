//! `scanbridge report-event INPUT...`: prints the event each scanner report becomes (one line of JSON
//! per report, as the daemon would store it), so a CI job can test its rules with no daemon:
//! `trivy image -f json IMG | scanbridge report-event - | scanbridge test-pattern --pattern P --event -`.
//! Inputs are read as every command reads them ([`super::input`]): files, directories, inline JSON
//! or `-`, each holding one report, a JSON array of reports, or NDJSON.
//!
//! `account`, `region` and the event size limit come from the configuration (`--config`, defaults as
//! `serve`). Exit 0 with the event on stdout; 2 (the reason on stderr) for a body that is no report, or a
//! report kind that carries no vulnerabilities (the other reports are still printed).

use crate::alerting::system_clock;
use std::io::Write;
use std::path::PathBuf;

use super::outcome::Outcome;
use crate::event::EnvelopeRules;
use crate::ingest::reports::{self, Converted, Format};
use crate::settings::Settings;

/// Arguments of `scanbridge report-event`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The report(s): files, directories (their *.json, *.jsonl, *.ndjson), inline JSON, or - for
    /// stdin; each one report (pretty or not), a JSON array of reports, or NDJSON.
    #[arg(required = true, value_name = "INPUT")]
    pub reports: Vec<String>,
    /// Force the format instead of detecting it: trivy, grype or trivy-operator.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Configuration file layered over the built-in defaults (for `[aws]` account and region).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let settings = Settings::load(args.config.as_deref())?;
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
    let mut outcome = Outcome::Success;
    for item in super::input::read(&args.reports) {
        let doc = match item {
            Ok(d) => d,
            Err(f) => {
                eprintln!("scanbridge: {f}");
                outcome = Outcome::Invalid;
                continue;
            }
        };
        if !convert(&doc.name, doc.text.as_bytes(), forced, &rules)? {
            outcome = Outcome::Invalid;
        }
    }
    Ok(outcome)
}

/// Converts one report and prints its event (true); the reason on stderr when it is none (false).
fn convert(
    name: &str,
    body: &[u8],
    forced: Option<Format>,
    rules: &EnvelopeRules,
) -> std::io::Result<bool> {
    match reports::convert(body, forced, rules) {
        Err(e) => {
            eprintln!("scanbridge: {name}: {e}");
            Ok(false)
        }
        Ok(Converted::Ignored(why)) => {
            eprintln!("scanbridge: {name}: skipped: {why}");
            Ok(false)
        }
        Ok(Converted::Event { event, omitted, .. }) => {
            // Exactly what the daemon stores: the same validation and normalisation.
            let ev = match crate::event::validate_built(event, rules, system_clock().now_ms()) {
                Ok(ev) => ev,
                Err(e) => {
                    eprintln!("scanbridge: {name}: {e}");
                    return Ok(false);
                }
            };
            if omitted > 0 {
                eprintln!(
                    "scanbridge: {name}: {omitted} findings left out of detail.findings to keep the event within {} bytes (the counts include them)",
                    rules.max_event_bytes
                );
            }
            writeln!(std::io::stdout().lock(), "{}", ev.body)?;
            Ok(true)
        }
    }
}
