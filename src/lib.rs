//! scanbridge: EventBridge + SNS for container-image vulnerability scans, on one machine.
//!
//! The binary is a thin shell over [`run`]; the library exports only what the binary, the
//! integration tests, the fuzz targets and the examples use. Inside, one room per module (the map,
//! with what each room owns and must not touch, is `ARCHITECTURE.md` at the project root):
//! - `cli`: one file per subcommand; each returns an [`Outcome`] that `main` maps to an exit code.
//! - `settings` (the whole configuration, layered: defaults, file, environment) over `config` (the
//!   typed sections, secrets redacted, the error every room reports).
//! - `rules`: rule files to validated rules, every error with file and JSON pointer; `reload`: hot
//!   reload on file change and SIGHUP; [`lint`]: warnings for patterns AWS accepts that almost never
//!   mean what they say (public: `scanbridge::lint::{lint, Lint}`, for `check-patterns`).
//! - `event`: the EventBridge envelope: validation and normalisation; `strict_json` parses it,
//!   refusing duplicate keys. `scan`: the scan facts every room reads (kinds, severities, digests,
//!   repository from ARN).
//! - `router`: event bytes to deliveries (rule × target, deterministic ids); atomic rule-set swap.
//! - `ingest`: the doors (`http`: `POST /events`, health, metrics; `aws`: PutEvents and
//!   TestEventPattern over AWS JSON 1.1; `reports`: scanner reports (Trivy, Grype, trivy-operator) to
//!   Image Scan events, pure, with `POST /reports` in `reports/door.rs`; `sns`: SNS subscriptions,
//!   signature verification, `POST /sns`; `stdin`) into the store.
//! - `store`: the durable store (events, outbox, dead letters, alerting state) behind a small trait;
//!   SQLite.
//! - `worker` and `retry`: lease, send, ack, retry with backoff, dead-letter.
//! - `replay`: archived events routed again through the current rules (one path for the daemon's
//!   `POST /api/v1/replay` and `scanbridge replay --data-dir`).
//! - `retention`: the background pruner (retention windows, room near `store.max_db_bytes`) and
//!   `room`: whether ingest may accept now (503 when the disk is full or pending work fills the store).
//! - `alerting`: the stages between the outbox and a receiver: resolve (alert keys and the order of
//!   triggers and resolves), silences, new-findings-only (scan history), deduplication, digests and
//!   rate limits, all reading time from one clock.
//! - `notify`: one module per receiver (console, webhook, email, Slack, Teams, PagerDuty, Opsgenie,
//!   topic; `incident` what pagers share) and their contract with the worker; `render`: what a
//!   receiver sends (input transformation, message templates).
//! - `compute`: the bounded pool where CPU work (validation, matching, rule compilation) runs, off the
//!   async runtime.
//! - `admin`: the admin API (`/api/v1`: events and what became of their deliveries, dead letters,
//!   silences, rules, the pattern sandbox) that the UI and programs use; `ui`: the browser sandbox
//!   and console under `/ui` (embedded pages, sign-in sessions, CSRF, security headers).
//! - `metrics`, `logging`, `shutdown`: observability and lifecycle.
//! - `infra`: event patterns in CloudFormation, SAM, CDK, Terraform and Serverless files, checked and
//!   tested by `check-patterns` (issue 20), one module per source format.
//! - `escape`: every value from an event made safe for the format it lands in (Slack mrkdwn, HTML,
//!   headers, console, logs), and links only from validated parts; it knows no other room.
//! - `exercise`: one event through every room in process, for the property test and the fuzz target.
//!
//! The pattern semantics live in the `scanbridge-pattern` crate (no I/O, no async).

#![forbid(unsafe_code)]

mod admin;
mod alerting;
mod cli;
mod compute;
mod config;
mod env_keys;
mod escape;
mod event;
#[doc(hidden)]
pub mod exercise;
mod inbox;
mod infra;
mod ingest;
pub mod lint;
mod logging;
mod metrics;
mod notify;
mod reload;
mod render;
mod replay;
mod retention;
mod retry;
mod room;
mod router;
mod rules;
mod scan;
mod settings;
mod shutdown;
mod store;
mod strict_json;
mod ui;
mod worker;

pub use cli::{Cli, Command, Outcome, run};
pub use event::{EnvelopeRules, Event, Rejection, validate};
pub use ingest::server::{ConnLimits, serve as serve_http};
pub use ingest::{BodyError, Shape, split_body};
pub use store::delivery_id;
pub use strict_json::from_str as parse_json_strict;

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

    /// The event a scanner report of `tests/fixtures/reports/NAME` becomes.
    pub fn report_event(name: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reports")
            .join(name);
        let body = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let rules = crate::event::EnvelopeRules {
            max_event_bytes: 262_144,
            account: "111122223333".into(),
            region: "eu-west-1".into(),
        };
        match crate::ingest::reports::convert(&body, None, &rules).unwrap() {
            crate::ingest::reports::Converted::Event { event, .. } => event,
            other => panic!("{name}: {other:?}"),
        }
    }
}
