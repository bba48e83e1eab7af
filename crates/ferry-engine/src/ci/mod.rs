//! Pipeline runs: `ferry run` executes `ferry.yml` for real.
//!
//! [`run`] is the entry point. A run is pinned to one commit of the repository
//! ([`RunOptions::repo`]); its jobs (matrix instances, from
//! [`ferry_config::Pipeline::instances`]) run in DAG order, up to
//! [`RunOptions::parallelism`] at once, each in a fresh workspace.
//!
//! # Data directory layout
//! ```text
//! <data_dir>/runs/<run_id>/events.jsonl         every event but `Log`, one JSON object a line
//! <data_dir>/runs/<run_id>/summary.json         the RunSummary, written at the end
//! <data_dir>/runs/<run_id>/artifacts.json       job instance id → artifact blob digest
//! <data_dir>/runs/<run_id>/logs/<job>/<NN>-<step>.log   masked output of each step
//! <data_dir>/runs/<run_id>/logs/<job>/ferry.log         the engine's notes on the job
//! <data_dir>/work/<run_id>/<job>/               workspaces (removed after the run)
//! <data_dir>/blobs/                             artifacts (content-addressed)
//! <data_dir>/cache/                             caches: blobs/ and keys/ (configurable)
//! ```
//! Run ids look like `20261123-201500-ab12` (UTC time, then 4 random hex digits): they
//! sort by start time and are unique within a data directory.
//!
//! # Rules where `ferry.yml` leaves a choice
//! - **Source.** The commit is `git rev-parse HEAD`; without [`RunOptions::dirty`] the
//!   workspace holds exactly the committed tree (`git archive`); with it, the working
//!   tree's tracked and untracked-but-not-ignored files as they are when the run starts
//!   (deleted files are left out). The snapshot is taken once per run, so every job
//!   sees the same files even if you edit during the run.
//! - **Needs and `if`.** A job runs when every job it needs let dependants run
//!   (`success` or `allowed_failure`) and its `if` (when present) is true. A job whose
//!   `if` mentions `needs` takes the decision alone: `if: needs.build.result ==
//!   'failure'` runs after `build` failed. A job not run for these reasons is `skipped`.
//!   For a matrix job, `needs.<job>.result` is the worst result of its instances.
//! - **Steps.** After a step fails (and is not `allow_failure`), the remaining steps
//!   are reported `skipped`; a step whose `if` is false is `skipped`.
//! - **Retry.** A job that ends `failure` or `timed_out` is run again from a fresh
//!   workspace, up to `retry` more times; `cancelled` is never retried.
//! - **`allow_failure`.** A job that fails or times out with `allow_failure: true` ends
//!   `allowed_failure`; its dependants run.
//! - **Processes.** Each host step runs in its own process group; when the step's main
//!   process exits, what it left running in the background is killed. Timeouts and
//!   cancellation send SIGTERM to the group, then SIGKILL after [`RunOptions::grace`].
//! - **Secrets.** A job gets only the secrets its templates reference
//!   (`${{ secrets.NAME }}` anywhere in its env, steps, image or cache key); their
//!   values (and derived forms) are masked in its events and logs.
//! - **Artifacts and caches.** Artifacts are saved after a successful job only; caches
//!   are saved after a successful job, and only when no entry exists for the key yet
//!   (keys are immutable). Any problem saving a cache (a full disk, say) is a warning
//!   in the job's log, never a failure.
//! - **Workspaces** are removed when the run ends, unless
//!   [`RunOptions::keep_workspaces`] is set.
//! - **Containers.** See [`RunOptions::docker_host`]: images are never pulled.
//!
//! # One job alone: [`execute`]
//! The server's built-in executor and `ferry agent` run one claimed job with
//! [`execute`] and a [`JobSpec`]; the same code as above decides its `if`, gives it its
//! secrets and runs its steps, artifacts and cache. What differs between the two —
//! the source archive, artifacts by digest, log lines, lease heartbeats — is behind
//! the [`JobIo`] trait. Retries and approvals are the server queue's business there:
//! [`execute`] runs exactly one attempt.

mod archive;
mod artifacts;
mod cache;
mod container;
mod events;
mod exec;
mod handoff;
mod host;
mod io;
mod job;
mod output;
mod scheduler;
mod steps;
mod util;
mod workspace;

pub use exec::{ExecOptions, ExecOutcome, JobSpec, execute};
pub use io::{Heartbeat, IoFuture, JobDeploy, JobDeployOutcome, JobIo, JobIoError};

use ferry_types::{JobResult, RunEvent};
use serde::Serialize;
use std::collections::HashMap;
use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a run does, where it keeps its files, and how it reaches people and services.
#[derive(Clone)]
pub struct RunOptions {
    /// The git repository's root (its commit is what runs).
    pub repo: PathBuf,
    /// Ferry's data directory (runs, workspaces, blobs, caches).
    pub data_dir: PathBuf,
    /// Where caches live; `None` = `<data_dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    /// Job ids or job instance ids to run, plus everything they need; empty = all.
    pub select: Vec<String>,
    /// Run the working tree's current files instead of the committed tree.
    pub dirty: bool,
    /// How many jobs may run at once (0 is treated as 1).
    pub parallelism: usize,
    /// Job ids (or instance ids) approved in advance (`--approve`).
    pub approve: Vec<String>,
    /// Asked for the other approvals.
    pub approver: Arc<dyn Approver>,
    /// Where secret values come from.
    pub secrets: Arc<dyn SecretSource>,
    /// Time between SIGTERM and SIGKILL on timeout and cancellation.
    pub grace: Duration,
    /// `ferry.event` (`local` for `ferry run`).
    pub event: String,
    /// The Docker engine for jobs with `image:`, e.g. `unix:///var/run/docker.sock`;
    /// `None` = `DOCKER_HOST`, else the default socket.
    pub docker_host: Option<String>,
    /// How long a service container may take to become ready.
    pub service_timeout: Duration,
    /// `PATH` for finding `bash`, `git` and the steps' programs; `None` = inherited.
    pub path_env: Option<OsString>,
    /// Keep the job workspaces under `<data_dir>/work/<run_id>/` after the run.
    pub keep_workspaces: bool,
}

impl RunOptions {
    /// Defaults for `ferry run` in `repo` with data in `data_dir`: all jobs, committed
    /// tree, parallelism = number of CPUs, no approvals, no secrets, 10 s grace.
    pub fn new(repo: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        RunOptions {
            repo: repo.into(),
            data_dir: data_dir.into(),
            cache_dir: None,
            select: Vec::new(),
            dirty: false,
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
            approve: Vec::new(),
            approver: Arc::new(NonInteractive),
            secrets: Arc::new(HashMap::<String, Vec<u8>>::new()),
            grace: Duration::from_secs(10),
            event: "local".to_string(),
            docker_host: None,
            service_timeout: Duration::from_secs(60),
            path_env: None,
            keep_workspaces: false,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("repo", &self.repo)
            .field("data_dir", &self.data_dir)
            .field("select", &self.select)
            .field("dirty", &self.dirty)
            .field("parallelism", &self.parallelism)
            .field("approve", &self.approve)
            .finish_non_exhaustive()
    }
}

/// The answer to an approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalDecision {
    /// Go ahead.
    Approved,
    /// A person said no; the text says who or why (may be empty).
    Refused(String),
    /// Nobody can be asked (no terminal); the job fails, telling the user to pass
    /// `--approve <job>`.
    NoApprover,
}

/// Asks a person whether a job with `approval` may start.
///
/// The engine asks one question at a time. `ferry run` implements this with a prompt on
/// the terminal; [`NonInteractive`] answers [`ApprovalDecision::NoApprover`].
pub trait Approver: Send + Sync {
    /// Asks about job instance `job`; `message` is the job's `approval.message` or a
    /// default text.
    fn approve<'a>(
        &'a self,
        job: &'a str,
        message: &'a str,
    ) -> Pin<Box<dyn Future<Output = ApprovalDecision> + Send + 'a>>;
}

/// An approver for runs without a person at hand: every approval is unavailable.
#[derive(Debug, Clone, Copy, Default)]
pub struct NonInteractive;

impl Approver for NonInteractive {
    fn approve<'a>(
        &'a self,
        _job: &'a str,
        _message: &'a str,
    ) -> Pin<Box<dyn Future<Output = ApprovalDecision> + Send + 'a>> {
        Box::pin(async { ApprovalDecision::NoApprover })
    }
}

/// Where secret values come from; asked only for the secrets a job references.
pub trait SecretSource: Send + Sync {
    /// The value of secret `name`, `Ok(None)` when no such secret is set, `Err` with a
    /// message when the store cannot be read.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, String>;
}

impl SecretSource for HashMap<String, Vec<u8>> {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(HashMap::get(self, name).cloned())
    }
}

/// How one job instance ended.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    /// Job instance id.
    pub id: String,
    /// Its result.
    pub result: JobResult,
    /// Wall-clock time over all attempts (zero when it never started).
    #[serde(rename = "duration_ms", serialize_with = "util::ser_ms")]
    pub duration: Duration,
    /// Why, for results other than success.
    pub reason: Option<String>,
    /// Attempts made (0 when it never started).
    pub attempts: u32,
}

/// The outcome of a whole run (also written to `<run_dir>/summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// `<data_dir>/runs/<run_id>`.
    pub run_dir: PathBuf,
    /// The commit run.
    pub sha: String,
    /// Every job instance, in pipeline order.
    pub jobs: Vec<JobSummary>,
    /// No job's result fails the run.
    pub success: bool,
    /// Wall-clock duration of the run.
    #[serde(rename = "duration_ms", serialize_with = "util::ser_ms")]
    pub duration: Duration,
}

/// Why a run could not be carried out at all (a failing job is not an error: see
/// [`RunSummary::success`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The repository cannot be read.
    #[error("{message}")]
    Git {
        /// What failed and what to do.
        message: String,
    },
    /// `select` names a job that does not exist.
    #[error("no job `{id}` in the pipeline (jobs: {known})")]
    UnknownJob {
        /// The id asked for.
        id: String,
        /// The known job ids, comma-separated.
        known: String,
    },
    /// The data directory cannot be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs `pipeline` at the repository's current commit.
///
/// Events are sent on `events` as they happen (a bounded channel: a slow reader slows
/// the steps' output rather than growing memory; a dropped receiver is ignored) and
/// also written to `<run_dir>/events.jsonl` (all but `Log`, whose text is in the step
/// log files). Cancelling `cancel` stops running steps
/// (SIGTERM, then SIGKILL after the grace), reports running and unstarted jobs as
/// `cancelled`, and still returns a summary. Errors are returned only when the run
/// cannot start (no git repository, unknown job in `select`, unwritable data
/// directory).
pub async fn run(
    pipeline: &ferry_config::Pipeline,
    opts: RunOptions,
    events: mpsc::Sender<RunEvent>,
    cancel: CancellationToken,
) -> Result<RunSummary, EngineError> {
    scheduler::run(pipeline, opts, events, cancel).await
}
