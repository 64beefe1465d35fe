//! A rule's alerting options (`dedup`, `notify_on`, `group_by`, `group_wait`, `group_interval`): what
//! a rule file says about how its matches notify, parsed with the rule and kept on it.
//!
//! Promise: this file knows the rule document and the option types of the stages, never the router or
//! the pipeline that applies the options (rules import it; the pipeline reads it through the router).

use serde_json::{Map, Value};

use super::dedup::DedupSpec;
use super::digest::GroupSpec;
use super::history::NotifyOn;

/// A rule's alerting options (`dedup`, `notify_on`, `group_by`, `group_wait`, `group_interval`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertOptions {
    pub dedup: Option<DedupSpec>,
    pub notify_on: NotifyOn,
    pub group: Option<GroupSpec>,
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
        AlertOptions {
            dedup,
            notify_on,
            group,
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
