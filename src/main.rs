//! The `scanbridge` binary: parse the command line, set up logging, run one command, map the outcome
//! to an exit code (0 match/success, 1 no match, 2 error).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = scanbridge::Cli::parse();
    match scanbridge::run(cli) {
        Ok(code) => code.into(),
        // A closed pipe (`scanbridge test-pattern ... | head`) is the reader's choice, not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("scanbridge: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
