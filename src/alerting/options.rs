//! A rule's alerting options (`dedup`, `notify_on`, `group_by`, `group_wait`, `group_interval`,
//! `notify_resolved`): what a rule file says about how its matches notify, parsed and checked with
//! the rule and kept on it. The stages give the options their meaning ([`super::history`] for
//! `notify_on`, [`super::dedup`] for the keys, [`super::digest`] for the groups, [`super::resolve`]
//! for `notify_resolved`).
//!
//! Promise: every error names its JSON pointer in the rule document. This file imports no stage and
//! never the router: rules import it, and the pipeline reads the live options through [`RuleOptions`],
//! which the router implements.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::render::jsonpath::Path;

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

/// A rule's `notify_on` option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotifyOn {
    #[default]
    Always,
    NewFindings,
    Worse,
}

impl NotifyOn {
    pub fn parse(v: &Value) -> Option<NotifyOn> {
        match v.as_str()? {
            "always" => Some(NotifyOn::Always),
            "new_findings" => Some(NotifyOn::NewFindings),
            "worse" => Some(NotifyOn::Worse),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOn::Always => "always",
            NotifyOn::NewFindings => "new_findings",
            NotifyOn::Worse => "worse",
        }
    }
}

/// The default window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A rule's `dedup` option.
#[derive(Debug, Clone, PartialEq)]
pub struct DedupSpec {
    pub window: Duration,
    /// Custom key paths; `None` = the default key for the event's kind.
    pub key: Option<Vec<Path>>,
}

impl DedupSpec {
    /// Parses `true` / `false` / `{window, key}`; errors are (pointer, message) under `at`.
    pub fn parse(v: &Value, at: &str) -> Result<Option<DedupSpec>, Vec<(String, String)>> {
        let mut errs = Vec::new();
        let obj = match v {
            Value::Bool(false) | Value::Null => return Ok(None),
            Value::Bool(true) => {
                return Ok(Some(DedupSpec {
                    window: DEFAULT_WINDOW,
                    key: None,
                }));
            }
            Value::Object(o) => o,
            _ => {
                return Err(vec![(
                    at.to_owned(),
                    "dedup must be true, false or an object {window, key}".into(),
                )]);
            }
        };
        for k in obj
            .keys()
            .filter(|k| !["window", "key"].contains(&k.as_str()))
        {
            errs.push((
                format!("{at}/{k}"),
                format!("unknown key {k:?}; expected one of window, key"),
            ));
        }
        let window = match obj.get("window") {
            None => DEFAULT_WINDOW,
            Some(w) => parse_duration(w, &format!("{at}/window"), &mut errs).unwrap_or_default(),
        };
        let key = obj
            .get("key")
            .map(|k| parse_paths(k, &format!("{at}/key"), &mut errs));
        if errs.is_empty() {
            Ok(Some(DedupSpec { window, key }))
        } else {
            Err(errs)
        }
    }
}

pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// A rule's grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub by: Vec<Path>,
    pub wait: Duration,
    pub interval: Duration,
}

impl GroupSpec {
    /// Reads `group_by`, `group_wait`, `group_interval` of a rule document.
    pub fn parse(m: &Map<String, Value>, errs: &mut Vec<(String, String)>) -> Option<GroupSpec> {
        let by = m.get("group_by");
        if by.is_none() {
            for k in ["group_wait", "group_interval"] {
                if m.contains_key(k) {
                    errs.push((format!("/{k}"), format!("{k} needs group_by")));
                }
            }
            return None;
        }
        let by = parse_paths(by.expect("checked"), "/group_by", errs);
        let wait = m
            .get("group_wait")
            .map(|v| parse_duration(v, "/group_wait", errs).unwrap_or_default())
            .unwrap_or(DEFAULT_WAIT);
        let interval = m
            .get("group_interval")
            .map(|v| parse_duration(v, "/group_interval", errs).unwrap_or_default())
            .unwrap_or(DEFAULT_INTERVAL);
        Some(GroupSpec { by, wait, interval })
    }
}

/// A humantime duration string ("10m"); records an error at `at` otherwise.
fn parse_duration(v: &Value, at: &str, errs: &mut Vec<(String, String)>) -> Option<Duration> {
    match v.as_str().map(humantime::parse_duration) {
        Some(Ok(d)) => Some(d),
        _ => {
            errs.push((
                at.to_owned(),
                "expected a duration such as \"30s\", \"10m\" or \"24h\"".into(),
            ));
            None
        }
    }
}

/// A list of JSON paths; records errors (with the index) at `at`.
fn parse_paths(v: &Value, at: &str, errs: &mut Vec<(String, String)>) -> Vec<Path> {
    let Some(items) = v.as_array() else {
        errs.push((at.to_owned(), "expected a list of JSON paths".into()));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str().map(Path::parse) {
            Some(Ok(p)) => out.push(p),
            Some(Err(e)) => errs.push((format!("{at}/{i}"), e.to_string())),
            None => errs.push((format!("{at}/{i}"), "a JSON path is a string".into())),
        }
    }
    out
}

/// Where the pipeline reads a rule's options when a delivery is sent: the live rule set (the router
/// implements it), so a reload applies to deliveries already waiting.
pub trait RuleOptions: Send + Sync {
    /// The options of the enabled rule `rule`; `None` if there is no such rule (since removed).
    fn alert_options(&self, rule: &str) -> Option<AlertOptions>;
}
