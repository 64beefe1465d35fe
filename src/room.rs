//! Room for new events: whether ingest may accept now, decided by the retention task
//! ([`crate::retention`]) from the store's [`crate::store::Space`], read by ingest on every request.
//!
//! Promises: while the disk is full, or pending work itself fills `store.max_db_bytes` (nothing left
//! in the archive to prune), [`Room::refusal`] says why and ingest answers 503 with Retry-After,
//! acknowledging nothing; deliveries are not affected. A store write that fails for want of room
//! wakes the retention task at once ([`Room::hit_full`]), so room is made (or the refusal set)
//! without waiting for its next turn; the refusal is lifted by itself as soon as there is room
//! again (deliveries drained, space freed), with no restart. Reading it costs one atomic load.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio::sync::Notify;

/// The shared state (cheap to read from every ingest request).
#[derive(Debug, Default)]
pub struct Room {
    refusal: ArcSwapOption<String>,
    wake: Notify,
}

impl Room {
    /// Why new events are refused now, if they are (for the 503 body).
    pub fn refusal(&self) -> Option<Arc<String>> {
        self.refusal.load_full()
    }

    /// Sets or lifts the refusal; returns whether it changed.
    pub fn set(&self, why: Option<String>) -> bool {
        let before = self.refusal.load();
        if before.as_deref() == why.as_ref() {
            return false;
        }
        let changed = before.is_some() != why.is_some();
        self.refusal.store(why.map(Arc::new));
        changed
    }

    /// A write failed for want of room: the retention task looks now.
    pub fn hit_full(&self) {
        self.wake.notify_one();
    }

    /// Waits for [`Room::hit_full`].
    pub async fn woken(&self) {
        self.wake.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_set_and_lifted() {
        let r = Room::default();
        assert!(r.refusal().is_none());
        assert!(r.set(Some("full".into())));
        assert_eq!(r.refusal().as_deref().map(String::as_str), Some("full"));
        assert!(!r.set(Some("full".into())), "the same refusal is no change");
        assert!(
            !r.set(Some("still full".into())),
            "a new reason is no change of state"
        );
        assert!(r.set(None));
        assert!(r.refusal().is_none());
    }
}
