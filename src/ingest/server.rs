//! The HTTP server loop: accepts TCP connections (optionally TLS), bounds how many are open, times out
//! slow request heads, and shuts down gracefully.
//!
//! Why not `axum::serve`: it gives hyper no timer, so hyper's header read timeout never fires and a
//! client that sends its headers one byte at a time (or nothing at all) holds a connection forever; it
//! has no connection limit and no TLS. This loop is the same hyper HTTP/1 connection driver with:
//! - at most `max_connections` connections open: the loop stops accepting while all permits are taken,
//!   so further clients wait in the kernel's accept queue (backpressure, not errors);
//! - `header_timeout` for each request head (hyper closes the connection when it fires; it also bounds
//!   idle keep-alive connections) and for a TLS handshake;
//! - the peer address in each request's extensions (`ConnectInfo`) for per-client rate limits;
//! - on shutdown: stop accepting, let each connection finish its current request, then close; anything
//!   still open after [`DRAIN`] is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long open connections get to finish after shutdown starts.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let conns = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let (app, tls, shutdown) = (app.clone(), tls.clone(), shutdown.clone());
        conns.spawn(async move {
            let _permit = permit;
            match tls {
                None => connection(tcp, peer, app, limits.header_timeout, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            connection(stream, peer, app, limits.header_timeout, shutdown).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    conns.close();
    if tokio::time::timeout(DRAIN, conns.wait()).await.is_err() {
        tracing::warn!(
            open = conns.len(),
            "connections still open after the drain period; closing them"
        );
    }
}

async fn connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}
