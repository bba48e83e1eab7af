//! `cargo xtask lint`: formatting and clippy, both reported even when the first fails.

use crate::{phase, proc, test::cargo};
use std::process::ExitCode;

/// Runs `cargo fmt --check` and `cargo clippy -D warnings` over the workspace.
pub fn run() -> anyhow::Result<ExitCode> {
    let checks: [&[&str]; 2] = [
        &["fmt", "--all", "--", "--check"],
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ];
    let mut failed = Vec::new();
    for args in checks {
        let mut cmd = cargo();
        cmd.args(args);
        let shown = proc::display(&cmd);
        let p = phase::start(&format!("running {shown}"));
        let status = proc::status(&mut cmd)?;
        if status.success() {
            p.done(&format!("{} clean", args[0]));
        } else {
            p.done(&format!("{} found problems", args[0]));
            failed.push(shown);
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        phase::note(&format!("lint failed: {}", failed.join("; ")));
        Ok(ExitCode::FAILURE)
    }
}
