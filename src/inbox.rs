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
//! Ingest is paced by delivery: while every slot is held, or deliveries wait in the outbox unleased
//! (a backlog the worker has not read yet: it goes first), a request whose events have deliveries
//! waits (up to [`PATIENCE`]) before it commits, so a sustained offered load above what delivery
//! keeps up with slows the senders down instead of growing the outbox.
//!
//! Promises:
//! - Every delivery held by the worker (waiting here, waiting for its target, or being attempted),
//!   however it was leased, holds one slot: at most `slots` at once, so memory stays bounded under
//!   any load; what does not fit waits in the outbox (durable), not in memory.
//! - Nothing here is durable and nothing depends on it for correctness: a delivery lost with the
//!   process is leased again by the next one (leases are in memory too).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::Leased;

/// How long an ingest request waits for a free delivery slot before it commits without one.
pub const PATIENCE: Duration = Duration::from_millis(500);

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
    /// Notified (all waiters) whenever slots are given back or the backlog is cleared.
    freed: Notify,
    /// Deliveries wait in the outbox unleased (ingest had no slot for them, or the worker gave
    /// them back): until the worker read them, ingest takes no slot ahead of them.
    backlog: AtomicBool,
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
            freed: Notify::new(),
            backlog: AtomicBool::new(false),
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

    /// Gives back `n` slots (reserved and not used, or held by a finished attempt). It wakes
    /// nobody: the worker frees its own slots, and reads the outbox when its attempts end.
    pub fn free(&self, n: usize) {
        if n > 0 {
            let _ = self
                .busy
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                    Some(b.saturating_sub(n))
                });
            self.freed.notify_waiters();
        }
    }

    /// Like [`Inbox::reserve`], but while no slot is free (every one held by a delivery not yet
    /// recorded) it waits up to `patience` for one: ingest is paced by delivery, so the outbox does
    /// not grow while the worker is busy. Returns what it got (0 after `patience`, or for `want`
    /// 0); the deliveries it could not reserve slots for wait in the outbox for a lease read.
    pub async fn reserve_waiting(&self, want: usize, patience: Duration) -> usize {
        if want == 0 || self.slots == 0 {
            return 0;
        }
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if !self.backlog.load(Ordering::Acquire) {
                let got = self.reserve(want);
                if got > 0 {
                    return got;
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return 0;
            }
        }
    }

    /// Free slots now.
    #[cfg(test)]
    pub fn room(&self) -> usize {
        self.slots.saturating_sub(self.busy.load(Ordering::Acquire))
    }

    /// Records whether deliveries wait in the outbox unleased (set by ingest when it stored some it
    /// had no slot for, and by the worker when it gave some back or a read filled every free slot;
    /// cleared by the worker when a read took every due delivery it had room for). While set,
    /// [`Inbox::reserve_waiting`] takes no slot: the backlog goes first, and ingest is paced.
    pub fn set_backlog(&self, on: bool) {
        let was = self.backlog.swap(on, Ordering::AcqRel);
        if was && !on {
            self.freed.notify_waiters();
        }
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

    /// Resolves when deliveries were put since the last call (or before it).
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

    #[tokio::test]
    async fn ingest_waits_for_a_free_slot_then_goes_on_without() {
        let i = std::sync::Arc::new(Inbox::new(1, Duration::from_secs(1)));
        assert_eq!(i.reserve_waiting(5, PATIENCE).await, 1);
        // Full: a waiter gets the slot as soon as it is given back.
        let waiter = {
            let i = i.clone();
            tokio::spawn(async move { i.reserve_waiting(1, Duration::from_secs(60)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "it waits while every slot is held");
        i.free(1);
        assert_eq!(waiter.await.unwrap(), 1);
        // A backlog goes first: no slot for ingest until the worker cleared it.
        i.free(1);
        i.set_backlog(true);
        let waiter = {
            let i = i.clone();
            tokio::spawn(async move { i.reserve_waiting(1, Duration::from_secs(60)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "it waits while there is a backlog");
        i.set_backlog(false);
        assert_eq!(waiter.await.unwrap(), 1);
        // Still full: after its patience it goes on with none.
        let patience = Duration::from_millis(30);
        let t0 = std::time::Instant::now();
        assert_eq!(i.reserve_waiting(1, patience).await, 0);
        assert!(t0.elapsed() >= patience);
    }
}
