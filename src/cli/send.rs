//! `scanbridge send FILE...`: posts events (a JSON event, a JSON array, or NDJSON per file) to a
//! running daemon's `POST /events` and prints its answer per file. With `--report`, each file is a
//! scanner report (Trivy, Grype or trivy-operator JSON) posted to `POST /reports` (`--format` forces the
//! format). Exit 0 when every event was accepted (or a report was skipped as one without
//! vulnerabilities), 2 otherwise.

use std::path::PathBuf;

use anyhow::Context;

use super::outcome::Outcome;

/// Arguments of `scanbridge send`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files of events to send (with --report: scanner reports).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The files are scanner reports (Trivy, Grype, trivy-operator JSON): post them to /reports.
    #[arg(long)]
    pub report: bool,
    /// With --report: force the format (trivy, grype, trivy-operator) instead of detecting it.
    #[arg(long, value_name = "FORMAT", requires = "report")]
    pub format: Option<String>,
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
    let base = args.url.trim_end_matches('/');
    let url = match (args.report, &args.format) {
        (false, _) => format!("{base}/events"),
        (true, None) => format!("{base}/reports"),
        (true, Some(f)) => format!("{base}/reports?format={f}"),
    };
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
        let answer = serde_json::from_str::<serde_json::Value>(&text).ok();
        let all_accepted = answer
            .as_ref()
            .and_then(|v| v.get("rejected").and_then(|r| r.as_u64()))
            == Some(0);
        let skipped = args.report
            && status.as_u16() == 200
            && answer.as_ref().is_some_and(|v| v.get("ignored").is_some());
        all_ok &= (status.as_u16() == 202 && all_accepted) || skipped;
    }
    Ok(if all_ok {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}
