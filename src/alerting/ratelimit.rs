//! Rate limits per target: a token bucket (`rate_limit = { per_second = 1, burst = 5 }` on a target).
//!
//! The bucket holds up to `burst` tokens and refills at `per_second`; each send takes one. When the
//! bucket is empty the notification pipeline does not drop the delivery: it puts it back in the outbox
//! due when the next token will be there (no attempt counted), so excess alerts are queued in the
//! store and survive a restart.
//!
//! Where the bucket lives is the store's answer ([`crate::store::Store::rate_take`]): a store that
//! several daemons share (JetStream) keeps one bucket per target for all of them, taken with
//! check-and-set, so a target's limit holds for the whole installation; a store only one daemon
//! uses (SQLite) says `Local`, and the bucket is this daemon's, in memory (a restart starts it
//! full). If the shared bucket cannot be reached, this daemon's own bucket decides meanwhile (the
//! limit then holds per daemon until the store answers again). Both read the injected clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use super::clock::SharedClock;
use super::stage::{Flow, Ledger, Notice, Stage};
use crate::store::RateTake;

/// `rate_limit = { per_second = 1.0, burst = 5 }` on a target.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained sends per second (fractions allowed: 0.2 = one every 5 s).
    pub per_second: f64,
    /// Sends allowed at once after a quiet period (default 1).
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

impl RateLimit {
    /// `None` when valid, else the message for the key.
    pub fn problem(&self) -> Option<String> {
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            Some("per_second must be a positive number".into())
        } else if self.burst == 0 {
            Some("burst must be at least 1".into())
        } else {
            None
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// Every target's bucket.
#[derive(Debug)]
pub struct RateLimiter {
    limits: HashMap<String, RateLimit>,
    buckets: Mutex<HashMap<String, Bucket>>,
    clock: SharedClock,
}

impl RateLimiter {
    pub fn new(limits: HashMap<String, RateLimit>, clock: SharedClock) -> RateLimiter {
        RateLimiter {
            limits,
            buckets: Mutex::default(),
            clock,
        }
    }

    /// The limit of `target`, if it has one.
    pub fn limit(&self, target: &str) -> Option<RateLimit> {
        self.limits.get(target).copied()
    }

    /// Takes a token for `target` (always succeeds for a target without a limit), or says how long
    /// until one is there.
    pub fn try_take(&self, target: &str) -> Result<(), Duration> {
        let Some(limit) = self.limits.get(target) else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(target.to_owned()).or_insert(Bucket {
            tokens: limit.burst as f64,
            at_ms: now,
        });
        let elapsed = (now - b.at_ms).max(0) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * limit.per_second).min(limit.burst as f64);
        b.at_ms = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let secs = (1.0 - b.tokens) / limit.per_second;
            // The epsilon keeps float noise (0.0010000001 s) from rounding up a whole millisecond.
            Err(Duration::from_millis(
                (secs * 1000.0 - 1e-6).ceil().max(1.0) as u64,
            ))
        }
    }
}

/// Stage 5 (digests too): no token for the target puts the delivery back in the outbox, due when a
/// token will be there, without counting an attempt.
pub struct RateLimitStage {
    pub ledger: Ledger,
    pub limiter: RateLimiter,
}

impl Stage for RateLimitStage {
    const NAME: &'static str = "rate_limit";

    async fn exec(&self, n: &Notice<'_>) -> Flow {
        let d = n.delivery;
        let Some(limit) = self.limiter.limit(&d.target) else {
            return Flow::Next;
        };
        let taken = self
            .ledger
            .store
            .rate_take(d.target.clone(), limit.per_second, limit.burst, n.now_ms)
            .await;
        let taken = match taken {
            Ok(RateTake::Local) => self.limiter.try_take(&d.target),
            Ok(RateTake::Taken) => Ok(()),
            Ok(RateTake::Wait(wait)) => Err(wait),
            Err(e) => {
                tracing::warn!(target = %d.target, error = %e,
                    "the shared rate limit is unavailable; this daemon's own bucket decides");
                self.limiter.try_take(&d.target)
            }
        };
        let Err(wait) = taken else {
            return Flow::Next;
        };
        tracing::debug!(delivery = %d.id, target = %d.target, wait_ms = wait.as_millis() as u64,
            "rate limited; queued");
        self.ledger.metrics.delayed(&d.target);
        if let Err(e) = self
            .ledger
            .store
            .postpone(d.id.clone(), wait, n.now_ms)
            .await
        {
            tracing::error!(delivery = %d.id, error = %e, "cannot postpone (lease will expire)");
        }
        Flow::Held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn burst_then_one_per_interval() {
        let clock = ManualClock::at(0);
        let limits = HashMap::from([(
            "slack".to_owned(),
            RateLimit {
                per_second: 2.0,
                burst: 3,
            },
        )]);
        let rl = RateLimiter::new(limits, clock.clone() as Arc<_>);
        for _ in 0..3 {
            assert_eq!(rl.try_take("slack"), Ok(()));
        }
        assert_eq!(rl.try_take("slack"), Err(Duration::from_millis(500)));
        clock.advance(Duration::from_millis(499));
        assert_eq!(rl.try_take("slack"), Err(Duration::from_millis(1)));
        clock.advance(Duration::from_millis(1));
        assert_eq!(rl.try_take("slack"), Ok(()));
        assert!(rl.try_take("slack").is_err());
        // A long quiet period refills to the burst, no more.
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(rl.try_take("slack"), Ok(()));
        }
        assert!(rl.try_take("slack").is_err());
        // Unlimited targets are never held back.
        for _ in 0..100 {
            assert_eq!(rl.try_take("hook"), Ok(()));
        }
    }

    #[test]
    fn validation() {
        let bad = RateLimit {
            per_second: 0.0,
            burst: 1,
        };
        assert!(bad.problem().unwrap().contains("per_second"));
        let bad = RateLimit {
            per_second: 1.0,
            burst: 0,
        };
        assert!(bad.problem().unwrap().contains("burst"));
    }
}
