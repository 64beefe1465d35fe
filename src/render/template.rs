//! Message templates (minijinja): email subject, text body, HTML body and Slack fallback text, and
//! the email of a resolve (`email/resolved_subject.txt`, `email/resolved_body.txt`,
//! `email/resolved_body.html`, which also see `resolved`: `headline`, `key`, `changes`).
//!
//! The defaults ship in `templates/` and are embedded in the binary; `[templates] dir` names a
//! directory whose files of the same relative names (`email/subject.txt`, `email/body.txt`,
//! `email/body.html`, `slack/text.txt`, and any file they include) replace the defaults. Every template
//! is compiled at start-up, so a broken override is a configuration error, not a failed delivery.
//!
//! Context of every template: `scan` (the [`Facts`]: kind, headline, image, repository, tags, tag,
//! digest, short_digest, status, counts (fixed order, zeros filled in), total, worst, console_url,
//! finding, region, account, time..., and `delta` when the store knew the previous scan of the image:
//! `delta.summary` "CRITICAL 0 -> 2, HIGH 7 -> 5", `delta.changes` [{severity, before, after}],
//! `delta.previous` (all counts before), `delta.compared_with`, `delta.previous_time`; for a digest
//! (`scan.kind == "digest"`) the lines are `event.detail.items` [{image, summary, worst, short_digest,
//! console_url, ...}]), `event` (the whole event), `payload` (what the rule sends),
//! `transformed` (whether the rule target transforms the input), `message` (the payload as text when
//! transformed), `rule`, `delivery_id`, `event_id`, `replay` (the replay id when the delivery is a
//! replay of an archived event, `scanbridge replay`; none when live). Helpers: filters `short_digest`,
//! `repository_name` (name or ARN → name), `mrkdwn` (Slack escaping of `&`, `<`, `>`), `multiline`
//! (escaped for the template's format, line feeds kept), `https_url` (the URL if it is a valid
//! `https:` URL, else none: use it for every `href`), `console_link` (the URL if it is an ECR console
//! link, else none), and functions `scan_facts(event)` and
//! `console_url(region, account, repository, digest)` (none unless every part is valid).
//! Undefined is strict (minijinja's `UndefinedBehavior::Strict`): a variable or key that does not
//! exist is an error naming the template, its line and the expression (`template email/subject.txt,
//! line 2: undefined value: scan.summry`), never an empty string in a subject. In the daemon that
//! error is a permanent failure with that reason; `check` and `notify-test` report it (exit 2). Values
//! that exist but are empty are `none` (`scan.finding` of a scan, `scan.delta` without history) and
//! test false; event fields that may be absent are tested with `is defined` or given a `default`.
//!
//! `templates.dir` must exist, and every file in it must be a template scanbridge uses (the names of
//! [`DEFAULTS`]) or a partial that templates include, whose file name starts with `_`
//! (`email/_footer.txt`); hidden files are ignored. A misnamed file or folder is an error naming it.
//!
//! Escaping is automatic and cannot be forgotten by an override: every printed value has its control,
//! line-breaking, bidi and invisible characters shown as escapes ([`escape::visible`]), so no value
//! can add a line to a subject or a body; `.html` templates are then HTML-escaped and `slack/`
//! templates mrkdwn-escaped (no mention, ping or link from content).

use std::path::{Path, PathBuf};

use minijinja::{
    AutoEscape, Environment, HtmlEscape, Output, State, UndefinedBehavior, Value as Jv,
};
use serde::Serialize;
use serde_json::Value;

use crate::escape;
use crate::scan::{self, Facts};

/// The template names and their embedded defaults.
pub const DEFAULTS: &[(&str, &str)] = &[
    (
        "email/subject.txt",
        include_str!("../../templates/email/subject.txt"),
    ),
    (
        "email/body.txt",
        include_str!("../../templates/email/body.txt"),
    ),
    (
        "email/body.html",
        include_str!("../../templates/email/body.html"),
    ),
    (
        "slack/text.txt",
        include_str!("../../templates/slack/text.txt"),
    ),
    (
        "email/resolved_subject.txt",
        include_str!("../../templates/email/resolved_subject.txt"),
    ),
    (
        "email/resolved_body.txt",
        include_str!("../../templates/email/resolved_body.txt"),
    ),
    (
        "email/resolved_body.html",
        include_str!("../../templates/email/resolved_body.html"),
    ),
];

/// A template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: cannot read {path}: {source}")]
    Read {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {name}: {source:#}")]
    Syntax {
        name: String,
        source: minijinja::Error,
    },
    /// Rendering failed: `message` names the template, the line and, for an undefined value, the
    /// expression ([`describe`]).
    #[error("{message}")]
    Render { name: String, message: String },
    #[error("{dir}: {message}")]
    Dir { dir: PathBuf, message: String },
}

/// A render error in a person's words: the template (the included one when the error is there), the
/// line, what went wrong and, for an undefined value, the expression as written in the template.
pub fn describe(env: &Environment<'_>, name: &str, err: &minijinja::Error) -> String {
    describe_in(env, name, None, err)
}

/// [`describe`], with the source of `name` given when it is not in `env` (an inline template).
fn describe_in(
    env: &Environment<'_>,
    name: &str,
    inline: Option<&str>,
    err: &minijinja::Error,
) -> String {
    let at = err.name().unwrap_or(name).to_owned();
    let line = err
        .line()
        .map(|l| format!(", line {l}"))
        .unwrap_or_default();
    let what = err
        .detail()
        .map(str::to_owned)
        .unwrap_or_else(|| err.kind().to_string());
    let expr = err.range().and_then(|r| {
        let source = match inline {
            Some(s) if at == name => s.to_owned(),
            _ => env.get_template(&at).ok()?.source().to_owned(),
        };
        // minijinja's span of an attribute lookup may start at its `.`: widen it to the name before.
        let bytes = source.as_bytes();
        let mut start = r.start.min(bytes.len());
        while start > 0
            && (bytes[start - 1].is_ascii_alphanumeric() || matches!(bytes[start - 1], b'_' | b'.'))
        {
            start -= 1;
        }
        source
            .get(start..r.end)
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
    });
    match (err.kind(), expr) {
        (minijinja::ErrorKind::UndefinedError, Some(e)) => {
            format!("template {at}{line}: undefined variable or key: {e}")
        }
        (_, Some(e)) => format!("template {at}{line}: {what}: {e}"),
        (_, None) => format!("template {at}{line}: {what}"),
    }
}

/// The compiled templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

/// What one delivery's templates see.
#[derive(Debug, Clone, Serialize)]
pub struct Context<'a> {
    pub scan: Facts,
    pub event: &'a Value,
    pub payload: &'a Value,
    pub transformed: bool,
    pub message: Option<String>,
    pub rule: &'a str,
    pub delivery_id: &'a str,
    pub event_id: &'a str,
    /// Set when this delivery says an alert is resolved (rules with `notify_resolved`).
    pub resolved: Option<Resolved>,
    /// The replay id when this delivery is a replay of an archived event (`scanbridge replay`).
    pub replay: Option<&'a str>,
}

/// What a "resolved" message says (templates: `resolved`).
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    /// "Resolved: payments/api:v2.14.0 — CRITICAL 2 -> 0, HIGH 7 -> 0".
    pub headline: String,
    /// The alert key (the image reference or the finding ARN).
    pub key: String,
    /// What changed since the scan that opened the alert ("CRITICAL 2 -> 0"), or "no change".
    pub changes: String,
}

impl<'a> Context<'a> {
    pub fn new(
        event: &'a Value,
        payload: &'a Value,
        rule: &'a str,
        delivery_id: &'a str,
        event_id: &'a str,
    ) -> Self {
        let transformed = payload != event;
        let message = transformed.then(|| match payload {
            Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        });
        Context {
            scan: Facts::of(event),
            event,
            payload,
            transformed,
            message,
            rule,
            delivery_id,
            event_id,
            resolved: None,
            replay: None,
        }
    }
}

impl<'a> Context<'a> {
    /// Adds what changed since the previous scan (`scan.delta`).
    pub fn with_delta(mut self, delta: Option<&crate::scan::Delta>) -> Self {
        self.scan.delta = delta.cloned();
        self
    }

    /// Marks a replayed delivery (`replay`).
    pub fn with_replay(mut self, replay: Option<&'a str>) -> Self {
        self.replay = replay;
        self
    }

    /// Marks a resolve (`resolved`), from the delta set before.
    pub fn with_alert(mut self, alert: Option<&crate::store::AlertMark>) -> Self {
        if let Some(a) = alert.filter(|a| a.kind == crate::store::AlertKind::Resolve) {
            let delta = self.scan.delta.as_ref();
            self.resolved = Some(Resolved {
                headline: crate::scan::resolved_headline(&self.scan, delta, self.rule),
                key: a.key.clone(),
                changes: delta
                    .map(|d| d.summary.clone())
                    .unwrap_or_else(|| "no change".into()),
            });
        }
        self
    }
}

/// How a template's output is escaped, by its name: `.html` as HTML, `slack/...` as Slack mrkdwn,
/// anything else as plain text. Whatever the format, every value is shown [`escape::visible`]ly.
fn auto_escape(name: &str) -> AutoEscape {
    if name.ends_with(".html") {
        AutoEscape::Html
    } else if name.starts_with("slack/") {
        AutoEscape::Custom("slack")
    } else {
        AutoEscape::None
    }
}

/// Escapes `text` for the format of the template being rendered; `lines` keeps its line feeds.
fn escaped(state: &State, text: &str, lines: bool) -> String {
    let shown = if lines {
        escape::visible_lines(text)
    } else {
        escape::visible(text)
    };
    match state.auto_escape() {
        AutoEscape::Html => HtmlEscape(&shown).to_string(),
        AutoEscape::Custom("slack") => escape::mrkdwn(&shown),
        _ => shown.into_owned(),
    }
}

/// Prints every `{{ value }}`: made visible (no control, line-breaking, bidi or invisible character
/// from an event reaches the output), then escaped for the template's format. Safe strings (made by
/// the filters below and by `tojson`) are already escaped and may keep their line feeds.
fn format(out: &mut Output, state: &State, value: &Jv) -> Result<(), minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        return minijinja::escape_formatter(out, state, value);
    }
    let text = match value.as_str() {
        Some(s) => s.to_owned(),
        None => value.to_string(),
    };
    let shown = if value.is_safe() {
        escape::visible_lines(&text).into_owned()
    } else {
        escaped(state, &text, false)
    };
    out.write_str(&shown).map_err(minijinja::Error::from)
}

impl Templates {
    /// The embedded defaults, with the files of `overrides` (if given) in their place.
    pub fn load(overrides: Option<&Path>) -> Result<Templates, TemplateError> {
        if let Some(dir) = overrides {
            check_dir(dir)?;
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_auto_escape_callback(auto_escape);
        env.set_formatter(format);
        env.add_filter("short_digest", |d: String| scan::short_digest(&d));
        env.add_filter("repository_name", |r: String| scan::repository_name(&r));
        env.add_filter("mrkdwn", |s: String| {
            Jv::from_safe_string(escape::mrkdwn(&s))
        });
        env.add_filter("multiline", |state: &State, s: String| {
            Jv::from_safe_string(escaped(state, &s, true))
        });
        env.add_filter("https_url", |s: Option<String>| {
            s.and_then(|s| escape::https_url(&s))
        });
        env.add_filter("console_link", |s: Option<String>| {
            s.and_then(|s| escape::console_link(&s))
        });
        env.add_function("scan_facts", |e: Jv| {
            let v: Value = serde_json::to_value(&e).unwrap_or(Value::Null);
            Jv::from_serialize(Facts::of(&v))
        });
        env.add_function(
            "console_url",
            |region: String, account: String, repo: String, digest: String| {
                scan::console_url(&region, &account, &repo, &digest)
            },
        );
        for (name, default) in DEFAULTS {
            let text = match overrides.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => {
                    std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                        name: (*name).to_owned(),
                        path: path.clone(),
                        source,
                    })?
                }
                None => (*default).to_owned(),
            };
            env.add_template_owned(*name, text)
                .map_err(|source| TemplateError::Syntax {
                    name: (*name).to_owned(),
                    source,
                })?;
        }
        if let Some(dir) = overrides {
            // Files the overrides include ({% include "email/_footer.txt" %}), loaded on demand.
            let dir = dir.to_owned();
            env.set_loader(move |name| {
                let p = dir.join(name);
                if name.split('/').any(|c| c == "..") || !p.is_file() {
                    return Ok(None);
                }
                std::fs::read_to_string(p).map(Some).map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
                })
            });
        }
        Ok(Templates { env })
    }

    /// Renders template `name` (one of [`DEFAULTS`]) with `ctx`, trimmed of surrounding whitespace.
    pub fn render(&self, name: &str, ctx: &Context<'_>) -> Result<String, TemplateError> {
        let err = |e: minijinja::Error| TemplateError::Render {
            name: name.to_owned(),
            message: describe(&self.env, name, &e),
        };
        let t = self.env.get_template(name).map_err(err)?;
        Ok(t.render(ctx).map_err(err)?.trim().to_owned())
    }

    /// Renders `source`, a template given in the configuration (an email target's `subject`), named
    /// `name` in errors, with the same escaping and strictness as the files.
    pub fn render_inline(
        &self,
        name: &str,
        source: &str,
        ctx: &Context<'_>,
    ) -> Result<String, TemplateError> {
        let out =
            self.env
                .render_named_str(name, source, ctx)
                .map_err(|e| TemplateError::Render {
                    name: name.to_owned(),
                    message: describe_in(&self.env, name, Some(source), &e),
                })?;
        Ok(out.trim().to_owned())
    }

    /// The names of the templates (the keys of [`DEFAULTS`]).
    pub fn names() -> impl Iterator<Item = &'static str> {
        DEFAULTS.iter().map(|(n, _)| *n)
    }
}

/// `templates.dir` must exist and hold only the templates scanbridge uses, partials (`_name`) and
/// hidden files: a misnamed file or folder would otherwise be silently ignored.
fn check_dir(dir: &Path) -> Result<(), TemplateError> {
    let fail = |message: String| TemplateError::Dir {
        dir: dir.to_owned(),
        message,
    };
    if !dir.is_dir() {
        return Err(fail(
            "no such directory (it holds the overrides: email/subject.txt, slack/text.txt, ...)"
                .into(),
        ));
    }
    let mut unknown = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| fail(format!("cannot read {}: {e}", d.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            if !file.starts_with('_') && !DEFAULTS.iter().any(|(n, _)| *n == rel) {
                unknown.push(rel);
            }
        }
    }
    unknown.sort();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "{} {} not a template scanbridge uses (the templates: {}; partials that templates include start with `_`)",
            unknown.join(", "),
            if unknown.len() == 1 { "is" } else { "are" },
            Templates::names().collect::<Vec<_>>().join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample;
    use serde_json::json;

    /// The backticked names of `text` before any `(`-group's content, and those inside groups too.
    fn names(text: &str) -> std::collections::BTreeSet<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .filter(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .map(str::to_owned)
            .collect()
    }

    /// The keys of a JSON object.
    fn keys(v: &Value) -> Vec<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn the_readme_lists_every_template_variable() {
        let readme = include_str!("../../README.md");
        let start = readme.find("Templates see these variables").unwrap();
        let end = start + readme[start..].find("Values that may be absent").unwrap();
        let bullets: Vec<&str> = readme[start..end].split("\n- ").skip(1).collect();
        assert_eq!(bullets.len(), 3, "{bullets:?}");
        // A finding's event has every part: `finding`, `top_findings`, `resource`.
        let event: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/samples/inspector2-finding.json"
        ))
        .unwrap();
        let ctx = Context::new(&event, &event, "r", "d", "e");
        let v = serde_json::to_value(&ctx).unwrap();
        let (mut scan, finding, top) = (names(bullets[0]), names(bullets[1]), names(bullets[2]));
        scan.remove("scan");
        for k in keys(&v["scan"]) {
            assert!(scan.contains(&k), "README does not list scan.{k}");
        }
        for k in keys(&v["scan"]["finding"]) {
            assert!(
                finding.contains(&k),
                "README does not list scan.finding.{k}"
            );
        }
        for k in keys(&v) {
            assert!(k == "scan" || top.contains(&k), "README does not list {k}");
        }
        // And lists nothing that does not exist.
        let digest = crate::alerting::digest_event(
            "g",
            "r",
            &json!({}),
            std::slice::from_ref(&event),
            std::time::Duration::from_secs(60),
            "t",
        );
        let d = serde_json::to_value(crate::scan::Facts::of(&digest)).unwrap();
        let mut real: std::collections::BTreeSet<String> = keys(&v["scan"]).into_iter().collect();
        real.extend(keys(&d["items"][0]));
        real.extend(["severity", "count", "before", "after"].map(str::to_owned));
        let delta = serde_json::to_value(crate::scan::Delta::default()).unwrap();
        real.extend(keys(&delta));
        real.extend(
            [
                "image_scan",
                "inspector_scan",
                "inspector_finding",
                "push",
                "digest",
                "generic",
            ]
            .map(str::to_owned),
        );
        for n in &scan {
            assert!(
                real.contains(n),
                "README lists scan.{n}, which templates do not see"
            );
        }
        let mut real = keys(&v);
        real.extend(["headline", "key", "changes"].map(str::to_owned));
        for n in &top {
            assert!(
                real.contains(n),
                "README lists {n}, which templates do not see"
            );
        }
    }

    #[test]
    fn the_readme_subject_example_reads_well_for_an_inspector_finding() {
        let readme = include_str!("../../README.md");
        let at = readme
            .find("{# /etc/scanbridge/templates/email/subject.txt #}\n")
            .unwrap();
        let line = readme[at..].lines().nth(1).unwrap();
        let event: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/samples/inspector2-finding.json"
        ))
        .unwrap();
        let t = Templates::load(None).unwrap();
        let ctx = Context::new(&event, &event, "inspector-critical-findings", "d", "e");
        let subject = t.render_inline("README", line, &ctx).unwrap();
        assert!(
            subject.starts_with("[CRITICAL] ")
                && subject.contains("(CVE-")
                && subject.contains(" in "),
            "{subject}"
        );
        assert!(!subject.contains("no findings"), "{subject}");
    }

    fn render_all(event: &Value) -> Vec<String> {
        let t = Templates::load(None).unwrap();
        let ctx = Context::new(event, event, "critical-findings", "d-1", "e-1");
        DEFAULTS
            .iter()
            // minijinja escapes `/` in HTML as `&#x2f;`; read it back as a person's mail client does.
            .map(|(n, _)| t.render(n, &ctx).unwrap().replace("&#x2f;", "/"))
            .collect()
    }

    #[test]
    fn every_sample_renders_readably() {
        for name in [
            "ecr-image-scan-critical.json",
            "ecr-image-scan-high-only.json",
            "ecr-image-scan-clean.json",
            "ecr-image-scan-failed.json",
            "inspector2-scan.json",
            "inspector2-finding.json",
            "ecr-image-action-push.json",
        ] {
            let e = sample(name);
            let facts = Facts::of(&e);
            for (text, (tname, _)) in render_all(&e).iter().zip(DEFAULTS) {
                assert!(!text.is_empty(), "{name} {tname}");
                assert!(
                    !text.contains("none") && !text.contains("undefined"),
                    "{name} {tname}:\n{text}"
                );
                assert!(
                    text.contains(&facts.image),
                    "{name} {tname} lacks {}:\n{text}",
                    facts.image
                );
            }
        }
        let generic =
            json!({"id":"g","source":"ci","detail-type":"Build failed","detail":{"job":"x"}});
        for text in render_all(&generic) {
            assert!(text.contains("Build failed"), "{text}");
        }
    }

    #[test]
    fn ecr_scan_email_has_every_count_and_the_link() {
        let e = sample("ecr-image-scan-critical.json");
        let all = render_all(&e);
        let (subject, text, html) = (&all[0], &all[1], &all[2]);
        assert!(
            subject.contains("2 CRITICAL") && subject.contains("payments/api:v2.14.0"),
            "{subject}"
        );
        assert!(!subject.contains('\n'), "one-line subject: {subject:?}");
        for needle in [
            "CRITICAL: 2",
            "HIGH: 7",
            "MEDIUM: 19",
            "LOW: 4",
            "INFORMATIONAL: 3",
            "UNDEFINED: 0",
            "sha256:9c1d4f3b8e2a",
            "latest",
        ] {
            assert!(text.contains(needle), "text lacks {needle}:\n{text}");
        }
        let crit = text.find("CRITICAL: 2").unwrap();
        let undef = text.find("UNDEFINED: 0").unwrap();
        assert!(crit < undef, "fixed order");
        assert!(
            html.contains("<td>UNDEFINED</td>") || html.contains(">UNDEFINED<"),
            "{html}"
        );
        assert!(html.contains("https://us-east-1.console.aws.amazon.com/ecr/repositories/private/123456789012/payments/api/_/image/sha256:9c1d"), "{html}");
    }

    #[test]
    fn report_events_name_their_top_findings_critical_first_with_fixes() {
        let t = Templates::load(None).unwrap();
        // Grype: a Critical without a fix and a Low fixed in three versions.
        let e = crate::testing::report_event("grype-image.json");
        let all = render_all(&e);
        let (subject, text, html, slack) = (&all[0], &all[1], &all[2], &all[3]);
        assert_eq!(subject, "[scanbridge] 1 CRITICAL, 1 LOW in user-input");
        assert!(text.contains("Top findings:"), "{text}");
        let crit = text
            .find("CRITICAL  CVE-1999-0002  package-2 2.2.2  no fix yet")
            .expect(text);
        let low = text
            .find("LOW  CVE-1999-0001  package-1 1.1.1  fixed in 1.2.1, 2.1.3, 3.4.0")
            .expect(text);
        assert!(crit < low, "CRITICAL first:\n{text}");
        assert!(!text.contains("ECR console"), "not an ECR image:\n{text}");
        assert!(
            html.contains("CVE-1999-0002") && html.contains("1.2.1, 2.1.3, 3.4.0"),
            "{html}"
        );
        assert!(slack.contains("1 CRITICAL, 1 LOW in user-input"), "{slack}");
        // Trivy with an advisory link and a title.
        let e = crate::testing::report_event("trivy-alpine-310-registry.json");
        let html = t
            .render("email/body.html", &Context::new(&e, &e, "r", "d", "e"))
            .unwrap();
        assert!(
            html.contains("<a href=\"https:&#x2f;&#x2f;avd.aquasec.com&#x2f;nvd&#x2f;cve-2019-1549\">CVE-2019-1549</a>"),
            "{html}"
        );
        assert!(
            html.contains("openssl: information disclosure in fork()"),
            "{html}"
        );
        let facts = Facts::of(&e);
        assert_eq!(facts.top_findings.len(), 4);
        assert_eq!(facts.findings_more, 0);
        assert_eq!(facts.image, "alpine:3.10");
        assert!(facts.console_url.is_none());
    }

    #[test]
    fn finding_email_names_cve_package_and_fix() {
        let all = render_all(&sample("inspector2-finding.json"));
        for needle in ["CVE-2026-10001", "libssl3", "3.0.15-1~deb12u2", "CRITICAL"] {
            assert!(all[1].contains(needle), "{needle}:\n{}", all[1]);
        }
    }

    #[test]
    fn html_is_escaped_and_overrides_replace_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("email")).unwrap();
        std::fs::write(dir.path().join("email/subject.txt"), "ALERT {{ scan.repository }} {{ event.detail['repository-name'] | repository_name }} {{ scan.digest | short_digest }}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let e = sample("inspector2-scan.json");
        let ctx = Context::new(&e, &e, "r", "d", "e");
        assert_eq!(
            t.render("email/subject.txt", &ctx).unwrap(),
            "ALERT payments/worker payments/worker sha256:1a2b3c4d5e6f"
        );
        assert!(
            t.render("email/body.txt", &ctx)
                .unwrap()
                .contains("payments/worker"),
            "other templates keep the defaults"
        );

        let evil = json!({"source":"x","detail-type":"<script>alert(1)</script>","detail":{}});
        let ctx = Context::new(&evil, &evil, "r", "d", "e");
        let html = t.render("email/body.html", &ctx).unwrap();
        assert!(
            !html.contains("<script>") && html.contains("&lt;script&gt;"),
            "{html}"
        );

        // The README's example override.
        std::fs::write(
            dir.path().join("email/subject.txt"),
            "[{{ scan.worst or \"scan\" }}] {{ scan.image }} ({{ scan.summary }}) — {{ rule }}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let e = sample("ecr-image-scan-high-only.json");
        let ctx = Context::new(&e, &e, "high-prod", "d", "e");
        assert_eq!(
            t.render("email/subject.txt", &ctx).unwrap(),
            "[HIGH] web/frontend:main-4f2a9c1 (3 HIGH, 14 MEDIUM, 1 LOW, 2 UNDEFINED) — high-prod"
        );

        std::fs::write(dir.path().join("email/subject.txt"), "{% if %}").unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("email/subject.txt"), "{err}");
    }

    #[test]
    fn deltas_and_digests_render_in_every_default_template() {
        let t = Templates::load(None).unwrap();
        let e = sample("ecr-image-scan-critical.json");
        let mut before = e.clone();
        before["detail"]["finding-severity-counts"] = json!({"HIGH": 9});
        let o = crate::alerting::observe(&before).unwrap();
        let prev = crate::alerting::HistoryPrevious {
            via: o.keys[0].clone(),
            record: o.record,
        };
        let delta = crate::alerting::delta(&e, &prev);
        let ctx = Context::new(&e, &e, "r", "d", "e").with_delta(Some(&delta));
        let subject = t.render("email/subject.txt", &ctx).unwrap();
        assert!(
            subject.ends_with(
                "(CRITICAL 0 -> 2, HIGH 9 -> 7, MEDIUM 0 -> 19, LOW 0 -> 4, INFORMATIONAL 0 -> 3)"
            ),
            "{subject}"
        );
        let text = t.render("email/body.txt", &ctx).unwrap();
        assert!(
            text.contains("Changes since the previous scan of this image"),
            "{text}"
        );
        assert!(
            text.contains("  CRITICAL 0 -> 2\n  HIGH 9 -> 7\n"),
            "{text}"
        );
        let html = t.render("email/body.html", &ctx).unwrap();
        assert!(html.contains("CRITICAL 0 -&gt; 2"), "{html}");
        let plain = Context::new(&e, &e, "r", "d", "e");
        assert!(
            !t.render("email/body.txt", &plain)
                .unwrap()
                .contains("Changes since")
        );

        let members = [e.clone(), sample("ecr-image-scan-high-only.json")];
        let digest = crate::alerting::digest_event(
            "g",
            "r",
            &json!({}),
            &members,
            std::time::Duration::from_secs(600),
            "2026-11-20T13:00:00Z",
        );
        let ctx = Context::new(&digest, &digest, "r", "d", "g");
        assert_eq!(
            t.render("email/subject.txt", &ctx).unwrap(),
            "[scanbridge] 2 images with CRITICAL findings in the last 10 minutes"
        );
        let text = t.render("email/body.txt", &ctx).unwrap();
        assert!(
            text.contains("payments/api:v2.14.0  2 CRITICAL, 7 HIGH"),
            "{text}"
        );
        assert!(text.contains("web/frontend:main-4f2a9c1  3 HIGH"), "{text}");
    }

    #[test]
    fn transformed_payload_becomes_the_message() {
        let e = sample("ecr-image-scan-critical.json");
        let p = json!("payments/api needs a rebuild");
        let t = Templates::load(None).unwrap();
        let ctx = Context::new(&e, &p, "r", "d", "e");
        assert!(ctx.transformed);
        assert!(
            t.render("email/body.txt", &ctx)
                .unwrap()
                .starts_with("payments/api needs a rebuild")
        );
        assert!(
            t.render("slack/text.txt", &ctx)
                .unwrap()
                .contains("payments/api needs a rebuild")
        );
    }
}
