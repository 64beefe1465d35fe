//! `scanbridge dlq list | show ID | redrive [ID|--all] | purge [--yes]`: the dead letters, through the
//! running daemon's admin API (`--url`) or in a data directory opened directly (`--data-dir`):
//! [`super::admin_client`]. Redriven deliveries are back in the outbox, due now; the daemon picks them
//! up at its next poll. `purge` deletes every dead letter: it says how many and asks first, unless
//! `--yes` (without a terminal to ask on, `--yes` is required).

use std::io::{BufRead, IsTerminal, Write};

use super::admin_client::{Op, list, text};
use super::outcome::Outcome;

/// Arguments of `scanbridge dlq`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: super::store_args::StoreArgs,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List dead letters (id, rule, target, attempts, reason).
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter with its event, as JSON.
    Show { id: String },
    /// Move dead letters back to the outbox (attempts reset).
    Redrive {
        /// The dead letter to redrive.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Redrive every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Delete every dead letter (asks first, unless --yes).
    Purge {
        /// Do not ask.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Asks on the terminal whether to purge `n` dead letters of `which`; only `y`/`yes` is yes.
fn confirm(n: usize, which: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "scanbridge: error: dlq purge deletes {n} dead letter(s) in {which}: give --yes to confirm (there is no terminal to ask on)"
        );
        return Ok(false);
    }
    eprint!("Delete {n} dead letter(s) in {which}? This cannot be undone. [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    args.store.run(|admin| async move {
        match args.action {
            Action::List { json } => {
                let answer = admin.call(Op::DeadLetters).await?;
                let dls = list(&answer, "deadletters");
                if json {
                    for d in dls {
                        println!("{d}");
                    }
                } else {
                    println!(
                        "{:<32}  {:<24}  {:<12}  {:>8}  REASON",
                        "ID", "RULE", "TARGET", "ATTEMPTS"
                    );
                    for d in dls {
                        // Reasons can quote a receiver or an event: one visible line.
                        println!(
                            "{:<32}  {:<24}  {:<12}  {:>8}  {}",
                            text(d, "id", 100),
                            text(d, "rule", 200),
                            text(d, "target", 200),
                            text(d, "attempts", 20),
                            text(d, "reason", 2000)
                        );
                    }
                }
                eprintln!("{} dead letter(s) in {}", dls.len(), admin.which());
            }
            Action::Show { id } => {
                return super::admin_client::show(
                    &admin,
                    Op::DeadLetter(id.clone()),
                    "dead letter",
                    &id,
                )
                .await;
            }
            Action::Redrive { id, all: _ } => {
                let answer = admin.call(Op::Redrive(id.clone())).await?;
                let n = answer["redriven"].as_u64().unwrap_or(0);
                if let (Some(id), 0) = (&id, n) {
                    eprintln!(
                        "scanbridge: error: no dead letter with id {id} in {}",
                        admin.which()
                    );
                    return Ok(Outcome::Invalid);
                }
                println!("redriven: {n}");
            }
            Action::Purge { yes } => {
                if !yes {
                    let n = list(&admin.call(Op::DeadLetters).await?, "deadletters").len();
                    if n == 0 {
                        println!("purged: 0 (no dead letters in {})", admin.which());
                        return Ok(Outcome::Success);
                    }
                    let which = admin.which();
                    let asked = tokio::task::spawn_blocking(move || confirm(n, &which))
                        .await
                        .map_err(anyhow::Error::from)??;
                    if !asked {
                        eprintln!("nothing purged");
                        return Ok(Outcome::Invalid);
                    }
                }
                let answer = admin.call(Op::Purge).await?;
                println!("purged: {}", answer["purged"].as_u64().unwrap_or(0));
            }
        }
        Ok(Outcome::Success)
    })
}
