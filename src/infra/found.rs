//! What `check-patterns` finds in a file, whatever its format: the contract every reader of this folder
//! shares ([`Found`], [`Body`], [`Format`], [`InfraError`]) and small helpers for paths and output lines.

use std::path::{Path, PathBuf};

use super::holes::Holed;
use super::locate::Lines;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_control_characters_only() {
        assert_eq!(one_line("a\nb\r\u{1b}[2J é"), "a\\nb\\r\\u{1b}[2J é");
        assert_eq!(one_line("plain"), "plain");
    }
}
