//! scanbridge: EventBridge + SNS for container-image vulnerability scans, on one machine.
//!
//! The binary is a thin shell over these modules:
//! - [`cli`]: one file per subcommand; each returns an [`cli::Outcome`] that `main` maps to an exit code.
//!
//! The pattern semantics live in the `scanbridge-pattern` crate (no I/O, no async).

pub mod cli;
