//! The command line of the deploy commands: `ferry services`, `ferry releases`,
//! `ferry deploy`, `ferry promote`, `ferry rollback` and `ferry deploys`.

use super::ClientArgs;
use clap::{Args, Subcommand};

/// `ferry services [NAME]`.
#[derive(Debug, Clone, Args)]
pub struct ServicesArgs {
    /// Show this service's environments in detail.
    #[arg(value_name = "SERVICE")]
    pub name: Option<String>,
    /// Print the latest output of the service's live instances in this environment.
    #[arg(long, value_name = "ENV", requires = "name")]
    pub output: Option<String>,
    /// With --output: lines per instance.
    #[arg(long, value_name = "N", default_value_t = 100, requires = "output")]
    pub lines: usize,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry releases SERVICE`.
#[derive(Debug, Clone, Args)]
pub struct ReleasesArgs {
    /// The service (`deploy.name` in its project's `ferry.yml`).
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// At most this many releases, newest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: u32,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry deploy SERVICE --env E [--release R]`.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// The service.
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// The environment to deploy to.
    #[arg(long = "env", short = 'e', value_name = "ENV")]
    pub environment: String,
    /// The release, `v3` or `3` [default: the newest].
    #[arg(long, value_name = "RELEASE")]
    pub release: Option<String>,
    /// Print the queued deploy and return instead of following it to its end.
    #[arg(long)]
    pub no_wait: bool,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry promote SERVICE --from E1 --to E2`.
#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    /// The service.
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// The environment whose live release is promoted.
    #[arg(long, value_name = "ENV")]
    pub from: String,
    /// The environment it goes to.
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Print the queued deploy and return instead of following it to its end.
    #[arg(long)]
    pub no_wait: bool,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry rollback SERVICE --env E [--to R]`.
#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The service.
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// The environment to roll back.
    #[arg(long = "env", short = 'e', value_name = "ENV")]
    pub environment: String,
    /// The release to go back to, `v2` or `2` [default: the one live before].
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    /// Print the queued deploy and return instead of following it to its end.
    #[arg(long)]
    pub no_wait: bool,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry deploys [SERVICE] [--env E]` and its subcommands.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeploysArgs {
    /// Show, approve or cancel one deploy instead.
    #[command(subcommand)]
    pub command: Option<DeploysCommand>,
    /// Only this service's deploys.
    #[arg(value_name = "SERVICE")]
    pub service: Option<String>,
    /// Only deploys to this environment.
    #[arg(long = "env", short = 'e', value_name = "ENV")]
    pub environment: Option<String>,
    /// At most this many deploys, newest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: u32,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry deploys show|approve|cancel ID`.
#[derive(Debug, Clone, Subcommand)]
pub enum DeploysCommand {
    /// Show a deploy and its progress, step by step.
    Show(DeployShowArgs),
    /// Approve a deploy waiting for approval (operator).
    Approve(DeployIdArgs),
    /// Cancel a deploy that has not started; a running one is rolled back.
    Cancel(DeployIdArgs),
}

/// `ferry deploys show ID [--follow]`.
#[derive(Debug, Clone, Args)]
pub struct DeployShowArgs {
    /// The deploy's id.
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Print progress lines as they come until the deploy ends; exit 1 unless it
    /// succeeded.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// A command naming one deploy.
#[derive(Debug, Clone, Args)]
pub struct DeployIdArgs {
    /// The deploy's id.
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}
