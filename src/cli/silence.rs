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
        let spec = silence::SilenceSpec {
            matchers: self.matchers.clone(),
            pattern: self.pattern.clone().map(Value::String),
            cve: self.cve.clone(),
            package: self.package.clone(),
            repository: self.repository.clone(),
            expires: self.expires.clone(),
            comment: self.comment.clone(),
            author: self.author.clone(),
        };
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        spec.build(now_ms, &user)
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
    let store = SqliteStore::open(&dir, false)
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
                Err(crate::store::StoreError::NotFound { .. }) => {
                    eprintln!("scanbridge: error: no silence with id {id}");
                    return Ok(Outcome::Invalid);
                }
                Err(e) => return Err(e.into()),
            },
        }
        Ok(Outcome::Success)
    })
}
