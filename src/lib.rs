//! scanbridge: EventBridge + SNS for container-image vulnerability scans, on one machine.
//!
//! The binary is a thin shell over these modules:
//! - [`cli`]: one file per subcommand; each returns an [`cli::Outcome`] that `main` maps to an exit code.
//! - [`config`]: layered, typed settings (defaults, file, environment); secrets redacted.
//! - [`rules`]: rule files to validated rules, every error with file and JSON pointer.
//! - [`event`]: the EventBridge envelope: validation and normalisation; [`strict_json`] parses it,
//!   refusing duplicate keys.
//! - [`router`]: event to deliveries (rule × target, deterministic ids); atomic rule-set swap.
//! - [`reload`]: hot reload of the rules on file change and SIGHUP.
//! - [`ingest`]: the doors (HTTP `/events`, AWS PutEvents/TestEventPattern, stdin) into the store.
//! - [`store`]: the durable store (events, outbox, dead letters) behind a small trait; SQLite.
//! - [`worker`] and [`retry`]: lease, send, ack, retry with backoff, dead-letter.
//! - [`target`]: delivery targets (console, webhook, email, Slack, topic) and their contract with the
//!   worker.
//! - [`render`]: what a target receives: input transformation, scan facts, message templates.
//! - [`alerting`]: the notification pipeline between the outbox and a target (issue 7): silences
//!   ([`silence`]), new-findings-only ([`history`]), deduplication ([`dedup`]), digests ([`digest`]) and
//!   rate limits ([`ratelimit`]), all reading time from a [`clock`].
//! - [`admin`]: the admin API (`/api/v1`: events and deliveries, dead letters, silences, rules, the
//!   pattern sandbox) that the UI and programs use; [`ui`]: the browser sandbox and console (`/ui`).
//! - [`metrics`], [`logging`], [`shutdown`]: observability and lifecycle.
//!
//! The pattern semantics live in the `scanbridge-pattern` crate (no I/O, no async).

pub mod admin;
pub mod alerting;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dedup;
pub mod digest;
pub mod event;
pub mod history;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod ratelimit;
pub mod reload;
pub mod render;
pub mod retry;
pub mod router;
pub mod rules;
pub mod shutdown;
pub mod silence;
pub mod store;
pub mod strict_json;
pub mod target;
pub mod ui;
pub mod worker;

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::Value;

    /// A sample event of the shared kit (`../shared/samples/NAME`); a missing kit fails the test.
    pub fn sample(name: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/samples")
            .join(name);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap()
    }
}
