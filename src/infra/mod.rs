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

use std::path::{Path, PathBuf};

pub mod cdk;
pub mod check;
pub mod cloudformation;
pub mod discover;
pub mod github;
pub mod holes;
pub mod junit;
pub mod locate;
pub mod pattern_tests;
pub mod rule_file;
pub mod sam;
pub mod serverless;
pub mod terraform;
pub mod terraform_plan;
pub mod yaml;

use holes::Holed;
use locate::Lines;

/// The source format a pattern was found in (as `--json` names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    CloudFormation,
    Sam,
    Cdk,
    Terraform,
    TerraformPlan,
    TerraformState,
    Serverless,
    ScanbridgeRule,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::CloudFormation => "cloudformation",
            Format::Sam => "sam",
            Format::Cdk => "cdk",
            Format::Terraform => "terraform",
            Format::TerraformPlan => "terraform-plan",
            Format::TerraformState => "terraform-state",
            Format::Serverless => "serverless",
            Format::ScanbridgeRule => "scanbridge-rule",
        }
    }
}

/// What the source holds where the pattern is.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Pattern text, possibly with holes.
    Holed(Holed),
    /// The whole pattern is an expression that cannot be evaluated without deploying
    /// (`event_pattern = var.pattern`, `EventPattern: !If [...]`, a value known after apply).
    Opaque {
        /// The expression as written (or what is unknown).
        shown: String,
        /// Why it cannot be checked, for people, naming the expression
        /// (`the pattern is var.pattern, which Terraform evaluates`).
        why: String,
    },
}

/// One event pattern found in a file.
#[derive(Debug, Clone)]
pub struct Found {
    pub file: PathBuf,
    /// Logical id (CloudFormation, SAM, CDK), address (Terraform), `FUNCTION.events[i]`
    /// (Serverless) or rule name (scanbridge), with a suffix where one resource holds several
    /// patterns (`Pipe.Filters[1]`, `Function.Events.Trigger`).
    pub resource: String,
    pub format: Format,
    /// `AWS::Events::Rule`, `aws_cloudwatch_event_rule`, `eventBridge`, ...
    pub resource_type: String,
    /// CDK's construct path (`Stack/Rule/Resource`), from the template's `aws:cdk:path` metadata.
    pub construct_path: Option<String>,
    pub body: Body,
    /// Source lines of the pattern and of the nodes inside it.
    pub lines: Lines,
}

impl Found {
    /// The line the pattern starts on (1-based), where it can be found.
    pub fn line(&self) -> Option<usize> {
        self.lines.line_of("")
    }
}

/// A file that could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct InfraError {
    pub file: PathBuf,
    /// The line the parser stopped at, when it says.
    pub line: Option<usize>,
    pub message: String,
}

impl InfraError {
    pub fn new(file: &Path, message: impl Into<String>) -> InfraError {
        InfraError {
            file: file.to_owned(),
            line: None,
            message: message.into(),
        }
    }

    pub fn at(file: &Path, line: Option<usize>, message: impl Into<String>) -> InfraError {
        InfraError {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }
}

/// A path to compare files by: canonical when the file exists, else without `.` components, so
/// that `./a/t.yaml`, `a/t.yaml` and `/abs/a/t.yaml` are one file.
pub fn same_file(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        p.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    })
}

/// Text from files made safe for one output line: control characters (a newline in a pattern's
/// key, say) are written as escapes, so no content can start a line of its own.
pub fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Appends one RFC 6901 reference token to a JSON pointer.
pub fn pointer_push(base: &str, token: &str) -> String {
    format!("{base}/{}", token.replace('~', "~0").replace('/', "~1"))
}

/// The reference tokens of a JSON pointer, unescaped.
pub fn pointer_tokens(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_control_characters_only() {
        assert_eq!(one_line("a\nb\r\u{1b}[2J é"), "a\\nb\\r\\u{1b}[2J é");
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn pointers_escape_and_split_as_rfc_6901_says() {
        let p = pointer_push(&pointer_push("", "a/b"), "c~d");
        assert_eq!(p, "/a~1b/c~0d");
        assert_eq!(pointer_tokens(&p), ["a/b", "c~d"]);
        assert!(pointer_tokens("").is_empty());
    }
}
