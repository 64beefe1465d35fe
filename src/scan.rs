//! The facts a person reads in a scan alert, drawn from an event whatever its kind: ECR Image Scan
//! (basic scanning), Inspector2 Scan (enhanced scanning: `repository-name` is an ARN, zero counts
//! present, TOTAL), Inspector2 Finding (one CVE in one package of one image), ECR Image Action, a
//! scanner report's Image Scan (`scanbridge.trivy`, `.grype`, `.trivy-operator`: ECR's keys plus
//! `findings`), or any other event (generic).
//!
//! Promises: severity counts come in the fixed order CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL,
//! UNDEFINED with absent severities as 0 (basic scanning omits zero counts); the repository is a name
//! even when the event carries an ARN; the console URL is built only when region, account, repository
//! and digest are all known and pass their syntax checks (never for a scanner report's Image Scan:
//! that image is not in ECR), and a finding's advisory URL is a `link` only when it is `https:`; the top
//! findings are the most severe first, those with a fix first among equals, at most [`TOP_FINDINGS`].
//! Never fails: missing fields give `None`/empty, never a panic, for any content. The facts are raw
//! text: escaping for each format is the renderers' job ([`crate::escape`]).

use serde::Serialize;
use serde_json::Value;

/// The scan severities, in the order people read them.
pub const SEVERITIES: [&str; 6] = [
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNDEFINED",
];

/// The `source` of the digest events scanbridge makes from a group of matches (alerting's digests).
pub const DIGEST_SOURCE: &str = "scanbridge";
/// The `detail-type` of digest events.
pub const DIGEST_DETAIL_TYPE: &str = "Scan Digest";

/// Whether `event` is a digest made by scanbridge (it is not grouped, deduplicated or silenced again).
pub fn is_digest(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some(DIGEST_SOURCE)
        && event.get("detail-type").and_then(Value::as_str) == Some(DIGEST_DETAIL_TYPE)
}

/// What kind of event this is, for the templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    EcrScan,
    InspectorScan,
    InspectorFinding,
    EcrPush,
    /// A digest made by scanbridge from a group of matches (see [`is_digest`]).
    Digest,
    /// A scanner report's event (`detail-type` `Image Scan`): ECR's keys plus `findings`.
    ImageScan,
    Generic,
}

/// One severity and its count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Count {
    pub severity: &'static str,
    pub count: u64,
}

/// One Inspector2 finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Finding {
    pub id: Option<String>,
    pub title: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub package: Option<String>,
    pub installed_version: Option<String>,
    pub fixed_in: Option<String>,
    pub fix_available: Option<String>,
    pub score: Option<f64>,
    /// The advisory URL as the event gives it (text: it may be anything).
    pub url: Option<String>,
    /// `url` when it is a valid `https:` URL: the only form that becomes a link.
    pub link: Option<String>,
    pub description: Option<String>,
    pub recommendation: Option<String>,
}

/// Everything templates and the Slack blocks show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facts {
    pub kind: Kind,
    pub detail_type: String,
    pub source: String,
    pub event_id: String,
    pub region: Option<String>,
    pub account: Option<String>,
    pub time: Option<String>,
    pub repository: Option<String>,
    pub tags: Vec<String>,
    /// The first tag, if any.
    pub tag: Option<String>,
    /// `repo:tag`, or `repo`, or `-`.
    pub image: String,
    pub digest: Option<String>,
    /// `sha256:` and the first 12 hex digits.
    pub short_digest: Option<String>,
    pub status: Option<String>,
    pub failed: bool,
    /// Fixed order, zeros filled in (Inspector2 Scan: the severities it reports); empty when the event
    /// carries no counts and is not a completed scan.
    pub counts: Vec<Count>,
    pub total: u64,
    /// The most severe severity with a non-zero count (an Inspector2 finding: its severity).
    pub worst: Option<String>,
    pub console_url: Option<String>,
    pub finding: Option<Finding>,
    /// What the event is about, as AWS names it: an Inspector2 finding's resource id (the image's
    /// ARN with its digest), else the event's first `resources` entry.
    pub resource: Option<String>,
    /// The findings worth naming, most severe first (an Image Scan's `detail.findings`; an Inspector2
    /// Finding's one finding).
    pub top_findings: Vec<Finding>,
    /// Findings counted but not in `top_findings`.
    pub findings_more: u64,
    /// A digest's images (`kind == "digest"`), one line each, read from `detail.items`; empty for
    /// other kinds.
    pub items: Vec<DigestItem>,
    /// Non-zero counts, "2 CRITICAL, 7 HIGH" (or "no findings"); an Inspector2 finding: its CVE,
    /// severity, score and package, "CVE-2026-10001 CRITICAL (score 9.8) in libssl3 3.0.15".
    pub summary: String,
    /// One line saying what happened ("2 CRITICAL, 7 HIGH in payments/api:v2.14.0").
    pub headline: String,
    /// What changed since the previous scan of the image, when the store knew one (set by
    /// [`crate::render::template::Context::with_delta`]).
    pub delta: Option<Delta>,
}

/// One image of a digest: its latest result among the group's matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DigestItem {
    /// `repo:tag` (or `-`).
    pub image: String,
    /// "2 CRITICAL, 7 HIGH".
    pub summary: String,
    pub worst: Option<String>,
    pub short_digest: Option<String>,
    /// The ECR console link as the digest event holds it (content: show it only through the
    /// `console_link` filter).
    pub console_url: Option<String>,
    /// How many of the group's matches were this image (a rescan, a repeated event).
    pub scans: u64,
}

/// The items of a digest event, as text (a forged digest's items may hold anything).
fn digest_items(event: &Value) -> Vec<DigestItem> {
    let Some(Value::Array(items)) = event.pointer("/detail/items") else {
        return Vec::new();
    };
    items
        .iter()
        .map(|i| DigestItem {
            image: s(i, "/image").unwrap_or_else(|| "-".into()),
            summary: s(i, "/summary").unwrap_or_else(|| "-".into()),
            worst: s(i, "/worst"),
            short_digest: s(i, "/short_digest"),
            console_url: s(i, "/console_url"),
            scans: i.get("scans").and_then(Value::as_u64).unwrap_or(1),
        })
        .collect()
}

/// One severity's change, for templates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub severity: &'static str,
    pub before: u64,
    pub after: u64,
}

/// What changed since the previous result of the same image or finding (computed by the alerting
/// history): templates show it as `scan.delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Delta {
    /// `same image` (a rescan of the digest) or `previous image of repo:tag`.
    pub compared_with: String,
    pub previous_event_id: String,
    pub previous_time: Option<String>,
    /// Every severity whose count changed, in fixed order.
    pub changes: Vec<Change>,
    /// Previous counts, fixed order, zeros included.
    pub previous: Vec<Change>,
    /// "CRITICAL 0 -> 2, HIGH 7 -> 5", or "no change".
    pub summary: String,
    /// For a finding: "HIGH -> CRITICAL" / "CLOSED -> ACTIVE", when it changed.
    pub finding: Option<String>,
}

fn s(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr).and_then(Value::as_str).map(str::to_owned)
}

/// `arn:aws:ecr:REGION:ACCOUNT:repository/NAME[/sha256:...]` → (region, account, name).
pub fn parse_repository_arn(arn: &str) -> Option<(String, String, String)> {
    let rest = arn.strip_prefix("arn:")?;
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    if parts.len() < 5 || parts[1] != "ecr" {
        return None;
    }
    let mut name = parts[4].strip_prefix("repository/")?;
    if let Some(at) = name.find("/sha256:") {
        name = &name[..at];
    }
    Some((parts[2].to_owned(), parts[3].to_owned(), name.to_owned()))
}

/// The repository name whether `name_or_arn` is a name or a repository ARN.
pub fn repository_name(name_or_arn: &str) -> String {
    parse_repository_arn(name_or_arn)
        .map(|(_, _, n)| n)
        .unwrap_or_else(|| name_or_arn.to_owned())
}

/// `sha256:9c1d4f3b8e2a7d...` → `sha256:9c1d4f3b8e2a`: 12 characters after the algorithm (counted in
/// characters, not bytes: a digest field may hold any text, and cutting inside a multi-byte
/// character would panic).
pub fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) => format!("{algo}:{}", hex.chars().take(12).collect::<String>()),
        None => digest.chars().take(12).collect(),
    }
}

/// The image's page in the ECR console, or `None` unless region, account, repository and digest all
/// pass their syntax checks (see [`crate::escape::console_url`]: no link is built from content).
pub fn console_url(region: &str, account: &str, repository: &str, digest: &str) -> Option<String> {
    crate::escape::console_url(region, account, repository, digest)
}

/// Findings shown by name in an alert, at most.
pub const TOP_FINDINGS: usize = 5;

/// The rank of a severity name, most severe first (unknown names last).
pub fn severity_rank(severity: &str) -> usize {
    SEVERITIES
        .iter()
        .position(|s| *s == severity)
        .unwrap_or(SEVERITIES.len())
}

/// `s` on one line (control characters as spaces), at most `max` characters, the cut marked `…`.
pub fn clip(s: &str, max: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The top [`TOP_FINDINGS`] of an Image Scan's `detail.findings` (whoever wrote them: sorted here).
fn top_findings(findings: Option<&Value>) -> Vec<Finding> {
    let Some(Value::Array(all)) = findings else {
        return Vec::new();
    };
    let mut list: Vec<Finding> = all
        .iter()
        .filter(|f| f.is_object())
        .map(|f| Finding {
            id: s(f, "/id"),
            // One short line: these land in subjects of attention, not advisories.
            title: s(f, "/title").map(|t| clip(&t, 100)),
            severity: s(f, "/severity"),
            package: s(f, "/package"),
            installed_version: s(f, "/installed-version"),
            fixed_in: s(f, "/fixed-version"),
            // Only web links become links.
            url: s(f, "/url").filter(|u| u.starts_with("https://") || u.starts_with("http://")),
            link: s(f, "/url").and_then(|u| crate::escape::https_url(&u)),
            ..Finding::default()
        })
        .collect();
    list.sort_by_key(|f| {
        (
            severity_rank(f.severity.as_deref().unwrap_or_default()),
            f.fixed_in.is_none(),
        )
    });
    list.truncate(TOP_FINDINGS);
    list
}

impl Facts {
    /// Reads the facts of `event`.
    pub fn of(event: &Value) -> Facts {
        let detail_type = s(event, "/detail-type").unwrap_or_default();
        let source = s(event, "/source").unwrap_or_default();
        let kind = match (source.as_str(), detail_type.as_str()) {
            (_, "ECR Image Scan") => Kind::EcrScan,
            (_, "Inspector2 Scan") => Kind::InspectorScan,
            (_, "Inspector2 Finding") => Kind::InspectorFinding,
            (_, "ECR Image Action") => Kind::EcrPush,
            (DIGEST_SOURCE, DIGEST_DETAIL_TYPE) => Kind::Digest,
            (src, "Image Scan") if src.starts_with("scanbridge.") => Kind::ImageScan,
            _ => Kind::Generic,
        };
        let mut region = s(event, "/region");
        let mut account = s(event, "/account");
        let mut repository = None;
        let mut tags: Vec<String> = Vec::new();
        let mut digest = s(event, "/detail/image-digest");
        let mut finding = None;
        if let Some(name) = s(event, "/detail/repository-name") {
            if let Some((r, a, n)) = parse_repository_arn(&name) {
                region = Some(r);
                account = Some(a);
                repository = Some(n);
            } else {
                repository = Some(name);
            }
        }
        match event.pointer("/detail/image-tags") {
            Some(Value::Array(a)) => {
                tags = a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            }
            _ => tags.extend(s(event, "/detail/image-tag")),
        }
        if kind == Kind::InspectorFinding {
            let img = "/detail/resources/0/details/awsEcrContainerImage";
            repository = s(event, &format!("{img}/repositoryName")).or(repository);
            digest = s(event, &format!("{img}/imageHash")).or(digest);
            if let Some(Value::Array(a)) = event.pointer(&format!("{img}/imageTags")) {
                tags = a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
            }
            region = s(event, "/detail/resources/0/region").or(region);
            account = s(event, &format!("{img}/registry")).or(account);
            let pkg = "/detail/packageVulnerabilityDetails/vulnerablePackages/0";
            finding = Some(Finding {
                id: s(event, "/detail/packageVulnerabilityDetails/vulnerabilityId"),
                title: s(event, "/detail/title"),
                severity: s(event, "/detail/severity"),
                status: s(event, "/detail/status"),
                package: s(event, &format!("{pkg}/name")),
                installed_version: s(event, &format!("{pkg}/version")),
                fixed_in: s(event, &format!("{pkg}/fixedInVersion")),
                fix_available: s(event, "/detail/fixAvailable"),
                score: event
                    .pointer("/detail/inspectorScore")
                    .and_then(Value::as_f64),
                url: s(event, "/detail/packageVulnerabilityDetails/sourceUrl"),
                link: s(event, "/detail/packageVulnerabilityDetails/sourceUrl")
                    .and_then(|u| crate::escape::https_url(&u)),
                description: s(event, "/detail/description"),
                recommendation: s(event, "/detail/remediation/recommendation/text"),
            });
        }
        let status = s(event, "/detail/scan-status");
        let failed = status.as_deref() == Some("FAILED");
        let raw_counts = event.pointer("/detail/finding-severity-counts");
        let is_scan = matches!(kind, Kind::EcrScan | Kind::InspectorScan | Kind::ImageScan);
        let counts: Vec<Count> = if raw_counts.is_some() || (is_scan && !failed) {
            SEVERITIES
                .iter()
                // Enhanced scanning reports CRITICAL, HIGH, MEDIUM (+ TOTAL) with zeros: show what it
                // reports rather than inventing LOW 0 when TOTAL says otherwise.
                .filter(|sev| {
                    kind != Kind::InspectorScan
                        || raw_counts.is_some_and(|c| c.get(**sev).is_some())
                })
                .map(|sev| Count {
                    severity: sev,
                    count: raw_counts
                        .and_then(|c| c.get(*sev))
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                })
                .collect()
        } else {
            Vec::new()
        };
        let total = raw_counts
            .and_then(|c| c.get("TOTAL"))
            .and_then(Value::as_u64)
            .unwrap_or_else(|| counts.iter().fold(0u64, |t, c| t.saturating_add(c.count)));
        let worst = counts
            .iter()
            .find(|c| c.count > 0)
            .map(|c| c.severity.to_owned())
            .or_else(|| finding.as_ref().and_then(|f| f.severity.clone()));
        let resource = match kind {
            Kind::InspectorFinding => s(event, "/detail/resources/0/id"),
            _ => None,
        }
        .or_else(|| s(event, "/resources/0"));
        let tag = tags.first().cloned();
        let image = match (&repository, &tag) {
            (Some(r), Some(t)) => format!("{r}:{t}"),
            (Some(r), None) => r.clone(),
            _ => "-".to_owned(),
        };
        let console_url = match (&region, &account, &repository, &digest) {
            _ if kind == Kind::ImageScan => None,
            (Some(r), Some(a), Some(n), Some(d)) => console_url(r, a, n, d),
            _ => None,
        };
        let top_findings: Vec<Finding> = match (&finding, kind) {
            (Some(f), _) => vec![f.clone()],
            (None, Kind::ImageScan) => top_findings(event.pointer("/detail/findings")),
            _ => Vec::new(),
        };
        let listed = match kind {
            Kind::ImageScan => counts.iter().fold(0u64, |t, c| t.saturating_add(c.count)),
            _ => top_findings.len() as u64,
        };
        let findings_more = listed.saturating_sub(top_findings.len() as u64);
        let items = if kind == Kind::Digest {
            digest_items(event)
        } else {
            Vec::new()
        };
        let mut facts = Facts {
            kind,
            detail_type,
            source,
            event_id: s(event, "/id").unwrap_or_default(),
            region,
            account,
            time: s(event, "/time"),
            repository,
            tags,
            tag,
            image,
            short_digest: digest.as_deref().map(short_digest),
            digest,
            status,
            failed,
            counts,
            total,
            worst,
            console_url,
            finding,
            resource,
            top_findings,
            findings_more,
            items,
            summary: String::new(),
            headline: String::new(),
            delta: None,
        };
        facts.summary = if kind == Kind::Digest {
            s(event, "/detail/headline").unwrap_or_else(|| "scan digest".into())
        } else {
            facts.summary()
        };
        facts.headline = facts.make_headline();
        facts
    }

    /// Non-zero counts as "2 CRITICAL, 7 HIGH" (or "no findings"); a finding's CVE, severity, score
    /// and package.
    pub fn summary(&self) -> String {
        if let (Kind::InspectorFinding, Some(f)) = (self.kind, &self.finding) {
            let mut t = format!(
                "{} {}",
                f.id.as_deref().unwrap_or("finding"),
                f.severity.as_deref().unwrap_or("UNKNOWN")
            );
            if let Some(score) = f.score {
                t.push_str(&format!(" (score {score})"));
            }
            if let Some(p) = &f.package {
                t.push_str(&format!(" in {p}"));
                if let Some(v) = &f.installed_version {
                    t.push_str(&format!(" {v}"));
                }
            }
            return t;
        }
        let parts: Vec<String> = self
            .counts
            .iter()
            .filter(|c| c.count > 0)
            .map(|c| format!("{} {}", c.count, c.severity))
            .collect();
        if parts.is_empty() {
            "no findings".to_owned()
        } else {
            parts.join(", ")
        }
    }

    fn make_headline(&self) -> String {
        match self.kind {
            Kind::EcrScan | Kind::InspectorScan | Kind::ImageScan if self.failed => {
                format!("Scan FAILED for {}", self.image)
            }
            Kind::EcrScan | Kind::InspectorScan | Kind::ImageScan if self.worst.is_none() => {
                format!("No vulnerabilities found in {}", self.image)
            }
            Kind::EcrScan | Kind::InspectorScan | Kind::ImageScan => {
                format!("{} in {}", self.summary(), self.image)
            }
            Kind::InspectorFinding => {
                let f = self.finding.clone().unwrap_or_default();
                format!(
                    "{} {} in {} ({})",
                    f.severity.as_deref().unwrap_or("UNKNOWN"),
                    f.id.as_deref().unwrap_or("finding"),
                    f.package.as_deref().unwrap_or("a package"),
                    self.image
                )
            }
            Kind::EcrPush => format!("Image pushed: {}", self.image),
            Kind::Digest => self.summary.clone(),
            Kind::Generic => format!(
                "{} from {}",
                if self.detail_type.is_empty() {
                    "event"
                } else {
                    &self.detail_type
                },
                if self.source.is_empty() {
                    "unknown source"
                } else {
                    &self.source
                }
            ),
        }
    }
}

/// One line saying what was fixed: `Resolved: payments/api:v2.14.0 — CRITICAL 2 -> 0, HIGH 7 -> 0`
/// (a finding: its CVE, package and image; no change in counts: "no longer matches rule R").
pub fn resolved_headline(facts: &Facts, delta: Option<&Delta>, rule: &str) -> String {
    let what = match (&facts.kind, &facts.finding) {
        (Kind::InspectorFinding, Some(f)) => format!(
            "{} in {} ({})",
            f.id.as_deref().unwrap_or("finding"),
            f.package.as_deref().unwrap_or("a package"),
            facts.image
        ),
        _ => facts.image.clone(),
    };
    match delta.map(|d| d.summary.as_str()) {
        Some(s) if s != "no change" => format!("Resolved: {what} — {s}"),
        _ => format!("Resolved: {what} no longer matches rule {rule}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample;
    use serde_json::json;

    fn counts(f: &Facts) -> Vec<u64> {
        f.counts.iter().map(|c| c.count).collect()
    }

    #[test]
    fn ecr_basic_scan_fills_zeros_in_fixed_order() {
        let f = Facts::of(&sample("ecr-image-scan-high-only.json"));
        assert_eq!(f.kind, Kind::EcrScan);
        assert_eq!(counts(&f), [0, 3, 14, 1, 0, 2]);
        assert_eq!(f.worst.as_deref(), Some("HIGH"));
        assert_eq!(f.image, "web/frontend:main-4f2a9c1");
        assert_eq!(f.short_digest.as_deref(), Some("sha256:41e2c7a9b8d6"));
        assert_eq!(
            f.console_url.as_deref(),
            Some(
                "https://eu-west-1.console.aws.amazon.com/ecr/repositories/private/123456789012/web/frontend/_/image/sha256:41e2c7a9b8d6f5e4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918071625a3/details?region=eu-west-1"
            )
        );
        assert_eq!(
            f.headline,
            "3 HIGH, 14 MEDIUM, 1 LOW, 2 UNDEFINED in web/frontend:main-4f2a9c1"
        );
    }

    #[test]
    fn clean_and_failed_scans() {
        let clean = Facts::of(&sample("ecr-image-scan-clean.json"));
        assert_eq!(counts(&clean), [0; 6]);
        assert_eq!(
            clean.headline,
            "No vulnerabilities found in tools/distroless-base"
        );
        let failed = Facts::of(&sample("ecr-image-scan-failed.json"));
        assert!(failed.failed && failed.counts.is_empty());
        assert_eq!(
            failed.headline,
            "Scan FAILED for scratch/static-binary:1.0.3"
        );
    }

    #[test]
    fn inspector_scan_repository_arn_becomes_a_name() {
        let f = Facts::of(&sample("inspector2-scan.json"));
        assert_eq!(f.kind, Kind::InspectorScan);
        assert_eq!(f.repository.as_deref(), Some("payments/worker"));
        assert_eq!(f.region.as_deref(), Some("us-east-2"));
        assert_eq!(counts(&f), [1, 0, 6], "only what enhanced scanning reports");
        assert_eq!(f.total, 10, "TOTAL wins over the sum");
        assert!(
            f.console_url
                .unwrap()
                .contains("/private/123456789012/payments/worker/_/image/sha256:1a2b")
        );
    }

    #[test]
    fn inspector_finding_has_cve_package_and_fix() {
        let f = Facts::of(&sample("inspector2-finding.json"));
        let x = f.finding.clone().unwrap();
        assert_eq!(x.id.as_deref(), Some("CVE-2026-10001"));
        assert_eq!(x.package.as_deref(), Some("libssl3"));
        assert_eq!(x.fixed_in.as_deref(), Some("3.0.15-1~deb12u2"));
        assert_eq!(f.image, "payments/worker:release-2026.11");
        assert_eq!(
            f.headline,
            "CRITICAL CVE-2026-10001 in libssl3 (payments/worker:release-2026.11)"
        );
        assert!(f.console_url.is_some());
        // A finding is not a scan with counts, but says its severity and what it is.
        assert_eq!(f.worst.as_deref(), Some("CRITICAL"));
        assert_eq!(
            f.summary,
            "CVE-2026-10001 CRITICAL (score 9.8) in libssl3 3.0.15"
        );
        assert_eq!(
            f.resource.as_deref(),
            Some(
                "arn:aws:ecr:us-east-2:123456789012:repository/payments/worker/sha256:1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809"
            )
        );
    }

    #[test]
    fn a_hostile_event_cannot_steer_the_console_link() {
        let mut e = sample("ecr-image-scan-critical.json");
        assert!(Facts::of(&e).console_url.is_some());
        for (ptr, bad) in [
            ("/region", "evil.example/#"),
            ("/account", "1234|<x>"),
            ("/detail/repository-name", "a/<https://evil.example|click>"),
            ("/detail/image-digest", "sha256:ab>cd"),
        ] {
            let mut v = e.clone();
            *v.pointer_mut(ptr).unwrap() = json!(bad);
            assert_eq!(Facts::of(&v).console_url, None, "{ptr} = {bad}");
        }
        *e.pointer_mut("/region").unwrap() = json!("eu-west-3");
        assert!(
            Facts::of(&e)
                .console_url
                .unwrap()
                .starts_with("https://eu-west-3.console.")
        );
    }

    #[test]
    fn generic_and_helpers() {
        let f = Facts::of(&json!({"source":"ci","detail-type":"Build","detail":{}}));
        assert_eq!(f.kind, Kind::Generic);
        assert_eq!(f.headline, "Build from ci");
        assert!(f.counts.is_empty() && f.console_url.is_none());
        assert_eq!(
            repository_name("arn:aws:ecr:us-east-1:1:repository/a/b"),
            "a/b"
        );
        assert_eq!(repository_name("a/b"), "a/b");
        assert_eq!(short_digest("abc"), "abc");
        // Multi-byte characters where the cut falls (the poisoned-batch panic of issue 11).
        assert_eq!(short_digest("sha256:ééééééééééééé"), "sha256:éééééééééééé");
        assert_eq!(short_digest("🀥K𝂃¥𑴂&{🩬?ኞ\"xyz"), "🀥K𝂃¥𑴂&{🩬?ኞ\"x");
    }

    #[test]
    fn headlines_say_what_changed() {
        let e = sample("ecr-image-scan-clean.json");
        let f = Facts::of(&e);
        assert_eq!(
            resolved_headline(&f, None, "r"),
            "Resolved: tools/distroless-base no longer matches rule r"
        );
        let before = sample("ecr-image-scan-critical.json");
        let o = crate::alerting::observe(&before).unwrap();
        let d = crate::alerting::delta(
            &sample("ecr-image-scan-high-only.json"),
            &crate::alerting::HistoryPrevious {
                via: "x".into(),
                record: o.record,
            },
        );
        let f = Facts::of(&sample("ecr-image-scan-high-only.json"));
        assert_eq!(
            resolved_headline(&f, Some(&d), "r"),
            "Resolved: web/frontend:main-4f2a9c1 — CRITICAL 2 -> 0, HIGH 7 -> 3, MEDIUM 19 -> 14, LOW 4 -> 1, INFORMATIONAL 3 -> 0, UNDEFINED 0 -> 2"
        );
    }
}
