//! One module per command.

mod agent;
mod completions;
pub mod proxy;
mod remote;
mod run;
mod secret;
pub mod serve;
mod static_files;
mod up;
mod validate;

use crate::cli::{Cli, Command};
use crate::exit::Failure;

/// Runs the command the user asked for.
pub fn dispatch(cli: Cli) -> Result<(), Failure> {
    let global = &cli.global;
    match cli.command {
        Command::Run(args) => run::run(global, args),
        Command::Validate(args) => validate::validate(args),
        Command::Schema => {
            let schema = ferry_config::schema();
            let text = serde_json::to_string_pretty(&schema).map_err(anyhow::Error::from)?;
            println!("{text}");
            Ok(())
        }
        Command::Secret(sub) => secret::secret(global, sub),
        Command::Completions(args) => {
            completions::print(args.shell);
            Ok(())
        }
        Command::Up(args) => up::up(global, args),
        Command::Serve(args) => serve::serve(global, args),
        Command::Agent(args) => agent::agent(global, args),
        Command::Proxy(args) => proxy::proxy(args),
        Command::Project(sub) => remote::project::project(global, sub),
        Command::Hook(sub) => remote::hook::hook(global, sub),
        Command::Trigger(args) => remote::runs::trigger(global, args),
        Command::Runs(args) => remote::runs::runs(global, args),
        Command::Cancel(args) => remote::runs::cancel(global, args),
        Command::Approve(args) => remote::runs::approve(global, args),
        Command::Rerun(args) => remote::runs::rerun(global, args),
        Command::Logs(args) => remote::logs::logs(global, args),
        Command::Events(args) => remote::events::events(global, args),
        Command::Token(sub) => remote::token::token(global, sub),
        Command::Services(args) => remote::deploys::services(global, args),
        Command::Releases(args) => remote::deploys::releases(global, args),
        Command::Deploy(args) => remote::deploys::deploy(global, args),
        Command::Promote(args) => remote::deploys::promote(global, args),
        Command::Rollback(args) => remote::deploys::rollback(global, args),
        Command::Deploys(args) => remote::deploys::deploys(global, args),
        Command::Static(args) => static_files::serve(args),
    }
}

/// The host's name, if the kernel reports one.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
