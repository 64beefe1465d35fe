//! `scanbridge health [--url URL]`: exit 0 when a running daemon answers `GET /readyz` with 200, 2
//! otherwise. Used by the container HEALTHCHECK (the runtime image has no curl).

use std::time::Duration;

use super::outcome::Outcome;

/// Arguments of `scanbridge health`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of the daemon.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = format!("{}/readyz", args.url.trim_end_matches('/'));
    let status = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(4))
            .build()?;
        client.get(&url).send().await.map(|r| r.status())
    });
    match status {
        Ok(s) if s.is_success() => Ok(Outcome::Success),
        Ok(s) => {
            eprintln!("{url}: HTTP {s}");
            Ok(Outcome::Invalid)
        }
        Err(e) => {
            eprintln!("{url}: {}", e.without_url());
            Ok(Outcome::Invalid)
        }
    }
}
