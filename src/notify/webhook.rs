//! The `webhook` target: sends the payload (the event, or the rule's transformed input) to a URL.
//!
//! Request: `method` (default POST) with the configured `headers`; a JSON body, or `text/plain` when
//! the transformed input is a string; `Idempotency-Key: <delivery id>`; `X-Scanbridge-Rule` and
//! `X-Scanbridge-Event-Id` (the event's id percent-encoded outside visible ASCII, at most 256 bytes,
//! so no id can split a header or make the request unbuildable); `X-Scanbridge-Replay: <replay id>`
//! on a replayed delivery (whose event also carries EventBridge's `replay-name`); and, when `secret` is set,
//! Standard Webhooks signing: `webhook-id` (the delivery id), `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>` where the key is the
//! base64 part of `whsec_<base64>`.
//!
//! Classification (alertmanager's and EventBridge's): 2xx delivered; 408, 429 and 5xx retryable with the
//! receiver's Retry-After (seconds or HTTP date); timeouts and connection errors retryable; a request
//! that cannot be built permanent; a 3xx permanent (redirects are never followed, and no `Referer` is
//! sent: [`http_client`]), the reason naming the status and the redirect's host, never a URL; any
//! other status permanent. The URL is a [`Secret`] (it often carries a token): it never appears in logs or in
//! reasons (reqwest errors are stripped of it); header values and the signing secret are secrets too.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::attempt::{Message, Outcome};
use crate::config::{ConfigError, Secret, resolve_secret};
use crate::retry::RetryOverrides;

/// Longest `X-Scanbridge-Event-Id` value, in bytes (a longer id is cut, marked with `...`).
pub const MAX_EVENT_ID_HEADER: usize = 256;

/// `[targets.NAME] type = "webhook"`: only `url` (or `url_file`) is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default)]
    url: Option<Secret>,
    #[serde(default)]
    url_file: Option<std::path::PathBuf>,
    /// HTTP method: POST (default), PUT or PATCH.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers (values are secrets: they often carry tokens).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Standard Webhooks signing secret, `whsec_<base64>` (or `secret_file`).
    #[serde(default)]
    secret: Option<Secret>,
    #[serde(default)]
    secret_file: Option<std::path::PathBuf>,
    /// Per-request timeout (default 5 s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Token bucket for this target (`{ per_second = 1, burst = 5 }`); excess deliveries wait in the
    /// outbox, never dropped.
    #[serde(default)]
    pub rate_limit: Option<crate::alerting::RateLimit>,
    /// Deliveries sent to this target at once (default 8).
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub retry: RetryOverrides,
}

fn default_method() -> String {
    "POST".into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl WebhookConfig {
    pub(crate) fn finish(&mut self, name: &str) -> Result<(), ConfigError> {
        crate::config::required_http_url(
            format!("targets.{name}.url"),
            &mut self.url,
            &self.url_file,
            "a webhook target needs `url`",
        )?;
        let invalid = |k: &str, message: String| ConfigError::Invalid {
            key: format!("targets.{name}.{k}"),
            message,
        };
        self.method = self.method.to_ascii_uppercase();
        if !matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            return Err(invalid("method", "must be POST, PUT or PATCH".into()));
        }
        for (k, v) in &self.headers {
            if HeaderName::from_bytes(k.as_bytes()).is_err()
                || HeaderValue::from_str(v.expose()).is_err()
            {
                return Err(invalid(
                    &format!("headers.{k}"),
                    "not a valid HTTP header".into(),
                ));
            }
        }
        resolve_secret(
            &format!("targets.{name}.secret"),
            &mut self.secret,
            &self.secret_file,
        )?;
        if let Some(s) = &self.secret {
            signing_key(s).map_err(|m| invalid("secret", m))?;
        }
        Ok(())
    }

    /// The URL (present after loading).
    pub fn url(&self) -> &Secret {
        self.url
            .as_ref()
            .expect("checked when the configuration was loaded")
    }
}

/// The HMAC key of a `whsec_<base64>` secret.
fn signing_key(secret: &Secret) -> Result<Vec<u8>, String> {
    let b64 = secret
        .expose()
        .strip_prefix("whsec_")
        .ok_or("must look like whsec_<base64> (Standard Webhooks)")?;
    match B64.decode(b64) {
        Ok(k) if !k.is_empty() => Ok(k),
        _ => Err("the part after whsec_ must be non-empty base64".into()),
    }
}

/// `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`: the Standard Webhooks signature.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The request body and its content type: JSON, or plain text for a string payload.
pub fn body(payload: &Value) -> (Vec<u8>, &'static str) {
    match payload {
        Value::String(s) => (s.clone().into_bytes(), "text/plain; charset=utf-8"),
        other => (other.to_string().into_bytes(), "application/json"),
    }
}

#[derive(Debug)]
pub struct Webhook {
    url: Secret,
    method: Method,
    headers: HeaderMap,
    key: Option<Vec<u8>>,
    client: reqwest::Client,
}

impl Webhook {
    pub fn new(_name: &str, cfg: &WebhookConfig) -> Result<Self, reqwest::Error> {
        let client = http_client(cfg.timeout)?;
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let (Ok(k), Ok(mut v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v.expose()),
            ) else {
                continue; // checked at load
            };
            v.set_sensitive(true);
            headers.insert(k, v);
        }
        Ok(Webhook {
            url: cfg.url().clone(),
            method: Method::from_bytes(cfg.method.as_bytes()).unwrap_or(Method::POST),
            headers,
            key: cfg.secret.as_ref().and_then(|s| signing_key(s).ok()),
            client,
        })
    }

    /// The request as text: method, redacted URL, headers (configured values hidden), body.
    pub fn preview(&self, msg: &Message<'_>) -> String {
        let resolved = msg.is_resolve().then(|| resolved_body(msg));
        let (body, content_type) = body(resolved.as_ref().unwrap_or(msg.payload));
        let mut t = format!(
            "{} {}\ncontent-type: {content_type}\nidempotency-key: {}\n",
            self.method,
            crate::config::redact_url(self.url.expose()),
            msg.delivery_id
        );
        if let Some(r) = msg.replay {
            t.push_str(&format!("x-scanbridge-replay: {r}\n"));
        }
        for k in self.headers.keys() {
            t.push_str(&format!("{k}: ***\n"));
        }
        if self.key.is_some() {
            t.push_str(&format!(
                "webhook-id: {}\nwebhook-timestamp: <send time>\nwebhook-signature: v1,<HMAC-SHA256>\n",
                msg.delivery_id
            ));
        }
        t.push('\n');
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) if content_type == "application/json" => {
                t.push_str(&serde_json::to_string_pretty(&v).unwrap_or_default())
            }
            _ => t.push_str(&String::from_utf8_lossy(&body)),
        }
        t
    }

    /// The request as data for the UI, without the URL or header values: `{"method",
    /// "content_type", "headers" (names), "signed", "body"}` (the body as JSON, or text).
    pub fn preview_data(&self, msg: &Message<'_>) -> Value {
        let (_, content_type) = body(msg.payload);
        serde_json::json!({
            "method": self.method.as_str(),
            "content_type": content_type,
            "headers": self.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            "signed": self.key.is_some(),
            "body": msg.payload,
        })
    }

    /// The request of one attempt (not sent).
    pub fn request(&self, msg: &Message<'_>) -> reqwest::RequestBuilder {
        let resolved = msg.is_resolve().then(|| resolved_body(msg));
        let (body, content_type) = body(resolved.as_ref().unwrap_or(msg.payload));
        let mut req = self
            .client
            .request(self.method.clone(), self.url.expose())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, content_type)
            .header("Idempotency-Key", msg.delivery_id)
            .header("X-Scanbridge-Rule", msg.rule)
            // The event id comes from the event: percent-encoded, so any id makes a valid header.
            .header(
                "X-Scanbridge-Event-Id",
                crate::escape::header_value(msg.event_id, MAX_EVENT_ID_HEADER),
            );
        if resolved.is_some() {
            req = req.header("X-Scanbridge-Status", "resolved");
        }
        if let Some(r) = msg.replay {
            req = req.header(
                "X-Scanbridge-Replay",
                crate::escape::header_value(r, MAX_EVENT_ID_HEADER),
            );
        }
        if let Some(key) = &self.key {
            let ts = (msg.now_ms.max(0) / 1000) as u64;
            req = req
                .header("webhook-id", msg.delivery_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sign(key, msg.delivery_id, ts, &body));
        }
        req.body(body)
    }

    pub async fn notify(&self, msg: &Message<'_>) -> Outcome {
        send(self.request(msg), msg.now_ms).await
    }
}

/// What a webhook receives when an alert is resolved (rules with `notify_resolved`), whatever the
/// rule target's input transformation: `{"status": "resolved", "rule", "alert_key", "headline",
/// "summary", "changes": [{"severity", "before", "after"}], "opened_by": {"event_id", "time"} | null,
/// "event_id", "delivery_id", "event": <the event that resolved it>}`, with the header
/// `X-Scanbridge-Status: resolved`.
pub fn resolved_body(msg: &Message<'_>) -> Value {
    let ctx = msg.context();
    let delta = msg.delta;
    serde_json::json!({
        "status": "resolved",
        "rule": msg.rule,
        "alert_key": msg.alert.map(|a| a.key.as_str()),
        "headline": ctx.resolved.as_ref().map(|r| r.headline.as_str()),
        "summary": ctx.resolved.as_ref().map(|r| r.changes.as_str()),
        "changes": delta.map(|d| serde_json::to_value(&d.changes).unwrap_or_default()).unwrap_or_default(),
        "opened_by": delta.map(|d| serde_json::json!({"event_id": d.previous_event_id, "time": d.previous_time})),
        "event_id": msg.event_id,
        "delivery_id": msg.delivery_id,
        "event": msg.event,
    })
}

/// The HTTP client of every HTTP receiver (webhook, Slack, ...): `timeout` for connecting and for the
/// whole request; it never follows a redirect (a 3xx is the answer, see [`classify`]), so the body,
/// the secret headers and the signature only ever go to the configured URL, and it sends no `Referer`
/// (which would hold that URL).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .user_agent(concat!("scanbridge/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends a request at `now_ms` and classifies the answer; errors never carry the URL.
pub async fn send(req: reqwest::RequestBuilder, now_ms: i64) -> Outcome {
    match req.send().await {
        Ok(resp) => classify(resp.status(), resp.headers(), now_ms),
        Err(e) => {
            let timeout = e.is_timeout();
            // A request that cannot be built (a header value it refuses...) never will be: retrying
            // for a day changes nothing.
            let unbuildable = e.is_builder();
            let e = e.without_url();
            // The causes (connection refused, DNS...) say what went wrong; none of them holds the URL.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            if unbuildable {
                return Outcome::Permanent {
                    reason: format!("the request could not be built: {text}"),
                };
            }
            Outcome::Retryable {
                retry_after: None,
                reason: if timeout {
                    format!("timeout: {text}")
                } else {
                    format!("request failed: {text}")
                },
            }
        }
    }
}

/// Classifies an HTTP answer received at `now_ms`.
pub fn classify(status: StatusCode, headers: &HeaderMap, now_ms: i64) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    if status.is_redirection() {
        return Outcome::Permanent {
            reason: redirect_reason(status, headers),
        };
    }
    let reason = format!("HTTP {status}");
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Outcome::Retryable {
            retry_after: retry_after(headers, now_ms),
            reason,
        }
    } else {
        Outcome::Permanent { reason }
    }
}

/// Why a redirect is a permanent failure, naming the status and where it points (host and port only:
/// the receiver's URL, and the redirect's, may hold secrets in their paths).
fn redirect_reason(status: StatusCode, headers: &HeaderMap) -> String {
    let location = headers.get(LOCATION).and_then(|v| v.to_str().ok());
    let to = match location.map(reqwest::Url::parse) {
        Some(Ok(u)) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("to {}:{p}", crate::escape::line(h, 253)),
            (Some(h), None) => format!("to {}", crate::escape::line(h, 253)),
            (None, _) => "to a URL without a host".to_owned(),
        },
        Some(Err(_)) => "to another path on the same host".to_owned(),
        None => "without a Location".to_owned(),
    };
    format!(
        "HTTP {status}: the receiver redirects {to}; scanbridge never follows redirects (the body and secret headers go only to the configured URL): configure the final URL"
    )
}

/// Parses Retry-After: delay-seconds or an HTTP date (the delay from `now_ms` until then).
pub fn retry_after(headers: &HeaderMap, now_ms: i64) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(now_ms.max(0) as u64);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole second (HTTP dates have no fractions), in ms since the epoch.
    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn classification_table() {
        let none = HeaderMap::new();
        let cases = [
            (200, "delivered"),
            (204, "delivered"),
            (408, "retryable"),
            (429, "retryable"),
            (500, "retryable"),
            (503, "retryable"),
            (400, "permanent"),
            (401, "permanent"),
            (404, "permanent"),
            (301, "permanent"),
        ];
        for (code, want) in cases {
            let got = classify(StatusCode::from_u16(code).unwrap(), &none, NOW);
            assert_eq!(got.label(), want, "HTTP {code}");
        }
    }

    #[test]
    fn redirects_are_permanent_and_name_only_the_host() {
        for (code, location, want) in [
            (
                301,
                Some("https://other.example/s3cr3t?token=t"),
                "redirects to other.example;",
            ),
            (
                302,
                Some("http://127.0.0.1:9999/x/s3cr3t"),
                "redirects to 127.0.0.1:9999;",
            ),
            (
                307,
                Some("/moved/s3cr3t"),
                "redirects to another path on the same host;",
            ),
            (308, None, "redirects without a Location;"),
        ] {
            let mut h = HeaderMap::new();
            if let Some(l) = location {
                h.insert(LOCATION, l.parse().unwrap());
            }
            let got = classify(StatusCode::from_u16(code).unwrap(), &h, 0);
            let Outcome::Permanent { reason } = &got else {
                panic!("{code}: {got:?}")
            };
            assert!(reason.starts_with(&format!("HTTP {code} ")), "{reason}");
            assert!(reason.contains(want), "{reason}");
            assert!(
                !reason.contains("s3cr3t") && !reason.contains("token"),
                "{reason}"
            );
        }
    }

    #[tokio::test]
    async fn an_unbuildable_request_is_permanent() {
        let client = http_client(Duration::from_secs(1)).unwrap();
        let req = client.post("http://127.0.0.1:9/").header("X-Id", "a\r\nb");
        let got = send(req, 0).await;
        assert_eq!(got.label(), "permanent", "{got:?}");
    }

    #[test]
    fn standard_webhooks_signature_matches_the_reference() {
        // The example of the Standard Webhooks specification (and its reference libraries).
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let key = signing_key(&secret).unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(signing_key(&Secret::new("nope")).is_err());
        assert!(signing_key(&Secret::new("whsec_!!")).is_err());
    }

    #[test]
    fn string_payloads_go_as_text() {
        assert_eq!(
            body(&serde_json::json!("hi")),
            (b"hi".to_vec(), "text/plain; charset=utf-8")
        );
        assert_eq!(body(&serde_json::json!({"a":1})).1, "application/json");
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h, NOW), Some(Duration::from_secs(7)));
        let later = SystemTime::UNIX_EPOCH + Duration::from_millis(NOW as u64 + 120_000);
        h.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().unwrap());
        assert_eq!(retry_after(&h, NOW), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after(&h, NOW + 200_000),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        let Outcome::Retryable {
            retry_after: ra, ..
        } = classify(StatusCode::TOO_MANY_REQUESTS, &h, NOW)
        else {
            panic!()
        };
        assert!(ra.is_some());
    }
}
