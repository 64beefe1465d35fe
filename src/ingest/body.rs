//! Reading a request body whole, within a size limit and a deadline.
//!
//! The deadline covers the entire body, not the gap between two chunks: a client that trickles one
//! byte a second (slowloris) still runs out of time. The size limit stops reading as soon as it is
//! passed, so an endless or huge body costs at most `limit` bytes of memory.

use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("request body is over the limit of {limit} bytes (server.max_body_bytes)")]
    TooLarge { limit: usize },
    #[error("request body not received within {}s (server.body_timeout)", .timeout.as_secs_f64())]
    TimedOut { timeout: Duration },
    #[error("request body could not be read: the connection failed")]
    Broken,
}

/// Reads `body` completely, at most `limit` bytes, within `timeout`.
pub async fn read(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, ReadError> {
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ReadError::TimedOut { timeout }),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ReadError::TooLarge { limit })
        }
        Ok(Err(_)) => Err(ReadError::Broken),
    }
}

/// Reads and discards `body` (at most `limit` bytes, within `timeout`) before a refusal is sent.
///
/// A server that answers without reading the request body and then closes the connection makes the
/// kernel reset it while the client is still sending, and the client never sees the answer (it gets a
/// "connection reset" instead of 429 or 401). Draining costs bandwidth but no memory and no store work.
pub async fn drain(body: Body, limit: usize, timeout: Duration) {
    let mut body = Limited::new(body, limit);
    let _ = tokio::time::timeout(timeout, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limit_and_deadline() {
        let ok = read(Body::from("abc"), 3, Duration::from_secs(1)).await;
        assert_eq!(ok.unwrap(), "abc");
        let big = read(Body::from("abcd"), 3, Duration::from_secs(1)).await;
        assert!(matches!(big, Err(ReadError::TooLarge { limit: 3 })));
        // A body that never ends: tests/it/hostile.rs (slowloris) over a real socket.
    }
}
