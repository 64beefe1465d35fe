//! `scanbridge send FILE...`: posts events (a JSON event, a JSON array, or NDJSON per file) to a
//! running daemon's `POST /events` and prints its answer per file. Exit 0 when every event was
//! accepted, 2 otherwise.

use std::path::PathBuf;

use anyhow::Context;

use super::outcome::Outcome;

/// Arguments of `scanbridge send`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files of events to send.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Base URL of the daemon.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token, if the daemon requires one.
    #[arg(long, env = "SCANBRIDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(send(args))
}

async fn send(args: Args) -> anyhow::Result<Outcome> {
    let client = reqwest::Client::new();
    let url = format!("{}/events", args.url.trim_end_matches('/'));
    let mut all_ok = true;
    for file in &args.files {
        let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let mut req = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = &args.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("posting to {url}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        println!("{}: HTTP {status} {text}", file.display());
        let all_accepted = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("rejected").and_then(|r| r.as_u64()))
            == Some(0);
        all_ok &= status.as_u16() == 202 && all_accepted;
    }
    Ok(if all_ok {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}
