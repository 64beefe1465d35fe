//! The `scanbridge` binary: parse the command line, set up logging, run one command, map the outcome
//! to an exit code (0 match/success, 1 no match, 2 error).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = scanbridge::cli::Cli::parse();
    match scanbridge::cli::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("scanbridge: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
