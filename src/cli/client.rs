//! How the CLI finds and authenticates to a running daemon, as `amtool` finds Alertmanager: the
//! commands that talk to it (`send`, `health`, and the store commands through the admin API) take
//! `--url` and `--token` and share these defaults.
//!
//! - The URL: `--url`, else the configured `server.listen` (the same layered configuration `serve`
//!   reads: `--config`, then `SCANBRIDGE__SERVER__LISTEN`), with `https` when `server.tls_cert_file` is
//!   set; a wildcard address (`0.0.0.0`, `[::]`) is reached on loopback.
//! - The token: `--token`, else `SCANBRIDGE__SERVER__TOKEN` (the variable the server reads), else the
//!   deprecated `SCANBRIDGE_TOKEN` (with a note on stderr), else the configuration's own
//!   `server.token` / `token_file`, `server.tokens`, or the first line of `server.tokens_file`.
//!
//! A daemon that does not answer is one error naming the URL tried and where it came from.

use std::path::Path;

use crate::settings::Settings;

/// `--url` and `--token` of the commands that talk to a daemon.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DaemonArgs {
    /// Base URL of the daemon (default: the configured `server.listen`, e.g. http://127.0.0.1:8080).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Bearer token, when the daemon requires one (default: $SCANBRIDGE__SERVER__TOKEN, or the
    /// configured server.token).
    #[arg(
        long,
        global = true,
        env = "SCANBRIDGE__SERVER__TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// The deprecated name of the token variable, still read (`SCANBRIDGE__SERVER__TOKEN` wins).
pub const OLD_TOKEN_VAR: &str = "SCANBRIDGE_TOKEN";

/// A daemon to talk to: its base URL (no trailing `/`), why that one, and the token to present.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub base: String,
    /// Where the URL came from, for error messages ("--url", "server.listen in config.toml").
    pub from: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// The base URL the configured `listen` address is reached at.
pub fn listen_url(settings: &Settings) -> anyhow::Result<String> {
    let addr = settings.server.listen;
    if addr.port() == 0 {
        anyhow::bail!(
            "server.listen is {addr} (port 0: a port chosen at start-up): give the daemon's --url"
        );
    }
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    let scheme = if settings.server.tls_cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{ip}:{}", addr.port()))
}

/// The first token of the configuration (what a client on the daemon's own machine would present).
fn configured_token(settings: &Settings) -> Option<String> {
    let server = &settings.server;
    if let Some(t) = server.token.iter().chain(&server.tokens).next() {
        return Some(t.expose().to_owned());
    }
    let text = std::fs::read_to_string(server.tokens_file.as_ref()?).ok()?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
}

impl DaemonArgs {
    /// The daemon these arguments name, with `config` for the defaults.
    pub fn daemon(&self, config: Option<&Path>) -> anyhow::Result<Daemon> {
        let settings = || -> anyhow::Result<Settings> {
            Settings::load(config).map_err(|e| {
                anyhow::anyhow!(
                    "{e} (reading the configuration for the daemon's address; or give --url)"
                )
            })
        };
        let mut loaded: Option<Settings> = None;
        let (base, from) = match &self.url {
            Some(u) => (u.trim_end_matches('/').to_owned(), "--url".to_owned()),
            None => {
                let s = settings()?;
                let url = listen_url(&s)?;
                loaded = Some(s);
                let from = match config {
                    Some(c) => format!("server.listen of {}", c.display()),
                    None => "server.listen (default; --url to choose)".to_owned(),
                };
                (url, from)
            }
        };
        let token = match &self.token {
            Some(t) if !t.is_empty() => Some(t.clone()),
            _ => match std::env::var(OLD_TOKEN_VAR).ok().filter(|t| !t.is_empty()) {
                Some(t) => {
                    eprintln!(
                        "scanbridge: note: {OLD_TOKEN_VAR} is deprecated: set SCANBRIDGE__SERVER__TOKEN (the name the server reads)"
                    );
                    Some(t)
                }
                None => {
                    let s = match loaded {
                        Some(s) => Some(s),
                        None => Settings::load(config).ok(),
                    };
                    s.as_ref().and_then(configured_token)
                }
            },
        };
        Ok(Daemon {
            base,
            from,
            token,
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
        })
    }
}

impl Daemon {
    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path`, with the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.client.request(method, self.url(path));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends `req`; a daemon that does not answer is an error naming the URL and where it came from.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "no daemon answered at {} ({}): {}; is `scanbridge serve` running there?",
                self.base,
                self.from,
                e.without_url()
            )
        })
    }
}
