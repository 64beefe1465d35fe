//! Event patterns in infrastructure code: finding them, checking them and testing them (issue 20).
//!
//! `scanbridge check-patterns` reads the files teams deploy patterns with — CloudFormation and SAM
//! templates, CDK's synthesized templates, Terraform configuration, plans and state, Serverless
//! Framework files — and scanbridge's own rule files, and turns every event pattern it finds into a
//! [`Found`]: the file, the resource (logical id, address or rule name), the line the pattern starts
//! on, and the pattern itself as JSON text in which every value known only at deploy time (an
//! intrinsic function, an interpolation, a variable) is a [`holes::Hole`] with a name and the source
//! text it stands for. [`check`] validates a pattern with the pattern crate's AWS-exact messages,
//! checking around the holes; [`pattern_tests`] runs the users' "must match / must not match" cases.
//!
//! One module per source format ([`cloudformation`] with [`sam`] and [`cdk`], [`terraform`],
//! [`terraform_plan`], [`serverless`], [`rule_file`]); [`discover`] walks directories and decides which
//! format a file is in; [`locate`] finds source lines; [`junit`] and [`github`] are CI output formats.
//!
//! Promises: a readable file that is not infrastructure code yields no pattern (never an error); a file
//! that cannot be read or parsed is an [`InfraError`] naming the file (and the line, where the parser
//! says); patterns come out in document order.

pub mod cdk;
pub mod check;
pub mod cloudformation;
pub mod discover;
mod found;
pub mod github;
pub mod holes;
pub mod junit;
pub mod locate;
pub mod pattern_tests;
mod pointer;
pub mod rule_file;
pub mod sam;
pub mod serverless;
pub mod terraform;
pub mod terraform_plan;
pub mod yaml;

pub use found::{Found, InfraError, one_line, same_file};
