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
//! 400/403/404 such as `invalid_payload` or `no_service` are permanent). The webhook URL is a secret:
//! its path is the credential, so it never appears in logs or reasons.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::attempt::{Message, Outcome};
use crate::config::{ConfigError, Secret};
use crate::render::template::{Context, Templates, mrkdwn};
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
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("scanbridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Slack {
            url: cfg.webhook_url.clone().expect("checked at load"),
            client,
            templates,
        })
    }

    /// The message body for `msg` (also shown by `scanbridge route`).
    pub fn payload(&self, msg: &Message<'_>) -> Result<Value, String> {
        let ctx = msg.context();
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
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}})
}

fn field(label: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": truncate(&format!("*{label}*\n{value}"), MAX_FIELD)})
}

/// "*Top findings*" and one line per finding: severity, CVE (linked), package and version, the fix.
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
            mrkdwn(sev)
        };
        let id = mrkdwn(x.id.as_deref().unwrap_or("-"));
        let id = match &x.url {
            // `|` and `>` end a Slack link: a URL holding them is shown as text.
            Some(u) if !u.contains(['|', '>', '<', ' ']) => format!("<{u}|{id}>"),
            _ => id,
        };
        let pkg = match (&x.package, &x.installed_version) {
            (Some(p), Some(v)) => format!("`{}` {}", mrkdwn(p), mrkdwn(v)),
            (Some(p), None) => format!("`{}`", mrkdwn(p)),
            _ => String::new(),
        };
        let fix = match &x.fixed_in {
            Some(v) => format!("fixed in {}", mrkdwn(v)),
            None => "no fix yet".to_owned(),
        };
        text.push_str(&format!("\n• {sev} {id} {pkg} → {fix}"));
    }
    text
}

/// The Block Kit message: `{"text": fallback, "blocks": [...]}`.
pub fn message(ctx: &Context<'_>, fallback: &str) -> Value {
    let f: &Facts = &ctx.scan;
    let mut blocks = vec![json!({"type": "header", "text": {"type": "plain_text",
        "text": truncate(&f.headline, MAX_HEADER), "emoji": true}})];
    if let Some(m) = &ctx.message {
        blocks.push(section(&mrkdwn(m)));
    }
    let mut fields = Vec::new();
    if let Some(r) = &f.repository {
        fields.push(field("Repository", &format!("`{}`", mrkdwn(r))));
    }
    if !f.tags.is_empty() {
        let tags: Vec<String> = f.tags.iter().map(|t| format!("`{}`", mrkdwn(t))).collect();
        fields.push(field("Tags", &tags.join(" ")));
    }
    if let Some(d) = &f.short_digest {
        fields.push(field("Digest", &format!("`{d}`")));
    }
    if let Some(s) = &f.status {
        fields.push(field("Scan", &mrkdwn(s)));
    }
    if let Some(x) = &f.finding {
        if let Some(id) = &x.id {
            let id = mrkdwn(id);
            let v = match &x.url {
                Some(u) => format!("<{u}|{id}>"),
                None => id,
            };
            fields.push(field("Vulnerability", &v));
        }
        let sev = match (&x.severity, x.score) {
            (Some(s), Some(score)) => format!("{s} (score {score})"),
            (Some(s), None) => s.clone(),
            _ => "-".into(),
        };
        fields.push(field("Severity", &sev));
        if let Some(p) = &x.package {
            let v = match &x.installed_version {
                Some(v) => format!("`{}` {}", mrkdwn(p), mrkdwn(v)),
                None => format!("`{}`", mrkdwn(p)),
            };
            fields.push(field("Package", &v));
        }
        fields.push(field(
            "Fixed in",
            &x.fixed_in
                .as_deref()
                .map(mrkdwn)
                .unwrap_or_else(|| "no fix available yet".into()),
        ));
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
            mrkdwn(&d.compared_with),
            mrkdwn(&d.summary)
        )));
    }
    if f.kind == Kind::Digest {
        let items = ctx
            .event
            .pointer("/detail/items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let lines: Vec<String> = items
            .iter()
            .map(|i| {
                let s = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("-");
                let image = match i.get("console_url").and_then(Value::as_str) {
                    Some(u) => format!("<{u}|{}>", mrkdwn(s("image"))),
                    None => format!("`{}`", mrkdwn(s("image"))),
                };
                format!("• {image}  {}", mrkdwn(s("summary")))
            })
            .collect();
        // One section per chunk of lines, within the section text limit and the block limit.
        let mut chunk = String::new();
        for line in lines {
            if chunk.len() + line.len() + 1 > MAX_SECTION_TEXT - 10 {
                blocks.push(section(&chunk));
                chunk.clear();
            }
            chunk.push_str(&line);
            chunk.push('\n');
        }
        if !chunk.is_empty() {
            blocks.push(section(chunk.trim_end()));
        }
        blocks.truncate(MAX_BLOCKS - 1);
    }
    if f.kind == Kind::Generic {
        let detail = serde_json::to_string_pretty(ctx.event.get("detail").unwrap_or(&Value::Null))
            .unwrap_or_default();
        blocks.push(section(&format!(
            "```{}```",
            truncate(&mrkdwn(&detail), MAX_SECTION_TEXT - 6)
        )));
    }
    if let Some(url) = &f.console_url {
        blocks.push(json!({"type": "actions", "elements": [{"type": "button",
            "text": {"type": "plain_text", "text": "Open in ECR console"}, "url": url}]}));
    }
    let mut context = vec![format!("rule *{}*", mrkdwn(ctx.rule))];
    context.extend(f.account.iter().map(|a| format!("account {a}")));
    context.extend(f.region.clone());
    context.extend(f.time.clone());
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": truncate(&context.join(" · "), MAX_FIELD)}]}));
    blocks.truncate(MAX_BLOCKS);
    json!({"text": truncate(fallback, MAX_SECTION_TEXT), "blocks": blocks})
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
