//! The delivery consumer's health: every daemon watches the ONE durable consumer of the outbox, and
//! repairs it when it is gone, has had no leader for too long, or has a leader that hands out nothing.
//!
//! Why: with replicas > 1 the consumer has its own leader, elected among the nodes that hold the
//! outbox. Losing nodes a few seconds apart (scripts/cluster kills one every third round) can leave
//! that group without a leader for minutes while the streams have theirs (RELIABILITY.md): ingest
//! goes on, every fetch goes unanswered, and nothing is delivered. A leader can also sit on a node
//! whose copy of the stream is behind, and answer every fetch with "none" while deliveries wait. A
//! consumer can go missing (`nats consumer rm` by mistake, a node's storage lost), and then no
//! daemon fetches anything.
//!
//! What each daemon does: every tick ([`Watch::every`]) in which its fetches got no delivery, it asks
//! for the consumer's info ([`look`]), and decides ([`Watch`]):
//! - missing ([`Seen::Missing`]): created again at once;
//! - no leader ([`Seen::Leaderless`]: the info names none, or cannot be had) for
//!   [`Watch::heal_after`] (the ack wait, at least [`MIN_HEAL_AFTER`]): deleted and created again;
//! - a leader that does not work ([`Seen::Stuck`]: this daemon's fetches go unanswered, or bring
//!   nothing to attempt while the consumer counts deliveries not handed out, or while the outbox
//!   holds more messages than the consumer knows of) for `heal_after`: its leader is asked to step down
//!   (the group elects another), and if it is still stuck another `heal_after` later, it is deleted
//!   and created again.
//!
//! A consumer is made again only while the outbox stream itself answers (a repair cannot help a
//! stream without a leader, nor a daemon cut off from NATS), and by one daemon of the installation
//! at a time: the daemon that creates the key [`REPAIR_KEY`] in `P_repairs` (a bucket whose entries
//! expire after [`setup::REPAIR_SPACING`]) repairs; the others see the key and wait.
//!
//! What making it again costs, and why nothing is lost: the outbox is a work-queue stream, which
//! keeps every message no consumer has acknowledged, and the new consumer starts from its first
//! message. So every delivery in the outbox is handed out again: one another daemon is attempting at
//! that moment may be attempted twice (at least once, as always); one waiting for its retry is put
//! back until its recorded next attempt, with its attempts kept (`outbox.rs` reads the attempts of
//! every message published before the consumer it came from was made). An acknowledgement for the
//! old consumer's delivery still reaches the new consumer, which has the same name.
//!
//! The decision ([`Watch`]) is a pure state machine over what was seen and when, so that it is
//! tested without a cluster; [`run`] is the loop that asks NATS and acts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::ConsumerErrorKind;

use super::cluster::{Cluster, failed};
use super::outbox::{FetchReport, Outbox};
use super::setup;
use crate::store::StoreError;

/// The shortest time a consumer may be without a leader (or stuck) before it is repaired: a normal
/// election after a node loss takes a few seconds.
pub const MIN_HEAL_AFTER: Duration = Duration::from_secs(10);

/// The key in `P_repairs` whose creator repairs the delivery consumer.
pub const REPAIR_KEY: &str = "delivery-consumer";

/// What the consumer's info said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// It has a leader that works (or is not replicated: one server answers for it).
    Led,
    /// It exists and has no leader, or its info could not be had (offline, no answer, the cluster
    /// not available): why, for the log.
    Leaderless(String),
    /// It has a leader that does not hand out what waits: why, for the log.
    Stuck(String),
    /// It does not exist.
    Missing,
}

/// What to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Nothing,
    /// Create it (it is missing).
    Create,
    /// Ask its leader to step down (stuck for `heal_after`).
    StepDown,
    /// Delete it and create it again (leaderless for `heal_after`, or still stuck after a
    /// step-down).
    Recreate,
}

/// The decision: when a consumer has been without a leader, or stuck, for long enough.
#[derive(Debug)]
pub struct Watch {
    heal_after: Duration,
    /// Since when it has been without a leader or stuck (one clock for both).
    bad_since: Option<Instant>,
    /// A step-down was asked for since it last worked.
    stepped_down: bool,
}

impl Watch {
    /// A watch for a consumer with this ack wait.
    pub fn new(ack_wait: Duration) -> Watch {
        Watch {
            heal_after: Self::heal_after(ack_wait),
            bad_since: None,
            stepped_down: false,
        }
    }

    /// How long a consumer may have no leader (or be stuck) before it is repaired: its ack wait
    /// (the time a dead daemon's deliveries wait anyway), at least [`MIN_HEAL_AFTER`].
    pub fn heal_after(ack_wait: Duration) -> Duration {
        ack_wait.max(MIN_HEAL_AFTER)
    }

    /// How often a daemon whose fetches got nothing asks for the consumer's info.
    pub fn every(ack_wait: Duration) -> Duration {
        (Self::heal_after(ack_wait) / 5).clamp(Duration::from_secs(1), Duration::from_secs(5))
    }

    /// How long the consumer has been seen without a leader or stuck, if it is now.
    pub fn bad_for(&self, now: Instant) -> Option<Duration> {
        self.bad_since.map(|s| now.saturating_duration_since(s))
    }

    /// Whether it has been bad for `heal_after` (then the clock starts again: whatever comes of
    /// the repair, the next one is due after another `heal_after`, not at every tick).
    fn bad_long_enough(&mut self, now: Instant) -> bool {
        let since = *self.bad_since.get_or_insert(now);
        let due = now.saturating_duration_since(since) >= self.heal_after;
        if due {
            self.bad_since = Some(now);
        }
        due
    }

    /// Takes in what was seen at `now`; says what to do.
    pub fn saw(&mut self, seen: &Seen, now: Instant) -> Act {
        match seen {
            Seen::Led | Seen::Missing => {
                (self.bad_since, self.stepped_down) = (None, false);
                match seen {
                    Seen::Missing => Act::Create,
                    _ => Act::Nothing,
                }
            }
            Seen::Leaderless(_) => match self.bad_long_enough(now) {
                true => Act::Recreate,
                false => Act::Nothing,
            },
            Seen::Stuck(_) => match (self.bad_long_enough(now), self.stepped_down) {
                (false, _) => Act::Nothing,
                (true, false) => {
                    self.stepped_down = true;
                    Act::StepDown
                }
                (true, true) => Act::Recreate,
            },
        }
    }
}

/// Asks for the consumer's info (and, when this daemon's fetches brought nothing to attempt and the
/// consumer counts nothing waiting, the stream's); notes the consumer's creation time in the outbox.
pub async fn look(c: &Cluster, outbox: &Outbox, fetches: FetchReport) -> Seen {
    let n = &c.names;
    let stream = match c.stream(&n.outbox_stream()).await {
        Ok(s) => s,
        Err(e) => return Seen::Leaderless(e.to_string()),
    };
    let info = match stream.consumer_info(n.consumer()).await {
        Ok(info) => info,
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => return Seen::Missing,
        Err(e) => return Seen::Leaderless(e.to_string()),
    };
    outbox.consumer_made(info.created.unix_timestamp_nanos());
    if let Some(ci) = info.cluster.as_ref()
        && ci.leader.is_none()
        && c.replicas > 1
    {
        return Seen::Leaderless("its info names no leader".into());
    }
    if fetches.asked && !fetches.answered {
        return Seen::Stuck("fetches go unanswered though its info names a leader".into());
    }
    if !fetches.answered {
        return Seen::Led;
    }
    // Answered, and nothing this daemon could attempt came.
    if info.num_pending > 0 {
        return Seen::Stuck(format!(
            "fetches bring nothing to attempt while it counts {} deliveries not handed out",
            info.num_pending
        ));
    }
    // Every message of a work-queue stream is either waiting or handed out (and not yet
    // acknowledged) by its one consumer: more in the stream means the leader's view is behind.
    let known = info.num_pending + info.num_ack_pending as u64;
    match c.js.get_stream(n.outbox_stream()).await {
        Ok(st) if st.cached_info().state.messages > known => Seen::Stuck(format!(
            "fetches bring nothing to attempt while the outbox holds {} messages and it knows of {known}",
            st.cached_info().state.messages
        )),
        _ => Seen::Led,
    }
}

/// Asks the consumer's leader to step down (its group elects another leader).
pub async fn step_down(c: &Cluster) -> Result<(), StoreError> {
    let n = &c.names;
    let subject = format!(
        "CONSUMER.LEADER.STEPDOWN.{}.{}",
        n.outbox_stream(),
        n.consumer()
    );
    let what = "asking the delivery consumer's leader to step down";
    let answer: serde_json::Value =
        c.js.request(subject, &serde_json::json!({}))
            .await
            .map_err(|e| failed(what, e))?;
    match answer.get("error") {
        None => Ok(()),
        Some(e) => Err(failed(what, e)),
    }
}

/// Deletes (when `delete`) and creates the consumer, if the outbox stream answers and this daemon
/// wins `P_repairs`' key. `Ok(false)`: not done, and why was logged.
pub async fn repair(
    c: &Cluster,
    repairs: &kv::Store,
    outbox: &Outbox,
    delete: bool,
) -> Result<bool, StoreError> {
    let n = &c.names;
    // The stream's own info comes from its leader: without one, a new consumer could not work
    // either, and without NATS nothing can be done.
    let stream = c.js.get_stream(n.outbox_stream()).await.map_err(|e| {
        failed(
            "reading the outbox stream (before repairing its consumer)",
            e,
        )
    })?;
    let me = format!("pid {}", std::process::id());
    match repairs.create(REPAIR_KEY, me.into()).await {
        Ok(_) => {}
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
            tracing::info!("another daemon repaired the delivery consumer a moment ago");
            return Ok(false);
        }
        Err(e) => return Err(failed("claiming the repair of the delivery consumer", e)),
    }
    if delete && let Err(e) = stream.delete_consumer(&n.consumer()).await {
        // Gone already is as good as deleted; anything else leaves the old one in place, and a
        // create would only find it again.
        let gone = matches!(e.kind(), ConsumerErrorKind::JetStream(j)
            if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND);
        if !gone {
            let _ = repairs.purge(REPAIR_KEY).await;
            return Err(failed("deleting the leaderless delivery consumer", e));
        }
    }
    let made = stream
        .create_consumer(setup::consumer_config(c))
        .await
        .map_err(|e| failed("creating the delivery consumer again", e))?;
    outbox.consumer_made(made.cached_info().created.unix_timestamp_nanos());
    Ok(true)
}

/// The loop of a daemon (see the module doc); runs until the store is dropped.
pub async fn run(c: Cluster, outbox: Arc<Outbox>) {
    let every = Watch::every(c.ack_wait);
    let mut watch = Watch::new(c.ack_wait);
    let repairs = match c.bucket(&c.names.bucket(setup::REPAIRS)).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the delivery consumer");
            return;
        }
    };
    loop {
        tokio::time::sleep(every).await;
        let fetches = outbox.fetches(every);
        if fetches.handed {
            watch.saw(&Seen::Led, Instant::now());
            continue;
        }
        let seen = look(&c, &outbox, fetches).await;
        let act = watch.saw(&seen, Instant::now());
        if let Seen::Leaderless(why) | Seen::Stuck(why) = &seen {
            let for_s = watch.bad_for(Instant::now());
            tracing::debug!(
                why,
                ?for_s,
                "the delivery consumer does not hand out deliveries"
            );
        }
        let delete = match act {
            Act::Nothing => continue,
            Act::Create => false,
            Act::Recreate => true,
            Act::StepDown => {
                match step_down(&c).await {
                    Ok(()) => tracing::warn!(
                        why = ?seen,
                        "the delivery consumer handed out nothing; asked its leader to step down"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not ask the delivery consumer's leader to step down")
                    }
                }
                continue;
            }
        };
        match repair(&c, &repairs, &outbox, delete).await {
            Ok(true) if delete => tracing::warn!(
                why = ?seen,
                "the delivery consumer had no leader or handed out nothing; made it again (every delivery in the outbox is handed out again: some may be attempted twice)"
            ),
            Ok(true) => tracing::warn!("the delivery consumer was missing; made it again"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not repair the delivery consumer; trying again later")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaderless() -> Seen {
        Seen::Leaderless("no leader".into())
    }

    #[test]
    fn a_consumer_is_made_again_only_after_heal_after_without_a_leader() {
        let ack_wait = Duration::from_secs(30);
        let mut w = Watch::new(ack_wait);
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        assert_eq!(w.saw(&leaderless(), s(0)), Act::Nothing);
        assert_eq!(w.saw(&leaderless(), s(29)), Act::Nothing);
        // A leader in between starts the clock again.
        assert_eq!(w.saw(&Seen::Led, s(29)), Act::Nothing);
        assert_eq!(w.saw(&leaderless(), s(40)), Act::Nothing);
        assert_eq!(w.saw(&leaderless(), s(69)), Act::Nothing);
        assert_eq!(w.saw(&leaderless(), s(70)), Act::Recreate);
        // A repair that did not help is tried again after another heal_after, not at every tick.
        assert_eq!(w.saw(&leaderless(), s(71)), Act::Nothing);
        assert_eq!(w.saw(&leaderless(), s(99)), Act::Nothing);
        assert_eq!(w.saw(&leaderless(), s(100)), Act::Recreate);
    }

    #[test]
    fn a_stuck_consumer_is_first_asked_to_step_down_then_made_again() {
        let mut w = Watch::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let stuck = || Seen::Stuck("nothing handed out".into());
        assert_eq!(w.saw(&stuck(), s(0)), Act::Nothing);
        assert_eq!(w.saw(&stuck(), s(10)), Act::StepDown);
        assert_eq!(w.saw(&stuck(), s(19)), Act::Nothing);
        assert_eq!(w.saw(&stuck(), s(20)), Act::Recreate);
        // Working again: the next time starts with a step-down again.
        assert_eq!(w.saw(&Seen::Led, s(21)), Act::Nothing);
        assert_eq!(w.saw(&stuck(), s(22)), Act::Nothing);
        assert_eq!(w.saw(&stuck(), s(32)), Act::StepDown);
    }

    #[test]
    fn a_missing_consumer_is_made_at_once_and_a_short_ack_wait_has_a_floor() {
        let mut w = Watch::new(Duration::from_secs(2));
        let t0 = Instant::now();
        assert_eq!(w.saw(&Seen::Missing, t0), Act::Create);
        assert_eq!(w.saw(&leaderless(), t0), Act::Nothing);
        let almost = t0 + MIN_HEAL_AFTER - Duration::from_millis(1);
        assert_eq!(w.saw(&leaderless(), almost), Act::Nothing);
        assert_eq!(w.saw(&leaderless(), t0 + MIN_HEAL_AFTER), Act::Recreate);
        assert_eq!(Watch::every(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(
            Watch::every(Duration::from_secs(300)),
            Duration::from_secs(5)
        );
    }
}
