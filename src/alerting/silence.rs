//! Silences: "do not notify about events like this until then", Alertmanager's silence for scan events.
//!
//! A silence is an event pattern (the rule grammar, so anything a rule can say a silence can say) with
//! an expiry, a comment and an author. People write it with matchers: `path=value` (exact string),
//! `path=glob*` (EventBridge `wildcard`), several ANDed; or a whole `--pattern JSON`. The CVE allowlist
//! is a silence too: [`allowlist_pattern`] builds the pattern that mutes one CVE id and/or package in
//! Inspector2 Finding events (for one repository, or all).
//!
//! Promises: a matcher or pattern that does not parse is refused when the silence is added, never at
//! delivery; an expired silence never applies (expiry is checked against the injected clock, not when
//! the store is next read); silences are stored durably by [`crate::store::Store`] and applied in the
//! notification pipeline ([`crate::alerting`]) before every attempt, so a silence added while a delivery
//! waits for a retry stops it too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use scanbridge_pattern::Pattern;
use serde_json::{Map, Value, json};

use super::stage::{Flow, Ledger, Notice, Stage};
use crate::store::Silence;

/// What a person asks for when adding a silence: the flags of `silence add`, or the JSON body of
/// `POST /api/v1/silences` (`{"matchers": [...], "pattern": {...} or "text", "cve", "package",
/// "repository", "expires", "comment", "author"}`).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceSpec {
    /// `path=value` or `path=glob*`, all of which must hold.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// A whole event pattern: a JSON object, or its text.
    #[serde(default)]
    pub pattern: Option<Value>,
    #[serde(default)]
    pub cve: Option<String>,
    #[serde(default)]
    pub package: Option<String>,
    /// Narrows a CVE allowlist entry to one repository (globs allowed).
    #[serde(default)]
    pub repository: Option<String>,
    /// A duration from now (`7d`) or a UTC date or time ([`parse_expires`]).
    pub expires: String,
    pub comment: String,
    #[serde(default)]
    pub author: Option<String>,
}

/// The trimmed text, unless it is absent or blank.
fn nonempty(o: &Option<String>) -> Option<&str> {
    o.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl SilenceSpec {
    /// The silence this describes, made at `now_ms`; `author` is used when the spec names none.
    pub fn build(&self, now_ms: i64, author: &str) -> Result<Silence, SilenceError> {
        let (cve, package, repository) = (
            nonempty(&self.cve),
            nonempty(&self.package),
            nonempty(&self.repository),
        );
        let matchers: Vec<String> = self
            .matchers
            .iter()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        let mut pattern = Value::Object(Default::default());
        let mut shown = matchers.clone();
        if !matchers.is_empty() {
            merge(&mut pattern, matchers_pattern(&matchers)?)?;
        }
        match &self.pattern {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t.trim().is_empty() => {}
            Some(p) => {
                let v: Value = match p {
                    Value::String(t) => {
                        serde_json::from_str(t).map_err(|e| SilenceError::Pattern(e.to_string()))?
                    }
                    other => other.clone(),
                };
                shown.push(format!("pattern {v}"));
                merge(&mut pattern, v)?;
            }
        }
        if repository.is_some() && cve.is_none() && package.is_none() {
            return Err(SilenceError::Empty); // a repository only narrows an allowlist entry
        }
        if cve.is_some() || package.is_some() {
            merge(&mut pattern, allowlist_pattern(cve, package, repository)?)?;
            let mut what = Vec::new();
            what.extend(cve.map(|c| format!("cve={c}")));
            what.extend(package.map(|p| format!("package={p}")));
            what.extend(repository.map(|r| format!("repository={r}")));
            shown.push(format!("allowlist {}", what.join(" ")));
        }
        if pattern.as_object().is_some_and(|o| o.is_empty()) {
            return Err(SilenceError::Empty);
        }
        let text = check_pattern(&pattern)?;
        Ok(Silence {
            id: new_id(),
            pattern: text,
            matchers: shown.join(", "),
            comment: self.comment.clone(),
            created_by: nonempty(&self.author).unwrap_or(author).to_owned(),
            created_at_ms: now_ms,
            expires_at_ms: parse_expires(&self.expires, now_ms)?,
        })
    }
}

/// Why a silence could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SilenceError {
    #[error("matcher {0:?}: expected PATH=VALUE (for example detail.repository-name=payments/*)")]
    Matcher(String),
    #[error("matchers {0:?} and {1:?} name the same field")]
    Conflict(String, String),
    #[error("pattern: {0}")]
    Pattern(String),
    #[error(
        "--expires {0:?}: expected a duration (7d, 12h) or a date (2026-12-31, 2026-12-31T18:00:00Z)"
    )]
    Expires(String),
    #[error("--expires {0:?} is in the past")]
    Past(String),
    #[error("a silence needs at least one --match, --pattern, --cve or --package")]
    Empty,
}

/// Turns `path=value` matchers into one pattern (all must hold).
pub fn matchers_pattern(matchers: &[String]) -> Result<Value, SilenceError> {
    let mut root = Map::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for m in matchers {
        let (path, value) = m
            .split_once('=')
            .filter(|(p, _)| !p.trim().is_empty())
            .ok_or_else(|| SilenceError::Matcher(m.clone()))?;
        let path = path.trim();
        if let Some((_, other)) = seen.iter().find(|(p, _)| p == path) {
            return Err(SilenceError::Conflict(other.clone(), m.clone()));
        }
        seen.push((path.to_owned(), m.clone()));
        let leaf = if value.contains('*') {
            json!([{ "wildcard": value }])
        } else {
            json!([value])
        };
        insert(&mut root, path, leaf).map_err(|()| SilenceError::Matcher(m.clone()))?;
    }
    Ok(Value::Object(root))
}

fn insert(root: &mut Map<String, Value>, path: &str, leaf: Value) -> Result<(), ()> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(());
        }
        if i + 1 == parts.len() {
            if node.contains_key(*part) {
                return Err(());
            }
            node.insert((*part).to_owned(), leaf);
            return Ok(());
        }
        let next = node
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        node = next.as_object_mut().ok_or(())?;
    }
    Ok(())
}

/// Deep-merges `b` into `a` (both patterns); a field named by both is a conflict.
pub fn merge(a: &mut Value, b: Value) -> Result<(), SilenceError> {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v)?,
                    Some(_) => return Err(SilenceError::Conflict(k.clone(), k)),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
            Ok(())
        }
        _ => Err(SilenceError::Pattern(
            "a pattern must be a JSON object".into(),
        )),
    }
}

/// The pattern of a CVE allowlist entry: Inspector2 Finding events for `cve` and/or `package`,
/// for `repository` (a name, `*` globs allowed) or every repository.
pub fn allowlist_pattern(
    cve: Option<&str>,
    package: Option<&str>,
    repository: Option<&str>,
) -> Result<Value, SilenceError> {
    if cve.is_none() && package.is_none() {
        return Err(SilenceError::Empty);
    }
    let leaf = |v: &str| {
        if v.contains('*') {
            json!([{ "wildcard": v }])
        } else {
            json!([v])
        }
    };
    let mut vuln = Map::new();
    if let Some(c) = cve {
        vuln.insert("vulnerabilityId".into(), leaf(c));
    }
    if let Some(p) = package {
        vuln.insert("vulnerablePackages".into(), json!({ "name": leaf(p) }));
    }
    let mut detail = Map::new();
    detail.insert("packageVulnerabilityDetails".into(), Value::Object(vuln));
    if let Some(r) = repository {
        detail.insert(
            "resources".into(),
            json!({"details": {"awsEcrContainerImage": {"repositoryName": leaf(r)}}}),
        );
    }
    Ok(json!({"detail-type": ["Inspector2 Finding"], "detail": detail}))
}

/// Checks that `pattern` is a valid event pattern; returns its canonical JSON text.
pub fn check_pattern(pattern: &Value) -> Result<String, SilenceError> {
    let text = pattern.to_string();
    Pattern::parse(&text).map_err(|e| SilenceError::Pattern(e.to_string()))?;
    Ok(text)
}

/// `--expires`: a duration from `now_ms` (`7d`, `90m`), a UTC date (`2026-12-31`: the end of that
/// day, so the silence holds all of it, until `2027-01-01T00:00:00Z`) or a full UTC time
/// (`2026-12-31T18:00:00Z`).
pub fn parse_expires(text: &str, now_ms: i64) -> Result<i64, SilenceError> {
    let t = text.trim();
    let at = if let Ok(d) = humantime::parse_duration(t) {
        now_ms.saturating_add(d.as_millis() as i64)
    } else {
        let date = is_date(t);
        let full = if date {
            format!("{t}T00:00:00Z")
        } else {
            t.to_owned()
        };
        let when = humantime::parse_rfc3339_weak(full.trim_end_matches('Z'))
            .map_err(|_| SilenceError::Expires(text.to_owned()))?;
        let ms = when
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as i64;
        if date { ms + 86_400_000 } else { ms }
    };
    if at <= now_ms {
        return Err(SilenceError::Past(text.to_owned()));
    }
    Ok(at)
}

/// Whether `t` is a date alone (`2026-12-31`).
fn is_date(t: &str) -> bool {
    t.len() == 10
        && t.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// How `--expires TEXT` was read, for the confirmation: "the end of 2026-12-31, UTC", "a duration
/// from now", "a UTC time".
pub fn expires_reading(text: &str) -> String {
    let t = text.trim();
    if humantime::parse_duration(t).is_ok() {
        format!("{t} from now")
    } else if is_date(t) {
        format!("the end of {t}, UTC")
    } else {
        "a UTC time".to_owned()
    }
}

/// A new silence id: 12 hex digits.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Silences compiled for matching.
#[derive(Debug, Default)]
pub struct SilenceSet {
    items: Vec<(Silence, Pattern)>,
}

impl SilenceSet {
    /// Compiles `silences`; one whose stored pattern no longer parses is skipped with a warning.
    pub fn new(silences: Vec<Silence>) -> SilenceSet {
        let items = silences
            .into_iter()
            .filter_map(|s| match Pattern::parse(&s.pattern) {
                Ok(p) => Some((s, p)),
                Err(e) => {
                    tracing::warn!(silence = %s.id, error = %e, "stored silence has an invalid pattern; ignored");
                    None
                }
            })
            .collect();
        SilenceSet { items }
    }

    /// The first silence active at `now_ms` whose pattern matches `event`.
    pub fn find(&self, event: &Value, now_ms: i64) -> Option<&Silence> {
        self.items
            .iter()
            .find(|(s, p)| s.active_at(now_ms) && p.matches(event))
            .map(|(s, _)| s)
    }
}

/// Stage 1: an active silence matching the event suppresses the delivery (`silenced`).
pub struct SilenceStage {
    pub ledger: Ledger,
    /// The stored silences and their compiled set (recompiled only when the stored list changed).
    cache: Mutex<(Vec<Silence>, Arc<SilenceSet>)>,
}

impl SilenceStage {
    pub fn new(ledger: Ledger) -> SilenceStage {
        SilenceStage {
            ledger,
            cache: Mutex::default(),
        }
    }

    /// The stored silences, compiled; none (with an error logged) if the store cannot be read.
    async fn set(&self, now_ms: i64) -> Arc<SilenceSet> {
        let stored = match self.ledger.store.silences().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read silences; sending unsilenced");
                return Arc::default();
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != stored {
            let active = stored.iter().filter(|s| s.active_at(now_ms)).count();
            self.ledger.metrics.silences_active(active as u64);
            cache.1 = Arc::new(SilenceSet::new(stored.clone()));
            cache.0 = stored;
        }
        cache.1.clone()
    }
}

impl Stage for SilenceStage {
    const NAME: &'static str = "silence";

    async fn exec(&self, n: &Notice<'_>) -> Flow {
        let set = self.set(n.now_ms).await;
        let Some(s) = set.find(n.event, n.now_ms) else {
            return Flow::Next;
        };
        let detail = format!("silence {} ({})", s.id, s.comment);
        self.ledger.suppress(n, "silenced", detail).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample;

    fn silence(pattern: Value, expires_at_ms: i64) -> Silence {
        Silence {
            id: "s1".into(),
            pattern: check_pattern(&pattern).unwrap(),
            matchers: String::new(),
            comment: "c".into(),
            created_by: "me".into(),
            created_at_ms: 0,
            expires_at_ms,
        }
    }

    #[test]
    fn matchers_become_exact_and_wildcard_patterns() {
        let p = matchers_pattern(&[
            "detail.repository-name=payments/*".into(),
            "detail.scan-status=COMPLETE".into(),
            "source=aws.ecr".into(),
        ])
        .unwrap();
        assert_eq!(
            p,
            json!({"detail": {"repository-name": [{"wildcard": "payments/*"}],
                "scan-status": ["COMPLETE"]}, "source": ["aws.ecr"]})
        );
        let set = SilenceSet::new(vec![silence(p, 10)]);
        let crit = sample("ecr-image-scan-critical.json");
        assert_eq!(set.find(&crit, 5).map(|s| s.id.as_str()), Some("s1"));
        assert!(set.find(&crit, 10).is_none(), "expired at its expiry time");
        assert!(
            set.find(&sample("ecr-image-scan-high-only.json"), 5)
                .is_none()
        );
    }

    #[test]
    fn bad_matchers_are_refused() {
        for bad in ["nopath", "=x", "a..b=1"] {
            assert!(matchers_pattern(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(matches!(
            matchers_pattern(&["a=1".into(), "a=2".into()]),
            Err(SilenceError::Conflict(..))
        ));
        assert!(matches!(
            matchers_pattern(&["a=1".into(), "a.b=2".into()]),
            Err(SilenceError::Conflict(..) | SilenceError::Matcher(_))
        ));
        assert!(check_pattern(&json!({"detail": {"x": [{"nope": 1}]}})).is_err());
    }

    #[test]
    fn allowlist_mutes_one_cve_for_one_repository() {
        let finding = sample("inspector2-finding.json");
        let hit = |cve: Option<&str>, pkg: Option<&str>, repo: Option<&str>| {
            let p = allowlist_pattern(cve, pkg, repo).unwrap();
            SilenceSet::new(vec![silence(p, i64::MAX)])
                .find(&finding, 0)
                .is_some()
        };
        assert!(hit(Some("CVE-2026-10001"), None, Some("payments/worker")));
        assert!(hit(None, Some("libssl3"), Some("payments/*")));
        assert!(hit(Some("CVE-2026-10001"), Some("libssl3"), None));
        assert!(!hit(Some("CVE-2026-99999"), None, None));
        assert!(!hit(Some("CVE-2026-10001"), None, Some("web/*")));
        assert!(!hit(None, Some("zlib"), None));
        assert_eq!(
            allowlist_pattern(None, None, Some("r")),
            Err(SilenceError::Empty)
        );
        // An allowlist entry never mutes other event kinds.
        let p = allowlist_pattern(Some("CVE-2026-10001"), None, None).unwrap();
        let set = SilenceSet::new(vec![silence(p, i64::MAX)]);
        assert!(
            set.find(&sample("ecr-image-scan-critical.json"), 0)
                .is_none()
        );
    }

    #[test]
    fn expires_takes_durations_and_dates() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_expires("7d", now).unwrap(), now + 7 * 86_400_000);
        assert_eq!(parse_expires("90m", now).unwrap(), now + 90 * 60_000);
        // A date is the end of that day (UTC): the silence holds all of it.
        let d = parse_expires("2030-01-01", now).unwrap();
        assert_eq!(crate::event::rfc3339(d), "2030-01-02T00:00:00Z");
        assert_eq!(expires_reading("2030-01-01"), "the end of 2030-01-01, UTC");
        let t = parse_expires("2030-01-01T18:30:00Z", now).unwrap();
        assert_eq!(d - t, (5 * 60 + 30) * 60_000);
        assert_eq!(expires_reading("2030-01-01T18:30:00Z"), "a UTC time");
        assert_eq!(expires_reading("7d"), "7d from now");
        assert!(matches!(
            parse_expires("2020-01-01", now),
            Err(SilenceError::Past(_))
        ));
        assert!(matches!(
            parse_expires("soon", now),
            Err(SilenceError::Expires(_))
        ));
    }
}
