//! Alert state (rules with `notify_resolved`) in the `P_alerts` bucket, and the order of the marked
//! deliveries of one alert in the outbox.
//!
//! One entry per alert key holds the state of that key for every (rule, target). An ack of a marked
//! delivery changes it with a check-and-set on the entry's revision (retried when another daemon
//! changed it meanwhile), and records the delivery it applied, so an ack made again after a crash
//! does not open or close the alert twice.
//!
//! Marked deliveries have subjects of their own in `P_OUTBOX` (`P.outbox.a.KEY.RULETARGET.KIND`), so
//! the store answers "is an earlier delivery of the opposite kind still in the outbox?" with one
//! lookup of the first message on the opposite subject (stream sequence = order of acceptance, as
//! the SQLite backend's rowid), and "which triggers of this key are pending?" with the subjects
//! holding messages. Both ask the stream's leader, never a lagging replica.

use std::collections::BTreeSet;

use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
type Stream = async_nats::jetstream::stream::Stream<()>;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::cluster::{Cluster, failed, from_json, to_json, token};
use super::outbox::Outbox;
use super::wire::{DeliveryMsg, Mark};
use crate::store::{
    AlertCheck, AlertKind, AlertMark, AlertState, NewDelivery, ResolveCheck, StoreError,
    delivery_id,
};

/// The states of one alert key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Entry {
    states: Vec<State>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    rule: String,
    target: String,
    open: bool,
    opened_at: Option<i64>,
    resolved_at: Option<i64>,
    trigger_event_id: Option<String>,
    record: Option<String>,
    trigger_time: Option<i64>,
    resolve_time: Option<i64>,
    episode: i64,
    updated_at: i64,
    /// The delivery whose ack made this state (an ack made twice applies once).
    #[serde(default)]
    last: Option<String>,
}

impl State {
    fn public(&self, key: &str) -> AlertState {
        AlertState {
            rule: self.rule.clone(),
            key: key.to_owned(),
            target: self.target.clone(),
            open: self.open,
            opened_at_ms: self.opened_at,
            resolved_at_ms: self.resolved_at,
            trigger_event_id: self.trigger_event_id.clone(),
            record: self.record.clone(),
            trigger_time_ms: self.trigger_time,
            resolve_time_ms: self.resolve_time,
            episode: self.episode,
        }
    }
}

const TRIES: usize = 20;

pub struct Alerts {
    kv: kv::Store,
    cluster: Cluster,
    outbox: Stream,
}

impl Alerts {
    pub async fn open(c: &Cluster) -> Result<Alerts, StoreError> {
        Ok(Alerts {
            kv: c.bucket(&c.names.bucket("alerts")).await?,
            outbox: c.stream(&c.names.outbox_stream()).await?,
            cluster: c.clone(),
        })
    }

    /// The states recorded under `key` and the revision to write at.
    async fn read(&self, key: &str) -> Result<(Option<u64>, Entry), StoreError> {
        let e = self
            .kv
            .entry(token(key))
            .await
            .map_err(|e| failed("reading alert state", e))?;
        Ok(match e {
            Some(e) if e.operation == Operation::Put => {
                (Some(e.revision), from_json("alert state", &e.value)?)
            }
            Some(e) => (Some(e.revision), Entry::default()),
            None => (None, Entry::default()),
        })
    }

    /// Records the effect of the delivered marked delivery `id` (of event `event_id`) at `now`.
    pub async fn apply(
        &self,
        id: &str,
        event_id: &str,
        rule: &str,
        target: &str,
        m: &AlertMark,
        now: i64,
    ) -> Result<(), StoreError> {
        for _ in 0..TRIES {
            let (rev, mut entry) = self.read(&m.key).await?;
            let at = entry
                .states
                .iter()
                .position(|s| s.rule == rule && s.target == target);
            if at.is_some_and(|i| entry.states[i].last.as_deref() == Some(id)) {
                return Ok(()); // applied before a crash
            }
            match (m.kind, at) {
                (AlertKind::Trigger, None) => entry.states.push(State {
                    rule: rule.to_owned(),
                    target: target.to_owned(),
                    open: true,
                    opened_at: Some(now),
                    trigger_event_id: Some(event_id.to_owned()),
                    record: m.record.clone(),
                    trigger_time: m.time_ms,
                    updated_at: now,
                    last: Some(id.to_owned()),
                    ..Default::default()
                }),
                (AlertKind::Trigger, Some(i)) => {
                    let s = &mut entry.states[i];
                    if !s.open {
                        s.opened_at = Some(now);
                    }
                    s.open = true;
                    s.trigger_event_id = Some(event_id.to_owned());
                    s.record = m.record.clone();
                    s.trigger_time = match (s.trigger_time, m.time_ms) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                    s.updated_at = now;
                    s.last = Some(id.to_owned());
                }
                // A resolve of an alert never opened changes nothing.
                (AlertKind::Resolve, None) => return Ok(()),
                (AlertKind::Resolve, Some(i)) => {
                    let s = &mut entry.states[i];
                    s.open = false;
                    s.resolved_at = Some(now);
                    s.resolve_time = m.time_ms;
                    s.episode += 1;
                    s.updated_at = now;
                    s.last = Some(id.to_owned());
                }
            }
            let value = to_json(&entry).into();
            let k = token(&m.key);
            let raced = match rev {
                Some(rev) => match self.kv.update(&k, value, rev).await {
                    Ok(_) => false,
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => true,
                    Err(e) => return Err(failed("writing alert state", e)),
                },
                None => match self.kv.create(&k, value).await {
                    Ok(_) => false,
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => true,
                    Err(e) => return Err(failed("writing alert state", e)),
                },
            };
            if !raced {
                return Ok(());
            }
        }
        Err(StoreError::JetStream(format!(
            "alert state of {} kept changing under {TRIES} tries",
            m.key
        )))
    }

    /// The Store contract's `alert_check` for a held delivery (`seq`: its place in the outbox).
    pub async fn check(
        &self,
        msg: &DeliveryMsg,
        seq: u64,
        outbox: &Outbox,
        now: i64,
    ) -> Result<AlertCheck, StoreError> {
        let Some(mark) = msg.alert.as_ref() else {
            return Ok(AlertCheck::default());
        };
        let opposite = match AlertKind::parse(&mark.kind) {
            Some(AlertKind::Trigger) => AlertKind::Resolve,
            Some(AlertKind::Resolve) => AlertKind::Trigger,
            None => return Ok(AlertCheck::default()),
        };
        let subject =
            self.cluster
                .names
                .alert_subject(&mark.key, &msg.rule, &msg.target, opposite.as_str());
        let first = match self
            .outbox
            .get_first_raw_message_by_subject(&subject, 0)
            .await
        {
            Ok(m) => Some(m),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => None,
            Err(e) => return Err(failed("reading the outbox", e)),
        };
        let mut check = AlertCheck::default();
        if let Some(m) = first.filter(|m| m.sequence < seq) {
            let other: DeliveryMsg = from_json("delivery", &m.payload)?;
            let until = outbox.next_attempt(&other.id).await?.filter(|at| *at > now);
            check.waiting_until_ms = Some(until.unwrap_or(0));
            check.waiting_for = Some(other.id);
        }
        let (_, entry) = self.read(&mark.key).await?;
        check.state = entry
            .states
            .iter()
            .find(|s| s.rule == msg.rule && s.target == msg.target)
            .map(|s| s.public(&mark.key));
        Ok(check)
    }

    /// Every state recorded under one of `keys`, by key, then rule and target.
    pub async fn states(&self, keys: &[String]) -> Result<Vec<AlertState>, StoreError> {
        let mut out = Vec::new();
        for key in keys {
            let (_, entry) = self.read(key).await?;
            let mut states: Vec<AlertState> = entry.states.iter().map(|s| s.public(key)).collect();
            states.sort_by(|a, b| (&a.rule, &a.target).cmp(&(&b.rule, &b.target)));
            out.extend(states);
        }
        Ok(out)
    }

    /// The resolve deliveries an accepted event adds (the Store contract's `accept` with a
    /// [`ResolveCheck`]): one per (rule, key, target) of the check's keys whose alert is open or
    /// has a trigger in the outbox, and whose rule the check clears (or that is no longer live).
    pub async fn resolves(
        &self,
        check: &ResolveCheck,
        event_id: &str,
    ) -> Result<Vec<NewDelivery>, StoreError> {
        let mut found: BTreeSet<(String, String, String)> = BTreeSet::new();
        let resolves =
            |rule: &str| check.clear.iter().any(|r| r == rule) || !check.live.contains(rule);
        for key in &check.keys {
            let (_, entry) = self.read(key).await?;
            for s in entry.states.iter().filter(|s| s.open && resolves(&s.rule)) {
                found.insert((s.rule.clone(), key.clone(), s.target.clone()));
            }
            for (rule, target) in self.pending_triggers(key).await? {
                if resolves(&rule) {
                    found.insert((rule, key.clone(), target));
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|(rule, key, target)| NewDelivery {
                id: delivery_id(event_id, &rule, &format!("{target}#resolve")),
                rule,
                target,
                input: None,
                alert: Some(AlertMark {
                    kind: AlertKind::Resolve,
                    key,
                    time_ms: check.time_ms,
                    record: check.record.clone(),
                }),
            })
            .collect())
    }

    /// (rule, target) of every trigger of `key` in the outbox.
    async fn pending_triggers(&self, key: &str) -> Result<Vec<(String, String)>, StoreError> {
        let filter = self.cluster.names.alert_subjects_of(key, "trigger");
        let mut subjects = self
            .outbox
            .info_with_subjects(&filter)
            .await
            .map_err(|e| failed("reading the outbox", e))?;
        let mut names = Vec::new();
        while let Some(s) = subjects.next().await {
            let (subject, _) = s.map_err(|e| failed("reading the outbox", e))?;
            names.push(subject);
        }
        let mut out = Vec::new();
        for subject in names {
            match self
                .outbox
                .get_first_raw_message_by_subject(&subject, 0)
                .await
            {
                Ok(m) => {
                    let d: DeliveryMsg = from_json("delivery", &m.payload)?;
                    if d.alert.as_ref().map(|a: &Mark| a.key.as_str()) == Some(key) {
                        out.push((d.rule, d.target));
                    }
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                Err(e) => return Err(failed("reading the outbox", e)),
            }
        }
        Ok(out)
    }
}
