//! A rule's alerting options (`dedup`, `notify_on`, `group_by`, `group_wait`, `group_interval`,
//! `notify_resolved`): what
//! a rule file says about how its matches notify, parsed with the rule and kept on it.
//!
//! Promise: this file knows the rule document and the option types of the stages, never the router or
//! the pipeline that applies the options (rules import it; the pipeline reads it through the router).

use serde_json::{Map, Value};

use super::dedup::DedupSpec;
use super::digest::GroupSpec;
use super::history::NotifyOn;

/// A rule's alerting options (`dedup`, `notify_on`, `group_by`, `group_wait`, `group_interval`,
/// `notify_resolved`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertOptions {
    pub dedup: Option<DedupSpec>,
    pub notify_on: NotifyOn,
    pub group: Option<GroupSpec>,
    /// Tell the notified targets when a later scan no longer matches ([`super::resolve`]).
    pub notify_resolved: bool,
}

impl AlertOptions {
    /// Reads the options of a rule document; errors are (pointer, message).
    pub fn parse(m: &Map<String, Value>, errs: &mut Vec<(String, String)>) -> AlertOptions {
        let dedup = match m.get("dedup") {
            None => None,
            Some(v) => DedupSpec::parse(v, "/dedup").unwrap_or_else(|mut e| {
                errs.append(&mut e);
                None
            }),
        };
        let notify_on = match m.get("notify_on") {
            None => NotifyOn::Always,
            Some(v) => NotifyOn::parse(v).unwrap_or_else(|| {
                errs.push((
                    "/notify_on".into(),
                    "notify_on must be \"always\", \"new_findings\" or \"worse\"".into(),
                ));
                NotifyOn::Always
            }),
        };
        let group = GroupSpec::parse(m, errs);
        let notify_resolved = match m.get("notify_resolved") {
            None | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(_) => {
                errs.push((
                    "/notify_resolved".into(),
                    "notify_resolved must be true or false".into(),
                ));
                false
            }
        };
        if notify_resolved && group.is_some() {
            errs.push((
                "/notify_resolved".into(),
                "notify_resolved cannot be combined with group_by: a digest has no single alert \
                 to resolve"
                    .into(),
            ));
        }
        AlertOptions {
            dedup,
            notify_on,
            group,
            notify_resolved,
        }
    }

    /// One line for `scanbridge route`, or None when every option is the default.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.notify_on != NotifyOn::Always {
            parts.push(format!("notify_on {}", self.notify_on.as_str()));
        }
        if let Some(d) = &self.dedup {
            parts.push(format!(
                "dedup within {}",
                humantime::format_duration(d.window)
            ));
        }
        if self.notify_resolved {
            parts.push("notify_resolved".into());
        }
        if let Some(g) = &self.group {
            let by: Vec<&str> = g.by.iter().map(|p| p.original.as_str()).collect();
            parts.push(format!(
                "digest by [{}] (wait {}, interval {})",
                by.join(", "),
                humantime::format_duration(g.wait),
                humantime::format_duration(g.interval)
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Where the pipeline reads a rule's options when a delivery is sent: the live rule set (the router
/// implements it), so a reload applies to deliveries already waiting.
pub trait RuleOptions: Send + Sync {
    /// The options of the enabled rule `rule`; `None` if there is no such rule (since removed).
    fn alert_options(&self, rule: &str) -> Option<AlertOptions>;
}
