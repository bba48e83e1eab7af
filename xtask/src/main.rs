//! `cargo xtask`: Ferry's developer tasks, in Rust so they run the same everywhere.
//!
//! - `cargo xtask test [--dry-run] [-- NEXTEST_ARGS…]` installs the tools the suite
//!   needs (Debian packages), starts the services it talks to (the Docker engine,
//!   PostgreSQL),
//!   prebuilds the shared test image and runs the whole workspace under cargo-nextest
//!   with the `ci` profile. A service that cannot start fails the run.
//! - `cargo xtask setup [--dry-run]` does the same preparation without running tests.
//! - `cargo xtask lint` checks formatting and runs clippy with `-D warnings`.
//! - `cargo xtask bench SUITE` runs a benchmark suite (`ci` today), prints a table and
//!   records it in `docs/BENCHMARKS.md` and `target/bench/SUITE.json`.
//!
//! Start reading at [`cli`] for the commands, [`deps`] for what gets installed and
//! [`services`] for what gets started.

mod bench;
mod cli;
mod deps;
mod lint;
mod paths;
mod phase;
mod proc;
mod services;
mod test;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = match cli::parse(&args) {
        Ok(task) => task,
        Err(e) => {
            eprintln!("xtask: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(task) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: cli::Task) -> anyhow::Result<ExitCode> {
    match task {
        cli::Task::Help => {
            println!("{}", cli::USAGE);
            Ok(ExitCode::SUCCESS)
        }
        cli::Task::Setup { dry_run } => {
            test::prepare(dry_run)?;
            Ok(ExitCode::SUCCESS)
        }
        cli::Task::Test {
            dry_run,
            nextest_args,
        } => test::run(dry_run, &nextest_args),
        cli::Task::Lint => lint::run(),
        cli::Task::Bench(opts) => {
            bench::run(&opts)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
