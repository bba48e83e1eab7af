//! One module per command.

mod completions;
mod run;
mod secret;
mod validate;

use crate::cli::{Cli, Command};
use crate::exit::Failure;

/// Runs the command the user asked for.
pub fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Run(args) => run::run(&cli.global, args),
        Command::Validate(args) => validate::validate(args),
        Command::Schema => {
            let schema = ferry_config::schema();
            let text = serde_json::to_string_pretty(&schema).map_err(anyhow::Error::from)?;
            println!("{text}");
            Ok(())
        }
        Command::Secret(sub) => secret::secret(&cli.global, sub),
        Command::Completions(args) => {
            completions::print(args.shell);
            Ok(())
        }
    }
}
