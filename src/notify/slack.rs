//! The `slack` target: posts a Block Kit message to a Slack incoming webhook.
//!
//! The message reads at a glance: a header with what happened ("2 CRITICAL, 7 HIGH in
//! payments/api:v2.14.0"), the repository, tags, short digest and scan status, the severity counts in
//! the fixed order CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNDEFINED, the CVE, package and fixed-in
//! version for an Inspector2 finding, a button to the image in the ECR console, and a context line
//! (rule, account, region, time). `text` (the `slack/text.txt` template) is the plain-text fallback
//! that notifications and screen readers use. Slack's limits are kept: at most 50 blocks, section
//! text ≤ 3000 characters, header ≤ 150, at most 10 fields of ≤ 2000.
//!
//! Classification as the webhook target (Slack answers 429 with Retry-After when rate limiting;
//! 400/403/404 such as `invalid_payload` or `no_service` are permanent; a redirect is never followed
//! and is permanent). The webhook URL is a secret:
//! its path is the credential, so it never appears in logs or reasons.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::attempt::{Message, Outcome};
use crate::config::{ConfigError, Secret};
use crate::escape;
use crate::render::template::{Context, Templates};
use crate::retry::RetryOverrides;
use crate::scan::{Facts, Kind};

/// Slack's limits.
pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_HEADER: usize = 150;
pub const MAX_FIELD: usize = 2000;

/// `[targets.NAME] type = "slack"`: `webhook_url` (or `webhook_url_file`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default)]
    webhook_url: Option<Secret>,
    #[serde(default)]
    webhook_url_file: Option<std::path::PathBuf>,
    /// Per-request timeout (default 5 s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Token bucket for this target (`{ per_second = 1, burst = 5 }`); excess deliveries wait in the
    /// outbox, never dropped.
    #[serde(default)]
    pub rate_limit: Option<crate::alerting::RateLimit>,
    /// Deliveries sent to this target at once (default 4).
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub retry: RetryOverrides,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl SlackConfig {
    pub(crate) fn finish(&mut self, name: &str) -> Result<(), ConfigError> {
        crate::config::required_http_url(
            format!("targets.{name}.webhook_url"),
            &mut self.webhook_url,
            &self.webhook_url_file,
            "a slack target needs `webhook_url`",
        )
    }
}

/// A ready Slack target.
#[derive(Debug)]
pub struct Slack {
    url: Secret,
    client: reqwest::Client,
    templates: Arc<Templates>,
}

impl Slack {
    pub fn new(cfg: &SlackConfig, templates: Arc<Templates>) -> Result<Self, reqwest::Error> {
        let client = super::webhook::http_client(cfg.timeout)?;
        Ok(Slack {
            url: cfg.webhook_url.clone().expect("checked at load"),
            client,
            templates,
        })
    }

    /// The message body for `msg` (also shown by `scanbridge route`).
    pub fn payload(&self, msg: &Message<'_>) -> Result<Value, String> {
        let ctx = msg.context();
        if msg.is_resolve() {
            return Ok(resolved(&ctx));
        }
        let text = self
            .templates
            .render("slack/text.txt", &ctx)
            .map_err(|e| e.to_string())?;
        Ok(message(&ctx, &text))
    }

    pub async fn notify(&self, msg: &Message<'_>) -> Outcome {
        let body = match self.payload(msg) {
            Ok(b) => b,
            Err(reason) => return Outcome::Permanent { reason },
        };
        super::webhook::send(self.client.post(self.url.expose()).json(&body), msg.now_ms).await
    }
}

/// Cuts `s` to at most `max` characters, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    escape::cap(s, max).into_owned()
}

/// A content value for mrkdwn, escaped, at most `max` characters before escaping.
fn md(s: &str, max: usize) -> String {
    escape::mrkdwn(&escape::cap(s, max))
}

/// A content value inside a code span: escaped, and a backtick cannot close the span early.
fn code(s: &str, max: usize) -> String {
    format!("`{}`", md(s, max).replace('`', "ˋ"))
}

/// A content value for a plain_text object: one visible line, capped. Slack does not parse mentions
/// in plain text, but `<` is shown as `‹` anyway, so that no `<!channel>`, `<@U…>` or `<url|text>` is
/// ever in a payload made from content (a receiver relaying the text as mrkdwn cannot be made to
/// ping); a `>` alone opens nothing, so arrows such as `2 -> 0` stay as written.
fn plain(s: &str, max: usize) -> String {
    escape::line(s, max).replace('<', "‹")
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}})
}

/// A field: `value` is mrkdwn already escaped by the caller (links, code spans).
fn field(label: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": truncate(&format!("*{label}*\n{value}"), MAX_FIELD)})
}

/// "*Top findings*" and one line per finding: severity, CVE (linked when its URL is `https:`),
/// package and version, the fix; every value escaped and capped.
fn top_findings_text(f: &Facts) -> String {
    let mut text = String::from("*Top findings*");
    if f.findings_more > 0 {
        text.push_str(&format!(" ({} more not listed)", f.findings_more));
    }
    for x in &f.top_findings {
        let sev = x.severity.as_deref().unwrap_or("-");
        let sev = if matches!(sev, "CRITICAL" | "HIGH") {
            format!("*{sev}*")
        } else {
            md(sev, 20)
        };
        let id = x.id.as_deref().unwrap_or("-");
        let id = match &x.link {
            Some(u) => escape::slack_link(u, &escape::cap(id, 100)),
            None => md(id, 100),
        };
        let pkg = match (&x.package, &x.installed_version) {
            (Some(p), Some(v)) => format!("{} {}", code(p, 100), md(v, 100)),
            (Some(p), None) => code(p, 100),
            _ => String::new(),
        };
        let fix = match &x.fixed_in {
            Some(v) => format!("fixed in {}", md(v, 100)),
            None => "no fix yet".to_owned(),
        };
        text.push_str(&format!("\n• {sev} {id} {pkg} → {fix}"));
    }
    text
}

/// The Block Kit message: `{"text": fallback, "blocks": [...]}`. Every value from the event is
/// escaped ([`escape::mrkdwn`]; plain text [`escape::line`]) and capped before it is placed, so no
/// mention, ping, link or extra line can come from content; the only links are the ECR console URL
/// and `https:` advisory URLs, both validated.
pub fn message(ctx: &Context<'_>, fallback: &str) -> Value {
    let f: &Facts = &ctx.scan;
    // Field values stay well within the 2000-character field limit with their label.
    const V: usize = 500;
    let mut blocks = vec![json!({"type": "header", "text": {"type": "plain_text",
        "text": plain(&f.headline, MAX_HEADER), "emoji": true}})];
    if let Some(m) = &ctx.message {
        let text = escape::cap(&escape::visible_lines(m), MAX_SECTION_TEXT - 10).into_owned();
        blocks.push(section(&escape::mrkdwn_lines(&text)));
    }
    let mut fields = Vec::new();
    if let Some(r) = &f.repository {
        fields.push(field("Repository", &code(r, V)));
    }
    if !f.tags.is_empty() {
        let tags: Vec<String> = f.tags.iter().take(20).map(|t| code(t, 100)).collect();
        fields.push(field("Tags", &tags.join(" ")));
    }
    if let Some(d) = &f.short_digest {
        fields.push(field("Digest", &code(d, 100)));
    }
    if let Some(s) = &f.status {
        fields.push(field("Scan", &md(s, V)));
    }
    if let Some(x) = &f.finding {
        if let Some(id) = &x.id {
            let v = match &x.link {
                Some(u) => escape::slack_link(u, &escape::cap(id, V)),
                None => md(id, V),
            };
            fields.push(field("Vulnerability", &v));
        }
        let sev = match (&x.severity, x.score) {
            (Some(s), Some(score)) => format!("{} (score {score})", md(s, 100)),
            (Some(s), None) => md(s, 100),
            _ => "-".into(),
        };
        fields.push(field("Severity", &sev));
        if let Some(p) = &x.package {
            let v = match &x.installed_version {
                Some(v) => format!("{} {}", code(p, V), md(v, V)),
                None => code(p, V),
            };
            fields.push(field("Package", &v));
        }
        fields.push(field(
            "Fixed in",
            &x.fixed_in
                .as_deref()
                .map(|v| md(v, V))
                .unwrap_or_else(|| "no fix available yet".into()),
        ));
        if let Some(r) = &f.resource {
            fields.push(field("Resource", &code(r, V)));
        }
    }
    fields.truncate(10);
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if !f.counts.is_empty() {
        let line: Vec<String> = f
            .counts
            .iter()
            .map(|c| {
                if c.count > 0 && matches!(c.severity, "CRITICAL" | "HIGH") {
                    format!("*{}* *{}*", c.severity, c.count)
                } else {
                    format!("{} {}", c.severity, c.count)
                }
            })
            .collect();
        let mut text = format!("*Findings*  {}", line.join("  ·  "));
        if f.kind == Kind::InspectorScan {
            text.push_str(&format!("  (total {})", f.total));
        }
        blocks.push(section(&text));
    } else if f.failed {
        blocks.push(section(
            "The scan did not complete; no findings are available for this image.",
        ));
    }
    if !f.top_findings.is_empty() && f.kind != Kind::InspectorFinding {
        blocks.push(section(&top_findings_text(f)));
    }
    if let Some(d) = &f.delta {
        blocks.push(section(&format!(
            "*Since {}*  {}",
            md(&d.compared_with, V),
            md(&d.summary, 2000)
        )));
    }
    if f.kind == Kind::Digest {
        blocks.extend(digest_sections(f));
    }
    if f.kind == Kind::Generic {
        let detail = serde_json::to_string_pretty(ctx.event.get("detail").unwrap_or(&Value::Null))
            .unwrap_or_default();
        let detail = escape::cap(&detail, MAX_SECTION_TEXT - 100);
        blocks.push(section(&format!(
            "```{}```",
            escape::mrkdwn_lines(&detail).replace("```", "ˋˋˋ")
        )));
    }
    if let Some(url) = &f.console_url {
        blocks.push(json!({"type": "actions", "elements": [{"type": "button",
            "text": {"type": "plain_text", "text": "Open in ECR console"}, "url": url}]}));
    }
    let mut context = vec![format!("rule *{}*", md(ctx.rule, 100))];
    context.extend(ctx.replay.map(|r| format!("replay *{}*", md(r, 100))));
    context.extend(f.account.iter().map(|a| format!("account {}", md(a, 100))));
    context.extend(f.region.iter().map(|r| md(r, 100)));
    context.extend(f.time.iter().map(|t| md(t, 100)));
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": truncate(&context.join(" · "), MAX_FIELD)}]}));
    blocks.truncate(MAX_BLOCKS);
    json!({"text": truncate(fallback, MAX_SECTION_TEXT), "blocks": blocks})
}

/// The sections of a digest, at most this many (10 full sections are ~30 KB: a message read at a
/// glance, far inside Slack's 50 blocks).
pub const MAX_DIGEST_SECTIONS: usize = 10;

/// A digest's images, one line each (the console link only when it is one), in sections within
/// Slack's section limit; past [`MAX_DIGEST_SECTIONS`], a last line says how many more there are.
fn digest_sections(f: &Facts) -> Vec<Value> {
    const V: usize = 300;
    let lines: Vec<String> = f
        .items
        .iter()
        .map(|i| {
            // A digest event can be forged by a producer: its URLs are content like any other.
            let image = match i.console_url.as_deref().and_then(escape::console_link) {
                Some(u) => escape::slack_link(&u, &escape::cap(&i.image, V)),
                None => code(&i.image, V),
            };
            let scans = if i.scans > 1 {
                format!(" ({} scans)", i.scans)
            } else {
                String::new()
            };
            format!("• {image}  {}{scans}", md(&i.summary, V))
        })
        .collect();
    let total = lines.len();
    let (mut sections, mut chunk, mut shown) = (Vec::new(), String::new(), 0);
    // Room for the "...and N more" line in the last section.
    let room = MAX_SECTION_TEXT - 40;
    for line in lines {
        if !chunk.is_empty() && chunk.chars().count() + line.chars().count() + 1 > room {
            if sections.len() + 1 == MAX_DIGEST_SECTIONS {
                break;
            }
            sections.push(chunk.trim_end().to_owned());
            chunk.clear();
        }
        chunk.push_str(&line);
        chunk.push('\n');
        shown += 1;
    }
    if shown < total {
        chunk.push_str(&format!("…and {} more", total - shown));
    }
    if !chunk.is_empty() {
        sections.push(chunk.trim_end().to_owned());
    }
    sections.iter().map(|t| section(t)).collect()
}

/// The "resolved" message of a rule with `notify_resolved`: what was fixed, what changed since the
/// scan that opened the alert, what the image has now, and the context line.
pub fn resolved(ctx: &Context<'_>) -> Value {
    const V: usize = 300;
    let f: &Facts = &ctx.scan;
    let headline = ctx
        .resolved
        .as_ref()
        .map(|r| r.headline.clone())
        .unwrap_or_else(|| format!("Resolved: {}", f.image));
    let mut blocks = vec![json!({"type": "header", "text": {"type": "plain_text",
        "text": plain(&headline, MAX_HEADER), "emoji": true}})];
    let mut text = format!(
        "{} no longer matches rule *{}*.",
        code(&f.image, V),
        md(ctx.rule, V)
    );
    if let Some(d) = f
        .delta
        .as_ref()
        .filter(|d| !d.changes.is_empty() || d.finding.is_some())
    {
        text.push_str(&format!(
            "\n*Changes since {}*  {}",
            md(&d.compared_with, V),
            md(&d.summary, V)
        ));
    }
    if !f.counts.is_empty() {
        text.push_str(&format!("\n*Findings now*  {}", md(&f.summary, V)));
    }
    blocks.push(section(&text));
    let mut context = vec![format!("rule *{}*", md(ctx.rule, V))];
    context.extend(f.account.iter().map(|a| format!("account {}", md(a, V))));
    context.extend(f.region.iter().map(|r| md(r, V)));
    context.extend(f.time.iter().map(|t| md(t, V)));
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": truncate(&context.join(" · "), MAX_FIELD)}]}));
    let fallback = format!("{} · rule {}", md(&headline, V), md(ctx.rule, V));
    json!({"text": truncate(&fallback, MAX_SECTION_TEXT), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, RETRY_AFTER};

    #[test]
    fn report_messages_list_the_top_findings() {
        let e = crate::testing::report_event("grype-image.json");
        let ctx = Context::new(&e, &e, "r", "d", "e");
        let m = message(&ctx, "fallback");
        let text = m.to_string();
        assert!(text.contains("*Top findings*"), "{text}");
        assert!(
            text.contains("• *CRITICAL* CVE-1999-0002 `package-2` 2.2.2 → no fix yet"),
            "{text}"
        );
        assert!(
            text.contains("• LOW CVE-1999-0001 `package-1` 1.1.1 → fixed in 1.2.1, 2.1.3, 3.4.0"),
            "{text}"
        );
        assert!(!text.contains("Open in ECR console"));
    }

    #[test]
    fn classification_table() {
        let mut ra = HeaderMap::new();
        ra.insert(RETRY_AFTER, "30".parse().unwrap());
        let cases = [
            (200, "delivered"),
            (429, "retryable"),
            (500, "retryable"),
            (503, "retryable"),
            (400, "permanent"), // invalid_payload
            (403, "permanent"), // action_prohibited
            (404, "permanent"), // no_service
            (410, "permanent"), // channel_is_archived
        ];
        for (code, want) in cases {
            let got = super::super::webhook::classify(StatusCode::from_u16(code).unwrap(), &ra, 0);
            assert_eq!(got.label(), want, "HTTP {code}");
        }
        let Outcome::Retryable { retry_after, .. } =
            super::super::webhook::classify(StatusCode::TOO_MANY_REQUESTS, &ra, 0)
        else {
            panic!()
        };
        assert_eq!(retry_after, Some(Duration::from_secs(30)));
    }

    #[test]
    fn limits_hold_for_huge_events() {
        let long = "x".repeat(10_000);
        let e = json!({"id":"e","source":"ci","detail-type": long, "detail": {"blob": long}});
        let p = json!(long);
        let ctx = Context::new(&e, &p, "r", "d", "e");
        let m = message(&ctx, &long);
        let blocks = m["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS);
        assert!(m["text"].as_str().unwrap().chars().count() <= MAX_SECTION_TEXT);
        for b in blocks {
            if b["type"] == "header" {
                assert!(b["text"]["text"].as_str().unwrap().chars().count() <= MAX_HEADER);
            }
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= MAX_SECTION_TEXT);
            }
        }
    }
}
