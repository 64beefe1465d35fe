//! Settings: the whole configuration and how it is layered.
//!
//! Layers, later wins: the repository's `config.toml` (embedded at build time, so the binary always has
//! complete defaults), then the `--config FILE` given on the command line, then environment variables
//! `SCANBRIDGE__SECTION__KEY` (for example `SCANBRIDGE__SERVER__LISTEN=0.0.0.0:8080`,
//! `SCANBRIDGE__TARGETS__HOOK__URL=...`). Command-line flags of `serve` override all three.
//!
//! Promises: a configuration that loads is complete and consistent: every section typed
//! ([`crate::config`]), every target's secrets resolved and values checked, topics checked against the
//! targets, templates compiled. Anything else is a [`ConfigError`] naming the key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::{
    AwsConfig, ConfigError, DeliveryConfig, LogConfig, RulesConfig, ServerConfig, StoreConfig,
    TemplatesConfig, resolve_secret,
};
use crate::notify::TargetConfig;

/// A config crate error as text, without repeating itself (it has no source to chain).
fn clean_load(e: ::config::ConfigError) -> String {
    e.to_string()
}

/// The reference configuration, which is also the complete set of defaults.
pub const DEFAULTS: &str = include_str!("../config.toml");

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub rules: RulesConfig,
    pub log: LogConfig,
    pub delivery: DeliveryConfig,
    pub aws: AwsConfig,
    /// Message templates (email, Slack).
    #[serde(default)]
    pub templates: TemplatesConfig,
    /// The SNS subscription endpoint (`POST /sns`).
    #[serde(default)]
    pub sns: crate::config::SnsConfig,
    /// Delivery targets by name; rules refer to these names.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
}

/// One problem of a configuration: where the value at fault came from (the file, an environment
/// variable, the built-in defaults) and what is wrong with it.
#[derive(Debug)]
pub struct Problem {
    pub origin: String,
    pub error: ConfigError,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.error.to_string();
        let text = text.strip_prefix("configuration: ").unwrap_or(&text);
        if text.starts_with(&self.origin) {
            write!(f, "{text}")
        } else {
            write!(f, "{}: {text}", self.origin)
        }
    }
}

/// Every problem found in a configuration, in the order of the file's sections.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<Problem>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            all => {
                write!(f, "{} configuration errors:", all.len())?;
                for p in all {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigErrors {}

impl From<Problem> for ConfigErrors {
    fn from(p: Problem) -> Self {
        ConfigErrors(vec![p])
    }
}

/// The sections of the configuration.
const SECTIONS: [&str; 9] = [
    "server",
    "store",
    "rules",
    "log",
    "delivery",
    "aws",
    "templates",
    "sns",
    "targets",
];

/// Where each key's value came from, for messages.
struct Origins {
    file: Option<String>,
    /// (dotted key, variable) of every variable read.
    vars: Vec<(String, String)>,
}

impl Origins {
    fn of(&self, key: &str) -> String {
        let hit = self.vars.iter().find(|(k, _)| {
            k == key || k.starts_with(&format!("{key}.")) || key.starts_with(&format!("{k}."))
        });
        match (hit, &self.file) {
            (Some((_, var)), _) => format!("environment variable {var}"),
            (None, Some(f)) => f.clone(),
            (None, None) => "built-in defaults (config.toml)".into(),
        }
    }

    fn problem(&self, key: &str, message: impl Into<String>) -> Problem {
        Problem {
            origin: self.of(key),
            error: ConfigError::Invalid {
                key: key.to_owned(),
                message: message.into(),
            },
        }
    }
}

/// The config crate's words without its own " for key ..." / " in FILE" tail (we say both), its
/// quoted values hidden (the value of a mistyped key may be a secret: [`crate::config::hide_values`]).
fn clean(message: String) -> String {
    let message = match message
        .strip_prefix("missing configuration field \"")
        .and_then(|r| r.split_once('"'))
    {
        Some((field, rest)) => format!("missing field `{field}`{rest}"),
        None => message,
    };
    crate::config::hide_values(&cut_tail(message))
}

/// `message` without the config crate's " for key ..." / " in FILE" tail.
fn cut_tail(message: String) -> String {
    let cut = [" for key `", " in "]
        .iter()
        .filter_map(|m| message.find(m))
        .min();
    match cut {
        Some(i) if message[..i].contains(' ') => message[..i].to_owned(),
        _ => message,
    }
}

/// Deserializes one section (or one target) alone, reporting every unknown key in it and then its
/// first wrongly typed or missing value, each with its full key.
fn section<T: serde::de::DeserializeOwned>(
    key: &str,
    mut value: ::config::Value,
    origins: &Origins,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut clean_run = true;
    let mut bad: Vec<String> = Vec::new();
    for _ in 0..256 {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(t) => return clean_run.then_some(t),
            Err(e) => {
                clean_run = false;
                let path = e.path().to_string();
                let at = if path == "." {
                    key.to_owned()
                } else {
                    format!("{key}.{path}")
                };
                let message = clean(e.into_inner().to_string());
                let unknown = message
                    .strip_prefix("unknown field `")
                    .and_then(|r| r.split('`').next())
                    .map(str::to_owned);
                match unknown {
                    Some(field) => {
                        let full = if at.ends_with(&format!(".{field}")) {
                            at.clone()
                        } else {
                            format!("{at}.{field}")
                        };
                        let expected = message
                            .split_once(", expected ")
                            .map(|(_, x)| format!("; expected {x}"))
                            .unwrap_or_default();
                        problems.push(origins.problem(&full, format!("unknown key{expected}")));
                        // Take the unknown key out and look for the next problem.
                        if !remove(&mut value, &full[key.len()..], &field) {
                            return None;
                        }
                    }
                    None => {
                        let message = if message.contains("\"type\"") || message.contains("`type`")
                        {
                            format!(
                                "{message}: every target needs `type` (console, webhook, email, slack, topic, pagerduty, opsgenie, teams); from the environment: SCANBRIDGE__TARGETS__NAME__TYPE"
                            )
                        } else {
                            message
                        };
                        // A key taken out below for its bad value is now missing: said already.
                        let missing = message
                            .strip_prefix("missing field `")
                            .and_then(|r| r.split('`').next())
                            .map(|f| format!("{at}.{f}"));
                        if missing.is_some_and(|m| bad.contains(&m)) {
                            return None;
                        }
                        problems.push(origins.problem(&at, message));
                        // Take the bad value out and look for the next problem (a table's other
                        // keys may be wrong too); its absence is not reported again.
                        let field = at.rsplit('.').next().unwrap_or_default().to_owned();
                        if at == key || !remove(&mut value, &at[key.len()..], &field) {
                            return None;
                        }
                        bad.push(at);
                    }
                }
            }
        }
    }
    None
}

/// Removes `field` from the table at `path` (`.a.b.field` relative to `value`); whether it was there.
fn remove(value: &mut ::config::Value, path: &str, field: &str) -> bool {
    let parts: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
        .collect();
    let mut v = value;
    for p in &parts[..parts.len().saturating_sub(1)] {
        let ::config::ValueKind::Table(t) = &mut v.kind else {
            return false;
        };
        let Some(next) = t.get_mut(*p) else {
            return false;
        };
        v = next;
    }
    match &mut v.kind {
        ::config::ValueKind::Table(t) => t.remove(field).is_some(),
        _ => false,
    }
}

/// Refuses a file that is not valid TOML with its position and the key of the line, never the line:
/// the config crate's own message quotes the line, and the line may be `token = "..."`. (A file that
/// cannot be read is left for the config crate to report.)
fn check_syntax(path: &Path) -> Result<(), ConfigError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let Err(e) = toml::de::DeTable::parse(&text) else {
        return Ok(());
    };
    let at = e.span().map_or(0, |s| s.start).min(text.len());
    let before = text.get(..at).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    Err(ConfigError::Syntax {
        file: path.to_owned(),
        line,
        column,
        key: key_at(&text, line),
        message: crate::escape::line(e.message(), 200),
    })
}

/// The dotted key that line `line` (1-based) of a TOML text sets, from its `[table]` and its
/// `key =` part, when both look like keys.
fn key_at(text: &str, line: usize) -> Option<String> {
    let is_key = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?;
    let (k, _) = here.split_once('=')?;
    let k = k.trim();
    if !is_key(k) {
        return None;
    }
    let table = lines[..line - 1].iter().rev().find_map(|l| {
        let t = l.trim();
        t.strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .map(|t| t.trim_matches(['[', ']']).trim())
    });
    match table {
        Some(t) if is_key(t) => Some(format!("{t}.{k}")),
        Some(_) => None,
        None => Some(k.to_owned()),
    }
}

impl Settings {
    /// Loads defaults, then `file` if given, then the environment; resolves `*_file` secrets.
    /// Every problem found is reported, each with where its value came from.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigErrors> {
        Self::load_with_env(file, None)
    }

    /// Like [`Settings::load`] with an explicit environment (tests), or the process environment.
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Settings, ConfigErrors> {
        use ::config::{Config, Environment, File, FileFormat};
        let file_name = file.map(|f| f.display().to_string());
        let whole = |e: ::config::ConfigError| Problem {
            origin: file_name
                .clone()
                .unwrap_or_else(|| "built-in defaults (config.toml)".into()),
            error: ConfigError::Load(clean_load(e)),
        };
        if let Some(path) = file
            && !path.is_file()
        {
            return Err(Problem {
                origin: path.display().to_string(),
                error: ConfigError::Load(
                    "no such file (give --config an existing file, or leave it out for the built-in defaults)"
                        .into(),
                ),
            }
            .into());
        }
        if let Some(path) = file
            && let Err(e) = check_syntax(path)
        {
            return Err(Problem {
                origin: path.display().to_string(),
                error: e,
            }
            .into());
        }
        let layers = || {
            let mut b = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
            if let Some(path) = file {
                b = b.add_source(File::from(path).format(FileFormat::Toml).required(true));
            }
            b
        };
        // The targets the files declare, to resolve the environment's target names.
        let files = layers().build().map_err(whole)?;
        let declared: Vec<String> = files
            .get_table("targets")
            .map(|t| t.into_keys().collect())
            .unwrap_or_default();
        let vars: Vec<(String, String)> = match env {
            Some(env) => env.into_iter().collect(),
            None => std::env::vars().collect(),
        };
        let split = crate::env_keys::split(vars, &declared);
        let mut origins = Origins {
            file: file_name.clone(),
            vars: split
                .targets
                .iter()
                .map(|(k, _, var)| (k.clone(), var.clone()))
                .collect(),
        };
        origins.vars.extend(split.rest.keys().map(|var| {
            let key = var[crate::env_keys::PREFIX.len()..]
                .to_ascii_lowercase()
                .replace("__", ".");
            (key, var.clone())
        }));
        let mut problems: Vec<Problem> = split
            .ambiguous
            .iter()
            .map(|(var, message)| Problem {
                origin: format!("environment variable {var}"),
                error: ConfigError::Invalid {
                    key: "targets".into(),
                    message: message.clone(),
                },
            })
            .collect();
        let env_source = Environment::with_prefix("SCANBRIDGE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("server.tokens")
            .with_list_parse_key("server.aws_credentials")
            .with_list_parse_key("sns.topic_arns")
            .with_list_parse_key("store.jetstream.servers")
            .source(Some(split.rest.clone()));
        let mut builder = layers().add_source(env_source);
        for (key, value, var) in &split.targets {
            builder = match builder.set_override(key.as_str(), value.clone()) {
                Ok(b) => b,
                Err(e) => {
                    return Err(Problem {
                        origin: format!("environment variable {var}"),
                        error: ConfigError::Load(clean_load(e)),
                    }
                    .into());
                }
            };
        }
        let cfg = builder.build().map_err(whole)?;
        let root: ::config::Value = cfg.try_deserialize().map_err(whole)?;
        let ::config::ValueKind::Table(mut table) = root.kind else {
            return Err(whole(::config::ConfigError::Message(
                "the configuration is not a table".into(),
            ))
            .into());
        };
        let mut unknown: Vec<&String> = table
            .keys()
            .filter(|k| !SECTIONS.contains(&k.as_str()))
            .collect();
        unknown.sort();
        for k in unknown {
            problems.push(origins.problem(
                k,
                format!("unknown section; expected one of {}", SECTIONS.join(", ")),
            ));
        }
        let empty = || ::config::Value::new(None, ::config::ValueKind::Table(Default::default()));
        let mut take = |k: &str| table.remove(k).unwrap_or_else(empty);
        let (server, store, rules, log, delivery, aws) = (
            section::<ServerConfig>("server", take("server"), &origins, &mut problems),
            section::<StoreConfig>("store", take("store"), &origins, &mut problems),
            section::<RulesConfig>("rules", take("rules"), &origins, &mut problems),
            section::<LogConfig>("log", take("log"), &origins, &mut problems),
            section::<DeliveryConfig>("delivery", take("delivery"), &origins, &mut problems),
            section::<AwsConfig>("aws", take("aws"), &origins, &mut problems),
        );
        let templates =
            section::<TemplatesConfig>("templates", take("templates"), &origins, &mut problems);
        let sns = section::<crate::config::SnsConfig>("sns", take("sns"), &origins, &mut problems);
        let mut targets = BTreeMap::new();
        let mut targets_ok = true;
        match take("targets").kind {
            ::config::ValueKind::Table(t) => {
                let mut t: Vec<(String, ::config::Value)> = t.into_iter().collect();
                t.sort_by(|a, b| a.0.cmp(&b.0));
                for (name, v) in t {
                    match section::<TargetConfig>(
                        &format!("targets.{name}"),
                        v,
                        &origins,
                        &mut problems,
                    ) {
                        Some(t) => {
                            targets.insert(name, t);
                        }
                        None => targets_ok = false,
                    }
                }
            }
            ::config::ValueKind::Nil => {}
            _ => problems.push(origins.problem("targets", "must be a table of targets")),
        }
        let (
            Some(server),
            Some(store),
            Some(rules),
            Some(log),
            Some(delivery),
            Some(aws),
            Some(templates),
            Some(sns),
            true,
        ) = (
            server, store, rules, log, delivery, aws, templates, sns, targets_ok,
        )
        else {
            return Err(ConfigErrors(problems));
        };
        let mut s = Settings {
            server,
            store,
            rules,
            log,
            delivery,
            aws,
            templates,
            sns,
            targets,
        };
        s.finish(&origins, &mut problems);
        if problems.is_empty() {
            Ok(s)
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// The checks across keys and sections; every problem is recorded.
    fn finish(&mut self, origins: &Origins, problems: &mut Vec<Problem>) {
        let mut record = |e: ConfigError| {
            let key = match &e {
                ConfigError::Invalid { key, .. } | ConfigError::SecretFile { key, .. } => {
                    key.trim_end_matches("_file").to_owned()
                }
                ConfigError::Load(_) | ConfigError::Syntax { .. } => String::new(),
            };
            problems.push(Problem {
                origin: origins.of(&key),
                error: e,
            });
        };
        if let Err(e) = resolve_secret(
            "server.token",
            &mut self.server.token,
            &self.server.token_file,
        ) {
            record(e);
        }
        if self
            .server
            .token
            .as_ref()
            .is_some_and(|t| t.expose().is_empty())
        {
            self.server.token = None;
        }
        self.server.tokens.retain(|t| !t.expose().is_empty());
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        if let Err(e) = self.aws_credentials() {
            record(e);
        }
        if let Some(h) = &self.server.api_key_header
            && axum::http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            record(invalid("server.api_key_header", "not an HTTP header name"));
        }
        if self.server.tls_cert_file.is_some() != self.server.tls_key_file.is_some() {
            record(invalid(
                "server.tls_cert_file",
                "set both `server.tls_cert_file` and `server.tls_key_file`, or neither",
            ));
        }
        if self.server.max_connections == 0 {
            record(invalid("server.max_connections", "must be at least 1"));
        }
        if !(self.server.rate_limit >= 0.0 && self.server.rate_limit.is_finite()) {
            record(invalid(
                "server.rate_limit",
                "must be a number >= 0 (0: no limit)",
            ));
        }
        if self.delivery.workers == 0 {
            record(invalid("delivery.workers", "must be at least 1"));
        }
        if let Err(e) = self.store.jetstream.finish() {
            record(e);
        }
        let mut targets_ok = true;
        for (name, t) in &mut self.targets {
            if let Err(e) = t.finish(name) {
                targets_ok = false;
                record(e);
            }
        }
        if targets_ok && let Err(e) = crate::notify::compile_topics(&self.targets) {
            record(e);
        }
        if let Err(e) = self.load_templates() {
            record(e);
        }
    }

    /// `server.aws_credentials`, resolved: (access key id, secret), in order; an id given twice is an
    /// error.
    pub fn aws_credentials(&self) -> Result<Vec<(String, crate::config::Secret)>, ConfigError> {
        let mut out: Vec<(String, crate::config::Secret)> = Vec::new();
        for (i, c) in self.server.aws_credentials.iter().enumerate() {
            let key = format!("server.aws_credentials[{i}]");
            let (id, secret) = c.resolve(&key)?;
            if out.iter().any(|(x, _)| *x == id) {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!("access key id {id} is given twice"),
                });
            }
            out.push((id, secret));
        }
        Ok(out)
    }

    /// The message templates: the embedded defaults with `templates.dir` overrides.
    pub fn load_templates(&self) -> Result<crate::render::template::Templates, ConfigError> {
        crate::render::template::Templates::load(self.templates.dir.as_deref()).map_err(|e| {
            ConfigError::Invalid {
                key: "templates.dir".into(),
                message: e.to_string(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::collections::HashMap;
    use std::io::Write;
    use std::time::Duration;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn no_env() -> Option<HashMap<String, String>> {
        Some(HashMap::new())
    }

    #[test]
    fn embedded_defaults_load() {
        let s = Settings::load_with_env(None, no_env()).unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.max_event_bytes, 256 * 1024);
        assert_eq!(s.delivery.max_attempts, 185);
        assert_eq!(s.delivery.max_age, Duration::from_secs(24 * 3600));
        assert!(matches!(
            s.targets.get("console"),
            Some(TargetConfig::Console(_))
        ));
        assert!(s.server.token.is_none());
    }

    #[test]
    fn file_then_env_layering() {
        let f = file("[server]\nlisten = \"127.0.0.1:9999\"\n[delivery]\nmax_attempts = 7\n");
        let env = HashMap::from([(
            "SCANBRIDGE__DELIVERY__MAX_ATTEMPTS".to_owned(),
            "3".to_owned(),
        )]);
        let s = Settings::load_with_env(Some(f.path()), Some(env)).unwrap();
        assert_eq!(s.server.listen.port(), 9999, "file overrides defaults");
        assert_eq!(s.delivery.max_attempts, 3, "env overrides file");
        assert_eq!(s.delivery.workers, 64, "untouched keys keep their default");
    }

    #[test]
    fn syntax_errors_give_the_position_and_key_never_the_line() {
        for (text, line, key) in [
            (
                "[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cr3t-value\n",
                3,
                "server.token",
            ),
            ("[server]\ntoken = s3cr3t-value\n", 2, "server.token"),
            (
                "[targets.h]\ntype = \"webhook\"\nurl = \"https://x/s3cr3t\" oops\n",
                3,
                "targets.h.url",
            ),
        ] {
            let err = load_err(text);
            assert!(!err.contains("s3cr3t"), "{err}");
            assert!(err.contains(&format!("line {line}, column ")), "{err}");
            assert!(err.contains(&format!("(key `{key}`)")), "{err}");
            assert!(err.contains(".toml"), "names the file: {err}");
        }
        // A value of the wrong type is not shown either.
        let e = load_err("[server]\nmax_connections = \"s3cr3t-value\"\n");
        assert!(
            e.contains("max_connections") && !e.contains("s3cr3t"),
            "{e}"
        );
        assert_eq!(
            crate::config::hide_values(r#"invalid type: string "x", for `a`"#),
            r#"invalid type: string "***", for `a`"#
        );
    }

    #[test]
    fn aws_credentials_from_tables_files_and_the_environment() {
        let secret = file("from-file-s3cr3t\n");
        let f = file(&format!(
            "[server]\naws_credentials = [ {{ access_key_id = \"AKIDONE\", secret_access_key = \"inline-s3cr3t\" }}, {{ access_key_id = \"AKIDTWO\", secret_access_key_file = {:?} }}, \"AKIDTHREE:pair-s3cr3t\" ]\napi_key_header = \"x-api-key\"\n",
            secret.path().display().to_string()
        ));
        let s = Settings::load_with_env(Some(f.path()), no_env()).unwrap();
        let keys: Vec<(String, String)> = s
            .aws_credentials()
            .unwrap()
            .into_iter()
            .map(|(id, k)| (id, k.expose().to_owned()))
            .collect();
        assert_eq!(
            keys,
            [
                ("AKIDONE".to_owned(), "inline-s3cr3t".to_owned()),
                ("AKIDTWO".to_owned(), "from-file-s3cr3t".to_owned()),
                ("AKIDTHREE".to_owned(), "pair-s3cr3t".to_owned())
            ]
        );
        assert_eq!(s.server.api_key_header.as_deref(), Some("x-api-key"));
        assert!(!format!("{s:?}").contains("s3cr3t"), "secrets never print");
        let env = HashMap::from([(
            "SCANBRIDGE__SERVER__AWS_CREDENTIALS".to_owned(),
            "AKIDENV:env-s3cr3t,AKIDENV2:two-s3cr3t".to_owned(),
        )]);
        let s = Settings::load_with_env(None, Some(env)).unwrap();
        assert_eq!(s.aws_credentials().unwrap().len(), 2);
        for (text, key) in [
            (
                "[server]\naws_credentials = [ { access_key_id = \"AKID\" } ]\n",
                "server.aws_credentials[0]",
            ),
            (
                "[server]\naws_credentials = [ \"no-colon-s3cr3t\" ]\n",
                "server.aws_credentials[0]",
            ),
            (
                "[server]\naws_credentials = [ \"A:x\", \"A:y\" ]\n",
                "server.aws_credentials[1]",
            ),
            (
                "[server]\napi_key_header = \"not a header\"\n",
                "server.api_key_header",
            ),
        ] {
            let e = load_err(text);
            assert!(e.contains(key) && !e.contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let f = file("[server]\nlisen = \"127.0.0.1:1\"\n");
        let err = Settings::load_with_env(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        let f = file("[nonsense]\na = 1\n");
        let err = Settings::load_with_env(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nonsense"), "{err}");
    }

    #[test]
    fn wrong_type_is_an_error_naming_the_key() {
        let f = file("[delivery]\nmax_attempts = \"many\"\n");
        let err = Settings::load_with_env(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_attempts"), "{err}");
    }

    #[test]
    fn target_structs_deny_unknown_fields() {
        // serde ignores deny_unknown_fields on an internally tagged enum; each struct carries it.
        let f = file("[targets.h]\ntype = \"webhook\"\nurl = \"http://x/\"\nmethd = \"PUT\"\n");
        let err = Settings::load_with_env(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("methd"), "{err}");
        let f = file("[targets.c]\ntype = \"console\"\ncolour = true\n");
        let err = Settings::load_with_env(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
        let f = file("[targets.c]\ntype = \"pigeon\"\n");
        let err = Settings::load_with_env(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("pigeon"), "{err}");
    }

    fn load_err(text: &str) -> String {
        let f = file(text);
        Settings::load_with_env(Some(f.path()), no_env())
            .unwrap_err()
            .to_string()
    }

    const MAIL: &str = "[targets.mail]\ntype = \"email\"\nhost = \"smtp.example.org\"\nport = 587\ntls = \"starttls\"\nfrom = \"a@example.org\"\nto = [\"b@example.org\"]\n";

    #[test]
    fn new_target_structs_deny_unknown_fields() {
        let e = load_err(&format!("{MAIL}colour = 1\n"));
        assert!(e.contains("colour"), "{e}");
        let e = load_err(
            "[targets.s]\ntype = \"slack\"\nwebhook_url = \"https://hooks.slack.com/services/T/B/x\"\nchanel = \"#a\"\n",
        );
        assert!(e.contains("chanel"), "{e}");
        let e = load_err(&format!(
            "{MAIL}[targets.t]\ntype = \"topic\"\nsubscriptions = [{{ target = \"mail\", filtr = {{}} }}]\n"
        ));
        assert!(e.contains("filtr"), "{e}");
        let e = load_err(&format!(
            "{MAIL}[targets.t]\ntype = \"topic\"\nsubscriptions = []\nretry = {{}}\n"
        ));
        assert!(e.contains("retry"), "{e}");
        let e = load_err(&format!("{MAIL}tls = \"ssl\"\n").replace("tls = \"starttls\"\n", ""));
        assert!(e.contains("ssl"), "{e}");
        let e =
            load_err("[targets.h]\ntype = \"webhook\"\nurl = \"http://x/\"\nsecret = \"plain\"\n");
        assert!(
            e.contains("targets.h.secret") && !e.contains("plain"),
            "{e}"
        );
        let e =
            load_err("[targets.h]\ntype = \"webhook\"\nurl = \"http://x/\"\nmethod = \"GET\"\n");
        assert!(e.contains("targets.h.method"), "{e}");
        for (kind, keys) in [
            (
                "pagerduty",
                "routing_key = \"k\"\nseverity = \"critical\"\n",
            ),
            ("opsgenie", "api_key = \"k\"\nregion = \"eu\"\n"),
            ("teams", "webhook_url = \"https://x/\"\nchannel = \"#a\"\n"),
        ] {
            let e = load_err(&format!("[targets.p]\ntype = \"{kind}\"\n{keys}"));
            let unknown = keys.lines().nth(1).unwrap().split(' ').next().unwrap();
            assert!(e.contains(unknown), "{kind}: {e}");
        }
        let e = load_err("[targets.p]\ntype = \"pagerduty\"\n");
        assert!(e.contains("targets.p.routing_key"), "{e}");
        let e = load_err("[targets.p]\ntype = \"teams\"\n");
        assert!(e.contains("targets.p.webhook_url"), "{e}");
    }

    #[test]
    fn topics_are_checked_at_load_naming_the_key() {
        let topic =
            |subs: &str| format!("{MAIL}[targets.t]\ntype = \"topic\"\nsubscriptions = [{subs}]\n");
        let e = load_err(&topic("{ target = \"nope\" }"));
        assert!(
            e.contains("targets.t.subscriptions[0].target")
                && e.contains("nope")
                && e.contains("mail"),
            "{e}"
        );
        let e = load_err(&format!(
            "{}[targets.u]\ntype = \"topic\"\nsubscriptions = [{{ target = \"mail\" }}]\n",
            topic("{ target = \"u\" }")
        ));
        assert!(
            e.contains("targets.t.subscriptions[0].target") && e.contains("topic"),
            "{e}"
        );
        let e = load_err(&topic("{ target = \"mail\" }, { target = \"mail\" }"));
        assert!(
            e.contains("subscriptions[1].target") && e.contains("twice"),
            "{e}"
        );
        let e = load_err(&topic(
            "{ target = \"mail\", filter_policy = { detail = { n = [{ numeric = [\">>\", 0] }] } } }",
        ));
        assert!(
            e.contains("targets.t.subscriptions[0].filter_policy/detail/n")
                && e.contains("Event pattern is not valid"),
            "{e}"
        );
        let e = load_err(&topic(""));
        assert!(e.contains("targets.t.subscriptions"), "{e}");
    }

    #[test]
    fn filter_policy_keys_keep_their_case() {
        // The config crate must not lowercase keys inside a policy: CRITICAL is not critical.
        let f = file(&format!(
            "{MAIL}[targets.t]\ntype = \"topic\"\nsubscriptions = [{{ target = \"mail\", filter_policy = {{ detail = {{ finding-severity-counts = {{ CRITICAL = [{{ numeric = [\">\", 0] }}] }} }} }} }}]\n"
        ));
        let s = Settings::load_with_env(Some(f.path()), no_env()).unwrap();
        let topics = crate::notify::compile_topics(&s.targets).unwrap();
        let sub = &topics["t"][0];
        assert!(
            sub.accepts(&serde_json::json!({"detail":{"finding-severity-counts":{"CRITICAL":1}}}))
        );
        assert!(
            !sub.accepts(&serde_json::json!({"detail":{"finding-severity-counts":{"HIGH":1}}}))
        );
    }

    #[test]
    fn rate_limits_are_checked_and_errors_name_the_key() {
        let f = file(
            "[targets.hook]\ntype = \"webhook\"\nurl = \"http://x/\"\nrate_limit = { per_second = 0, burst = 2 }\n",
        );
        let err = Settings::load_with_env(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("targets.hook.rate_limit") && err.contains("per_second"),
            "{err}"
        );
        let f = file(
            "[targets.hook]\ntype = \"webhook\"\nurl = \"http://x/\"\nrate_limit = { per_second = 1, brust = 2 }\n",
        );
        let err = Settings::load_with_env(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("brust"), "{err}");
        let f = file(
            "[targets.hook]\ntype = \"webhook\"\nurl = \"http://x/\"\nrate_limit = { per_second = 0.5 }\n",
        );
        let s = Settings::load_with_env(Some(f.path()), no_env()).unwrap();
        let rl = s.targets["hook"].rate_limit().unwrap();
        assert_eq!((rl.per_second, rl.burst), (0.5, 1));
    }

    #[test]
    fn documented_target_examples_load() {
        // Uncomment the example tables of config.toml: they must be a valid configuration.
        let examples: String = DEFAULTS
            .split("# Delivery targets, by name.")
            .nth(1)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                let t = l.trim_start();
                t.starts_with("[targets.")
                    || t.starts_with('{')
                    || t.starts_with(']')
                    || t.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(examples.contains("type = \"topic\""), "{examples}");
        let secret = file("smtp-pass\n");
        let examples = examples.replace(
            "/run/secrets/smtp-password",
            &secret.path().display().to_string(),
        );
        let f = file(&examples);
        let s = Settings::load_with_env(Some(f.path()), no_env())
            .unwrap_or_else(|e| panic!("{e}\n{examples}"));
        for (name, kind) in [
            ("hook", "webhook"),
            ("oncall-mail", "email"),
            ("slack-security", "slack"),
            ("scan-alerts", "topic"),
            ("oncall", "pagerduty"),
            ("ops", "opsgenie"),
            ("channel", "teams"),
        ] {
            assert_eq!(s.targets[name].kind(), kind);
        }
        assert_eq!(
            crate::notify::compile_topics(&s.targets).unwrap()["scan-alerts"].len(),
            3
        );
    }

    #[test]
    fn several_tokens_from_file_and_env_list() {
        let env = HashMap::from([(
            "SCANBRIDGE__SERVER__TOKENS".to_owned(),
            "tok-a,tok-b".to_owned(),
        )]);
        let s = Settings::load_with_env(None, Some(env)).unwrap();
        let got: Vec<&str> = s.server.tokens.iter().map(Secret::expose).collect();
        assert_eq!(got, ["tok-a", "tok-b"]);
        assert!(!format!("{s:?}").contains("tok-a"));
        let e = load_err("[server]\ntls_cert_file = \"/x.pem\"\n");
        assert!(e.contains("server.tls_cert_file"), "{e}");
        let e = load_err("[server]\nrate_limit = -1.0\n");
        assert!(e.contains("server.rate_limit"), "{e}");
        let e = load_err("[server]\nmax_conections = 3\n");
        assert!(e.contains("max_conections"), "{e}");
    }

    #[test]
    fn secrets_redact_and_come_from_env_or_file() {
        let secret_file = file("https://hooks.example.org/s3cr3t-from-file\n");
        let f = file(&format!(
            "[targets.h]\ntype = \"webhook\"\nurl_file = {:?}\n",
            secret_file.path().display().to_string()
        ));
        let env = HashMap::from([(
            "SCANBRIDGE__SERVER__TOKEN".to_owned(),
            "tok-from-env".to_owned(),
        )]);
        let s = Settings::load_with_env(Some(f.path()), Some(env)).unwrap();
        assert_eq!(s.server.token.as_ref().unwrap().expose(), "tok-from-env");
        let TargetConfig::Webhook(h) = &s.targets["h"] else {
            panic!("webhook")
        };
        assert_eq!(
            h.url().expose(),
            "https://hooks.example.org/s3cr3t-from-file"
        );
        let debug = format!("{s:?}");
        assert!(!debug.contains("tok-from-env"), "{debug}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("***"));
        assert_eq!(Secret::new("x").to_string(), "***");
    }
}
