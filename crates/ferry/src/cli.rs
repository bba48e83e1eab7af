//! The command line, as clap types. One options struct per surface: each option can
//! come from a flag or its `FERRY_*` environment variable.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

mod deploys;
mod remote;
mod server;

pub use deploys::*;
pub use remote::*;
pub use server::*;

/// Ferry: from `git push` to production, in one binary.
#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Options every command shares.
    #[command(flatten)]
    pub global: Global,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Where Ferry keeps runs, artifacts, caches and secrets
    /// [default: $XDG_DATA_HOME/ferry or ~/.local/share/ferry].
    #[arg(long, global = true, env = "FERRY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Ferry's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline of the current commit locally, with no server.
    Run(RunArgs),
    /// Check a pipeline file and report every problem in it.
    Validate(ValidateArgs),
    /// Print the JSON schema of `ferry.yml`, for editors.
    Schema,
    /// Manage secrets (encrypted at rest, masked in every log).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Start a server with everything on defaults, run an example pipeline and print
    /// where to watch it.
    Up(UpArgs),
    /// Run the server: HTTP API, web UI, scheduler and built-in executor.
    Serve(ServeArgs),
    /// Run jobs for a server: pull work over HTTP and report results.
    Agent(AgentArgs),
    /// Run the edge proxy alone, with routes from a file.
    Proxy(ProxyArgs),
    /// Manage the server's projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Install a git hook that starts runs on `git push`.
    #[command(subcommand)]
    Hook(HookCommand),
    /// Start a run of a project.
    Trigger(TriggerArgs),
    /// List runs, or show one.
    Runs(RunsArgs),
    /// Cancel a run.
    Cancel(CancelArgs),
    /// Approve a job that waits for approval.
    Approve(ApproveArgs),
    /// Run a run again, all of it or only its failed jobs.
    Rerun(RerunArgs),
    /// Print a run's logs, or follow them live.
    Logs(LogsArgs),
    /// List the server's event log, or follow it live.
    Events(EventsArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List services and what is live in each environment, or show one.
    Services(ServicesArgs),
    /// List a service's releases, newest first.
    Releases(ReleasesArgs),
    /// Deploy a release of a service to an environment and follow it to its end.
    Deploy(DeployArgs),
    /// Deploy the release live in one environment to the next.
    Promote(PromoteArgs),
    /// Go back to an earlier release in an environment.
    Rollback(RollbackArgs),
    /// List deploys, or show, approve or cancel one.
    Deploys(DeploysArgs),
    /// Serve a directory's files over HTTP (the example app uses it; handy for
    /// previews).
    Static(StaticArgs),
}

/// `ferry static`.
#[derive(Debug, Args)]
pub struct StaticArgs {
    /// The directory to serve; `index.html` answers for a directory.
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Where to listen [default: 127.0.0.1 and the port in $PORT, else 8000].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

/// `ferry run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Jobs to run (with the jobs they need); all jobs when none are given.
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,
    /// Include uncommitted changes (modified and untracked, not ignored, files).
    #[arg(long)]
    pub dirty: bool,
    /// How many jobs may run at once [default: the number of CPU cores].
    #[arg(long = "jobs", short = 'j', value_name = "N", env = "FERRY_JOBS")]
    pub parallelism: Option<usize>,
    /// Grant the approval a job asks for (repeatable).
    #[arg(long, value_name = "JOB")]
    pub approve: Vec<String>,
    /// Print events as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// The pipeline file [default: ferry.yml at the repository root].
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// How long a cancelled or timed-out step gets between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime_duration)]
    pub grace: std::time::Duration,
}

/// `ferry validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The pipeline file [default: ferry.yml in the current directory, else at the
    /// repository root].
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `ferry secret …`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret; the value is read from standard input unless `--from-file` is given.
    Set {
        /// The secret's name, e.g. `DEPLOY_TOKEN` (letters, digits and `_`).
        name: String,
        /// Read the value from this file instead of standard input.
        #[arg(long, value_name = "PATH")]
        from_file: Option<PathBuf>,
    },
    /// List the names of stored secrets (never their values).
    List,
    /// Delete a secret.
    Rm {
        /// The secret's name.
        name: String,
    },
}

/// `ferry completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    pub shell: Shell,
}

/// Shells with completion scripts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

pub(crate) fn humantime_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10s, 1m30s)"))
}
