//! Retention: the background task that keeps the store from filling up, and tells ingest when there
//! is no room ([`crate::room`]).
//!
//! Every `store.prune_interval` it deletes what has expired, by the daemon's clock: events that
//! matched a rule `retain_events` after they were accepted (once their deliveries are done), events
//! that matched nothing after `retain_unmatched`, records of suppressed notifications with their
//! events, scan history, resolved alerts and idle digest groups `retain_history` after their last
//! change, and dedup claims older than the longest dedup window of the live rules (at least 24 h:
//! such a claim can hold nothing back). It works in batches of [`BATCH`] rows of each kind
//! ([`crate::store::Store::prune`]), one short transaction each, yielding between them, so ingest
//! and delivery never wait on it for long.
//!
//! Every second (a quarter of a second while ingest is refused, and at once when a write fails for
//! want of room) it measures the store ([`crate::store::Store::space`]). Past [`HIGH`] of
//! `store.max_db_bytes` it prunes the oldest archived events, whatever their age (those that matched
//! nothing first), until the store is under [`LOW`] or nothing is left to prune (`accept` does the
//! same inside its transaction when it gets there first). Ingest is refused only when the store says
//! pending work fills it (pending deliveries, dead letters and silences: they are never pruned), or
//! when the disk is full; the refusal is lifted by itself once deliveries drain (their events become
//! prunable) or space returns on the disk.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::alerting::SharedClock;
use crate::config::StoreConfig;
use crate::metrics::Metrics;
use crate::room::Room;
use crate::router::RouterHandle;
use crate::store::{Pruned, Retention, Space, Store};

/// Rows of each kind deleted per transaction.
pub const BATCH: usize = 500;
/// Archived events deleted per transaction when making room (finer: events can be large).
pub const ROOM_BATCH: usize = 50;
/// Past this share of the limit, the oldest archived events are pruned early (ahead of `accept`,
/// which would do it itself past about 83 %: the database's pages get 7/8 of the limit, the WAL the
/// rest, and a twentieth of the pages is kept for delivery)...
pub const HIGH: f64 = 0.75;
/// ... until the store is under this share.
pub const LOW: f64 = 0.60;
/// Dedup claims are kept at least this long (the default window), even with no rule using dedup.
const MIN_DEDUP: Duration = Duration::from_secs(24 * 3600);

/// The task's parts.
pub struct Retainer {
    pub store: Arc<dyn Store>,
    pub config: StoreConfig,
    pub clock: SharedClock,
    pub room: Arc<Room>,
    /// The live rules (their longest dedup window).
    pub router: Arc<RouterHandle>,
    pub metrics: Arc<Metrics>,
}

/// `now - window`, or None when the window is 0 (kept forever).
fn cutoff(now: i64, window: Duration) -> Option<i64> {
    (!window.is_zero()).then(|| now.saturating_sub(window.as_millis() as i64))
}

impl Retainer {
    /// What has expired at `now_ms`.
    pub fn retention(&self, now_ms: i64) -> Retention {
        let c = &self.config;
        let dedup = self
            .router
            .current()
            .longest_dedup_window()
            .unwrap_or_default()
            .max(MIN_DEDUP);
        Retention {
            matched_before_ms: cutoff(now_ms, c.retain_events),
            unmatched_before_ms: cutoff(now_ms, c.retain_unmatched),
            suppressed_before_ms: cutoff(now_ms, c.retain_events),
            history_before_ms: cutoff(now_ms, c.retain_history),
            dedup_before_ms: cutoff(now_ms, dedup),
            limit: BATCH,
        }
    }

    /// Deletes everything expired at the clock's now, batch by batch; returns the totals.
    pub async fn prune_expired(&self) -> Pruned {
        let r = self.retention(self.clock.now_ms());
        let mut total = Pruned::default();
        loop {
            let p = match self.store.prune(r.clone()).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "pruning expired rows failed; will try again");
                    break;
                }
            };
            for (kind, n) in [
                ("events", p.events),
                ("suppressed", p.suppressed),
                ("history", p.history),
                ("dedup", p.dedup),
                ("alerts", p.alerts),
                ("groups", p.groups),
            ] {
                self.metrics.pruned(kind, n);
            }
            total.events += p.events;
            total.suppressed += p.suppressed;
            total.history += p.history;
            total.dedup += p.dedup;
            total.alerts += p.alerts;
            total.groups += p.groups;
            if !p.more {
                break;
            }
            tokio::task::yield_now().await;
        }
        if total.total() > 0 {
            tracing::info!(
                events = total.events,
                suppressed = total.suppressed,
                history = total.history,
                dedup = total.dedup,
                alerts = total.alerts,
                groups = total.groups,
                "pruned expired rows"
            );
        }
        total
    }

    /// Measures the store, prunes the oldest archived events when it nears its limit, and sets or
    /// lifts the refusal of new events. Returns the space measured last.
    pub async fn make_room(&self) -> Option<Space> {
        let mut space = match self.store.space().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot measure the store");
                return None;
            }
        };
        self.metrics.pruned("oldest", space.pruned);
        let limit = space.limit_bytes as f64;
        // While refusing, deliveries that drained left their events to the archive: prune those.
        if space.limit_bytes > 0 && (space.used_bytes as f64 >= HIGH * limit || space.at_limit) {
            let before = space.used_bytes;
            let mut pruned = 0;
            loop {
                let n = match self.store.prune_oldest(ROOM_BATCH).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot prune the archive to make room");
                        0
                    }
                };
                pruned += n;
                match self.store.space().await {
                    Ok(s) => {
                        pruned += s.pruned;
                        space = s;
                    }
                    Err(_) => break,
                }
                if n == 0 || (space.used_bytes as f64) < LOW * limit {
                    break;
                }
                tokio::task::yield_now().await;
            }
            self.metrics.pruned("oldest", pruned);
            if pruned > 0 {
                tracing::info!(
                    pruned,
                    before,
                    after = space.used_bytes,
                    limit = space.limit_bytes,
                    "store near store.max_db_bytes: pruned the oldest archived events"
                );
            }
        }
        let why = if space.disk_full {
            Some(
                "database or disk is full: the disk under the data directory is full; \
                 accepted events are still being delivered"
                    .to_owned(),
            )
        } else if space.at_limit {
            Some(format!(
                "database or disk is full: pending deliveries fill store.max_db_bytes ({} of {} bytes); \
                 they are being delivered",
                space.used_bytes, space.limit_bytes
            ))
        } else {
            None
        };
        let full = why.is_some();
        if self.room.set(why) {
            if full {
                tracing::warn!(
                    used = space.used_bytes,
                    limit = space.limit_bytes,
                    disk_full = space.disk_full,
                    "no room for new events: ingest answers 503 until deliveries drain or space returns"
                );
            } else {
                tracing::info!(
                    used = space.used_bytes,
                    limit = space.limit_bytes,
                    "room again: new events are accepted"
                );
            }
        }
        self.metrics
            .store_space(space.used_bytes, space.limit_bytes, full);
        Some(space)
    }

    /// Runs until `shutdown`: measures every second (faster while refusing), prunes expired rows
    /// every `prune_interval`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut next_prune = tokio::time::Instant::now();
        loop {
            self.make_room().await;
            if tokio::time::Instant::now() >= next_prune {
                self.prune_expired().await;
                next_prune = tokio::time::Instant::now() + self.config.prune_interval;
            }
            let tick = if self.room.refusal().is_some() {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(1)
            };
            let tick = tick.min(self.config.prune_interval.max(Duration::from_millis(50)));
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = self.room.woken() => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::ManualClock;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{NewDelivery, NewEvent};

    const DAY: i64 = 24 * 3600 * 1000;

    fn event(id: &str, matched: bool) -> NewEvent {
        NewEvent {
            id: id.into(),
            body: format!("{{\"id\":\"{id}\",\"pad\":\"{}\"}}", "x".repeat(2000)),
            matched: if matched { vec!["r".into()] } else { vec![] },
            deliveries: if matched {
                vec![NewDelivery {
                    id: format!("d-{id}"),
                    rule: "r".into(),
                    target: "t".into(),
                    input: None,
                    alert: None,
                }]
            } else {
                vec![]
            },
            history: None,
            resolve: None,
        }
    }

    fn config(dir: &std::path::Path) -> StoreConfig {
        StoreConfig {
            data_dir: dir.to_owned(),
            max_db_bytes: 0,
            retain_events: Duration::from_secs(30 * 24 * 3600),
            retain_unmatched: Duration::from_secs(24 * 3600),
            retain_history: Duration::from_secs(90 * 24 * 3600),
            prune_interval: Duration::from_secs(60),
            reserve_bytes: 0,
        }
    }

    fn retainer(store: Arc<dyn Store>, config: StoreConfig, clock: SharedClock) -> Retainer {
        Retainer {
            store,
            config,
            clock,
            room: Arc::default(),
            router: Arc::new(RouterHandle::new(crate::router::Router::default())),
            metrics: Arc::default(),
        }
    }

    /// Every archived event id, sorted (page by page).
    async fn ids(store: &dyn Store) -> Vec<String> {
        let mut q = crate::store::EventQuery {
            limit: 100,
            ..Default::default()
        };
        let mut ids = Vec::new();
        loop {
            let page = store.events(q.clone()).await.unwrap();
            ids.extend(page.events.into_iter().map(|e| e.id));
            match page.next {
                Some(next) => q.after = Some(next),
                None => break,
            }
        }
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "no event on two pages");
        ids
    }

    #[tokio::test]
    async fn windows_follow_the_clock_and_pending_or_dead_deliveries_keep_their_events() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), true).unwrap());
        let t0 = 1_700_000_000_000;
        let clock = ManualClock::at(t0);
        store
            .accept(
                vec![
                    event("seen", true),
                    event("nobody", false),
                    event("pending", true),
                    event("dead", true),
                ],
                t0,
            )
            .await
            .unwrap();
        let lease = Duration::from_secs(60);
        for d in store.lease(10, lease, t0).await.unwrap() {
            match d.event_id.as_str() {
                "seen" => store.ack(d.id, t0).await.unwrap(),
                "dead" => store
                    .dead_letter(d.id, 3, "gave up".into(), t0)
                    .await
                    .unwrap(),
                _ => store
                    .retry_later(d.id, Duration::from_secs(1), "500".into(), t0)
                    .await
                    .unwrap(),
            }
        }
        let r = retainer(store.clone(), config(dir.path()), clock.clone());
        r.prune_expired().await;
        assert_eq!(ids(&*store).await, ["dead", "nobody", "pending", "seen"]);
        let seen = store.event_get("seen".into()).await.unwrap();
        assert!(
            matches!(
                seen.deliveries[..],
                [crate::store::DeliveryRecord {
                    state: crate::store::DeliveryState::Delivered { attempts: 1, .. },
                    ..
                }]
            ),
            "{seen:?}"
        );
        clock.advance(Duration::from_millis(DAY as u64 + 1));
        assert_eq!(r.prune_expired().await.events, 1);
        assert_eq!(
            ids(&*store).await,
            ["dead", "pending", "seen"],
            "unmatched after 1d"
        );
        clock.advance(Duration::from_millis(30 * DAY as u64));
        assert_eq!(r.prune_expired().await.events, 1);
        assert_eq!(
            ids(&*store).await,
            ["dead", "pending"],
            "matched after 30d, never a dead letter's or a pending delivery's event"
        );
        assert_eq!(
            store.check().await.unwrap(),
            [],
            "the delivered record went with its event"
        );
        assert_eq!(store.depth().await.unwrap(), 1);
        assert_eq!(store.dead_letters(10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn near_the_limit_the_oldest_archive_goes_and_pending_work_alone_refuses_ingest() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 2_000_000;
        let opts = crate::store::sqlite::Options {
            max_bytes: limit,
            reserve_bytes: 0,
        };
        let sqlite = SqliteStore::open_with(dir.path(), true, opts).unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let t0 = 1_700_000_000_000;
        let clock = ManualClock::at(t0);
        let mut cfg = config(dir.path());
        cfg.max_db_bytes = limit;
        let r = retainer(store.clone(), cfg, clock.clone());
        // Done (archived) events, oldest first, until the store is past the high mark.
        let mut n = 0;
        loop {
            let batch: Vec<NewEvent> = (n..n + 20)
                .map(|i| event(&format!("old-{i:04}"), true))
                .collect();
            store.accept(batch, t0 + n).await.unwrap();
            for d in store
                .lease(20, Duration::from_secs(60), t0 + n)
                .await
                .unwrap()
            {
                store.ack(d.id, t0 + n).await.unwrap();
            }
            n += 20;
            if store.space().await.unwrap().used_bytes as f64 > HIGH * limit as f64 {
                break;
            }
        }
        let space = r.make_room().await.unwrap();
        assert!((space.used_bytes as f64) < LOW * limit as f64, "{space:?}");
        assert!(r.room.refusal().is_none());
        let kept = ids(&*store).await;
        assert!(
            !kept.is_empty() && kept.len() < n as usize,
            "{} of {n} kept, {space:?}",
            kept.len()
        );
        assert_eq!(
            kept.first().unwrap(),
            &format!("old-{:04}", n as usize - kept.len()),
            "the oldest went first"
        );
        // Now pending work fills the store: the archive makes room for it until none is left, then
        // ingest is refused; drained, it is accepted again by itself.
        let mut pending = 0;
        loop {
            match store
                .accept(vec![event(&format!("p-{pending}"), true)], t0)
                .await
            {
                Ok(_) => pending += 1,
                Err(e) => {
                    assert!(e.is_full(), "{e}");
                    r.make_room().await.unwrap();
                    if r.room.refusal().is_some() {
                        break;
                    }
                }
            }
            assert!(pending < 10_000);
        }
        assert!(
            ids(&*store).await.iter().all(|id| id.starts_with("p-")),
            "every archived event made room before ingest was refused"
        );
        let why = r
            .room
            .refusal()
            .expect("refused while pending work fills the store");
        assert!(
            why.contains("pending deliveries fill store.max_db_bytes"),
            "{why}"
        );
        loop {
            let d = store.lease(50, Duration::from_secs(60), t0).await.unwrap();
            if d.is_empty() {
                break;
            }
            for x in d {
                store.ack(x.id, t0).await.unwrap();
            }
        }
        assert_eq!(store.depth().await.unwrap(), 0);
        let space = r.make_room().await.unwrap();
        assert!(
            r.room.refusal().is_none(),
            "drained: accepted again by itself ({space:?})"
        );
        store.accept(vec![event("after", true)], t0).await.unwrap();
    }
}
