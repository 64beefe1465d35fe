//! The worker's inbox: deliveries leased by the commit that stored them, handed from ingest to the
//! worker at once, and the count of the worker's delivery slots that bounds them.
//!
//! Ingest reserves slots ([`Inbox::reserve`]) before it stores a batch, asks the store to lease at
//! most that many of the deliveries it stores in the same commit ([`crate::store::Store::accept_leasing`]),
//! gives back what it did not use, and puts the leased ones here ([`Inbox::put`]) after it handed
//! the parsed events over ([`crate::event::Handoff`]), so an attempt never parses again. The worker
//! takes them ([`Inbox::take`]) without reading the outbox; the deliveries the store could not
//! lease at once (no free slot) are found by the worker's lease reads, as before.
//!
//! Promises:
//! - Every delivery held by the worker (waiting here, waiting for its target, or being attempted),
//!   however it was leased, holds one slot: at most `slots` at once, so memory stays bounded under
//!   any load; what does not fit waits in the outbox (durable), not in memory.
//! - Nothing here is durable and nothing depends on it for correctness: a delivery lost with the
//!   process is leased again by the next one (leases are in memory too).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::Leased;

/// See the module doc.
#[derive(Debug)]
pub struct Inbox {
    queue: Mutex<VecDeque<Leased>>,
    /// Slots in use: reserved by ingest, queued here, or held by the worker.
    busy: AtomicUsize,
    slots: usize,
    /// The lease a delivery leased at accept gets.
    lease: Duration,
    ready: Notify,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox::new(64, Duration::from_secs(60))
    }
}

impl Inbox {
    pub fn new(slots: usize, lease: Duration) -> Inbox {
        Inbox {
            queue: Mutex::default(),
            busy: AtomicUsize::new(0),
            slots,
            lease,
            ready: Notify::new(),
        }
    }

    /// An inbox with no slots: ingest leases nothing at accept (for rigs that lease themselves).
    #[cfg(test)]
    pub fn none() -> Inbox {
        Inbox::new(0, Duration::ZERO)
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Reserves up to `want` free slots; returns how many it got (maybe 0).
    pub fn reserve(&self, want: usize) -> usize {
        let mut got = 0;
        let _ = self
            .busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |busy| {
                got = want.min(self.slots.saturating_sub(busy));
                Some(busy + got)
            });
        got
    }

    /// Gives back `n` slots (reserved and not used, or held by a finished attempt).
    pub fn free(&self, n: usize) {
        if n > 0 {
            let _ = self
                .busy
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                    Some(b.saturating_sub(n))
                });
            self.ready.notify_one();
        }
    }

    /// Free slots now.
    #[cfg(test)]
    pub fn room(&self) -> usize {
        self.slots.saturating_sub(self.busy.load(Ordering::Acquire))
    }

    /// Queues deliveries leased at accept (each holds a slot reserved before) and wakes the worker.
    pub fn put(&self, leased: Vec<Leased>) {
        if leased.is_empty() {
            return;
        }
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(leased);
        self.ready.notify_one();
    }

    /// Takes every queued delivery (their slots stay held until [`Inbox::free`]).
    pub fn take(&self) -> Vec<Leased> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.drain(..).collect()
    }

    /// Resolves when deliveries were put or slots freed since the last call (or before it).
    pub async fn ready(&self) {
        self.ready.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_bound_what_is_held() {
        let i = Inbox::new(3, Duration::from_secs(1));
        assert_eq!(i.reserve(2), 2);
        assert_eq!(i.reserve(5), 1, "only one left");
        assert_eq!((i.reserve(1), i.room()), (0, 0));
        i.free(2);
        assert_eq!(i.room(), 2);
        i.free(9);
        assert_eq!(i.room(), 3, "never below zero");
    }
}
