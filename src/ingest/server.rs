//! The HTTP server loop: accepts TCP connections (optionally TLS), bounds how many are open, times out
//! slow request heads, and shuts down gracefully.
//!
//! Why not `axum::serve`: it gives hyper no timer, so hyper's header read timeout never fires and a
//! client that sends its headers one byte at a time (or nothing at all) holds a connection forever; it
//! has no connection limit and no TLS. This loop is the same hyper HTTP/1 connection driver with:
//! - at most `max_connections` connections open: the loop stops accepting while all permits are taken,
//!   so further clients wait in the kernel's accept queue (backpressure, not errors);
//! - at most `max_per_client` of them from one client (an IPv4 address, or an IPv6 /64: one host's
//!   share of addresses): a connection over its client's share is refused at once (plain HTTP: a short
//!   `503` with `Retry-After`, then closed; TLS: closed), so no single address can hold every slot, and
//!   the loop keeps taking such connections off the accept queue instead of letting them wait there
//!   ahead of everyone else's (fair accept);
//! - `header_timeout` for each request head (hyper closes the connection when it fires; it also bounds
//!   idle keep-alive connections) and for a TLS handshake;
//! - the peer address in each request's extensions (`ConnectInfo`) for per-client rate limits;
//! - on shutdown: stop accepting, let each connection finish its current request, then close; anything
//!   still open after [`DRAIN`] is dropped.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
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
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub max_connections: usize,
    /// Open connections one client may hold (0: no per-client limit).
    pub max_per_client: usize,
    pub header_timeout: Duration,
    /// Called for each connection refused because its client holds its share (a metric).
    pub on_refused: Option<OnRefused>,
}

/// A callback for refused connections.
#[derive(Clone)]
pub struct OnRefused(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for OnRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnRefused")
    }
}

/// Whom a connection counts against: its IPv4 address, or its IPv6 /64 (an IPv4-mapped IPv6 address
/// is its IPv4 address).
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Open connections per client; a [`Share`] gives its slot back when dropped.
#[derive(Debug, Default)]
struct Shares(Mutex<HashMap<IpAddr, usize>>);

struct Share {
    shares: Arc<Shares>,
    client: IpAddr,
}

impl Shares {
    /// A slot for `client`, unless it already holds `max` (0: unlimited).
    fn take(self: &Arc<Self>, client: IpAddr, max: usize) -> Option<Share> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(client).or_default();
        if max > 0 && *n >= max {
            if *n == 0 {
                m.remove(&client);
            }
            return None;
        }
        *n += 1;
        Some(Share {
            shares: self.clone(),
            client,
        })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut m = self.shares.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.client);
            }
        }
    }
}

/// What a plain-HTTP connection over its client's share is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: 90\r\n\r\n{\"error\":\"too many open connections from this client (server.max_connections_per_client)\"}";

/// Serves `app` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let shares = Arc::new(Shares::default());
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
        let Some(share) = shares.take(client_of(peer.ip()), limits.max_per_client) else {
            // Over its client's share: refused at once, its slot back for someone else.
            drop(permit);
            if let Some(cb) = &limits.on_refused {
                (cb.0)();
            }
            tracing::debug!(%peer, "connection refused: the client holds its share (server.max_connections_per_client)");
            if tls.is_none() {
                let _ = tcp.try_write(REFUSED);
            }
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (app, tls, shutdown) = (app.clone(), tls.clone(), shutdown.clone());
        let header_timeout = limits.header_timeout;
        conns.spawn(async move {
            let _permit = permit;
            let _share = share;
            match tls {
                None => connection(tcp, peer, app, header_timeout, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            connection(stream, peer, app, header_timeout, shutdown).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_ipv4_addresses_or_ipv6_slash_64s_and_shares_come_back() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_of(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_of(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        let shares = Arc::new(Shares::default());
        let a = ip("10.0.0.1");
        let held: Vec<Share> = (0..3).map(|_| shares.take(a, 3).unwrap()).collect();
        assert!(shares.take(a, 3).is_none(), "a fourth is over the share");
        assert!(
            shares.take(ip("10.0.0.2"), 3).is_some(),
            "another client has its own"
        );
        drop(held);
        assert!(
            shares.0.lock().unwrap().get(&a).is_none(),
            "forgotten when it holds none"
        );
        assert!(shares.take(a, 3).is_some());
        let unlimited: Vec<Share> = (0..100).filter_map(|_| shares.take(a, 0)).collect();
        assert_eq!(unlimited.len(), 100, "0: no limit");
    }
}
