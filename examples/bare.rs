//! A bare endpoint on scanbridge's own HTTP stack (the same accept loop, hyper HTTP/1 and axum), for
//! `scripts/load`: `POST` on any path reads the body and answers 202 at once, storing nothing. It is
//! both the baseline the daemon's ingest is compared with and a fast webhook receiver; `GET /count`
//! tells how many bodies it received.
//!
//! `cargo run --release --example bare -- 127.0.0.1:0` prints `listening on ADDR`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use scanbridge::{ConnLimits, serve_http as serve};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let app = Router::new()
        .route(
            "/count",
            get(move || {
                let c = c.clone();
                async move { c.load(Ordering::Relaxed).to_string() }
            }),
        )
        .fallback(post(move |_body: Bytes| {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::Relaxed);
                (StatusCode::ACCEPTED, "{\"accepted\":1}")
            }
        }));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("address"));
    let limits = ConnLimits {
        max_connections: 512,
        // The load generator is one client: no per-client share.
        max_per_client: 0,
        header_timeout: Duration::from_secs(10),
        on_refused: None,
    };
    serve(listener, app, limits, None, CancellationToken::new()).await;
}
