//! Process lifecycle: one [`CancellationToken`] that every long-running task watches, one
//! [`TaskTracker`] that `serve` waits on before closing the store, and the Unix signals.
//!
//! SIGTERM and SIGINT cancel the token (graceful stop: stop accepting, drain in-flight deliveries,
//! close the store); a second one is not needed because every drain is bounded by target timeouts.
//! SIGHUP asks for a rules reload through a channel (coalesced: many HUPs, one reload).

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

/// Listens for signals until `token` is cancelled.
pub fn spawn_signal_handler(
    tracker: &TaskTracker,
    token: CancellationToken,
    reload: mpsc::Sender<()>,
) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tracker.spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); token.cancel(); break; }
                _ = int.recv() => { tracing::info!("SIGINT: shutting down"); token.cancel(); break; }
                _ = hup.recv() => { tracing::info!("SIGHUP: reloading rules"); let _ = reload.try_send(()); }
                _ = token.cancelled() => break,
            }
        }
    });
    Ok(())
}
