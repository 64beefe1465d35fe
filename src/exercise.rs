//! One event through every room, in process: the harness that the property test (below) and the
//! `alert_path` fuzz target drive with hostile events.
//!
//! [`Rig::run`] takes raw JSON and does what the daemon does between accepting an event and rendering
//! it, minus the network: envelope validation, routing with topics and their filter policies, the
//! scan history (observation, the four `notify_on` verdicts, deltas both ways against a sample scan),
//! dedup keys and digest labels of every rule, a digest event made from the event, and every target's
//! rendering of every delivery (console text, the Slack Block Kit payload, the whole email message as
//! lettre formats it for SMTP, the webhook request), with the event itself, transformed inputs, and
//! the digest. It returns what would be sent, so callers can check properties of the output; it must
//! never panic, whatever the event holds. The durable part (the store's transaction and the alerting
//! stages over it) is driven by the property test through the real `Ingestor`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::event::{EnvelopeRules, Rejection};
use crate::notify::{Message, Target, TargetConfig, Targets};
use crate::router::Router;

/// The rig's clock: 2026-11-20T12:00:00Z.
const NOW_MS: i64 = 1_795_176_000_000;

/// What one target would send for one delivery.
#[derive(Debug, Clone)]
pub struct Rendering {
    /// The target's name in the rig.
    pub target: String,
    /// Whether this renders the digest the rig made from the event (with a sample), not the event.
    pub digest: bool,
    /// `console`, `slack`, `email` (and its parts `email-subject`, `email-text`, `email-html`) or
    /// `webhook`.
    pub kind: &'static str,
    /// What goes out: the console text, the Slack JSON body, the email as sent over SMTP (headers
    /// and body) and its rendered parts, the webhook request (preview form and built headers).
    pub text: String,
}

/// The rig: one rule set and one target of each kind (never contacted).
pub struct Rig {
    router: Router,
    targets: Targets,
    envelope: EnvelopeRules,
    sample: Value,
}

/// The rig's targets: a console, a signed webhook, an email, a Slack webhook, PagerDuty, Opsgenie,
/// Teams and a topic with a filter policy. Nothing listens at these addresses; nothing is sent.
fn target_configs() -> serde_json::Map<String, Value> {
    json!({
        "console": {"type": "console"},
        "hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook",
            "headers": {"X-Token": "t"}, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        "mail": {"type": "email", "host": "127.0.0.1", "port": 9, "tls": "none",
            "from": "scanbridge <alerts@example.org>", "to": ["oncall@example.org"]},
        "slack": {"type": "slack", "webhook_url": "http://127.0.0.1:9/services/T0/B0/x"},
        "pager": {"type": "pagerduty", "routing_key": "R0123456789abcdef0123456789abcdef",
            "url": "http://127.0.0.1:9/v2/enqueue"},
        "genie": {"type": "opsgenie", "api_key": "k", "url": "http://127.0.0.1:9"},
        "teams": {"type": "teams", "webhook_url": "http://127.0.0.1:9/workflows/x"},
        "fanout": {"type": "topic", "subscriptions": [
            {"target": "hook", "filter_policy": {"detail": {"repository-name": [{"prefix": "a"}]}}},
            {"target": "slack", "filter_policy": {"detail": {"severity": [{"anything-but": "LOW"}]}}},
            {"target": "console"}]},
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

/// The rig's rules: everything to every target (dedup, digest labels), and transformed inputs.
fn rule_docs() -> Vec<Value> {
    let any = json!({"detail-type": [{"exists": true}]});
    vec![
        json!({"name": "all", "event_pattern": any, "dedup": true,
            "group_by": ["$.detail.repository-name", "$.account"],
            "targets": ["console", "hook", "mail", "slack", "pager", "genie", "teams", "fanout"]}),
        json!({"name": "shaped", "event_pattern": any, "dedup": {"key": ["$.detail.title", "$.region"]},
            "targets": [
                {"target": "hook", "input_transformer": {
                    "input_paths_map": {"repo": "$.detail.repository-name", "tags": "$.detail.image-tags",
                        "sev": "$.detail.severity", "acct": "$.account"},
                    "input_template": "{\"text\": \"<repo> (<sev>) in <acct>\", \"repo\": <repo>, \"tags\": <tags>, \"rule\": <aws.events.rule-name>}"}},
                {"target": "slack", "input_transformer": {
                    "input_paths_map": {"repo": "$.detail.repository-name", "title": "$.detail.title"},
                    "input_template": "\"<repo>: <title> <aws.events.event.ingestion-time>\""}},
                {"target": "mail", "input_path": "$.detail"},
                {"target": "console", "input": "{\"constant\": true}"}]}),
    ]
}

/// The rig's target configurations, checked.
fn configs() -> std::collections::BTreeMap<String, TargetConfig> {
    let mut configs = std::collections::BTreeMap::new();
    for (name, v) in target_configs() {
        let mut cfg: TargetConfig = serde_json::from_value(v).expect("the rig's targets parse");
        cfg.finish(&name).expect("the rig's targets are valid");
        configs.insert(name, cfg);
    }
    configs
}

/// The rig's router: its rules over its targets and topics.
fn router(configs: &std::collections::BTreeMap<String, TargetConfig>) -> Router {
    let known = crate::rules::Known {
        targets: configs.keys().cloned().collect(),
        ..Default::default()
    };
    let rules = rule_docs()
        .iter()
        .map(|d| crate::rules::parse_rule(d, &known).expect("the rig's rules are valid"))
        .collect();
    let topics = crate::notify::compile_topics(configs).expect("the rig's topics are valid");
    Router::new(rules, Arc::new(topics))
}

impl Rig {
    /// Builds the rig; `sample` is a scan the history compares the event with (and the digest holds).
    pub fn new(sample: Value) -> Rig {
        let configs = configs();
        let templates =
            Arc::new(crate::render::template::Templates::load(None).expect("embedded templates"));
        let delivery: crate::config::DeliveryConfig =
            serde_json::from_value(json!({"workers": 1, "poll_interval": "1s", "lease": "60s",
                "max_attempts": 1, "max_age": "1h", "initial_backoff": "1s", "max_backoff": "1s"}))
            .expect("delivery config");
        let targets =
            Targets::build(&configs, &delivery, templates).expect("the rig's targets build");
        Rig {
            router: router(&configs),
            targets,
            envelope: EnvelopeRules {
                max_event_bytes: 256 * 1024,
                account: "000000000000".into(),
                region: "us-east-1".into(),
            },
            sample,
        }
    }

    /// The envelope rules the rig validates with (EventBridge's 256 KiB limit).
    pub fn envelope(&self) -> &EnvelopeRules {
        &self.envelope
    }

    /// Runs `raw` through every room (see the module doc); `Err` when validation rejects it.
    pub fn run(&self, raw: &str) -> Result<Vec<Rendering>, Rejection> {
        let ev = crate::event::validate(raw, &self.envelope, NOW_MS)?;
        let event = &ev.value;
        let mut out = Vec::new();

        // The scan history: what the store records, the verdicts and deltas against the sample.
        let _ = crate::alerting::history_update(event);
        let now = crate::alerting::observe(event);
        let then = crate::alerting::observe(&self.sample);
        let mut deltas = Vec::new();
        for (obs, against) in [(&then, event), (&now, &self.sample)] {
            if let Some(o) = obs {
                let previous = crate::alerting::HistoryPrevious {
                    via: o.keys.first().cloned().unwrap_or_default(),
                    record: o.record.clone(),
                };
                for on in [
                    crate::alerting::NotifyOn::Always,
                    crate::alerting::NotifyOn::NewFindings,
                    crate::alerting::NotifyOn::Worse,
                ] {
                    let _ = crate::alerting::decide(on, now.as_ref(), Some(&previous));
                }
                deltas.push(crate::alerting::delta(against, &previous));
            }
        }

        // Dedup keys and digest labels of every rule; a digest holding the event.
        let mut labels = Value::Null;
        for name in ["all", "shaped"] {
            if let Some(rule) = self.router.rule(name) {
                if let Some(d) = &rule.alert.dedup {
                    let _ = d.key_of(event);
                }
                if let Some(g) = &rule.alert.group {
                    labels = g.labels(event);
                    let _ = crate::alerting::group_id(name, "slack", &labels);
                }
            }
        }
        let digest = crate::alerting::digest_event(
            "digest-1",
            "all",
            &labels,
            &[event.clone(), self.sample.clone(), event.clone()],
            Duration::from_secs(90),
            "2026-11-20T13:00:00Z",
        );

        // Every delivery the event causes, rendered by its target, with and without a delta.
        let deliveries = self.router.route_matching(&ev).0;
        // A resolve of the event's alert, rendered like a trigger (rules with notify_resolved).
        let resolve = crate::store::AlertMark {
            kind: crate::store::AlertKind::Resolve,
            key: crate::alerting::alert_keys(event)
                .map(|k| k.primary)
                .unwrap_or_else(|| "-".into()),
            time_ms: None,
            record: None,
        };
        for d in &deliveries {
            let payload = match crate::render::payload(event, d.input.as_ref(), &d.rule) {
                Ok(p) => p,
                Err(_) => continue, // dead-lettered with the reason by the worker
            };
            for (delta, alert) in [
                (None, None),
                (deltas.first(), None),
                (deltas.first(), Some(&resolve)),
            ] {
                self.render(
                    &d.target, &d.id, &d.rule, event, &payload, delta, alert, &mut out,
                );
            }
        }
        // The digest, as each target sends it.
        let direct = out.len();
        for target in [
            "console", "hook", "mail", "slack", "pager", "genie", "teams",
        ] {
            self.render(
                target, "digest-d", "all", &digest, &digest, None, None, &mut out,
            );
        }
        for r in &mut out[direct..] {
            r.digest = true;
        }
        Ok(out)
    }

    /// What in `out` (the renderings of `event`) breaks a promise of [`crate::escape`]: a Slack
    /// mention, ping or link from content, a link that is neither the ECR console nor the event's
    /// `https:` advisory URL, a hidden character or a line that content added, a console alert with
    /// another shape, an email header that content made, a request that could not be built, a format
    /// limit passed. Empty when all is well.
    pub fn violations(event: &Value, out: &[Rendering]) -> Vec<String> {
        crate::exercise::check(event, out)
    }

    /// What `target` sends for one delivery of `event` (with `payload`), appended to `out`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn render(
        &self,
        target: &str,
        delivery_id: &str,
        rule: &str,
        event: &Value,
        payload: &Value,
        delta: Option<&crate::scan::Delta>,
        alert: Option<&crate::store::AlertMark>,
        out: &mut Vec<Rendering>,
    ) {
        let Some((t, _)) = self.targets.get(target) else {
            return;
        };
        let event_id = event.get("id").and_then(Value::as_str).unwrap_or("-");
        let msg = Message {
            delivery_id,
            rule,
            event_id,
            event,
            payload,
            delta,
            now_ms: NOW_MS,
            alert,
            replay: None,
        };
        let (kind, text) = match t {
            Target::Console(_) => ("console", crate::notify::console::render(&msg)),
            Target::Slack(s) => (
                "slack",
                s.payload(&msg).map(|p| p.to_string()).unwrap_or_default(),
            ),
            Target::Email(e) => {
                if let Ok((subject, text, html)) = e.render(&msg) {
                    for (kind, t) in [
                        ("email-subject", subject),
                        ("email-text", text),
                        ("email-html", html),
                    ] {
                        out.push(Rendering {
                            target: target.to_owned(),
                            digest: false,
                            kind,
                            text: t,
                        });
                    }
                }
                (
                    "email",
                    e.build(&msg)
                        .map(|m| String::from_utf8_lossy(&m.formatted()).into_owned())
                        .unwrap_or_default(),
                )
            }
            Target::Webhook(w) => {
                let mut text = w.preview(&msg);
                // The request as reqwest would send it (a header it cannot build is an error here).
                match w.request(&msg).build() {
                    Ok(req) => {
                        for (k, v) in req.headers() {
                            text.push_str(&format!(
                                "\n{k}: {}",
                                String::from_utf8_lossy(v.as_bytes())
                            ));
                        }
                    }
                    Err(e) => text.push_str(&format!("\nnot built: {}", e.without_url())),
                }
                ("webhook", text)
            }
            Target::PagerDuty(p) => ("pagerduty", p.body(&msg, false).to_string()),
            Target::Opsgenie(o) => ("opsgenie", o.request(&msg).1.to_string()),
            Target::Teams(_) => ("teams", crate::notify::teams::payload(&msg).to_string()),
        };
        out.push(Rendering {
            target: target.to_owned(),
            digest: false,
            kind,
            text,
        });
    }
}

/// The links a rendering may hold: the ECR console (built from validated parts) or the event's own
/// advisory URL when it is a valid `https:` URL.
fn allowed_link(url: &str, advisories: &[String]) -> bool {
    crate::escape::console_link(url).as_deref() == Some(url) || advisories.iter().any(|a| a == url)
}

fn hidden_in(text: &str, keep_newlines: bool) -> Option<char> {
    text.chars()
        .find(|&c| crate::escape::hidden(c) && !(keep_newlines && c == '\n'))
}

fn strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The `text` of every mrkdwn text object in a Block Kit message.
fn mrkdwn_texts<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                out.extend(o.get("text").and_then(Value::as_str));
            }
            o.values().for_each(|x| mrkdwn_texts(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| mrkdwn_texts(x, out)),
        _ => {}
    }
}

fn check(event: &Value, out: &[Rendering]) -> Vec<String> {
    // The event's own advisory URLs (an Inspector2 finding's, a scanner report's findings'), when
    // they are valid https URLs: the only links besides the ECR console.
    let findings = event.pointer("/detail/findings").and_then(Value::as_array);
    let advisories: Vec<String> = event
        .pointer("/detail/packageVulnerabilityDetails/sourceUrl")
        .into_iter()
        .chain(findings.into_iter().flatten().filter_map(|f| f.get("url")))
        .filter_map(Value::as_str)
        .filter_map(crate::escape::https_url)
        .collect();
    let advisory = &advisories[..];
    let mut bad = Vec::new();
    for r in out {
        let mut fail = |why: String| bad.push(format!("{} ({}): {why}", r.kind, r.target));
        match r.kind {
            "console" => {
                if let Some(c) = hidden_in(&r.text, true) {
                    fail(format!("hidden character {c:?}"));
                }
                let lines: Vec<&str> = r.text.lines().collect();
                if lines.iter().filter(|l| l.starts_with("===")).count() != 1
                    || !lines.first().is_some_and(|l| {
                        l.starts_with("=== scanbridge alert: ")
                            || l.starts_with("=== scanbridge RESOLVED: ")
                    })
                    || !lines[1..].iter().all(|l| l.starts_with("  "))
                {
                    fail(format!("not one alert of the expected shape:\n{}", r.text));
                }
                if let Some(l) = lines.iter().find(|l| l.chars().count() > 1000) {
                    fail(format!("a line of {} characters", l.chars().count()));
                }
            }
            "slack" => {
                let Ok(v) = serde_json::from_str::<Value>(&r.text) else {
                    fail("not JSON".into());
                    continue;
                };
                let blocks = v["blocks"].as_array().map_or(0, Vec::len);
                if blocks > crate::notify::slack::MAX_BLOCKS {
                    fail(format!("{blocks} blocks"));
                }
                if v["text"]
                    .as_str()
                    .is_some_and(|t| t.chars().count() > crate::notify::slack::MAX_SECTION_TEXT)
                {
                    fail("fallback text over the limit".into());
                }
                for b in v["blocks"].as_array().into_iter().flatten() {
                    let limit = match b["type"].as_str() {
                        Some("header") => crate::notify::slack::MAX_HEADER,
                        _ => crate::notify::slack::MAX_SECTION_TEXT,
                    };
                    if b["text"]["text"]
                        .as_str()
                        .is_some_and(|t| t.chars().count() > limit)
                    {
                        fail(format!("{} text over {limit}", b["type"]));
                    }
                    for f in b["fields"].as_array().into_iter().flatten() {
                        if f["text"]
                            .as_str()
                            .is_some_and(|t| t.chars().count() > crate::notify::slack::MAX_FIELD)
                        {
                            fail("field over the limit".into());
                        }
                    }
                    if let Some(u) = b["elements"][0]["url"].as_str()
                        && !allowed_link(u, advisory)
                    {
                        fail(format!("button to {u}"));
                    }
                }
                let mut all = Vec::new();
                strings(&v, &mut all);
                if let Some(c) = all.iter().find_map(|t| hidden_in(t, true)) {
                    fail(format!("hidden character {c:?}"));
                }
                // Mentions and links are parsed in mrkdwn text (plain_text shows `<` as it is).
                let mut md = Vec::new();
                mrkdwn_texts(&v, &mut md);
                md.extend(v["text"].as_str());
                for text in md {
                    // Every `<` opens a link we made: `<https://URL|text>` to an allowed URL.
                    let mut rest = text;
                    while let Some(at) = rest.find('<') {
                        rest = &rest[at + 1..];
                        let raw = rest.split(['|', '>']).next().unwrap_or("");
                        let ok = raw.starts_with("https://")
                            && rest.contains('|')
                            && (advisory.iter().any(|a| crate::escape::slack_url(a) == raw)
                                || allowed_link(&raw.replace("&amp;", "&"), &[]));
                        if !ok {
                            fail(format!(
                                "a mention, ping or link from content: <{}",
                                escape_for_report(rest)
                            ));
                            break;
                        }
                    }
                }
            }
            "email-subject" => {
                if let Some(c) = hidden_in(&r.text, false) {
                    fail(format!("hidden character {c:?}"));
                }
                if r.text.chars().count() > crate::notify::email::MAX_SUBJECT {
                    fail("subject over the limit".into());
                }
            }
            "email-text" => {
                if let Some(c) = hidden_in(&r.text, true) {
                    fail(format!("hidden character {c:?}"));
                }
            }
            "email-html" => {
                if let Some(c) = hidden_in(&r.text, true) {
                    fail(format!("hidden character {c:?}"));
                }
                if r.text.to_ascii_lowercase().contains("<script") {
                    fail("a script element".into());
                }
                for part in r.text.split("href=\"").skip(1) {
                    let url = part
                        .split('"')
                        .next()
                        .unwrap_or("")
                        .replace("&#x2f;", "/")
                        .replace("&amp;", "&")
                        .replace("&#x27;", "'")
                        .replace("&quot;", "\"");
                    if !allowed_link(&url, advisory) {
                        fail(format!("a link to {}", escape_for_report(&url)));
                    }
                }
            }
            "email" => {
                let head = r.text.split("\r\n\r\n").next().unwrap_or("");
                const NAMES: [&str; 8] = [
                    "From:",
                    "To:",
                    "Cc:",
                    "Subject:",
                    "Message-ID:",
                    "MIME-Version:",
                    "Date:",
                    "Content-Type:",
                ];
                for l in head.split("\r\n") {
                    if !(l.starts_with([' ', '\t']) || NAMES.iter().any(|n| l.starts_with(n))) {
                        fail(format!(
                            "a header line content made: {}",
                            escape_for_report(l)
                        ));
                    }
                }
            }
            "pagerduty" | "opsgenie" | "teams" => {
                let Ok(v) = serde_json::from_str::<Value>(&r.text) else {
                    fail("not JSON".into());
                    continue;
                };
                let mut all = Vec::new();
                strings(&v, &mut all);
                if let Some(c) = all.iter().find_map(|t| hidden_in(t, true)) {
                    fail(format!("hidden character {c:?}"));
                }
                if r.kind == "teams" && r.text.len() > crate::notify::teams::MAX_MESSAGE_BYTES {
                    fail(format!("{} bytes", r.text.len()));
                }
                if v["payload"]["summary"]
                    .as_str()
                    .is_some_and(|t| t.chars().count() > crate::notify::pagerduty::MAX_SUMMARY)
                {
                    fail("summary over the limit".into());
                }
                if v["message"]
                    .as_str()
                    .is_some_and(|t| t.chars().count() > crate::notify::opsgenie::MAX_MESSAGE)
                {
                    fail("message over the limit".into());
                }
                // Links: the console, or an `https:` URL the event itself holds (advisories).
                let mut held = Vec::new();
                strings(event, &mut held);
                let held: Vec<String> = held
                    .into_iter()
                    .filter_map(crate::escape::https_url)
                    .collect();
                let from_event = |u: &str| held.iter().any(|h| h == u);
                for l in v["links"].as_array().into_iter().flatten() {
                    if let Some(u) = l["href"].as_str()
                        && !allowed_link(u, advisory)
                        && !from_event(u)
                    {
                        fail(format!("a link to {}", escape_for_report(u)));
                    }
                }
                // Adaptive Card markdown (Teams; PagerDuty and Opsgenie show plain text, where `](`
                // links nothing): every link `[text](url)` is one we made. An escaped `\]` (content,
                // through teams::md) closes no link text.
                if r.kind == "teams" {
                    for t in &all {
                        let parts: Vec<&str> = t.split("](").collect();
                        for (i, part) in parts.iter().enumerate().skip(1) {
                            if parts[i - 1].ends_with('\\') {
                                continue;
                            }
                            let url = part.split(')').next().unwrap_or("");
                            if !allowed_link(url, advisory) && !from_event(url) {
                                fail(format!("a link to {}", escape_for_report(url)));
                            }
                        }
                    }
                }
            }
            "webhook" if r.text.contains("\nnot built: ") => {
                fail(format!("request not built: {}", escape_for_report(&r.text)));
            }
            _ => {}
        }
    }
    bad
}

fn escape_for_report(s: &str) -> String {
    crate::escape::line(s, 300)
}

#[cfg(test)]
mod tests {
    //! The property test: generated ECR, Inspector2, scanner-report and generic events with arbitrary strings (any
    //! Unicode, long, and the pieces attackers use: mrkdwn controls, CR/LF, bidi overrides, NULs,
    //! multi-byte characters where digests are cut) in every field, through every room. Bounded:
    //! `PROPTEST_CASES` (default below) keeps it to seconds in the test command; the fuzz target
    //! `alert_path` runs the same harness for as long as one likes.
    use super::*;
    use proptest::prelude::*;

    /// Pieces of hostile text: each is harmless alone in a JSON string, and each has broken some
    /// format it lands in.
    const PIECES: &[&str] = &[
        "<!channel>",
        "<!here>",
        "<@U024BE7LH>",
        "<https://evil.example/x|click here>",
        "&amp;",
        "<",
        ">",
        "&",
        "\r\n",
        "\n",
        "\r",
        "\t",
        "\u{0}",
        "\u{1b}[31m",
        "\u{7f}",
        "\u{85}",
        "\u{202e}",
        "\u{2066}",
        "\u{200b}",
        "\u{feff}",
        "\u{2028}",
        "é",
        "💥",
        "ǅ",
        "sha256:",
        "arn:aws:ecr:",
        "javascript:alert(1)",
        "https://ok.example/a b?c=<d>",
        "`",
        "*",
        "_",
        "~",
        "{{ x }}",
        "{% if %}",
        "<script>",
        "\"",
        "'",
        "\\",
        "%0d%0a",
        "/",
        "..",
        "   ",
        "=?utf-8?q?x?=",
        "Bcc: victim@example.org",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => any::<String>(),
            4 => prop::collection::vec(prop::sample::select(PIECES), 0..8).prop_map(|v| v.concat()),
            1 => ("\\PC{1,6}", 1usize..4_000).prop_map(|(s, n)| s.repeat(n)),
            2 => "[a-z0-9/._-]{1,24}",
        ]
    }

    fn count() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => (0u64..50).prop_map(|n| json!(n)),
            1 => any::<u64>().prop_map(|n| json!(n)),
            1 => any::<i64>().prop_map(|n| json!(n)),
            1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
            1 => text().prop_map(Value::String),
        ]
    }

    fn severity() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "CRITICAL",
                "HIGH",
                "MEDIUM",
                "LOW",
                "INFORMATIONAL",
                "UNDEFINED",
                "TOTAL"
            ])
            .prop_map(str::to_owned),
            text(),
        ]
    }

    /// Any JSON value, strings and keys hostile.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            count(),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Envelope fields: given (hostile) or absent.
    fn envelope() -> impl Strategy<Value = serde_json::Map<String, Value>> {
        (
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::collection::vec(text(), 0..3),
        )
            .prop_map(|(id, account, region, time, resources)| {
                let mut m = serde_json::Map::new();
                for (k, v) in [
                    ("id", id),
                    ("account", account),
                    ("region", region),
                    ("time", time),
                ] {
                    if let Some(v) = v.filter(|v| !v.is_empty()) {
                        m.insert(k.into(), json!(v));
                    }
                }
                m.insert("resources".into(), json!(resources));
                m
            })
    }

    fn ecr_scan() -> impl Strategy<Value = Value> {
        (
            envelope(),
            text(),
            prop::option::of(text()),
            prop::collection::vec(text(), 0..4),
            prop_oneof![Just("COMPLETE".to_owned()), Just("FAILED".to_owned()), text()],
            prop::collection::btree_map(severity(), count(), 0..7),
            any::<bool>(),
        )
            .prop_map(|(mut m, repo, digest, tags, status, counts, arn)| {
                let repo = if arn {
                    let region = m.get("region").cloned().unwrap_or(json!("r"));
                    format!("arn:aws:ecr:{}:{}:repository/{repo}", region.as_str().unwrap_or("r"), repo.len())
                } else {
                    repo
                };
                m.insert("source".into(), json!("aws.ecr"));
                m.insert("detail-type".into(), json!(if arn { "Inspector2 Scan" } else { "ECR Image Scan" }));
                let mut d = json!({"repository-name": repo, "image-tags": tags, "scan-status": status,
                    "finding-severity-counts": counts});
                if let Some(digest) = digest {
                    d["image-digest"] = json!(digest);
                }
                m.insert("detail".into(), d);
                Value::Object(m)
            })
    }

    fn inspector_finding() -> impl Strategy<Value = Value> {
        (
            envelope(),
            (text(), text(), severity(), text(), text()),
            (text(), text(), text(), text(), text()),
            (text(), text(), prop::collection::vec(text(), 0..3), text(), count()),
        )
            .prop_map(|(mut m, (arn, title, sev, status, url), (cve, pkg, version, fixed, rec), (region, repo, tags, hash, score))| {
                m.insert("source".into(), json!("aws.inspector2"));
                m.insert("detail-type".into(), json!("Inspector2 Finding"));
                m.insert("detail".into(), json!({
                    "findingArn": arn, "title": title, "severity": sev, "status": status,
                    "description": title, "fixAvailable": status, "inspectorScore": score,
                    "remediation": {"recommendation": {"text": rec}},
                    "packageVulnerabilityDetails": {"vulnerabilityId": cve, "sourceUrl": url,
                        "vulnerablePackages": [{"name": pkg, "version": version, "fixedInVersion": fixed}]},
                    "resources": [{"region": region, "details": {"awsEcrContainerImage": {
                        "repositoryName": repo, "imageHash": hash, "imageTags": tags, "registry": region}}}],
                }));
                Value::Object(m)
            })
    }

    fn generic() -> impl Strategy<Value = Value> {
        (envelope(), text(), text(), value()).prop_map(|(mut m, source, dt, detail)| {
            m.insert("source".into(), json!(source));
            m.insert("detail-type".into(), json!(dt));
            let detail = match detail {
                Value::Object(o) => Value::Object(o),
                other => json!({"value": other}),
            };
            m.insert("detail".into(), detail);
            Value::Object(m)
        })
    }

    /// A scanner report's Image Scan (`scanbridge.trivy` and friends): ECR's keys and `findings`.
    fn report_scan() -> impl Strategy<Value = Value> {
        let finding = (text(), text(), severity(), text(), text(), text(), text()).prop_map(
            |(id, title, sev, pkg, version, fixed, url)| {
                json!({"id": id, "title": title, "severity": sev, "package": pkg,
                    "installed-version": version, "fixed-version": fixed, "url": url})
            },
        );
        (
            envelope(),
            prop_oneof![
                Just("scanbridge.trivy".to_owned()),
                Just("scanbridge.grype".to_owned())
            ],
            text(),
            prop::collection::btree_map(severity(), count(), 0..7),
            prop::collection::vec(finding, 0..8),
        )
            .prop_map(|(mut m, source, repo, counts, findings)| {
                m.insert("source".into(), json!(source));
                m.insert("detail-type".into(), json!("Image Scan"));
                m.insert(
                    "detail".into(),
                    json!({"repository-name": repo, "scan-status": "COMPLETE",
                    "finding-severity-counts": counts, "findings": findings}),
                );
                Value::Object(m)
            })
    }

    fn any_event() -> impl Strategy<Value = Value> {
        prop_oneof![ecr_scan(), inspector_finding(), report_scan(), generic()]
    }

    /// `PROPTEST_CASES`, or `default`.
    fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(default)
    }

    /// One rig for every case (building HTTP clients and templates costs more than a case).
    fn rig() -> &'static Rig {
        static RIG: std::sync::LazyLock<Rig> = std::sync::LazyLock::new(|| {
            Rig::new(crate::testing::sample("ecr-image-scan-critical.json"))
        });
        &RIG
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: cases(128),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_event_goes_through_every_room_without_a_panic(event in any_event()) {
            let raw = event.to_string();
            // Validation may refuse (a field of the wrong type, too large): that is an answer, not
            // a crash. An accepted event reaches every target of the "all" rule.
            if let Ok(out) = rig().run(&raw) {
                for kind in ["console", "slack", "email", "webhook"] {
                    assert!(out.iter().any(|r| r.kind == kind && !r.text.is_empty()), "{kind} rendered nothing for {raw}");
                }
                let bad = Rig::violations(&event, &out);
                assert!(bad.is_empty(), "{bad:#?}\nfor {}", escape_for_report(&raw));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: cases(128) / 8,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn batches_are_stored_and_alerted_one_event_at_a_time(
            events in prop::collection::vec(any_event(), 1..4)
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(stored(events));
        }
    }

    /// The durable half: the batch (plus one good event) through the real [`Ingestor`] into SQLite
    /// (history recorded, deliveries queued), then every delivery leased through the alerting
    /// stages (silences, notify_on, dedup, digests, rate limits) and rendered; then the digests.
    async fn stored(events: Vec<Value>) {
        use crate::alerting::{Alerting, Clock, ManualClock, RateLimiter, Verdict};
        use crate::ingest::Ingestor;
        use crate::router::RouterHandle;
        use crate::store::{Store, sqlite::SqliteStore};

        let rig = rig();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), true).unwrap());
        let router = Arc::new(RouterHandle::new(router(&configs())));
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let clock = ManualClock::at(NOW_MS);
        let handoff: Arc<crate::event::Handoff> = Arc::default();
        let ingestor = Ingestor {
            router: router.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            envelope: rig.envelope().clone(),
            wake: Arc::default(),
            clock: clock.clone(),
            handoff: handoff.clone(),
            inbox: Arc::new(crate::inbox::Inbox::none()),
            room: Arc::default(),
        };
        let mut good = crate::testing::sample("ecr-image-scan-critical.json");
        good["id"] = json!("the-good-one");
        let mut raw: Vec<String> = events.iter().map(Value::to_string).collect();
        raw.push(good.to_string());
        let results = ingestor
            .ingest(
                raw.iter()
                    .cloned()
                    .map(|r| Ok(crate::event::Incoming::Text(r)))
                    .collect(),
            )
            .await
            .expect("a store that works accepts the batch");
        for (text, r) in raw.iter().zip(&results) {
            let valid = crate::event::validate(text, rig.envelope(), NOW_MS).is_ok();
            assert_eq!(r.is_ok(), valid, "{r:?} for {text}");
        }
        assert!(
            results.last().unwrap().is_ok(),
            "the good event beside them is accepted"
        );

        let alerting = Alerting::new(
            router,
            store.clone(),
            metrics,
            clock.clone(),
            RateLimiter::new(Default::default(), clock.clone()),
            handoff,
        );
        let mut sent = 0;
        for round in 0..2 {
            if round == 1 {
                clock.advance(Duration::from_secs(3600));
                alerting.flush_due().await;
            }
            loop {
                let leased = store
                    .lease(100, Duration::from_secs(60), clock.now_ms())
                    .await
                    .unwrap();
                if leased.is_empty() {
                    break;
                }
                for d in leased {
                    let event: Value = serde_json::from_str(&d.body).unwrap();
                    if let Verdict::Send(delta) = alerting.gate(&d, &event).await {
                        let input = d
                            .input
                            .as_deref()
                            .and_then(|i| serde_json::from_str(i).ok());
                        if let Ok(payload) = crate::render::payload(&event, input.as_ref(), &d.rule)
                        {
                            let mut out = Vec::new();
                            rig.render(
                                &d.target,
                                &d.id,
                                &d.rule,
                                &event,
                                &payload,
                                delta.as_ref(),
                                None,
                                &mut out,
                            );
                            sent += out.len();
                        }
                        store.ack(d.id, NOW_MS).await.unwrap();
                    }
                }
            }
        }
        assert!(sent > 0, "the good event was rendered");
    }

    /// The base event of a data-driven case.
    fn base(name: &str) -> Value {
        match name {
            "generic" => {
                json!({"id": "g1", "source": "ci", "detail-type": "Build", "detail": {"job": "x"}})
            }
            "digest" => crate::alerting::digest_event(
                "digest-forged",
                "all",
                &json!({}),
                &[
                    crate::testing::sample("ecr-image-scan-critical.json"),
                    crate::testing::sample("ecr-image-scan-high-only.json"),
                ],
                Duration::from_secs(60),
                "2026-11-20T13:00:00Z",
            ),
            report if report.starts_with("report:") => {
                crate::testing::report_event(&report["report:".len()..])
            }
            sample => crate::testing::sample(sample),
        }
    }

    /// `@repeat:TEXT:N` is TEXT N times (long values without a long fixture).
    fn value_of(v: &Value) -> Value {
        match v.as_str().and_then(|s| s.strip_prefix("@repeat:")) {
            Some(spec) => {
                let (text, n) = spec.rsplit_once(':').expect("@repeat:TEXT:N");
                json!(text.repeat(n.parse().expect("a count")))
            }
            None => v.clone(),
        }
    }

    #[test]
    fn hostile_values_are_escaped_in_every_format() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hostile-values.json");
        let cases: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut checked = 0;
        for case in cases["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let mut event = base(case["base"].as_str().unwrap());
            for (ptr, v) in case["set"].as_object().unwrap() {
                let (parent, key) = ptr.rsplit_once('/').unwrap();
                let target = event
                    .pointer_mut(parent)
                    .unwrap_or_else(|| panic!("{name}: no {parent}"));
                match target {
                    Value::Array(a) => a[key.parse::<usize>().unwrap()] = value_of(v),
                    Value::Object(o) => {
                        o.insert(key.to_owned(), value_of(v));
                    }
                    _ => panic!("{name}: {parent} is not a container"),
                }
            }
            let out = rig()
                .run(&event.to_string())
                .unwrap_or_else(|e| panic!("{name}: rejected: {e}"));
            let bad = Rig::violations(&event, &out);
            assert!(bad.is_empty(), "{name}: {bad:#?}");
            for (kind, want) in case["expect"].as_object().unwrap() {
                // The event's own renderings (the rig's digest also holds a sample scan).
                let texts: Vec<&str> = out
                    .iter()
                    .filter(|r| r.kind == kind && !r.digest)
                    .map(|r| r.text.as_str())
                    .collect();
                assert!(!texts.is_empty(), "{name}: nothing rendered as {kind}");
                for needle in want["absent"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    assert!(
                        !texts.iter().any(|t| t.contains(needle)),
                        "{name}: {kind} contains {needle:?}:\n{}",
                        texts.join("\n----\n")
                    );
                    checked += 1;
                }
                for needle in want["present"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    assert!(
                        texts.iter().any(|t| t.contains(needle)),
                        "{name}: {kind} lacks {needle:?}:\n{}",
                        texts.join("\n----\n")
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 40, "{checked} expectations");
    }
}
