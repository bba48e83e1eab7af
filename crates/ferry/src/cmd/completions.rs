//! `ferry completions`.

use crate::cli::{Cli, Shell};
use clap::CommandFactory;
use clap_complete::{generate, shells};

/// Writes the completion script for `shell` to standard output.
pub fn print(shell: Shell) {
    let mut cmd = Cli::command();
    let out = &mut std::io::stdout();
    match shell {
        Shell::Bash => generate(shells::Bash, &mut cmd, "ferry", out),
        Shell::Zsh => generate(shells::Zsh, &mut cmd, "ferry", out),
        Shell::Fish => generate(shells::Fish, &mut cmd, "ferry", out),
    }
}
