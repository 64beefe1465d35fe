//! What a report says, whatever its format: the types and small readers that [`super::trivy`],
//! [`super::grype`] and [`super::trivy_operator`] share (the contract of the `reports` folder).

use serde_json::{Map, Value};

pub(crate) use crate::scan::clip;

/// The report formats understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Trivy,
    Grype,
    TrivyOperator,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Trivy, Format::Grype, Format::TrivyOperator];

    /// The name used in `?format=` and in `source` (`scanbridge.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Trivy => "trivy",
            Format::Grype => "grype",
            Format::TrivyOperator => "trivy-operator",
        }
    }

    /// What people call it, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Format::Trivy => "Trivy",
            Format::Grype => "Grype",
            Format::TrivyOperator => "trivy-operator",
        }
    }

    /// The event `source`.
    pub fn source(self) -> &'static str {
        match self {
            Format::Trivy => "scanbridge.trivy",
            Format::Grype => "scanbridge.grype",
            Format::TrivyOperator => "scanbridge.trivy-operator",
        }
    }

    /// `trivy`, `grype` or `trivy-operator` (case-insensitive).
    pub fn parse(name: &str) -> Result<Format, ReportError> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| ReportError::UnknownFormat(name.to_owned()))
    }
}

/// Why a body did not become an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    #[error("report is not UTF-8: invalid byte at offset {offset}")]
    NotUtf8 { offset: usize },
    #[error("report is not valid JSON: {0}")]
    Malformed(String),
    #[error("unknown report format {0:?}: the formats understood are trivy, grype, trivy-operator")]
    UnknownFormat(String),
    #[error(
        "not a report scanbridge understands (Trivy JSON SchemaVersion 2, Grype JSON, trivy-operator VulnerabilityReport): {}",
        .0.join("; ")
    )]
    Unrecognised(Vec<String>),
    #[error("not a {format} report: {why}")]
    NotThis { format: &'static str, why: String },
    #[error("{format} report: {field}: {why}")]
    Invalid {
        format: &'static str,
        field: String,
        why: String,
    },
}

/// One vulnerability in one package, in ECR's severity names.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub id: String,
    pub severity: &'static str,
    pub package: Option<String>,
    pub installed_version: Option<String>,
    pub fixed_version: Option<String>,
    pub title: Option<String>,
    pub url: Option<String>,
}

/// The image a report is about, as far as the report says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Image {
    /// The repository path without the registry host (`payments/api`), or what was scanned when it
    /// is not an image (a tarball, a directory).
    pub repository: Option<String>,
    pub registry: Option<String>,
    pub tags: Vec<String>,
    /// The manifest digest (`sha256:...`), else the image ID (see each format's rules).
    pub digest: Option<String>,
    /// The image (config) ID, when the report gives it.
    pub image_id: Option<String>,
    /// What was scanned, as the user named it: `resources[0]` of the event.
    pub artifact: Option<String>,
}

/// What one report says, independent of its format.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    pub format: Format,
    /// The event id (see the module doc).
    pub id: String,
    pub image: Image,
    /// When the report was made (RFC 3339, seconds), if it says.
    pub time: Option<String>,
    pub scanner: Map<String, Value>,
    pub findings: Vec<Finding>,
    /// Format-specific additions to `detail` (trivy-operator's `kubernetes`).
    pub extra: Map<String, Value>,
}

/// A recognised body: a scan to turn into an event, or a report of a kind that carries no
/// vulnerabilities (trivy-operator sends every report kind to one URL), skipped with the reason.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Scan(Box<Scan>),
    Ignored(String),
}

/// ECR's severity name for a scanner's: CRITICAL, HIGH, MEDIUM, LOW as they are (any case); Grype's
/// Negligible, and NONE / INFO, as INFORMATIONAL; Trivy's UNKNOWN, Grype's Unknown and anything else as
/// UNDEFINED.
pub fn ecr_severity(name: &str) -> &'static str {
    match name.trim().to_ascii_uppercase().as_str() {
        "CRITICAL" => "CRITICAL",
        "HIGH" => "HIGH",
        "MEDIUM" => "MEDIUM",
        "LOW" => "LOW",
        "NEGLIGIBLE" | "INFORMATIONAL" | "INFO" | "NONE" => "INFORMATIONAL",
        _ => "UNDEFINED",
    }
}

/// `Some(trimmed)` unless empty.
pub(crate) fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The strings of an optional array field.
pub(crate) fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A string field of `v`, if present and not empty.
pub(crate) fn text(v: &Value, key: &str) -> Option<String> {
    non_empty(v.get(key).and_then(Value::as_str))
}

/// A report's own time as EventBridge writes times (RFC 3339, seconds, UTC), if it parses.
pub(crate) fn report_time(s: Option<&str>) -> Option<String> {
    let t = humantime::parse_rfc3339_weak(s?.trim()).ok()?;
    Some(humantime::format_rfc3339_seconds(t).to_string())
}
