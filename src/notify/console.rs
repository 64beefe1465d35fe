//! The `console` target: prints a one-screen, human-readable alert to stdout (logs go to stderr, so
//! stdout carries only alerts). It lets the shipped configuration show something with no setup.
//!
//! Each alert is written with one `write_all` on a locked stdout, so concurrent deliveries never
//! interleave. Printing cannot fail in a way worth retrying, so a write error is permanent.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Deserialize;
use serde_json::Value;

use super::attempt::{Message, Outcome};
use crate::escape;
use crate::retry::RetryOverrides;

/// `[targets.NAME] type = "console"`: no settings beyond `retry`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Token bucket for this target (`{ per_second = 1, burst = 5 }`); excess deliveries wait in the
    /// outbox, never dropped.
    #[serde(default)]
    pub rate_limit: Option<crate::alerting::RateLimit>,
    /// Deliveries sent to this target at once (default 1).
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub retry: RetryOverrides,
}

#[derive(Debug)]
pub struct Console;

impl Console {
    pub fn notify(&self, msg: &Message<'_>) -> Outcome {
        let text = render(msg);
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Permanent {
                reason: format!("cannot write to stdout: {e}"),
            },
        }
    }
}

/// A digest's images listed on the console, at most (one screen).
pub const MAX_DIGEST_LINES: usize = 50;

/// The widest value printed, in characters (longer ones end with `…`).
pub const MAX_VALUE: usize = 300;

/// The cap of a short envelope field (`region`, `time`).
pub const MAX_SHORT: usize = 60;

/// `x` as one visible line of at most `max` characters ([`escape::line`]: control, line-breaking,
/// bidi and invisible characters shown as escapes): event text cannot add lines to an alert, hide or
/// reorder text, or push the rest off the screen.
fn clip(x: &str, max: usize) -> String {
    escape::line(x, max)
}

/// A string of the event, made one visible line of at most [`MAX_VALUE`] characters.
fn s(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .map(|x| clip(x, MAX_VALUE))
}

/// A short envelope field (`region`, `time`: a few dozen characters when AWS writes them) capped at
/// [`MAX_SHORT`], so that the event line, which holds four values, stays one line of readable length
/// whatever the event holds.
fn short(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .map_or_else(|| "-".into(), |x| clip(x, MAX_SHORT))
}

/// The alert text: rule, image (repository name and tags), for an Inspector2 finding its CVE,
/// severity, score, package with installed and fixed versions, resource and advisory, the scan status,
/// severity counts in fixed order (absent = 0; an Inspector2 scan's TOTAL), digest, top findings; a
/// resolve says what was fixed and what changed. Every value from the event is shown escaped and capped: whatever it
/// holds, the alert has exactly the lines written here, the first starting with `===`, the others with
/// two spaces.
pub fn render(msg: &Message<'_>) -> String {
    let e = msg.event;
    let mut t = String::new();
    if msg.is_resolve() {
        let ctx = msg.context();
        let _ = writeln!(
            t,
            "=== scanbridge RESOLVED: rule {} ===",
            clip(msg.rule, MAX_VALUE)
        );
        if let Some(r) = &ctx.resolved {
            let _ = writeln!(t, "  {}", clip(&r.headline, MAX_VALUE));
            let _ = writeln!(t, "  alert:    {}", clip(&r.key, MAX_VALUE));
        }
        if !ctx.scan.counts.is_empty() {
            let _ = writeln!(t, "  now:      {}", clip(&ctx.scan.summary, MAX_VALUE));
        }
        let _ = writeln!(t, "  event:    {}", clip(msg.event_id, MAX_VALUE));
        let _ = writeln!(t, "  delivery: {}", clip(msg.delivery_id, MAX_VALUE));
        return t;
    }
    let kind = s(e, "/detail-type").unwrap_or_else(|| "event".into());
    let _ = writeln!(
        t,
        "=== scanbridge alert: rule {} ({kind}) ===",
        clip(msg.rule, MAX_VALUE)
    );
    // The facts every receiver shows: the repository is a name even when the event has an ARN, an
    // Inspector2 finding's image comes from its resource, the counts are in the fixed order.
    let facts = crate::scan::Facts::of(e);
    let _ = write!(t, "  image:    {}", clip(&facts.image, MAX_VALUE));
    if facts.tags.len() > 1 {
        let _ = write!(
            t,
            " (also {})",
            clip(&facts.tags[1..].join(", "), MAX_VALUE)
        );
    }
    t.push('\n');
    if let Some(f) = &facts.finding {
        let mut line = format!(
            "{} {}",
            clip(f.id.as_deref().unwrap_or("-"), 60),
            clip(f.severity.as_deref().unwrap_or("-"), 20)
        );
        if let Some(score) = f.score {
            let _ = write!(line, " (score {score})");
        }
        if let Some(status) = &f.status {
            let _ = write!(line, " {}", clip(status, 20));
        }
        let _ = writeln!(t, "  finding:  {line}");
        let fix = match &f.fixed_in {
            Some(v) => format!("fixed in {}", clip(v, 60)),
            None => "no fix available yet".to_owned(),
        };
        let _ = writeln!(
            t,
            "  package:  {} {} -> {fix}",
            clip(f.package.as_deref().unwrap_or("-"), 60),
            clip(f.installed_version.as_deref().unwrap_or("-"), 60),
        );
        if let Some(r) = &facts.resource {
            let _ = writeln!(t, "  resource: {}", clip(r, MAX_VALUE));
        }
        if let Some(u) = &f.url {
            let _ = writeln!(t, "  advisory: {}", clip(u, MAX_VALUE));
        }
    }
    if let Some(status) = &facts.status {
        let _ = writeln!(t, "  scan:     {}", clip(status, MAX_VALUE));
    }
    if !facts.counts.is_empty() && facts.kind != crate::scan::Kind::InspectorFinding {
        let mut line: Vec<String> = facts
            .counts
            .iter()
            .map(|c| format!("{} {}", c.severity, c.count))
            .collect();
        if facts.kind == crate::scan::Kind::InspectorScan {
            line.push(format!("TOTAL {}", facts.total));
        }
        let _ = writeln!(t, "  findings: {}", line.join("  "));
    } else if facts.failed {
        let _ = writeln!(t, "  findings: none reported (the scan did not complete)");
    }
    if let Some(digest) = &facts.digest {
        let _ = writeln!(t, "  digest:   {}", clip(digest, MAX_VALUE));
    }
    let listed = facts.kind != crate::scan::Kind::InspectorFinding;
    for (i, f) in facts.top_findings.iter().enumerate().filter(|_| listed) {
        let label = if i == 0 { "top:     " } else { "         " };
        let fix = match &f.fixed_in {
            Some(v) => format!("fixed in {}", clip(v, 60)),
            None => "no fix yet".to_owned(),
        };
        let _ = writeln!(
            t,
            "  {label} {} {} {} {} -> {fix}",
            clip(f.severity.as_deref().unwrap_or("-"), 20),
            clip(f.id.as_deref().unwrap_or("-"), 60),
            clip(f.package.as_deref().unwrap_or("-"), 60),
            clip(f.installed_version.as_deref().unwrap_or("-"), 60),
        );
    }
    if listed && facts.findings_more > 0 && !facts.top_findings.is_empty() {
        let _ = writeln!(t, "            ({} more findings)", facts.findings_more);
    }
    if let Some(d) = msg.delta {
        let _ = writeln!(
            t,
            "  changes:  {} (since {})",
            clip(&d.summary, MAX_VALUE),
            clip(&d.compared_with, MAX_VALUE)
        );
    }
    if crate::scan::is_digest(e) {
        let _ = writeln!(
            t,
            "  {}",
            s(e, "/detail/headline").unwrap_or_else(|| "digest".into())
        );
        for item in facts.items.iter().take(MAX_DIGEST_LINES) {
            let scans = if item.scans > 1 {
                format!(" ({} scans)", item.scans)
            } else {
                String::new()
            };
            let _ = writeln!(
                t,
                "    {}  {}{scans}",
                clip(&item.image, MAX_VALUE),
                clip(&item.summary, MAX_VALUE)
            );
        }
        if facts.items.len() > MAX_DIGEST_LINES {
            let _ = writeln!(
                t,
                "    ...and {} more",
                facts.items.len() - MAX_DIGEST_LINES
            );
        }
    }
    let _ = writeln!(
        t,
        "  event:    {} from {} in {} at {}",
        clip(msg.event_id, MAX_VALUE),
        s(e, "/source").unwrap_or_else(|| "-".into()),
        short(e, "/region"),
        short(e, "/time"),
    );
    let _ = writeln!(t, "  delivery: {}", msg.delivery_id);
    if let Some(r) = msg.replay {
        let _ = writeln!(
            t,
            "  replay:   {} (an archived event sent again)",
            clip(r, MAX_VALUE)
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render_event(e: &Value) -> String {
        render(&Message {
            delivery_id: "d1",
            rule: "r",
            event_id: "e1",
            event: e,
            payload: e,
            delta: None,
            now_ms: 0,
            alert: None,
            replay: None,
        })
    }

    #[test]
    fn top_findings_for_reports_and_inspector_findings() {
        let mut e = crate::testing::report_event("trivy-alpine-39-high-critical.json");
        let text = render_event(&e);
        assert!(
            text.contains(
                "  top:      CRITICAL CVE-2019-14697 musl 1.1.20-r4 -> fixed in 1.1.20-r5\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("CVE-2019-14697 musl-utils 1.1.20-r4"),
            "{text}"
        );
        // Untrusted text cannot add a line to the alert.
        e["detail"]["findings"][0]["package"] = json!("musl\n=== scanbridge alert: rule fake ===");
        let text = render_event(&e);
        assert_eq!(
            text.lines().filter(|l| l.starts_with("===")).count(),
            1,
            "{text}"
        );
        e["detail"]["repository-name"] = json!("evil\n  findings: CRITICAL 0");
        let text = render_event(&e);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("  findings:"))
                .count(),
            1,
            "{text}"
        );
        let f = crate::testing::sample("inspector2-finding.json");
        let text = render_event(&f);
        for line in [
            "  image:    payments/worker:release-2026.11\n",
            "  finding:  CVE-2026-10001 CRITICAL (score 9.8) ACTIVE\n",
            "  package:  libssl3 3.0.15 -> fixed in 3.0.15-1~deb12u2\n",
            "  resource: arn:aws:ecr:us-east-2:123456789012:repository/payments/worker/sha256:1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809\n",
            "  advisory: https://security-tracker.debian.org/tracker/CVE-2026-10001\n",
        ] {
            assert!(text.contains(line), "{line}{text}");
        }
        let s = crate::testing::sample("inspector2-scan.json");
        let text = render_event(&s);
        assert!(
            text.contains("  image:    payments/worker:release-2026.11\n"),
            "the name, not the ARN: {text}"
        );
        assert!(
            text.contains("  findings: CRITICAL 1  HIGH 0  MEDIUM 6  TOTAL 10\n"),
            "{text}"
        );
    }

    #[test]
    fn the_event_line_stays_readable_whatever_the_envelope_holds() {
        // Found by the property run: a long source, region and time made one line of 1,013
        // characters (four values of up to MAX_VALUE each on the event line).
        let long = "0".repeat(2_000);
        let e = json!({"id": long, "source": long, "region": long, "time": long,
                       "detail-type": "x", "detail": {}});
        let text = render_event(&e);
        let line = text.lines().find(|l| l.starts_with("  event:")).unwrap();
        assert!(
            line.chars().count() <= 12 + MAX_VALUE + 6 + MAX_VALUE + 4 + MAX_SHORT + 4 + MAX_SHORT,
            "{line}"
        );
        assert!(text.lines().all(|l| l.chars().count() <= 1000), "{text}");
    }

    #[test]
    fn renders_counts_in_fixed_order_with_zeros() {
        let e = json!({"id":"e1","source":"aws.ecr","detail-type":"ECR Image Scan","detail":{
            "repository-name":"payments/api","image-tags":["v2","latest"],
            "image-digest":"sha256:abc","scan-status":"COMPLETE",
            "finding-severity-counts":{"HIGH":7,"CRITICAL":2}}});
        let msg = Message {
            delivery_id: "d1",
            rule: "critical",
            event_id: "e1",
            event: &e,
            payload: &e,
            delta: None,
            now_ms: 0,
            alert: None,
            replay: None,
        };
        let text = render(&msg);
        assert!(text.contains("rule critical"), "{text}");
        assert!(text.contains("payments/api:v2 (also latest)"), "{text}");
        assert!(
            text.contains("CRITICAL 2  HIGH 7  MEDIUM 0  LOW 0  INFORMATIONAL 0  UNDEFINED 0"),
            "{text}"
        );
        assert!(text.contains("sha256:abc"));
    }
}
