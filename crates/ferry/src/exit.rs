//! Outcomes of a command and their exit codes.

use std::process::ExitCode;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// What was run failed (a job, a check): exit 1. The command already printed why.
    Failed,
    /// Bad input or usage: exit 2, with the message.
    BadInput(anyhow::Error),
    /// Something else went wrong (I/O, the environment): exit 1, with the message.
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(e)
    }
}

/// Shorthand for a bad-input failure with a message.
pub fn bad_input(msg: impl std::fmt::Display) -> Failure {
    Failure::BadInput(anyhow::anyhow!("{msg}"))
}

/// Prints the failure (if it has a message) and picks the exit code.
pub fn report(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed) => ExitCode::from(1),
        Err(Failure::BadInput(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Error(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
