//! `scanbridge silence add | list | expire ID`: silences (and CVE allowlist entries), through the
//! running daemon's admin API (`--url`), or in a data directory opened directly (`--data-dir`):
//! [`super::admin_client`]. The daemon re-reads silences before every delivery attempt, so a new
//! silence applies to the next attempt.
//!
//! `add` takes matchers (`--match 'detail.repository-name=payments/*'`, several ANDed), a whole
//! `--pattern JSON`, or a CVE allowlist entry (`--cve`, `--package`, optional `--repository`), with
//! `--expires` (a duration such as `7d`; a date `2026-12-31`, which is the end of that day, UTC; or a
//! full UTC time `2026-12-31T18:00:00Z`; the confirmation says which it read) and a `--comment`. A bad matcher, pattern
//! or expiry is an error (exit 2) and nothing is stored.

use serde_json::Value;

use super::admin_client::{CallError, Op, list, text};
use super::outcome::Outcome;
use crate::alerting::silence::{self, SilenceError};
use crate::store::Silence;

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
    /// When the silence ends: a duration from now (7d, 12h), a date (2026-12-31: the end of that day,
    /// UTC) or a full UTC time (2026-12-31T18:00:00Z).
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
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        self.spec().build(now_ms, &user)
    }

    /// What is asked of the store: these arguments, the author defaulting to `$USER`.
    pub fn spec(&self) -> silence::SilenceSpec {
        silence::SilenceSpec {
            matchers: self.matchers.clone(),
            pattern: self.pattern.clone().map(Value::String),
            cve: self.cve.clone(),
            package: self.package.clone(),
            repository: self.repository.clone(),
            expires: self.expires.clone(),
            comment: self.comment.clone(),
            author: self.author.clone().or_else(|| std::env::var("USER").ok()),
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let now = crate::alerting::system_clock().now_ms();
    // Validated before anything is asked of the store: a typo reaches no daemon and no directory.
    let new = match &args.action {
        Action::Add(add) => match add.silence(now) {
            Ok(_) => Some(add.spec()),
            Err(e) => {
                eprintln!("scanbridge: error: {e}");
                return Ok(Outcome::Invalid);
            }
        },
        _ => None,
    };
    args.store.run(|admin| async move {
        match args.action {
            Action::Add(add) => {
                let answer = admin
                    .call(Op::SilenceAdd(Box::new(new.expect("validated above"))))
                    .await?;
                let s = &answer["silence"];
                let id = text(s, "id", 100);
                println!("{id}");
                eprintln!(
                    "silence {id} in force until {} ({}) in {}",
                    text(s, "expires_at", 40),
                    silence::expires_reading(&add.expires),
                    admin.which()
                );
            }
            Action::List { all, json } => {
                let answer = admin.call(Op::Silences { all }).await?;
                let list = list(&answer, "silences");
                if json {
                    for s in list {
                        println!("{s}");
                    }
                } else {
                    println!(
                        "{:<12}  {:<20}  {:<10}  {:<40}  COMMENT",
                        "ID", "EXPIRES", "BY", "MATCHERS"
                    );
                    for s in list {
                        let state = if s["active"] == Value::Bool(false) {
                            " (expired)"
                        } else {
                            ""
                        };
                        println!(
                            "{:<12}  {:<20}  {:<10}  {:<40}  {}{state}",
                            text(s, "id", 100),
                            text(s, "expires_at", 40),
                            text(s, "created_by", 100),
                            text(s, "matchers", 2000),
                            text(s, "comment", 2000)
                        );
                    }
                }
                eprintln!("{} silence(s) in {}", list.len(), admin.which());
            }
            Action::Expire { id } => match admin.call(Op::SilenceExpire(id.clone())).await {
                Ok(_) => println!("expired: {id}"),
                Err(CallError::NotFound(_)) => {
                    eprintln!(
                        "scanbridge: error: no silence with id {id} in {}",
                        admin.which()
                    );
                    return Ok(Outcome::Invalid);
                }
                Err(e) => return Err(e),
            },
        }
        Ok(Outcome::Success)
    })
}
