//! `ferry secret`.

use crate::cli::{Global, SecretCommand};
use crate::exit::{Failure, bad_input};
use anyhow::Context;
use ferry_secrets::SecretStore;
use std::io::{IsTerminal, Read};

/// Sets, lists or removes secrets in the data directory.
pub fn secret(global: &Global, cmd: SecretCommand) -> Result<(), Failure> {
    let dir = crate::paths::data_dir(global.data_dir.clone())?;
    let store = SecretStore::open(&dir).map_err(|e| Failure::Error(e.into()))?;
    match cmd {
        SecretCommand::Set { name, from_file } => {
            let value = match from_file {
                Some(path) => std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))
                    .map_err(Failure::BadInput)?,
                None => read_stdin_value()?,
            };
            if value.is_empty() {
                return Err(bad_input(format!(
                    "the value for secret `{name}` is empty; pipe it on standard input or use --from-file"
                )));
            }
            store
                .set(&name, &value)
                .map_err(|e| Failure::BadInput(e.into()))?;
            eprintln!("Secret `{name}` stored ({} bytes).", value.len());
        }
        SecretCommand::List => {
            for name in store.list().map_err(|e| Failure::Error(e.into()))? {
                println!("{name}");
            }
        }
        SecretCommand::Rm { name } => {
            if store.remove(&name).map_err(|e| Failure::Error(e.into()))? {
                eprintln!("Secret `{name}` removed.");
            } else {
                return Err(bad_input(format!(
                    "there is no secret named `{name}`; `ferry secret list` shows the names"
                )));
            }
        }
    }
    Ok(())
}

/// Reads a secret value from standard input. On a terminal, one line (without its
/// newline); from a pipe, everything, minus one trailing newline (as `echo` adds).
fn read_stdin_value() -> Result<Vec<u8>, Failure> {
    let stdin = std::io::stdin();
    let mut buf = Vec::new();
    if stdin.is_terminal() {
        eprint!("Value (end with Enter): ");
        let mut line = String::new();
        stdin
            .read_line(&mut line)
            .context("cannot read standard input")?;
        buf = line.into_bytes();
    } else {
        stdin
            .lock()
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
    }
    if buf.ends_with(b"\n") {
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
    }
    Ok(buf)
}
