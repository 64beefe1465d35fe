//! `scanbridge health [--url URL]`: prints `ok` and exits 0 when a running daemon answers `GET /readyz`
//! with 200; otherwise says what answered (or that nothing did, naming the URL) and exits 2. Used by
//! the container HEALTHCHECK (the runtime image has no curl). The daemon is found as
//! [`super::client`] says (default: the configured `server.listen`).

use std::path::PathBuf;
use std::time::Duration;

use super::outcome::Outcome;

/// Arguments of `scanbridge health`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub daemon: super::client::DaemonArgs,
    /// Configuration file (for the default --url).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let daemon = args.daemon.daemon(args.config.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = daemon.url("/readyz");
    let answer = rt.block_on(async {
        let req = daemon
            .request(reqwest::Method::GET, "/readyz")
            .timeout(Duration::from_secs(4));
        let resp = daemon.send(req).await?;
        let status = resp.status();
        Ok::<_, anyhow::Error>((status, resp.text().await.unwrap_or_default()))
    });
    match answer {
        Ok((s, _)) if s.is_success() => {
            println!("ok");
            Ok(Outcome::Success)
        }
        Ok((s, body)) => {
            eprintln!(
                "scanbridge: error: {url}: HTTP {s}: not ready {}",
                crate::escape::line(body.trim(), 300)
            );
            Ok(Outcome::Invalid)
        }
        Err(e) => {
            eprintln!("scanbridge: error: {e:#}");
            Ok(Outcome::Invalid)
        }
    }
}
