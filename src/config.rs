//! The typed pieces of the configuration: one struct per `config.toml` section (`[server]`, `[store]`,
//! `[rules]`, `[log]`, `[delivery]`, `[templates]`, `[aws]`), the [`Secret`] type and the
//! [`ConfigError`] every room's configuration reports. The whole file, its layering and the checks
//! across sections live in [`crate::settings`]; each receiver's configuration lives beside the
//! receiver in [`crate::notify`].
//!
//! Promises:
//! - every struct denies unknown fields, so a typo is an error naming the key, never silently ignored;
//!   a wrong type is an error naming the key too;
//! - secrets ([`Secret`]) never print: their `Debug` and `Display` show `***`; a secret may be given
//!   inline (usually through the environment) or as `*_file` pointing at a file (Docker/Kubernetes
//!   secrets), whose trimmed content is read at load time.
//!
//! This module knows no other room of the daemon: everything may import it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read or parsed (the config crate's words, said once). Quoted values in
    /// the message are hidden: the value of a mistyped key may be a secret.
    #[error("configuration: {}", hide_values(.0))]
    Load(String),
    /// A configuration file is not valid TOML. Its position and the key of the line (when there is
    /// one) are given, never the line itself: it may hold a secret.
    #[error(
        "configuration: {file}: line {line}, column {column}{}: {message} (the line is not shown: it may hold a secret)",
        key.as_deref().map(|k| format!(" (key `{k}`)")).unwrap_or_default()
    )]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        key: Option<String>,
        message: String,
    },
    /// A secret file could not be read.
    #[error("configuration: {key}: cannot read secret file {path}: {source}")]
    SecretFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Values that are well-typed but do not make sense together.
    #[error("configuration: {key}: {message}")]
    Invalid { key: String, message: String },
}

/// `text` with every `"quoted"` part shown as `"***"`: the config crate quotes the values it could not
/// use, and a value may be a secret (keys are in backticks and stay).
pub fn hide_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        if c == '"' {
            if inside {
                out.push_str("***\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    if inside {
        out.push_str("***");
    }
    out
}

/// A secret string: redacted in `Debug` and `Display`; use [`Secret::expose`] at the point of use only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    #[cfg(test)]
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret value, for the one place that needs it (an HTTP header, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Reads a `*_file` secret if the inline value is absent; both at once is an error.
pub fn resolve_secret(
    key: &str,
    inline: &mut Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<(), ConfigError> {
    match (inline.as_ref(), file) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid {
            key: key.to_owned(),
            message: format!("set either `{key}` or `{key}_file`, not both"),
        }),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                key: format!("{key}_file"),
                path: path.clone(),
                source,
            })?;
            *inline = Some(Secret(text.trim().to_owned()));
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `[server]`: the ingest HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest accepted event, in bytes of JSON (EventBridge: 256 KiB).
    pub max_event_bytes: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most events in one request (array or NDJSON); more gets 413 before any is validated.
    pub max_batch_events: usize,
    /// Optional bearer token required on ingest endpoints.
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// More accepted tokens (rotation: add the new one, move clients, remove the old one).
    #[serde(default)]
    pub tokens: Vec<Secret>,
    /// A file of accepted tokens, one per line; re-read when it changes (rotation without restart).
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
    /// AWS credentials whose SigV4 signatures the AWS JSON door accepts; with any, every request to
    /// that door must be signed by one of them. Each is `{ access_key_id, secret_access_key }` (or
    /// `secret_access_key_file`), or `"ACCESS_KEY_ID:SECRET"` (the environment's form:
    /// `SCANBRIDGE__SERVER__AWS_CREDENTIALS=id1:secret1,id2:secret2`).
    #[serde(default)]
    pub aws_credentials: Vec<AwsCredentialConfig>,
    /// Also accept an ingest token in this header (an EventBridge API destination's API-key
    /// connection sends its key in a header of the user's choosing, e.g. `x-api-key`).
    #[serde(default)]
    pub api_key_header: Option<String>,
    /// Open connections at most; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Open connections one client (IPv4 address, IPv6 /64) may hold; more are refused at once
    /// (0: no per-client limit).
    pub max_connections_per_client: usize,
    /// Time allowed for a request's headers to arrive (also closes idle keep-alive connections).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time allowed for a whole request body to arrive; slower bodies get 408.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Ingest requests per second allowed per client IP address (0: no limit); excess gets 429.
    pub rate_limit: f64,
    /// Requests a client may send at once above its rate.
    pub rate_burst: u32,
    /// Serve ingest over TLS with this PEM certificate chain (with `tls_key_file`).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
}

/// One entry of `server.aws_credentials`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AwsCredentialConfig {
    /// `{ access_key_id = "AKID...", secret_access_key = "..." }` (or `secret_access_key_file`).
    Table(AwsCredentialTable),
    /// `"AKID...:SECRET"`.
    Pair(Secret),
}

/// `{ access_key_id, secret_access_key | secret_access_key_file }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsCredentialTable {
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
}

impl AwsCredentialConfig {
    /// The access key id and its secret, the secret read from its file if need be; errors name
    /// `key` (`server.aws_credentials[i]`) and never show the secret.
    pub fn resolve(&self, key: &str) -> Result<(String, Secret), ConfigError> {
        let invalid = |message: &str| ConfigError::Invalid {
            key: key.to_owned(),
            message: message.into(),
        };
        let (id, secret) = match self {
            AwsCredentialConfig::Pair(both) => {
                let (id, secret) = both
                    .expose()
                    .split_once(':')
                    .ok_or_else(|| invalid("must be \"ACCESS_KEY_ID:SECRET\" or a table { access_key_id, secret_access_key }"))?;
                (id.trim().to_owned(), Secret(secret.trim().to_owned()))
            }
            AwsCredentialConfig::Table(t) => {
                let mut secret = t.secret_access_key.clone();
                resolve_secret(
                    &format!("{key}.secret_access_key"),
                    &mut secret,
                    &t.secret_access_key_file,
                )?;
                let secret = secret.ok_or_else(|| {
                    invalid("needs `secret_access_key` (or `secret_access_key_file`)")
                })?;
                (t.access_key_id.trim().to_owned(), secret)
            }
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid("the access key id must be letters and digits"));
        }
        if secret.expose().is_empty() {
            return Err(invalid("the secret access key is empty"));
        }
        Ok((id, secret))
    }
}

/// `[store]`: where accepted events and deliveries live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Which backend holds them: the embedded SQLite file (one daemon) or a NATS JetStream cluster
    /// (any number of daemons sharing the work).
    #[serde(default)]
    pub backend: Backend,
    pub data_dir: PathBuf,
    /// Largest size of the store in bytes, the write-ahead log included (0: no limit). Near it the
    /// oldest archived events are pruned first; ingest answers 503 only when pending work fills it.
    pub max_db_bytes: u64,
    /// How long events that matched a rule are kept after their deliveries are done (the archive
    /// `scanbridge replay` reads). 0: forever.
    #[serde(with = "humantime_serde")]
    pub retain_events: Duration,
    /// How long events that matched no rule are kept. 0: forever.
    #[serde(with = "humantime_serde")]
    pub retain_unmatched: Duration,
    /// How long alerting state is kept after its last change: scan history, resolved alerts, idle
    /// digest groups. 0: forever.
    #[serde(with = "humantime_serde")]
    pub retain_history: Duration,
    /// How often the background pruner looks for expired rows (it also runs when the store nears
    /// `max_db_bytes`).
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
    /// Bytes of disk kept in reserve in the data directory (`scanbridge.reserve`), released when the
    /// disk fills so that deliveries can still be acknowledged (0: no reserve).
    pub reserve_bytes: u64,
    /// `[store.jetstream]`: the cluster, when `backend = "jetstream"`.
    pub jetstream: JetStreamConfig,
}

/// `store.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One SQLite file in `store.data_dir`, owned by one daemon.
    #[default]
    Sqlite,
    /// Streams and key-value buckets on a NATS JetStream cluster, shared by every daemon configured
    /// with the same servers and prefix.
    Jetstream,
}

/// `[store.jetstream]`: the NATS JetStream cluster of the `jetstream` backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JetStreamConfig {
    /// NATS server URLs (`nats://host:4222`, `tls://host:4222`); one or more of the cluster.
    pub servers: Vec<String>,
    /// Streams, the consumer and the key-value buckets are named from it (`PREFIX_OUTBOX`, ...), so
    /// several installations can share one cluster.
    pub prefix: String,
    /// Copies of every stream and bucket in the cluster: 1, or 3 (5) to survive losing a node.
    pub replicas: usize,
    /// A NATS credentials file (JWT and NKey seed), for clusters with decentralised auth.
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    /// A NATS auth token (a secret: give it through the environment or `token_file`).
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// How long deliveries held by a daemon that died wait before another daemon takes them (the
    /// consumer's ack wait; a live daemon keeps extending the deliveries it works on).
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// How long to wait for the cluster to acknowledge a write (then ingest answers 503).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long `serve` keeps trying to reach the cluster at start-up before giving up.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl JetStreamConfig {
    /// Resolves the token file and checks the values (a prefix fit for stream and bucket names,
    /// servers given, a replica count NATS accepts).
    pub fn finish(&mut self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("store.jetstream.{key}"),
            message,
        };
        resolve_secret("store.jetstream.token", &mut self.token, &self.token_file)?;
        if self.token.as_ref().is_some_and(|t| t.expose().is_empty()) {
            self.token = None;
        }
        let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if self.prefix.is_empty() || self.prefix.len() > 32 || !self.prefix.chars().all(name_char) {
            return Err(invalid(
                "prefix",
                format!(
                    "{:?} is not a name: 1 to 32 letters, digits, '_' or '-' (streams and buckets are named from it)",
                    self.prefix
                ),
            ));
        }
        self.servers.retain(|s| !s.trim().is_empty());
        if self.servers.is_empty() {
            return Err(invalid(
                "servers",
                "give at least one NATS server URL (nats://host:4222)".into(),
            ));
        }
        for url in &self.servers {
            let ok = match url.split_once("://") {
                Some((scheme, rest)) => {
                    matches!(scheme, "nats" | "tls" | "ws" | "wss") && !rest.is_empty()
                }
                None => !url.contains('/') && url.contains(':'),
            };
            if !ok {
                return Err(invalid(
                    "servers",
                    format!(
                        "{url:?} is not a NATS server URL (nats://host:4222 or tls://host:4222)"
                    ),
                ));
            }
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(invalid(
                "replicas",
                format!(
                    "{} copies: NATS keeps 1 to 5 (1, or 3 to survive losing a node)",
                    self.replicas
                ),
            ));
        }
        if self.ack_wait < Duration::from_secs(1) {
            return Err(invalid("ack_wait", "must be at least 1s".into()));
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(invalid(
                "timeout",
                "timeout and connect_timeout must be more than 0".into(),
            ));
        }
        Ok(())
    }
}

/// `[rules]`: the rule files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    pub dir: PathBuf,
    /// Reload when files in `dir` change (SIGHUP always reloads).
    pub watch: bool,
    /// Longest event pattern accepted, in characters (EventBridge: 2048, up to 4096 by quota).
    pub max_pattern_length: usize,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// Default filter when RUST_LOG is not set.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// `[delivery]`: the worker pool and the default retry policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    pub workers: usize,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

/// `[templates]`: where override templates live (default: only the embedded ones).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    /// Directory whose `email/subject.txt`, `email/body.txt`, `email/body.html`, `slack/text.txt`
    /// (and the `email/resolved_*` templates of resolves) replace the embedded defaults.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// `[aws]`: envelope values filled in when an event lacks them (PutEvents never sends them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    pub account: String,
    pub region: String,
}

/// A URL fit for logs: scheme, host and port only (paths, queries and user info often carry tokens).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path() == "/" && u.query().is_none() {
                ""
            } else {
                "/***"
            };
            format!(
                "{}://{}{port}{rest}",
                u.scheme(),
                u.host_str().unwrap_or("?")
            )
        }
        Err(_) => "***".into(),
    }
}

/// Resolves a secret URL (inline, environment or `*_file`), requires it, and checks that it is
/// http(s); errors name `key` and never show the URL.
pub fn required_http_url(
    key: String,
    url: &mut Option<Secret>,
    file: &Option<std::path::PathBuf>,
    missing: &str,
) -> Result<(), ConfigError> {
    resolve_secret(&key, url, file)?;
    let Some(u) = url.as_ref() else {
        return Err(ConfigError::Invalid {
            key,
            message: missing.into(),
        });
    };
    check_http_url(&key, u.expose())
}

/// Checks that `url` is an http(s) URL; the error names `key` and never shows the URL.
pub fn check_http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(ConfigError::Invalid {
            key: key.to_owned(),
            message: "not an http(s) URL".into(),
        }),
    }
}

/// `[sns]`: the SNS subscription endpoint (`POST /sns`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    /// Topic ARNs whose SubscriptionConfirmation is confirmed and whose messages are accepted.
    #[serde(default)]
    pub topic_arns: Vec<String>,
    /// How long a verified signing certificate is kept before it is fetched again.
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub cert_cache_ttl: Duration,
    /// Time allowed for fetching a certificate or a SubscribeURL.
    #[serde(default = "default_fetch_timeout", with = "humantime_serde")]
    pub fetch_timeout: Duration,
    /// TEST ONLY: a PEM file of CA certificates trusted, in addition to the public roots, both for
    /// signing-certificate chains and for HTTPS fetches. Never set it in production.
    #[serde(default)]
    pub test_ca_file: Option<PathBuf>,
    /// TEST ONLY: one `host:port` (e.g. `127.0.0.1:8443`) allowed in place of AWS's SNS hosts in
    /// `SigningCertURL`, `SubscribeURL` and issuer URLs. Never set it in production.
    #[serde(default)]
    pub test_cert_host: Option<String>,
}

impl Default for SnsConfig {
    fn default() -> Self {
        SnsConfig {
            topic_arns: Vec::new(),
            cert_cache_ttl: default_ttl(),
            fetch_timeout: default_fetch_timeout(),
            test_ca_file: None,
            test_cert_host: None,
        }
    }
}

fn default_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_fetch_timeout() -> Duration {
    Duration::from_secs(10)
}

impl SnsConfig {
    /// Whether messages of `topic_arn` are accepted.
    pub fn allows(&self, topic_arn: &str) -> bool {
        self.topic_arns.iter().any(|a| a == topic_arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_keeps_only_the_host() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/s3cr3t"),
            "https://hooks.slack.com/***"
        );
        assert_eq!(
            redact_url("http://user:pw@127.0.0.1:8080/x?token=t"),
            "http://127.0.0.1:8080/***"
        );
        assert_eq!(redact_url("https://example.org/"), "https://example.org");
        assert_eq!(redact_url("not a url"), "***");
    }
}
