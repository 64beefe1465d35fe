//! What an on-call tool receives about one alert, whatever the vendor (PagerDuty, Opsgenie): the
//! stable key that groups repeated alerts into one incident, the severity, a one-line summary, the
//! affected image, links, and the details a responder reads. Also the HTTP plumbing the pager and
//! chat targets share: the sending and the classification of vendor answers (the client, which never
//! follows redirects and sends no `Referer`, is [`super::webhook::http_client`]).
//!
//! Promises:
//! - [`vendor_key`] is stable: the same rule and alert key always give the same string, at most 255
//!   characters (PagerDuty's `dedup_key` limit; Opsgenie's `alias` allows 512), so a trigger and its
//!   later resolve name the same incident.
//! - Links are `https:` only: the ECR console link only when it points at an AWS console host, and
//!   advisory URLs from the event only when they parse as `https:` URLs; anything else is left out.
//! - A 3xx answer is a permanent failure naming the status and the redirect's host (never the secret
//!   URL: [`super::webhook::classify`]); an error answer's body is quoted (capped, control characters removed, the target's secret
//!   replaced by `***`) so a dead letter says why the vendor refused.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::attempt::{Message, Outcome};
use crate::scan::{Facts, Kind, SEVERITIES};

/// PagerDuty's `dedup_key` limit (characters); the vendor key never exceeds it.
pub const MAX_KEY: usize = 255;

/// How urgent an alert is, from its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    fn of_severity(s: Option<&str>) -> Level {
        match s.map(str::to_ascii_uppercase).as_deref() {
            Some("CRITICAL") => Level::Critical,
            Some("HIGH") => Level::High,
            Some("MEDIUM") => Level::Medium,
            Some("LOW") => Level::Low,
            _ => Level::Info,
        }
    }

    /// The level of an event: the worst severity with findings (a finding: its severity); a failed
    /// scan and an event of no known kind are `Medium` (someone wrote a rule to be told); a clean
    /// scan or a push is `Info`.
    pub fn of(facts: &Facts, event: &Value) -> Level {
        match facts.kind {
            Kind::EcrScan | Kind::InspectorScan | Kind::ImageScan if facts.failed => Level::Medium,
            Kind::EcrScan | Kind::InspectorScan | Kind::ImageScan => {
                Level::of_severity(facts.worst.as_deref())
            }
            Kind::InspectorFinding => {
                Level::of_severity(facts.finding.as_ref().and_then(|f| f.severity.as_deref()))
            }
            Kind::Digest => {
                Level::of_severity(event.pointer("/detail/worst").and_then(Value::as_str))
            }
            Kind::EcrPush => Level::Info,
            Kind::Generic => Level::Medium,
        }
    }

    /// PagerDuty's `payload.severity`: critical, error, warning or info.
    pub fn pagerduty(self) -> &'static str {
        match self {
            Level::Critical => "critical",
            Level::High => "error",
            Level::Medium => "warning",
            Level::Low | Level::Info => "info",
        }
    }

    /// Opsgenie's priority: P1 (critical) to P5 (informational).
    pub fn opsgenie(self) -> &'static str {
        match self {
            Level::Critical => "P1",
            Level::High => "P2",
            Level::Medium => "P3",
            Level::Low => "P4",
            Level::Info => "P5",
        }
    }
}

/// The incident key a vendor sees: `scanbridge/RULE/ALERT_KEY`, or, when that would exceed
/// [`MAX_KEY`], `scanbridge/RULE/sha256:` and 32 hex digits of the alert key's SHA-256.
pub fn vendor_key(rule: &str, alert_key: &str) -> String {
    let plain = format!("scanbridge/{rule}/{alert_key}");
    if plain.chars().count() <= MAX_KEY {
        return plain;
    }
    let hex: String = Sha256::digest(alert_key.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let short = format!("scanbridge/{rule}/sha256:{hex}");
    short.chars().take(MAX_KEY).collect()
}

/// The alert key of a message: the key it triggers or resolves, else the event's primary key
/// ([`crate::alerting::alert_keys`]), else `event:ID` (an event of no known kind is its own
/// incident).
pub fn alert_key(msg: &Message<'_>) -> String {
    if let Some(a) = msg.alert {
        return a.key.clone();
    }
    crate::alerting::alert_keys(msg.event)
        .map(|k| k.primary)
        .unwrap_or_else(|| format!("event:{}", msg.event_id))
}

/// `url` as a link target if it is a valid `https:` URL ([`crate::escape::https_url`]: a host, no user
/// info, no hidden or space characters, normalised) and, with `host_suffix`, its host ends with it.
pub fn https_link(url: &str, host_suffix: Option<&str>) -> Option<String> {
    let u = crate::escape::https_url(url)?;
    if let Some(suffix) = host_suffix {
        let host = reqwest::Url::parse(&u).ok()?.host_str()?.to_owned();
        if !host.ends_with(suffix) {
            return None;
        }
    }
    Some(u)
}

/// Whether `name` follows ECR's repository name syntax (lowercase components of letters and digits
/// joined by single `.`, `_` or `-`, separated by `/`).
fn ecr_repository_name(name: &str) -> bool {
    let sep = |b: u8| matches!(b, b'.' | b'_' | b'-');
    (2..=256).contains(&name.len())
        && name.split('/').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || sep(*c))
                && !sep(b[0])
                && !sep(b[b.len() - 1])
                && !b.windows(2).any(|w| sep(w[0]) && sep(w[1]))
        })
}

/// The image's page in the ECR console, only when every part it is built from is well formed (an
/// AWS account and region, an ECR repository name, a `sha256:` digest): event content never
/// chooses where the link goes.
pub fn console_link(f: &Facts) -> Option<String> {
    let (account, region) = (f.account.as_deref()?, f.region.as_deref()?);
    let repo = f.repository.as_deref()?;
    let digest = f.digest.as_deref()?;
    let hex = digest.strip_prefix("sha256:")?;
    let ok = crate::alerting::aws_shaped(account, region)
        && ecr_repository_name(repo)
        && hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return None;
    }
    https_link(
        &crate::scan::console_url(region, account, repo, digest)?,
        Some(".console.aws.amazon.com"),
    )
}

/// `s` with hidden characters shown ([`crate::escape::visible_lines`]), then cut to at most `max`
/// characters, marking a cut with `…`: the limit holds for what the vendor receives.
pub fn cap(s: &str, max: usize) -> String {
    crate::escape::cap(&crate::escape::visible_lines(s), max).into_owned()
}

/// Everything a pager shows about one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// The vendor key ([`vendor_key`]).
    pub key: String,
    /// One line: the transformed input when the rule sends a string, else the headline.
    pub summary: String,
    pub level: Level,
    /// The affected image (an image reference), or `scanbridge` for other events.
    pub source: String,
    /// The repository, when known.
    pub component: Option<String>,
    /// The event's `detail-type`.
    pub class: String,
    /// (href, text), `https:` only: the ECR console, then the advisories.
    pub links: Vec<(String, String)>,
    /// Counts, top findings, image, scan status, rule and ids.
    pub details: Map<String, Value>,
}

impl Incident {
    /// The incident of `msg`.
    pub fn of(msg: &Message<'_>) -> Incident {
        let ctx = msg.context();
        let f = &ctx.scan;
        let level = Level::of(f, msg.event);
        let summary = match msg.payload {
            Value::String(s) if ctx.transformed && !s.trim().is_empty() => s.clone(),
            _ => f.headline.clone(),
        };
        let mut links = Vec::new();
        if let Some(u) = console_link(f) {
            links.push((u, "Open the image in the ECR console".to_owned()));
        }
        let refs: Vec<&str> = msg
            .event
            .pointer("/detail/packageVulnerabilityDetails/referenceUrls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (i, x) in f.top_findings.iter().enumerate() {
            let id = x.id.clone().unwrap_or_else(|| "the advisory".into());
            let more = if i == 0 { refs.as_slice() } else { &[] };
            for u in x.url.as_deref().into_iter().chain(more.iter().copied()) {
                if let Some(u) = https_link(u, None)
                    && !links.iter().any(|(h, _)| *h == u)
                    && links.len() < 5
                {
                    links.push((u, format!("{id} advisory")));
                }
            }
        }
        Incident {
            key: vendor_key(msg.rule, &alert_key(msg)),
            summary,
            level,
            source: crate::alerting::image_reference(f).unwrap_or_else(|| "scanbridge".into()),
            component: f.repository.clone(),
            class: if f.detail_type.is_empty() {
                "event".into()
            } else {
                f.detail_type.clone()
            },
            links,
            details: details(msg, f),
        }
    }
}

/// The details of an alert: what a responder reads first, then the ids to find it again.
fn details(msg: &Message<'_>, f: &Facts) -> Map<String, Value> {
    let mut d = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            d.insert(k.to_owned(), v);
        }
    };
    put("rule", json!(msg.rule));
    put("replay", json!(msg.replay));
    put("image", json!(f.image));
    put("repository", json!(f.repository));
    if !f.tags.is_empty() {
        put("tags", json!(f.tags));
    }
    put("digest", json!(f.digest));
    put("scan_status", json!(f.status));
    if !f.counts.is_empty() {
        let counts: Map<String, Value> = f
            .counts
            .iter()
            .map(|c| (c.severity.to_owned(), json!(c.count)))
            .collect();
        put("finding_counts", Value::Object(counts));
        put("total_findings", json!(f.total));
        // An ECR scan event carries counts, not findings: its top findings are the worst severities.
        let top: Vec<String> = f
            .counts
            .iter()
            .filter(|c| c.count > 0)
            .map(|c| format!("{} {}", c.count, c.severity))
            .collect();
        put("top_findings", json!(top));
    }
    if !f.top_findings.is_empty() {
        // A finding, or a scanner report's worst findings (CRITICAL first, fixed first).
        let top: Vec<Value> = f
            .top_findings
            .iter()
            .map(|x| {
                json!({
                    "id": x.id, "title": x.title, "severity": x.severity, "score": x.score,
                    "status": x.status, "package": x.package,
                    "installed_version": x.installed_version, "fixed_in": x.fixed_in,
                    "advisory": x.url, "recommendation": x.recommendation,
                })
            })
            .collect();
        put("top_findings", json!(top));
        if f.findings_more > 0 {
            put("findings_not_listed", json!(f.findings_more));
        }
    }
    if f.kind == Kind::Digest {
        let items: Vec<Value> = msg
            .event
            .pointer("/detail/items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .take(20)
            .map(|i| {
                let s = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("-");
                json!(format!("{}  {}", s("image"), s("summary")))
            })
            .collect();
        put("images", json!(items));
    }
    if f.kind == Kind::Generic {
        put(
            "detail",
            msg.event.get("detail").cloned().unwrap_or(Value::Null),
        );
    }
    if let Some(delta) = msg.delta {
        put(
            "changes",
            json!(format!("{} (since {})", delta.summary, delta.compared_with)),
        );
    }
    let ctx_message = match msg.payload {
        p if p == msg.event => Value::Null,
        Value::String(s) => json!(s),
        other => other.clone(),
    };
    put("message", ctx_message);
    put("console_url", json!(f.console_url));
    put("account", json!(f.account));
    put("region", json!(f.region));
    put("time", json!(f.time));
    put("event_id", json!(msg.event_id));
    put("delivery_id", json!(msg.delivery_id));
    d
}

/// Sends a request to a vendor at `now_ms` and classifies the answer (see the module doc); `secret` (the
/// routing key, API key or webhook URL) is scrubbed from every reason.
pub async fn send(req: reqwest::RequestBuilder, secret: &str, now_ms: i64) -> Outcome {
    let scrub = |s: String| {
        if secret.is_empty() {
            s
        } else {
            s.replace(secret, "***")
        }
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let permanent = e.is_builder();
            let timeout = e.is_timeout();
            let e = e.without_url();
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            let reason = scrub(text);
            return if permanent {
                Outcome::Permanent {
                    reason: format!("cannot build the request: {reason}"),
                }
            } else {
                Outcome::Retryable {
                    retry_after: None,
                    reason: if timeout {
                        format!("timeout: {reason}")
                    } else {
                        format!("request failed: {reason}")
                    },
                }
            };
        }
    };
    let status = resp.status();
    let outcome = super::webhook::classify(status, resp.headers(), now_ms);
    if outcome == Outcome::Delivered {
        return outcome;
    }
    let body = resp.text().await.unwrap_or_default();
    let said: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let said = scrub(cap(said.trim(), 300));
    let with = |reason: String| {
        if said.is_empty() {
            reason
        } else {
            format!("{reason}: {said}")
        }
    };
    match outcome {
        Outcome::Retryable {
            retry_after,
            reason,
        } => Outcome::Retryable {
            retry_after,
            reason: with(reason),
        },
        Outcome::Permanent { reason } => Outcome::Permanent {
            reason: with(reason),
        },
        Outcome::Delivered => Outcome::Delivered,
    }
}

/// Every severity of `counts` in the fixed order, as `CRITICAL 2  HIGH 7  ...` (for texts).
pub fn counts_line(f: &Facts) -> String {
    SEVERITIES
        .iter()
        .filter_map(|s| f.counts.iter().find(|c| c.severity == *s))
        .map(|c| format!("{} {}", c.severity, c.count))
        .collect::<Vec<_>>()
        .join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample;

    fn msg<'a>(event: &'a Value) -> Message<'a> {
        Message {
            delivery_id: "d-1",
            rule: "critical-findings",
            event_id: "e-1",
            event,
            payload: event,
            delta: None,
            now_ms: 0,
            alert: None,
            replay: None,
        }
    }

    #[test]
    fn levels_follow_the_worst_finding() {
        for (name, level) in [
            ("ecr-image-scan-critical.json", Level::Critical),
            ("ecr-image-scan-high-only.json", Level::High),
            ("ecr-image-scan-clean.json", Level::Info),
            ("ecr-image-scan-failed.json", Level::Medium),
            ("inspector2-scan.json", Level::Critical),
            ("inspector2-finding.json", Level::Critical),
            ("ecr-image-action-push.json", Level::Info),
        ] {
            let e = sample(name);
            assert_eq!(Incident::of(&msg(&e)).level, level, "{name}");
        }
        assert_eq!(Level::Critical.pagerduty(), "critical");
        assert_eq!(Level::High.pagerduty(), "error");
        assert_eq!(Level::Medium.opsgenie(), "P3");
        assert_eq!(Level::Info.opsgenie(), "P5");
    }

    #[test]
    fn keys_are_stable_and_short() {
        let e = sample("ecr-image-scan-critical.json");
        let i = Incident::of(&msg(&e));
        assert_eq!(
            i.key,
            "scanbridge/critical-findings/123456789012.dkr.ecr.us-east-1.amazonaws.com/payments/api:v2.14.0"
        );
        let mut again = e.clone();
        again["id"] = json!("another");
        again["detail"]["finding-severity-counts"] = json!({});
        assert_eq!(
            Incident::of(&msg(&again)).key,
            i.key,
            "same image, same key"
        );
        let long = vendor_key("r", &"x".repeat(400));
        assert!(long.chars().count() <= MAX_KEY && long.starts_with("scanbridge/r/sha256:"));
        assert_eq!(long, vendor_key("r", &"x".repeat(400)));
        assert_ne!(long, vendor_key("r", &"y".repeat(400)));
    }

    #[test]
    fn links_are_https_and_console_links_stay_on_aws() {
        let mut e = sample("inspector2-finding.json");
        let i = Incident::of(&msg(&e));
        let hrefs: Vec<&str> = i.links.iter().map(|(h, _)| h.as_str()).collect();
        assert!(hrefs[0].starts_with("https://us-east-2.console.aws.amazon.com/ecr/"));
        assert!(hrefs.contains(&"https://security-tracker.debian.org/tracker/CVE-2026-10001"));
        assert!(hrefs.contains(&"https://www.cve.org/CVERecord?id=CVE-2026-10001"));
        e["detail"]["packageVulnerabilityDetails"]["sourceUrl"] = json!("javascript:alert(1)");
        e["detail"]["packageVulnerabilityDetails"]["referenceUrls"] =
            json!(["http://plain.example/"]);
        e["detail"]["resources"][0]["region"] = json!("evil.example/x?");
        e["detail"]["resources"][0]["details"]["awsEcrContainerImage"]["repositoryName"] =
            json!("../../x");
        let i = Incident::of(&msg(&e));
        assert!(
            i.links.is_empty(),
            "no javascript:, no http:, no console link off AWS: {:?}",
            i.links
        );
    }

    #[test]
    fn console_links_need_well_formed_parts() {
        let e = sample("ecr-image-scan-critical.json");
        let f = Facts::of(&e);
        assert!(console_link(&f).is_some());
        for (field, value) in [
            ("repository", "Payments/API"),
            ("repository", "a//b"),
            ("repository", "a/../b"),
            ("digest", "sha256:abc"),
            ("account", "12345"),
            ("region", "us-east-1.evil.example/"),
        ] {
            let mut g = f.clone();
            match field {
                "repository" => g.repository = Some(value.into()),
                "digest" => g.digest = Some(value.into()),
                "account" => g.account = Some(value.into()),
                _ => g.region = Some(value.into()),
            }
            assert_eq!(console_link(&g), None, "{field} = {value}");
        }
    }

    #[test]
    fn details_carry_counts_and_top_findings() {
        let e = sample("ecr-image-scan-critical.json");
        let d = Incident::of(&msg(&e)).details;
        assert_eq!(d["finding_counts"]["CRITICAL"], 2);
        assert_eq!(d["finding_counts"]["UNDEFINED"], 0);
        assert_eq!(d["top_findings"][0], "2 CRITICAL");
        assert_eq!(d["tags"], json!(["v2.14.0", "latest"]));
        let f = sample("inspector2-finding.json");
        let d = Incident::of(&msg(&f)).details;
        assert_eq!(d["top_findings"][0]["id"], "CVE-2026-10001");
        assert_eq!(d["top_findings"][0]["fixed_in"], "3.0.15-1~deb12u2");
    }
}
