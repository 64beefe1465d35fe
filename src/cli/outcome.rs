//! What a command achieved, as the exit code scripts rely on: 0 = success or match, 1 = no match,
//! 2 = error.

use std::process::ExitCode;

/// What a command achieved, as the exit code scripts see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: success, or every event matched.
    Success,
    /// Exit 1: the command ran but something did not match.
    NoMatch,
    /// Exit 2: bad input (the message was already printed).
    Invalid,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        match o {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::NoMatch => ExitCode::from(1),
            Outcome::Invalid => ExitCode::from(2),
        }
    }
}
