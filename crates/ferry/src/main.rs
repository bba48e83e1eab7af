//! The `ferry` binary: parses the command line and hands off to a command.
//!
//! Everything of substance lives in the library crates; this binary wires them
//! together, renders output for people (or JSON for scripts) and maps outcomes to exit
//! codes: 0 success, 1 what was run failed, 2 bad input or usage.

mod cli;
mod cmd;
mod exit;
mod logging;
mod paths;
mod render;
mod table;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    exit::report(cmd::dispatch(cli))
}
