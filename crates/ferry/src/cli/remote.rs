//! The command line of the client commands: they talk to a server over HTTP.

use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Where the server is and how to authenticate; shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The server's URL.
    #[arg(
        long,
        global = true,
        env = "FERRY_SERVER",
        value_name = "URL",
        default_value = "http://127.0.0.1:7878"
    )]
    pub server: String,
    /// An API token [default: admin.token in the data directory, written by
    /// `ferry up`].
    #[arg(
        long,
        global = true,
        env = "FERRY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// A PEM file of CA certificates to trust besides the system's, for an `https`
    /// server whose certificate a private CA signed (or a self-signed one).
    #[arg(long, global = true, env = "FERRY_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `ferry project …`.
#[derive(Debug, Clone, Subcommand)]
pub enum ProjectCommand {
    /// Register a project: a repository with a `ferry.yml`.
    Add(ProjectAddArgs),
    /// List projects.
    List(ClientOnly),
    /// Show one project.
    Show(ProjectNameArgs),
    /// Remove a project (its runs and events stay in the log).
    Rm(ProjectNameArgs),
}

/// Only the client options.
#[derive(Debug, Clone, Args)]
pub struct ClientOnly {
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry project add`.
#[derive(Debug, Clone, Args)]
pub struct ProjectAddArgs {
    /// The project's name (used in URLs and commands).
    pub name: String,
    /// The repository: a URL the server can clone, or a path on the server's host.
    #[arg(long, value_name = "URL_OR_PATH")]
    pub repo: String,
    /// The branch runs use when none is given.
    #[arg(long, value_name = "BRANCH", default_value = "main")]
    pub branch: String,
    /// The secret webhooks from the forge are signed with.
    #[arg(
        long,
        value_name = "SECRET",
        env = "FERRY_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// A command naming one project.
#[derive(Debug, Clone, Args)]
pub struct ProjectNameArgs {
    /// The project's name.
    pub name: String,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry hook …`.
#[derive(Debug, Clone, Subcommand)]
pub enum HookCommand {
    /// Install a post-receive hook in a bare repository on this host, so every
    /// `git push` to it starts a run.
    Install(HookInstallArgs),
}

/// `ferry hook install`.
#[derive(Debug, Clone, Args)]
pub struct HookInstallArgs {
    /// The project whose runs the pushes start.
    #[arg(long, value_name = "NAME")]
    pub project: String,
    /// The bare repository (e.g. `/srv/git/app.git`).
    #[arg(value_name = "BARE_REPO")]
    pub repo: PathBuf,
    /// Server and token (the hook keeps both).
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry trigger`.
#[derive(Debug, Clone, Args)]
pub struct TriggerArgs {
    /// The project.
    pub project: String,
    /// A branch, tag or `refs/…` name [default: the project's branch].
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// Wait for the run to end and exit 1 if it failed.
    #[arg(long)]
    pub wait: bool,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry runs`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    /// Show one run instead.
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    /// Only this project's runs.
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// At most this many runs, newest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: u32,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry runs show`.
#[derive(Debug, Clone, Subcommand)]
pub enum RunsCommand {
    /// Show a run and its jobs.
    Show(RunIdArgs),
}

/// A command naming one run.
#[derive(Debug, Clone, Args)]
pub struct RunIdArgs {
    /// The run's id.
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry cancel`.
pub type CancelArgs = RunIdArgs;

/// `ferry approve`.
#[derive(Debug, Clone, Args)]
pub struct ApproveArgs {
    /// The run's id.
    #[arg(value_name = "ID")]
    pub id: i64,
    /// The job waiting for approval.
    #[arg(value_name = "JOB")]
    pub job: String,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry rerun`.
#[derive(Debug, Clone, Args)]
pub struct RerunArgs {
    /// The run's id.
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Run only the jobs that did not pass, reusing the others' results and artifacts.
    #[arg(long)]
    pub failed: bool,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The run's id.
    #[arg(value_name = "RUN")]
    pub run: i64,
    /// Keep printing new lines until the run ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only this job's log.
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry events`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Only this project's events.
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// Only events after this: a duration ago (`1h`, `30m`) or an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Keep printing new events as they happen.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// At most this many events (without `--follow`).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u32,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry token …`.
#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and never stored in clear.
    Create(TokenCreateArgs),
    /// List tokens (never their secrets).
    List(ClientOnly),
    /// Revoke a token: it stops working at once.
    Revoke(TokenRevokeArgs),
}

/// `ferry token create`.
#[derive(Debug, Clone, Args)]
pub struct TokenCreateArgs {
    /// Who or what uses it, e.g. `ci-bot` or `agent-1`.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// What it may do: viewer, developer, operator or admin.
    #[arg(long, value_name = "ROLE", default_value = "developer")]
    pub role: String,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry token revoke`.
#[derive(Debug, Clone, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (from `ferry token list`).
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
}
