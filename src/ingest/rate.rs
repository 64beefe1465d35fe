//! Per-client rate limiting of ingest requests: one token bucket per client IP address.
//!
//! A bucket holds up to `burst` requests and refills at `rate` per second; a request that finds it
//! empty gets 429 with `Retry-After` (whole seconds, at least 1) and is not read further. The limit
//! applies before authentication, so guessing tokens is rate-limited too. The table of buckets is
//! bounded: when it holds more than [`MAX_CLIENTS`] addresses, buckets that have refilled completely
//! (idle clients) are dropped, so a flood of source addresses cannot grow memory without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::alerting::SharedClock;

/// Client addresses tracked before idle ones are forgotten.
pub const MAX_CLIENTS: usize = 10_000;

/// The limiter; `rate == 0` lets everything through.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    clock: SharedClock,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: u32, clock: SharedClock) -> RateLimiter {
        RateLimiter {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
            clock,
        }
    }

    /// Takes one request from `client`'s bucket: `Ok`, or how long until one is available.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.check_at(client, self.clock.now_ms())
    }

    fn check_at(&self, client: IpAddr, now_ms: i64) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > MAX_CLIENTS {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + secs(now_ms - b.at_ms) * rate < burst);
        }
        let b = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at_ms: now_ms,
        });
        b.tokens = (b.tokens + secs(now_ms - b.at_ms) * self.rate).min(self.burst);
        b.at_ms = now_ms;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }
}

/// Milliseconds as seconds; time running backwards (a clock set back) counts as none.
fn secs(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_per_client() {
        let l = RateLimiter::new(10.0, 3, crate::alerting::system_clock());
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        let t0 = 1_700_000_000_000;
        for _ in 0..3 {
            assert!(l.check_at(a, t0).is_ok());
        }
        let wait = l.check_at(a, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(
            l.check_at(b, t0).is_ok(),
            "another client has its own bucket"
        );
        assert!(l.check_at(a, t0 + 110).is_ok());
        assert!(l.check_at(a, t0 + 120).is_err());
    }

    #[test]
    fn zero_rate_is_off_and_the_table_stays_bounded() {
        let off = RateLimiter::new(0.0, 1, crate::alerting::system_clock());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!((0..1000).all(|_| off.check(ip).is_ok()));
        let l = RateLimiter::new(1000.0, 1, crate::alerting::system_clock());
        let t0 = 1_700_000_000_000;
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            let _ = l.check_at(IpAddr::from(i.to_be_bytes()), t0);
        }
        let _ = l.check_at(ip, t0 + 1000);
        assert!(
            l.buckets.lock().unwrap().len() <= 2,
            "idle clients forgotten"
        );
    }
}
