//! The command line: the `Cli` definition (clap derive) and dispatch to one module per subcommand.
//!
//! Every command returns an [`Outcome`]; `main` turns it into the process exit code so that scripts can
//! rely on 0 = success or match, 1 = no match, 2 = error.

use clap::{Parser, Subcommand};

pub mod admin_client;
pub mod check;
pub mod check_patterns;
mod check_templates;
pub mod client;
pub mod dlq;
pub mod events;
pub mod health;
mod input;
pub mod notify_test;
mod outcome;
pub mod replay;
pub mod report_event;
pub mod route;
pub mod sandbox;
pub mod send;
pub mod serve;
pub mod silence;
pub mod store;
pub mod store_args;
pub mod suppressed;
pub mod test_pattern;

pub use outcome::Outcome;

/// Local EventBridge + SNS for container-image vulnerability scans.
#[derive(Debug, Parser)]
#[command(name = "scanbridge", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Test an EventBridge event pattern against events, offline (exit 0 match, 1 no match, 2 error).
    TestPattern(test_pattern::Args),
    /// Run the daemon: ingest events, route them by rules/, deliver to targets durably.
    Serve(serve::Args),
    /// Validate config.toml and every rule file; report every error (exit 2 on any).
    Check(check::Args),
    /// Validate and test the event patterns in CloudFormation, SAM, CDK, Terraform and Serverless
    /// files and rule files (exit 0 all good, 1 a pattern is invalid or a test failed, 2 unreadable
    /// input).
    CheckPatterns(check_patterns::Args),
    /// Post events (or, with --report, scanner reports) from files to a running daemon.
    Send(send::Args),
    /// Print the event a Trivy, Grype or trivy-operator report becomes (one JSON line), offline.
    ReportEvent(report_event::Args),
    /// Inspect, redrive or purge dead letters (through the daemon's admin API, or --data-dir).
    Dlq(dlq::Args),
    /// Exit 0 if a running daemon is ready (for container health checks).
    Health(health::Args),
    /// Show which rules, targets and subscriptions an event reaches and the exact payloads, sending
    /// nothing (exit 0 if a rule matched, 1 if none, 2 on error).
    Route(route::Args),
    /// Send one sample event to a configured target now and report the outcome (exit 0 delivered).
    NotifyTest(notify_test::Args),
    /// Add, list or expire silences (and CVE allowlist entries), through the daemon or --data-dir.
    Silence(silence::Args),
    /// List notifications not sent on purpose (silenced, duplicate, not news), newest first.
    Suppressed(suppressed::Args),
    /// Browse the archive of accepted events and what became of their deliveries, through the daemon
    /// or --data-dir.
    Events(events::Args),
    /// Send archived events again through the current rules, in the daemon or on --data-dir
    /// (--dry-run: print what would be sent).
    Replay(replay::Args),
    /// Check the store's integrity, back it up while the daemon runs, or restore a backup.
    Store(store::Args),
    /// Serve the browser pattern sandbox alone (no store, nothing sent): http://ADDR/ui/sandbox.
    Sandbox(sandbox::Args),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::TestPattern(args) => test_pattern::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => check::run(args),
        Command::CheckPatterns(args) => check_patterns::run(args),
        Command::Send(args) => send::run(args),
        Command::ReportEvent(args) => report_event::run(args),
        Command::Dlq(args) => dlq::run(args),
        Command::Health(args) => health::run(args),
        Command::Route(args) => route::run(args),
        Command::NotifyTest(args) => notify_test::run(args),
        Command::Silence(args) => silence::run(args),
        Command::Suppressed(args) => suppressed::run(args),
        Command::Events(args) => events::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Store(args) => store::run(args),
        Command::Sandbox(args) => sandbox::run(args),
    }
}
