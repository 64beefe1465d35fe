//! The `teams` target: a Microsoft Teams Workflows webhook ("When a Teams webhook request is
//! received", the replacement for the retired Office 365 connectors) receiving a message with one
//! Adaptive Card 1.4 attachment:
//! `{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
//! "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type":
//! "AdaptiveCard", "version": "1.4", "body": [...], "actions": [...]}}]}`.
//!
//! The card carries the facts of the Slack message: the headline, a fact set (repository, tags,
//! short digest, scan status; CVE, severity, package and fixed-in version for a finding), the
//! counts in the fixed order, what changed since the previous scan, the images of a digest, an
//! "Open in ECR console" button and a context line (rule, account, region, time).
//!
//! Limits and escaping: a Teams message is at most 28 KB; the body is sent as UTF-8 (declared, since
//! Teams otherwise counts two bytes a character) and kept under [`BUDGET`] bytes: a digest lists the
//! images that fit and ends with a visible "…and N more", and long texts are cut with "…".
//! TextBlock and FactSet text is a subset of CommonMark, so every value from the event is escaped
//! ([`md`]): ASCII punctuation is backslash-escaped (no emphasis, links, lists or `{{DATE()}}`
//! functions can be formed), line breaks and control characters become spaces and bidirectional
//! overrides are dropped. Links are only the button's, built from validated parts.
//!
//! Classification as the webhook target (429 with Retry-After, 5xx retryable; other 4xx, such as a
//! workflow that was deleted, permanent; 3xx permanent). The webhook URL is the credential: a secret.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::attempt::{Message, Outcome};
use super::incident::{cap, https_link};
use crate::config::{ConfigError, Secret};
use crate::render::template::Context;
use crate::retry::RetryOverrides;
use crate::scan::Kind;

/// Teams' limit on one message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 28 * 1024;
/// What scanbridge keeps a message under: the limit less a margin for the service's envelope.
pub const BUDGET: usize = MAX_MESSAGE_BYTES - 1024;
/// The Adaptive Card version sent (Teams renders 1.4 and later everywhere).
pub const CARD_VERSION: &str = "1.4";

/// `[targets.NAME] type = "teams"`: `webhook_url` (or `webhook_url_file`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The URL of the workflow's "When a Teams webhook request is received" trigger (a secret).
    #[serde(default)]
    webhook_url: Option<Secret>,
    #[serde(default)]
    webhook_url_file: Option<std::path::PathBuf>,
    /// Per-request timeout (default 10 s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Token bucket for this target (`{ per_second = 1, burst = 5 }`).
    #[serde(default)]
    pub rate_limit: Option<crate::alerting::RateLimit>,
    /// Deliveries sent to this target at once (default 4).
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub retry: RetryOverrides,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl TeamsConfig {
    pub(crate) fn finish(&mut self, name: &str) -> Result<(), ConfigError> {
        crate::config::required_http_url(
            format!("targets.{name}.webhook_url"),
            &mut self.webhook_url,
            &self.webhook_url_file,
            "a teams target needs `webhook_url` (the workflow's webhook URL)",
        )
    }
}

/// A ready Teams target.
#[derive(Debug)]
pub struct Teams {
    url: Secret,
    client: reqwest::Client,
}

impl Teams {
    pub fn new(cfg: &TeamsConfig) -> Result<Self, reqwest::Error> {
        Ok(Teams {
            url: cfg.webhook_url.clone().expect("checked at load"),
            client: super::webhook::http_client(cfg.timeout)?,
        })
    }

    pub fn preview(&self, msg: &Message<'_>) -> String {
        format!(
            "POST {}\ncontent-type: application/json; charset=utf-8\n\n{}",
            crate::config::redact_url(self.url.expose()),
            serde_json::to_string_pretty(&payload(msg)).unwrap_or_default()
        )
    }

    pub async fn notify(&self, msg: &Message<'_>) -> Outcome {
        let body = serde_json::to_vec(&payload(msg)).unwrap_or_default();
        let req = self
            .client
            .post(self.url.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(body);
        super::incident::send(req, self.url.expose(), msg.now_ms).await
    }
}

/// Escapes event content for Adaptive Card markdown (see the module doc): a backslash before each
/// character the Adaptive Cards subset of CommonMark (with GitHub's autolinks) reads as markup:
/// `\\ * _ ~ ` [ ] < { @` everywhere, a list, quote or heading marker (`-`, `+`, `>`, `#`, `1.`,
/// `1)`) at the start, `:` in `://` and `.` in `www.`; line breaks, control, bidirectional and other
/// hidden characters are first shown as escapes ([`crate::escape::visible`]).
pub fn md(s: &str) -> String {
    // Hidden characters (controls, line breaks, bidi and zero-width ones) are shown as escapes, as in
    // every other format (crate::escape), so content cannot hide, reorder or break text.
    let chars: Vec<char> = crate::escape::visible(s).chars().collect();
    let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let next2 = |a: char, b: char| chars.get(i + 1) == Some(&a) && chars.get(i + 2) == Some(&b);
        let www = i >= 3
            && chars[i - 3..i]
                .iter()
                .collect::<String>()
                .eq_ignore_ascii_case("www");
        let escape = match c {
            '\\' | '*' | '_' | '~' | '`' | '[' | ']' | '<' | '{' | '@' => true,
            '-' | '+' | '>' | '#' => i == 0,
            '.' | ')' => (digits > 0 && i == digits) || (c == '.' && www),
            ':' => next2('/', '/'),
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn text(t: &str) -> Value {
    json!({"type": "TextBlock", "text": t, "wrap": true})
}

fn fact(title: &str, value: &str) -> Value {
    json!({"title": title, "value": cap(value, 500)})
}

/// The message for `msg`: the card in its attachment envelope, within [`BUDGET`].
pub fn payload(msg: &Message<'_>) -> Value {
    let ctx = msg.context();
    if msg.is_resolve() {
        return envelope(resolved(&ctx));
    }
    envelope(card(&ctx))
}

/// The "resolved" card: what was fixed (in green), what changed since the scan that opened the
/// alert, what the image has now, and the context line.
pub fn resolved(ctx: &Context<'_>) -> Value {
    let f = &ctx.scan;
    let headline = ctx
        .resolved
        .as_ref()
        .map(|r| r.headline.clone())
        .unwrap_or_else(|| format!("Resolved: {}", f.image));
    let mut body = vec![
        json!({"type": "TextBlock", "text": md(&cap(&headline, 400)),
        "size": "large", "weight": "bolder", "color": "good", "wrap": true}),
    ];
    body.push(text(&format!(
        "**{}** no longer matches rule **{}**.",
        md(&cap(&f.image, 300)),
        md(ctx.rule)
    )));
    if let Some(d) = f
        .delta
        .as_ref()
        .filter(|d| !d.changes.is_empty() || d.finding.is_some())
    {
        body.push(text(&format!(
            "**Changes since {}**  {}",
            md(&d.compared_with),
            md(&d.summary)
        )));
    }
    if !f.counts.is_empty() {
        body.push(text(&format!("**Findings now**  {}", md(&f.summary))));
    }
    let context = json!({"type": "TextBlock", "text": format!("rule **{}**", md(ctx.rule)),
        "isSubtle": true, "size": "small", "wrap": true});
    // Within the budget like an alert: content (multi-byte, escaped) can make any text long.
    fit(
        body,
        Vec::new(),
        context,
        Vec::new(),
        &md(&cap(&headline, 400)),
    )
}

/// `{"type": "message", "attachments": [card]}`.
pub fn envelope(card: Value) -> Value {
    json!({"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]})
}

fn size(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// The Adaptive Card of an alert.
pub fn card(ctx: &Context<'_>) -> Value {
    let f = &ctx.scan;
    let alarming = f.failed
        || matches!(f.worst.as_deref(), Some("CRITICAL" | "HIGH"))
        || f.finding
            .as_ref()
            .is_some_and(|x| matches!(x.severity.as_deref(), Some("CRITICAL" | "HIGH")));
    let mut head = json!({"type": "TextBlock", "text": md(&cap(&f.headline, 400)),
        "size": "large", "weight": "bolder", "wrap": true});
    if alarming {
        head["color"] = json!("attention");
    }
    let mut body = vec![head];
    if let Some(m) = &ctx.message {
        body.push(text(&md(&cap(m, 3000))));
    }
    let mut facts = Vec::new();
    if let Some(r) = ctx.replay {
        facts.push(fact("Replay", &md(r)));
    }
    if let Some(r) = &f.repository {
        facts.push(fact("Repository", &md(r)));
    }
    if !f.tags.is_empty() {
        let tags: Vec<String> = f.tags.iter().map(|t| md(t)).collect();
        facts.push(fact("Tags", &tags.join(", ")));
    }
    if let Some(d) = &f.short_digest {
        facts.push(fact("Digest", &md(d)));
    }
    if let Some(s) = &f.status {
        facts.push(fact("Scan", &md(s)));
    }
    if let Some(x) = &f.finding {
        if let Some(id) = &x.id {
            facts.push(fact("Vulnerability", &md(id)));
        }
        let sev = match (&x.severity, x.score) {
            (Some(s), Some(score)) => format!("{} (score {score})", md(s)),
            (Some(s), None) => md(s),
            _ => "-".into(),
        };
        facts.push(fact("Severity", &sev));
        if let Some(p) = &x.package {
            let v = match &x.installed_version {
                Some(v) => format!("{} {}", md(p), md(v)),
                None => md(p),
            };
            facts.push(fact("Package", &v));
        }
        let fixed = x
            .fixed_in
            .as_deref()
            .map(md)
            .unwrap_or_else(|| "no fix available yet".into());
        facts.push(fact("Fixed in", &fixed));
        if let Some(r) = &f.resource {
            facts.push(fact("Resource", &md(r)));
        }
    }
    if !facts.is_empty() {
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    if !f.counts.is_empty() {
        let line: Vec<String> = f
            .counts
            .iter()
            .map(|c| {
                if c.count > 0 && matches!(c.severity, "CRITICAL" | "HIGH") {
                    format!("**{} {}**", c.severity, c.count)
                } else {
                    format!("{} {}", c.severity, c.count)
                }
            })
            .collect();
        let mut t = format!("**Findings**  {}", line.join("  ·  "));
        if f.kind == Kind::InspectorScan {
            t.push_str(&format!("  (total {})", f.total));
        }
        body.push(text(&t));
    } else if f.failed {
        body.push(text(
            "The scan did not complete; no findings are available for this image.",
        ));
    }
    if !f.top_findings.is_empty() && f.kind != Kind::InspectorFinding {
        let mut head = String::from("**Top findings**");
        if f.findings_more > 0 {
            head.push_str(&format!(" ({} more not listed)", f.findings_more));
        }
        body.push(text(&head));
        for x in &f.top_findings {
            let sev = md(x.severity.as_deref().unwrap_or("-"));
            let pkg = match (&x.package, &x.installed_version) {
                (Some(p), Some(v)) => format!("{} {}", md(p), md(v)),
                (Some(p), None) => md(p),
                _ => String::new(),
            };
            let fix = match &x.fixed_in {
                Some(v) => format!("fixed in {}", md(v)),
                None => "no fix yet".to_owned(),
            };
            let line = format!("{sev} {} {pkg} → {fix}", md(x.id.as_deref().unwrap_or("-")));
            body.push(
                json!({"type": "TextBlock", "text": cap(&line, 500), "wrap": true,
                "spacing": "none"}),
            );
        }
    }
    if let Some(d) = &f.delta {
        body.push(text(&format!(
            "**Since {}**  {}",
            md(&d.compared_with),
            md(&d.summary)
        )));
    }
    if f.kind == Kind::Generic {
        let detail = serde_json::to_string(ctx.event.get("detail").unwrap_or(&Value::Null))
            .unwrap_or_default();
        body.push(json!({"type": "TextBlock", "text": md(&cap(&detail, 6000)),
            "fontType": "monospace", "wrap": true}));
    }
    let mut context = vec![format!("rule **{}**", md(ctx.rule))];
    context.extend(f.account.iter().map(|a| format!("account {}", md(a))));
    context.extend(f.region.iter().map(|r| md(r)));
    context.extend(f.time.iter().map(|t| md(t)));
    let context = json!({"type": "TextBlock", "text": cap(&context.join(" · "), 1000),
        "isSubtle": true, "size": "small", "wrap": true});
    let mut actions = Vec::new();
    if let Some(u) = super::incident::console_link(f) {
        actions.push(json!({"type": "Action.OpenUrl", "title": "Open in ECR console", "url": u}));
    }
    if let Some(u) = f
        .finding
        .as_ref()
        .and_then(|x| x.url.as_deref())
        .and_then(|u| https_link(u, None))
    {
        actions.push(json!({"type": "Action.OpenUrl", "title": "Advisory", "url": u}));
    }
    let lines: Vec<Value> = if f.kind == Kind::Digest {
        digest_lines(f)
    } else {
        Vec::new()
    };
    fit(body, lines, context, actions, &md(&cap(&f.headline, 400)))
}

/// One text block per image of a digest.
fn digest_lines(f: &crate::scan::Facts) -> Vec<Value> {
    f.items
        .iter()
        .map(|i| {
            let scans = if i.scans > 1 {
                format!(" ({} scans)", i.scans)
            } else {
                String::new()
            };
            json!({"type": "TextBlock", "text": format!("- **{}**  {}{scans}", md(&cap(&i.image, 300)),
                md(&cap(&i.summary, 300))), "wrap": true, "spacing": "none"})
        })
        .collect()
}

fn assemble(body: &[Value], actions: &[Value], fallback: &str) -> Value {
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "fallbackText": fallback,
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = json!(actions);
    }
    card
}

/// Puts the card together within [`BUDGET`]: as many `lines` as fit, then "…and N more"; if the
/// fixed parts alone are too big, the longest texts are cut until it fits.
fn fit(
    mut body: Vec<Value>,
    lines: Vec<Value>,
    context: Value,
    actions: Vec<Value>,
    fallback: &str,
) -> Value {
    let total = lines.len();
    let reserve = 200; // the "…and N more" block, the context line's separator
    let mut used = size(&envelope(assemble(&body, &actions, fallback))) + size(&context) + reserve;
    let mut shown = 0;
    for line in lines {
        let n = size(&line) + 1;
        if used + n > BUDGET {
            break;
        }
        used += n;
        body.push(line);
        shown += 1;
    }
    if shown < total {
        body.push(text(&format!("…and {} more", total - shown)));
    }
    body.push(context);
    let mut card = assemble(&body, &actions, fallback);
    // The fixed parts are capped, but multi-byte text and escaping can still grow them: cut the
    // longest text until the message fits.
    while size(&envelope(card.clone())) > BUDGET {
        let Some(longest) = card["body"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .flat_map(|b| {
                let texts: Vec<&mut Value> = match b.get("facts") {
                    Some(_) => b["facts"]
                        .as_array_mut()
                        .into_iter()
                        .flatten()
                        .map(|f| &mut f["value"])
                        .collect(),
                    None => vec![&mut b["text"]],
                };
                texts
            })
            .filter(|t| t.is_string())
            .max_by_key(|t| t.as_str().map(str::len).unwrap_or(0))
        else {
            break;
        };
        let s = longest.as_str().unwrap_or_default().to_owned();
        let keep = s.chars().count() / 2;
        if keep < 8 {
            break;
        }
        *longest = json!(cap(&s, keep));
    }
    card
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::sample;

    pub(crate) fn validator() -> jsonschema::Validator {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/adaptive-card/adaptive-card-1.4.0.json");
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft6)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap()
    }

    fn check(v: &jsonschema::Validator, message: &Value) {
        assert_eq!(message["type"], "message");
        let a = &message["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        let card = &a["content"];
        let errors: Vec<String> = v.iter_errors(card).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:#?}\n{card:#}");
        assert!(size(message) <= BUDGET, "{} bytes", size(message));
    }

    fn msg<'a>(event: &'a Value, payload: &'a Value) -> Message<'a> {
        Message {
            delivery_id: "d-1",
            rule: "critical-findings",
            event_id: "e-1",
            event,
            payload,
            delta: None,
            now_ms: 0,
            alert: None,
            replay: None,
        }
    }

    #[test]
    fn every_sample_makes_a_valid_card() {
        let v = validator();
        for name in [
            "ecr-image-scan-critical.json",
            "ecr-image-scan-high-only.json",
            "ecr-image-scan-clean.json",
            "ecr-image-scan-failed.json",
            "inspector2-scan.json",
            "inspector2-finding.json",
            "ecr-image-action-push.json",
        ] {
            let e = sample(name);
            check(&v, &payload(&msg(&e, &e)));
        }
        let generic =
            json!({"id": "g", "source": "ci", "detail-type": "Build", "detail": {"x": 1}});
        check(&v, &payload(&msg(&generic, &generic)));
        // The schema is not vacuous: a card missing its text, or with an unknown property, fails.
        let bad =
            json!({"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock"}]});
        assert!(!v.is_valid(&bad));
        let bad = json!({"type": "AdaptiveCard", "version": "1.4", "colour": "red", "body": []});
        assert!(!v.is_valid(&bad));
    }

    #[test]
    fn the_critical_scan_reads_like_the_slack_message() {
        let e = sample("ecr-image-scan-critical.json");
        let m = payload(&msg(&e, &e));
        let card = &m["attachments"][0]["content"];
        let body = card["body"].as_array().unwrap();
        assert_eq!(
            body[0]["text"],
            "2 CRITICAL, 7 HIGH, 19 MEDIUM, 4 LOW, 3 INFORMATIONAL in payments/api:v2.14.0"
        );
        assert_eq!(body[0]["color"], "attention");
        let facts: Vec<(&str, &str)> = body[1]["facts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["title"].as_str().unwrap(), f["value"].as_str().unwrap()))
            .collect();
        assert_eq!(
            facts,
            [
                ("Repository", "payments/api"),
                ("Tags", "v2.14.0, latest"),
                ("Digest", "sha256:9c1d4f3b8e2a"),
                ("Scan", "COMPLETE"),
            ]
        );
        assert_eq!(
            body[2]["text"],
            "**Findings**  **CRITICAL 2**  ·  **HIGH 7**  ·  MEDIUM 19  ·  LOW 4  ·  INFORMATIONAL 3  ·  UNDEFINED 0"
        );
        assert_eq!(card["actions"][0]["title"], "Open in ECR console");
        assert!(card["actions"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://us-east-1.console.aws.amazon.com/ecr/repositories/private/123456789012/payments/api/"));
    }

    #[test]
    fn event_content_cannot_format_or_link() {
        for (raw, escaped) in [
            ("**x** _y_ ~z~ `c`", "\\*\\*x\\*\\* \\_y\\_ \\~z\\~ \\`c\\`"),
            ("[a](https://e.example)", "\\[a\\](https\\://e.example)"),
            (
                "<https://e.example> www.e.example a@b.example",
                "\\<https\\://e.example> www\\.e.example a\\@b.example",
            ),
            ("> quote -> arrow", "\\> quote -> arrow"),
            ("- item", "\\- item"),
            ("12. item", "12\\. item"),
            // Line breaks and hidden characters are shown as escapes (whose backslash is escaped).
            (
                "a\r\n- b\u{202E}c{{DATE(x)}}",
                "a\\\\r\\\\n- b\\\\u\\{202E}c\\{\\{DATE(x)}}",
            ),
            (
                "payments/api:v2.14.0 sha256:9c1d",
                "payments/api:v2.14.0 sha256:9c1d",
            ),
            ("back\\slash", "back\\\\slash"),
        ] {
            assert_eq!(md(raw), escaped, "{raw}");
        }
        let mut e = sample("ecr-image-scan-critical.json");
        e["detail"]["repository-name"] = json!("[click](https://evil.example)");
        let m = payload(&msg(&e, &e));
        let text = m.to_string();
        assert!(!text.contains("[click](https"), "{text}");
        assert!(
            !text.contains("evil.example\""),
            "never a link target: {text}"
        );
    }

    #[test]
    fn huge_digests_fit_with_and_n_more() {
        let v = validator();
        let members: Vec<Value> = (0..2000)
            .map(|i| {
                let mut e = sample("ecr-image-scan-critical.json");
                e["detail"]["repository-name"] = json!(format!("team-{i}/service-{i}"));
                e
            })
            .collect();
        let digest = crate::alerting::digest_event(
            "g",
            "r",
            &json!({}),
            &members,
            Duration::from_secs(600),
            "2026-11-20T13:00:00Z",
        );
        let m = payload(&msg(&digest, &digest));
        check(&v, &m);
        let body = m["attachments"][0]["content"]["body"].as_array().unwrap();
        let more = body
            .iter()
            .filter_map(|b| b["text"].as_str())
            .find(|t| t.starts_with("…and "))
            .expect("a visible …and N more");
        let shown = body
            .iter()
            .filter(|b| b["text"].as_str().is_some_and(|t| t.starts_with("- **")))
            .count();
        assert!(shown > 50, "{shown} images shown");
        assert_eq!(more, format!("…and {} more", 2000 - shown));
        // Multi-byte text everywhere still fits.
        let wide = "界".repeat(20_000);
        let e = json!({"id": "w", "source": "ci", "detail-type": wide, "detail": {"blob": wide}});
        let p = json!(wide);
        let m = payload(&msg(&e, &p));
        check(&v, &m);
    }
}
