//! `serve --stdin`: ingest NDJSON from standard input, one event per line, through the same path as
//! HTTP. Each line's outcome is logged; end of input stops this door only (the daemon keeps running).

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::Ingestor;
use crate::event::Incoming;

/// Reads stdin until end of input or cancellation.
pub async fn run(ingestor: Ingestor, shutdown: CancellationToken) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut n = 0usize;
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l,
            _ = shutdown.cancelled() => return,
        };
        let line = match line {
            Ok(Some(l)) => l,
            Ok(None) => {
                tracing::info!(lines = n, "stdin closed");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read stdin");
                return;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        n += 1;
        match ingestor.ingest(vec![Ok(Incoming::Text(line))]).await {
            Ok(results) => match &results[0] {
                Ok(a) => {
                    tracing::info!(line = n, event = %a.id, duplicate = a.duplicate, "accepted from stdin")
                }
                Err(why) => tracing::warn!(line = n, reason = %why, "rejected from stdin"),
            },
            Err(e) => tracing::error!(line = n, error = %e, "cannot store event from stdin"),
        }
    }
}
