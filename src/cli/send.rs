//! `scanbridge send INPUT...`: posts events to a running daemon's `POST /events` and prints its answer
//! per input. Inputs are read as every command reads them ([`super::input`]): files, directories,
//! inline JSON or `-`, each one event, a JSON array or NDJSON; an input that is not valid JSON is not
//! sent at all (its error names it) and the others still are. With `--report`, each document is a
//! scanner report (Trivy, Grype or trivy-operator JSON) posted on its own to `POST /reports`
//! (`--format` forces the format). The daemon and token are found as [`super::client`] says.
//! Exit 0 when every event was accepted (or a report was skipped as one without vulnerabilities),
//! 2 otherwise.

use std::path::PathBuf;

use super::outcome::Outcome;

/// Events per request, at most (well under the daemon's default `max_batch_events`).
const BATCH: usize = 500;

/// Arguments of `scanbridge send`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to send: files, directories (their *.json, *.jsonl, *.ndjson), inline JSON, or - for
    /// stdin; each one event (pretty or not), a JSON array of events, or NDJSON (with --report:
    /// scanner reports).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// The inputs are scanner reports (Trivy, Grype, trivy-operator JSON): post them to /reports.
    #[arg(long)]
    pub report: bool,
    /// With --report: force the format (trivy, grype, trivy-operator) instead of detecting it.
    #[arg(long, value_name = "FORMAT", requires = "report")]
    pub format: Option<String>,
    #[command(flatten)]
    pub daemon: super::client::DaemonArgs,
    /// Configuration file (for the default --url and token).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(send(args))
}

async fn send(args: Args) -> anyhow::Result<Outcome> {
    let daemon = args.daemon.daemon(args.config.as_deref())?;
    let path = match (args.report, &args.format) {
        (false, _) => "/events".to_owned(),
        (true, None) => "/reports".to_owned(),
        (true, Some(f)) => format!("/reports?format={f}"),
    };
    let mut all_ok = true;
    for input in &args.inputs {
        let items = super::input::read(std::slice::from_ref(input));
        let (docs, failed): (Vec<_>, Vec<_>) = items.into_iter().partition(Result::is_ok);
        if let Some(Err(f)) = failed.into_iter().next() {
            eprintln!("scanbridge: error: {f}; nothing of {input} was sent");
            all_ok = false;
            continue;
        }
        let docs: Vec<super::input::Doc> = docs.into_iter().flatten().collect();
        // Reports go one per request; events in batches (a JSON array of the texts as written).
        let bodies: Vec<String> = if args.report {
            docs.iter().map(|d| d.text.clone()).collect()
        } else {
            docs.chunks(BATCH)
                .map(|c| {
                    let texts: Vec<&str> = c.iter().map(|d| d.text.as_str()).collect();
                    format!("[{}]", texts.join(","))
                })
                .collect()
        };
        for body in bodies {
            let req = daemon
                .request(reqwest::Method::POST, &path)
                .header("content-type", "application/json")
                .body(body);
            let resp = daemon.send(req).await?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            println!("{input}: HTTP {status} {text}");
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
    }
    Ok(if all_ok {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}
