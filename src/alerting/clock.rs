//! Time, passed in: the daemon has one [`Clock`], made by `serve` and handed to every room where time
//! decides something: ingest (the acceptance time an event gets, its default `time`), the HTTP
//! per-client limit, the worker (leases, retry delays, an attempt's age, what a receiver is told), the
//! alerting stages (silence expiry, dedup windows, digest schedules, rate-limit buckets) and, through
//! their callers, every store decision (the store reads no clock). Nothing else reads the system
//! time, so tests set and advance time exactly and never sleep to cross a window.
//!
//! Promise: [`SystemClock`] is wall time in milliseconds since the Unix epoch (the unit the store uses);
//! the tests' `ManualClock` only moves when told to.

use std::sync::Arc;

/// A source of "now", in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now_ms(&self) -> i64;
}

/// The shared clock handle the daemon passes around.
pub type SharedClock = Arc<dyn Clock>;

/// Wall time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// The system clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
pub use manual::ManualClock;

#[cfg(test)]
mod manual {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    /// A clock that stands still until [`ManualClock::advance`] or [`ManualClock::set`] (tests).
    #[derive(Debug, Default)]
    pub struct ManualClock(AtomicI64);

    impl ManualClock {
        pub fn at(ms: i64) -> Arc<ManualClock> {
            Arc::new(ManualClock(AtomicI64::new(ms)))
        }
        pub fn advance(&self, d: Duration) {
            self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
        }
        pub fn set(&self, ms: i64) {
            self.0.store(ms, Ordering::SeqCst);
        }
    }

    impl super::Clock for ManualClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now_ms(), 3_000);
        c.set(5);
        assert_eq!(c.now_ms(), 5);
        assert!(SystemClock.now_ms() > 1_600_000_000_000);
    }
}
