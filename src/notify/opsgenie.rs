//! The `opsgenie` target: the Opsgenie Alert API (`https://api.opsgenie.com`, or
//! `https://api.eu.opsgenie.com` for the EU instance, by `url`), authenticated with
//! `Authorization: GenieKey API_KEY`.
//!
//! A trigger creates an alert, `POST {url}/v2/alerts`, with `message` (the headline, ≤ 130
//! characters), `alias` (the dedup key, [`super::incident::vendor_key`]: repeated alerts about one
//! image or finding count on one open alert), `description` (the facts as text, ≤ 15,000),
//! `priority` (P1 CRITICAL, P2 HIGH, P3 MEDIUM or a failed scan, P4 LOW, P5 otherwise), `tags` (≤ 20
//! of ≤ 50 characters: scanbridge, the rule, the worst severity, the kind, the repository),
//! `details` (string values, ≤ 8,000 characters in all), `entity` (the image reference, ≤ 512) and
//! `source` (`scanbridge`). A resolve closes it: `POST {url}/v2/alerts/{alias}/close?
//! identifierType=alias` with a note saying what changed. The message is HTML-escaped (Opsgenie
//! renders HTML in messages), so event content cannot add markup there; the description and the
//! note are plain text.
//!
//! Classification: Opsgenie processes requests asynchronously and answers 202 Accepted (any 2xx is
//! delivered); 429 and 5xx retryable (Retry-After honoured); other 4xx (a bad key, an invalid
//! field) permanent with Opsgenie's message in the reason; 3xx permanent. The API key is a secret.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::attempt::{Message, Outcome};
use super::incident::{Incident, cap, counts_line};
use crate::config::{ConfigError, Secret, resolve_secret};
use crate::retry::RetryOverrides;
use crate::scan::Facts;

/// Opsgenie's limits (characters).
pub const MAX_MESSAGE: usize = 130;
pub const MAX_DESCRIPTION: usize = 15_000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG: usize = 50;
pub const MAX_DETAILS: usize = 8_000;
pub const MAX_ENTITY: usize = 512;
pub const MAX_NOTE: usize = 25_000;
/// The US instance; `https://api.eu.opsgenie.com` is the EU one.
pub const DEFAULT_URL: &str = "https://api.opsgenie.com";

/// `[targets.NAME] type = "opsgenie"`: `api_key` (or `api_key_file`) is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieConfig {
    /// The API key of an Opsgenie API integration (a secret).
    #[serde(default)]
    api_key: Option<Secret>,
    #[serde(default)]
    api_key_file: Option<std::path::PathBuf>,
    /// The API host: `https://api.opsgenie.com` (default) or `https://api.eu.opsgenie.com`.
    #[serde(default = "default_url")]
    pub url: String,
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

fn default_url() -> String {
    DEFAULT_URL.into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl OpsgenieConfig {
    pub(crate) fn finish(&mut self, name: &str) -> Result<(), ConfigError> {
        let key = format!("targets.{name}.api_key");
        resolve_secret(&key, &mut self.api_key, &self.api_key_file)?;
        if self
            .api_key
            .as_ref()
            .is_none_or(|k| k.expose().trim().is_empty())
        {
            return Err(ConfigError::Invalid {
                key,
                message: "an opsgenie target needs `api_key` (the key of an API integration)"
                    .into(),
            });
        }
        if self
            .api_key
            .as_ref()
            .is_some_and(|k| reqwest::header::HeaderValue::from_str(k.expose()).is_err())
        {
            return Err(ConfigError::Invalid {
                key,
                message: "not a valid HTTP header value".into(),
            });
        }
        crate::config::check_http_url(&format!("targets.{name}.url"), &self.url)
    }
}

/// A ready Opsgenie target.
#[derive(Debug)]
pub struct Opsgenie {
    api_key: Secret,
    base: reqwest::Url,
    client: reqwest::Client,
}

impl Opsgenie {
    pub fn new(cfg: &OpsgenieConfig) -> Result<Self, reqwest::Error> {
        Ok(Opsgenie {
            api_key: cfg.api_key.clone().expect("checked at load"),
            base: reqwest::Url::parse(&cfg.url).expect("checked at load"),
            client: super::webhook::http_client(cfg.timeout)?,
        })
    }

    /// The request for `msg`: its URL and JSON body (a resolve closes the alert by alias).
    pub fn request(&self, msg: &Message<'_>) -> (reqwest::Url, Value) {
        let i = Incident::of(msg);
        let mut url = self.base.clone();
        if msg.is_resolve() {
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty()
                    .extend(["v2", "alerts", i.key.as_str(), "close"]);
            }
            url.set_query(Some("identifierType=alias"));
            let mut body = close(msg);
            crate::escape::visible_json(&mut body);
            return (url, body);
        }
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["v2", "alerts"]);
        }
        let mut body = create(msg, &i);
        crate::escape::visible_json(&mut body);
        (url, body)
    }

    pub fn preview(&self, msg: &Message<'_>) -> String {
        let (url, body) = self.request(msg);
        format!(
            "POST {url}\nauthorization: GenieKey ***\ncontent-type: application/json\n\n{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        )
    }

    pub async fn notify(&self, msg: &Message<'_>) -> Outcome {
        let (url, body) = self.request(msg);
        let req = self
            .client
            .post(url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("GenieKey {}", self.api_key.expose()),
            )
            .json(&body);
        super::incident::send(req, self.api_key.expose(), msg.now_ms).await
    }
}

/// HTML-escapes `s` (`&`, `<`, `>`, `"`) within `max` characters, marking a cut with `…` and never
/// cutting an entity.
pub fn escape_cap(s: &str, max: usize) -> String {
    // Hidden characters shown first (one line), so the limit holds for what Opsgenie receives.
    let s = crate::escape::visible(s);
    let mut out = String::new();
    let mut n = 0;
    let total = s.chars().count();
    for (i, c) in s.chars().enumerate() {
        let piece = match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            c => c.to_string(),
        };
        let len = piece.chars().count();
        let room = if i + 1 < total { max - 1 } else { max };
        if n + len > room {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        n += len;
    }
    out
}

fn tag(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == ',' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    t.chars().take(MAX_TAG).collect()
}

/// The description: the facts a responder reads, as text.
fn description(msg: &Message<'_>, i: &Incident) -> String {
    let ctx = msg.context();
    let f = &ctx.scan;
    let mut t = format!("{}\n\n", f.headline);
    if let Some(m) = &ctx.message {
        t.push_str(&format!("{m}\n\n"));
    }
    t.push_str(&format!("Image: {}\n", f.image));
    if f.tags.len() > 1 {
        t.push_str(&format!("Tags: {}\n", f.tags.join(", ")));
    }
    if let Some(d) = &f.digest {
        t.push_str(&format!("Digest: {d}\n"));
    }
    if let Some(s) = &f.status {
        t.push_str(&format!("Scan: {s}\n"));
    }
    if !f.counts.is_empty() {
        t.push_str(&format!("Findings: {}\n", counts_line(f)));
    }
    if let Some(x) = &f.finding {
        t.push_str(&format!(
            "Vulnerability: {} ({}{})\nPackage: {} {}\nFixed in: {}\n",
            x.id.as_deref().unwrap_or("-"),
            x.severity.as_deref().unwrap_or("-"),
            x.score.map(|s| format!(", score {s}")).unwrap_or_default(),
            x.package.as_deref().unwrap_or("-"),
            x.installed_version.as_deref().unwrap_or(""),
            x.fixed_in.as_deref().unwrap_or("no fix available yet"),
        ));
    }
    if let Some(d) = msg.delta {
        t.push_str(&format!(
            "Changes since {}: {}\n",
            d.compared_with, d.summary
        ));
    }
    for (href, text) in &i.links {
        t.push_str(&format!("{text}: {href}\n"));
    }
    t.push_str(&format!(
        "\nRule {} · event {} · delivery {}",
        msg.rule, msg.event_id, msg.delivery_id
    ));
    t
}

/// `details`: every detail as a string, at most [`MAX_DETAILS`] characters in all.
fn details(d: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut used = 0;
    for (k, v) in d {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let text = cap(&text, 1000);
        let cost = k.chars().count() + text.chars().count();
        if used + cost > MAX_DETAILS {
            break;
        }
        used += cost;
        out.insert(k.clone(), Value::String(text));
    }
    out
}

/// The close-alert body for a resolve: who closed it and a note saying what changed.
pub fn close(msg: &Message<'_>) -> Value {
    let ctx = msg.context();
    let headline = ctx
        .resolved
        .as_ref()
        .map(|r| r.headline.clone())
        .unwrap_or_else(|| format!("Resolved: {}", ctx.scan.image));
    let note = format!(
        "{headline}\n\nRule {} no longer matches (event {}, delivery {}).",
        msg.rule, msg.event_id, msg.delivery_id
    );
    json!({"user": "scanbridge", "source": "scanbridge", "note": cap(&note, MAX_NOTE)})
}

/// The create-alert body for `msg`.
pub fn create(msg: &Message<'_>, i: &Incident) -> Value {
    let f = Facts::of(msg.event);
    let mut tags = vec!["scanbridge".to_owned(), tag(msg.rule)];
    tags.extend(f.worst.as_deref().map(tag));
    tags.push(tag(&i.class.to_ascii_lowercase().replace(' ', "-")));
    tags.extend(
        f.repository
            .as_deref()
            .map(|r| tag(&format!("repository:{r}"))),
    );
    tags.dedup();
    tags.truncate(MAX_TAGS);
    json!({
        "message": escape_cap(&i.summary, MAX_MESSAGE),
        "alias": i.key,
        "description": cap(&description(msg, i), MAX_DESCRIPTION),
        "priority": i.level.opsgenie(),
        "tags": tags,
        "details": details(&i.details),
        "entity": cap(&i.source, MAX_ENTITY),
        "source": "scanbridge",
    })
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
    fn create_within_limits_and_escaped() {
        let mut e = sample("ecr-image-scan-critical.json");
        e["detail"]["repository-name"] = json!(format!("<b>{}</b>", "r".repeat(300)));
        e["detail"]["image-tags"] =
            json!((0..40).map(|i| format!("tag {i},x")).collect::<Vec<_>>());
        let m = msg(&e);
        let body = create(&m, &Incident::of(&m));
        let message = body["message"].as_str().unwrap();
        assert!(message.chars().count() <= MAX_MESSAGE, "{message}");
        assert!(
            message.contains("&lt;b&gt;") && !message.contains("<b>"),
            "{message}"
        );
        assert!(body["description"].as_str().unwrap().chars().count() <= MAX_DESCRIPTION);
        let tags = body["tags"].as_array().unwrap();
        assert!(tags.len() <= MAX_TAGS);
        for t in tags {
            let t = t.as_str().unwrap();
            assert!(
                t.chars().count() <= MAX_TAG && !t.contains(' ') && !t.contains(','),
                "{t}"
            );
        }
        let details = body["details"].as_object().unwrap();
        let total: usize = details
            .iter()
            .map(|(k, v)| k.chars().count() + v.as_str().unwrap().chars().count())
            .sum();
        assert!(total <= MAX_DETAILS && details.values().all(Value::is_string));
        assert!(body["entity"].as_str().unwrap().chars().count() <= MAX_ENTITY);
        assert_eq!(body["priority"], "P1");
        assert!(body["alias"].as_str().unwrap().chars().count() <= 512);
    }

    #[test]
    fn escape_never_cuts_an_entity() {
        assert_eq!(escape_cap("a&b", 10), "a&amp;b");
        assert_eq!(escape_cap("abcdef", 4), "abc…");
        assert_eq!(escape_cap("ab&cd", 5), "ab…");
        assert_eq!(escape_cap("abcd", 4), "abcd");
    }

    #[test]
    fn config_denies_unknown_fields_and_needs_a_key() {
        let bad: Result<OpsgenieConfig, _> =
            serde_json::from_value(json!({"api_key": "k", "region": "eu"}));
        assert!(bad.unwrap_err().to_string().contains("region"));
        let mut c: OpsgenieConfig = serde_json::from_value(json!({})).unwrap();
        let e = c.finish("ops").unwrap_err().to_string();
        assert!(e.contains("targets.ops.api_key"), "{e}");
        let mut c: OpsgenieConfig = serde_json::from_value(
            json!({"api_key": "g3n1e", "url": "https://api.eu.opsgenie.com"}),
        )
        .unwrap();
        c.finish("ops").unwrap();
        let og = Opsgenie::new(&c).unwrap();
        let e = sample("ecr-image-scan-critical.json");
        let (url, _) = og.request(&msg(&e));
        assert_eq!(url.as_str(), "https://api.eu.opsgenie.com/v2/alerts");
        assert!(!format!("{c:?} {og:?}").contains("g3n1e"));
    }
}
