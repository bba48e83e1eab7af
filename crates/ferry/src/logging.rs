//! Log output of the long-running commands (`serve`, `up`, `agent`): tracing to
//! standard error, filtered by `RUST_LOG` when set, else by the given level.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the subscriber. Colour only on a terminal and never with `NO_COLOR`.
pub fn init(level: &str) -> Result<(), crate::exit::Failure> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).map_err(|e| {
            crate::exit::bad_input(format!("RUST_LOG=`{spec}` is not a log filter: {e}"))
        })?,
        _ => {
            // The level applies to Ferry's crates; dependencies speak up at warn.
            let spec = format!(
                "warn,ferry={level},ferry_engine={level},ferry_api={level},ferry_store={level},ferry_client={level}"
            );
            EnvFilter::try_new(&spec).map_err(|e| {
                crate::exit::bad_input(format!(
                    "`{level}` is not a log level (error, warn, info, debug, trace): {e}"
                ))
            })?
        }
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = !no_color && std::io::stderr().is_terminal();
    // A second init (tests calling twice) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    Ok(())
}
