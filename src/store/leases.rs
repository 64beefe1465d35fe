//! The lease table of the SQLite backend, in memory: which deliveries are being attempted now.
//!
//! One data directory belongs to one daemon (its lock, [`super::lock`]), so no other process leases
//! from it and leases need not be written to the database: a lease is an entry here, taken without a
//! write and dropped when the delivery's outcome is committed. A restart starts with an empty table,
//! which is exactly right: every attempt of the previous process ended with it, so every pending
//! delivery is free to lease again at once.
//!
//! Promises:
//! - A delivery is held by at most one lease at a time: [`Leases::claim_new`] and
//!   [`Leases::claim`] take an entry only when none is held (or the one held expired).
//! - A lease expires `lease` after it was taken, as a database lease did; an expired lease is
//!   free to take again (an attempt whose outcome could not be recorded is made again later).
//! - A lease read never hands out a delivery whose outcome was committed after the read's snapshot
//!   began: [`Leases::begin`] takes a ticket before the snapshot, and [`Leases::claim`] refuses every
//!   delivery released since that ticket (its row in the snapshot may be stale). Releases are
//!   remembered only while a ticket older than them is open.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Table {
    /// Delivery id -> lease expiry (ms since the Unix epoch).
    held: HashMap<String, i64>,
    /// Incremented by every release.
    version: u64,
    /// Releases since the oldest open ticket: (version, delivery id).
    released: VecDeque<(u64, String)>,
    /// Open tickets: version at `begin` -> how many.
    readers: BTreeMap<u64, usize>,
}

/// The in-memory lease table.
#[derive(Debug, Default)]
pub struct Leases(Mutex<Table>);

/// An open lease read: taken before its snapshot of the outbox, closed by [`Leases::claim`].
#[derive(Debug)]
pub struct Ticket {
    since: u64,
}

impl Leases {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a lease read; call it before the read's snapshot begins.
    pub fn begin(&self) -> Ticket {
        let mut t = self.table();
        let since = t.version;
        *t.readers.entry(since).or_default() += 1;
        Ticket { since }
    }

    /// Closes `ticket`: leases, in order, up to `max` of `ids` (due in its snapshot) that are free
    /// and were not released since it was opened, until `until_ms`. Returns the ids leased.
    pub fn claim<'a>(
        &self,
        ticket: Ticket,
        ids: impl IntoIterator<Item = &'a str>,
        max: usize,
        until_ms: i64,
        now_ms: i64,
    ) -> Vec<String> {
        let mut guard = self.table();
        let t = &mut *guard;
        let stale: std::collections::HashSet<&str> = t
            .released
            .iter()
            .filter(|(v, _)| *v > ticket.since)
            .map(|(_, id)| id.as_str())
            .collect();
        let mut got = Vec::new();
        for id in ids {
            if got.len() >= max {
                break;
            }
            if stale.contains(id) || t.held.get(id).is_some_and(|&until| until > now_ms) {
                continue;
            }
            t.held.insert(id.to_owned(), until_ms);
            got.push(id.to_owned());
        }
        drop(stale);
        Self::close(t, ticket);
        got
    }

    fn close(t: &mut Table, ticket: Ticket) {
        if let Some(n) = t.readers.get_mut(&ticket.since) {
            *n -= 1;
            if *n == 0 {
                t.readers.remove(&ticket.since);
            }
        }
        match t.readers.keys().next().copied() {
            Some(oldest) => {
                while t.released.front().is_some_and(|(v, _)| *v <= oldest) {
                    t.released.pop_front();
                }
            }
            None => t.released.clear(),
        }
    }

    /// Leases a delivery just committed (nobody could have read it before): unless one holds it
    /// already. Returns whether it was leased.
    pub fn claim_new(&self, id: &str, until_ms: i64, now_ms: i64) -> bool {
        let mut t = self.table();
        if t.held.get(id).is_some_and(|&until| until > now_ms) {
            return false;
        }
        t.held.insert(id.to_owned(), until_ms);
        true
    }

    /// Ends the lease of `id` (its outcome was committed, or it is given back unattempted).
    pub fn release(&self, id: &str) {
        let mut t = self.table();
        if t.held.remove(id).is_none() && t.readers.is_empty() {
            return;
        }
        t.version += 1;
        if !t.readers.is_empty() {
            let v = t.version;
            t.released.push_back((v, id.to_owned()));
        }
    }

    /// Whether `id` is leased at `now_ms`.
    pub fn held(&self, id: &str, now_ms: i64) -> bool {
        self.table()
            .held
            .get(id)
            .is_some_and(|&until| until > now_ms)
    }

    /// How many leases are held (expired ones included until they are taken again or released).
    pub fn len(&self) -> usize {
        self.table().held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lease_at_a_time_until_released_or_expired() {
        let l = Leases::default();
        assert!(l.claim_new("a", 100, 0));
        assert!(!l.claim_new("a", 100, 0), "held");
        let t = l.begin();
        assert_eq!(
            l.claim(t, ["a", "b", "c"], 1, 100, 50),
            ["b"],
            "a is held; one wanted"
        );
        assert!(l.held("a", 99) && !l.held("a", 100));
        // Expired: free to take again.
        let t = l.begin();
        assert_eq!(l.claim(t, ["a"], 9, 300, 100), ["a"]);
        l.release("a");
        assert!(!l.held("a", 0));
        assert_eq!(l.len(), 1, "b is still held");
    }

    #[test]
    fn a_read_never_hands_out_what_was_released_during_it() {
        let l = Leases::default();
        assert!(l.claim_new("a", 1_000, 0));
        // A read begins (its snapshot shows "a" due), then "a" is delivered and released.
        let t = l.begin();
        l.release("a");
        assert!(
            l.claim(t, ["a"], 9, 1_000, 0).is_empty(),
            "the snapshot is stale for a"
        );
        // A read that began after the release sees the committed state: "a" is free if it is due.
        let t = l.begin();
        assert_eq!(l.claim(t, ["a"], 9, 1_000, 0), ["a"]);
        // Releases are forgotten once no older read is open.
        l.release("a");
        assert!(l.table().released.is_empty());
        let (t1, t2) = (l.begin(), l.begin());
        l.release("x");
        assert_eq!(l.table().released.len(), 1);
        l.claim(t1, [], 0, 0, 0);
        assert_eq!(l.table().released.len(), 1, "t2 is still open");
        l.claim(t2, [], 0, 0, 0);
        assert!(l.table().released.is_empty());
    }
}
