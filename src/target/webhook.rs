//! The `webhook` target: POSTs the payload as JSON to a URL.
//!
//! Classification (alertmanager's and EventBridge's): 2xx delivered; 408, 429 and 5xx retryable with the
//! receiver's Retry-After (seconds or HTTP date); timeouts and connection errors retryable; any other
//! status permanent. The URL is a [`Secret`] (it often carries a token): it never appears in logs or in
//! reasons (reqwest errors are stripped of it). Every request carries `Idempotency-Key: <delivery id>`.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;

use super::{Message, Outcome};
use crate::config::{ConfigError, Secret, resolve_secret};
use crate::retry::RetryOverrides;

/// `[targets.NAME] type = "webhook"`: only `url` (or `url_file`) is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default)]
    url: Option<Secret>,
    #[serde(default)]
    url_file: Option<std::path::PathBuf>,
    /// Per-request timeout (default 5 s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default)]
    pub retry: RetryOverrides,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl WebhookConfig {
    pub(crate) fn finish(&mut self, name: &str) -> Result<(), ConfigError> {
        let key = format!("targets.{name}.url");
        resolve_secret(&key, &mut self.url, &self.url_file)?;
        let Some(url) = &self.url else {
            return Err(ConfigError::Invalid {
                key,
                message: "a webhook target needs `url`".into(),
            });
        };
        match reqwest::Url::parse(url.expose()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
            _ => Err(ConfigError::Invalid {
                key,
                message: "not an http(s) URL".into(),
            }),
        }
    }

    /// The URL (present after loading).
    pub fn url(&self) -> &Secret {
        self.url
            .as_ref()
            .expect("checked when the configuration was loaded")
    }
}

#[derive(Debug)]
pub struct Webhook {
    url: Secret,
    client: reqwest::Client,
}

impl Webhook {
    pub fn new(_name: &str, cfg: &WebhookConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("scanbridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Webhook {
            url: cfg.url().clone(),
            client,
        })
    }

    pub async fn notify(&self, msg: &Message<'_>) -> Outcome {
        let result = self
            .client
            .post(self.url.expose())
            .header("Idempotency-Key", msg.delivery_id)
            .header("X-Scanbridge-Rule", msg.rule)
            .header("X-Scanbridge-Event-Id", msg.event_id)
            .json(msg.payload)
            .send()
            .await;
        match result {
            Ok(resp) => classify(resp.status(), resp.headers()),
            Err(e) => {
                let timeout = e.is_timeout();
                let e = e.without_url();
                Outcome::Retryable {
                    retry_after: None,
                    reason: if timeout {
                        format!("timeout: {e}")
                    } else {
                        format!("request failed: {e}")
                    },
                }
            }
        }
    }
}

/// Classifies an HTTP answer.
pub fn classify(status: StatusCode, headers: &HeaderMap) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let reason = format!("HTTP {status}");
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Outcome::Retryable {
            retry_after: retry_after(headers),
            reason,
        }
    } else {
        Outcome::Permanent { reason }
    }
}

/// Parses Retry-After: delay-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let got = classify(StatusCode::from_u16(code).unwrap(), &none);
            assert_eq!(got.label(), want, "HTTP {code}");
        }
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        h.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        let Outcome::Retryable {
            retry_after: ra, ..
        } = classify(StatusCode::TOO_MANY_REQUESTS, &h)
        else {
            panic!()
        };
        assert!(ra.is_some());
    }
}
