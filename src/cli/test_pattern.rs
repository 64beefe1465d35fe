//! `scanbridge test-pattern`: evaluate one pattern against events offline.

/// Arguments of `scanbridge test-pattern`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pattern: a file path, inline JSON, or `-` for stdin.
    #[arg(long)]
    pub pattern: Option<String>,
}

pub fn run(_args: Args) -> anyhow::Result<super::Outcome> {
    anyhow::bail!("not implemented yet")
}
