//! `scanbridge silence add | list | expire ID`: silences (and CVE allowlist entries) in the store of
//! the data directory. Safe beside a running daemon, like `dlq`: the daemon re-reads silences before
//! every delivery attempt, so a new silence applies to the next attempt.
//!
//! `add` takes matchers (`--match 'detail.repository-name=payments/*'`, several ANDed), a whole
//! `--pattern JSON`, or a CVE allowlist entry (`--cve`, `--package`, optional `--repository`), with
//! `--expires` (a duration such as `7d`, or a date `2026-12-31`) and a `--comment`. A bad matcher, pattern
//! or expiry is an error (exit 2) and nothing is stored.

use anyhow::Context;
use serde_json::Value;

use super::outcome::Outcome;
use crate::alerting::silence::{self, SilenceError};
use crate::store::Silence;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// Arguments of `scanbridge silence`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: super::store_args::StoreArgs,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Add a silence; prints its id.
    Add(AddArgs),
    /// List silences in force (with --all, expired ones too).
    List {
        /// Include expired silences.
        #[arg(long)]
        all: bool,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Expire a silence now.
    Expire { id: String },
}

/// `silence add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// PATH=VALUE (exact) or PATH=GLOB* (wildcard) over the event, e.g. detail.repository-name=payments/*.
    #[arg(long = "match", value_name = "PATH=VALUE")]
    pub matchers: Vec<String>,
    /// A whole event pattern (JSON, the rule grammar), ANDed with the matchers.
    #[arg(long)]
    pub pattern: Option<String>,
    /// CVE allowlist: mute Inspector2 findings of this vulnerability id.
    #[arg(long)]
    pub cve: Option<String>,
    /// CVE allowlist: mute Inspector2 findings in this package.
    #[arg(long)]
    pub package: Option<String>,
    /// CVE allowlist: only for this repository (name; `*` globs allowed).
    #[arg(long)]
    pub repository: Option<String>,
    /// When the silence ends: a duration from now (7d, 12h) or a UTC date/time (2026-12-31).
    #[arg(long)]
    pub expires: String,
    /// Why (shown in listings, logs and `route`).
    #[arg(long)]
    pub comment: String,
    /// Who (default: $USER).
    #[arg(long)]
    pub author: Option<String>,
}

impl AddArgs {
    /// The silence these arguments describe, at `now_ms`.
    pub fn silence(&self, now_ms: i64) -> Result<Silence, SilenceError> {
        let mut pattern = Value::Object(Default::default());
        let mut shown = self.matchers.clone();
        if !self.matchers.is_empty() {
            silence::merge(&mut pattern, silence::matchers_pattern(&self.matchers)?)?;
        }
        if let Some(p) = &self.pattern {
            let v: Value =
                serde_json::from_str(p).map_err(|e| SilenceError::Pattern(e.to_string()))?;
            silence::merge(&mut pattern, v)?;
            shown.push(format!("pattern {p}"));
        }
        if self.repository.is_some() && self.cve.is_none() && self.package.is_none() {
            return Err(SilenceError::Empty); // --repository only narrows an allowlist entry
        }
        if self.cve.is_some() || self.package.is_some() {
            let allow = silence::allowlist_pattern(
                self.cve.as_deref(),
                self.package.as_deref(),
                self.repository.as_deref(),
            )?;
            silence::merge(&mut pattern, allow)?;
            let mut what = Vec::new();
            what.extend(self.cve.as_ref().map(|c| format!("cve={c}")));
            what.extend(self.package.as_ref().map(|p| format!("package={p}")));
            what.extend(self.repository.as_ref().map(|r| format!("repository={r}")));
            shown.push(format!("allowlist {}", what.join(" ")));
        }
        if pattern.as_object().is_some_and(|o| o.is_empty()) {
            return Err(SilenceError::Empty);
        }
        let text = silence::check_pattern(&pattern)?;
        Ok(Silence {
            id: silence::new_id(),
            pattern: text,
            matchers: shown.join(", "),
            comment: self.comment.clone(),
            created_by: self
                .author
                .clone()
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".into()),
            created_at_ms: now_ms,
            expires_at_ms: silence::parse_expires(&self.expires, now_ms)?,
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let dir = args.store.data_dir()?;
    let now = crate::alerting::system_clock().now_ms();
    // Validate before touching the store, so a typo creates no data directory.
    let new = match &args.action {
        Action::Add(add) => match add.silence(now) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("scanbridge: error: {e}");
                return Ok(Outcome::Invalid);
            }
        },
        _ => None,
    };
    // Adding a silence before the daemon ever ran makes the store; listing or expiring does not.
    let store = match &args.action {
        Action::Add(_) => SqliteStore::open(&dir, false),
        _ => SqliteStore::open_existing(&dir),
    }
    .with_context(|| format!("opening the store in {}", dir.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match args.action {
            Action::Add(_) => {
                let s = new.expect("validated above");
                let id = s.id.clone();
                let until = crate::event::rfc3339(s.expires_at_ms);
                store.silence_add(s).await?;
                println!("{id}");
                eprintln!("silence {id} in force until {until}");
            }
            Action::List { all, json } => {
                let list: Vec<Silence> = store
                    .silences()
                    .await?
                    .into_iter()
                    .filter(|s| all || s.active_at(now))
                    .collect();
                if json {
                    for s in &list {
                        println!("{}", serde_json::to_string(s)?);
                    }
                } else {
                    println!(
                        "{:<12}  {:<20}  {:<10}  {:<40}  COMMENT",
                        "ID", "EXPIRES", "BY", "MATCHERS"
                    );
                    for s in &list {
                        let state = if s.active_at(now) { "" } else { " (expired)" };
                        println!(
                            "{:<12}  {:<20}  {:<10}  {:<40}  {}{state}",
                            s.id,
                            crate::event::rfc3339(s.expires_at_ms),
                            s.created_by,
                            s.matchers,
                            s.comment
                        );
                    }
                }
                eprintln!("{} silence(s)", list.len());
            }
            Action::Expire { id } => match store.silence_expire(id.clone(), now).await {
                Ok(()) => println!("expired: {id}"),
                Err(crate::store::StoreError::NotFound(_)) => {
                    eprintln!("scanbridge: error: no silence with id {id}");
                    return Ok(Outcome::Invalid);
                }
                Err(e) => return Err(e.into()),
            },
        }
        Ok(Outcome::Success)
    })
}
