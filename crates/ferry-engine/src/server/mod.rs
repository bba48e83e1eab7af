//! The server side of the engine: triggers, the pipeline reconciler, the built-in
//! executor and what agents are handed.
//!
//! [`Core`] is the handle the HTTP API (`ferry-api`) and `ferry serve` use. Desired
//! state lives in the store; background loops started by [`Core::start`] move it
//! forward one idempotent step at a time, so a crash at any point is recovered by
//! running the loops again.

use ferry_store::BlobStore;
use ferry_store::db::{ClaimedJob, JobOutcome, Lease, Run, Store};
use ferry_types::{JobResult, Trigger};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the core runs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The data directory (repositories, workspaces, blobs, caches).
    pub data_dir: PathBuf,
    /// The id the built-in executor claims jobs under.
    pub executor_id: String,
    /// Jobs the built-in executor runs at once; 0 disables it (agents only).
    pub builtin_jobs: usize,
    /// Labels of the built-in executor (a job's `runs-on` must be a subset).
    pub builtin_labels: Vec<String>,
    /// How long a claimed job's lease lasts without a heartbeat.
    pub lease: Duration,
    /// How often remote repositories are polled for new commits (None: never).
    pub poll_interval: Option<Duration>,
    /// SIGTERM → SIGKILL grace for cancelled steps.
    pub grace: Duration,
    /// Docker engine address for container jobs (None: the default socket).
    pub docker_host: Option<String>,
}

/// A request to start a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriggerRequest {
    /// The project's name.
    pub project: String,
    /// `refs/heads/main`, `main`, `refs/tags/v1`; None: the project's default branch.
    pub git_ref: Option<String>,
    /// The commit; None: the ref's current commit.
    pub sha: Option<String>,
    /// What started it.
    pub trigger: Trigger,
    /// Paths changed by the push, when the sender said (for `on.push.paths`).
    pub changed_paths: Option<Vec<String>>,
    /// The webhook delivery being processed, marked processed with the run.
    pub delivery_id: Option<i64>,
}

/// What a trigger led to.
#[derive(Debug, Clone)]
pub enum TriggerOutcome {
    /// A run was created.
    Started(Run),
    /// The pipeline's `on` filters exclude this push; the text says which.
    Filtered(String),
}

/// Everything an executor (built-in or a remote agent) needs to run one claimed job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    /// The lease to name in heartbeats and the result.
    pub lease: Lease,
    /// When the lease ends unless renewed, unix ms.
    pub lease_expires_at: i64,
    /// The run.
    pub run_id: i64,
    /// The project.
    pub project: String,
    /// The job instance id.
    pub job: String,
    /// The commit.
    pub sha: String,
    /// Branch, tag.
    pub branch: Option<String>,
    /// Tag.
    pub tag: Option<String>,
    /// The run's `ferry.yml` text.
    pub pipeline: String,
    /// The results of the jobs it needs, by instance id.
    pub needs: BTreeMap<String, JobResult>,
    /// Artifact blob digests of the jobs it needs, by instance id.
    pub artifacts: BTreeMap<String, String>,
    /// The secrets the job references (and only those).
    pub secrets: BTreeMap<String, String>,
}

/// Why a core operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The named thing does not exist.
    #[error("{what} `{key}` not found")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its name or id.
        key: String,
    },
    /// The request is not valid in the current state (e.g. approving a finished job).
    #[error("{0}")]
    Invalid(String),
    /// The pipeline file at that commit does not validate.
    #[error("{0}")]
    Pipeline(String),
    /// The repository could not be read or fetched.
    #[error("{0}")]
    Git(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ferry_store::db::DbError),
}

/// The handle to the server's engine; clones share everything.
#[derive(Debug, Clone)]
pub struct Core {}

/// The background loops of a core; await [`CoreTasks::join`] after cancelling the
/// shutdown token.
#[derive(Debug)]
pub struct CoreTasks {}

impl Core {
    /// Recovers from a previous crash (interrupted jobs, pending deliveries) and starts
    /// the loops: reconciler, built-in executor, lease expiry, poller, cron.
    pub async fn start(
        store: Store,
        config: CoreConfig,
        shutdown: CancellationToken,
    ) -> Result<(Core, CoreTasks), CoreError> {
        let _ = (store, config, shutdown);
        todo!("server core")
    }

    /// The store.
    pub fn store(&self) -> &Store {
        todo!("server core")
    }

    /// The blob store (artifacts, caches).
    pub fn blobs(&self) -> &BlobStore {
        todo!("server core")
    }

    /// Starts a run (checks `on` filters and concurrency groups).
    pub async fn trigger(&self, req: TriggerRequest) -> Result<TriggerOutcome, CoreError> {
        let _ = req;
        todo!("server core")
    }

    /// Cancels a run: queued jobs are cancelled, running ones told to stop.
    pub async fn cancel_run(&self, run_id: i64, by: &str) -> Result<(), CoreError> {
        let _ = (run_id, by);
        todo!("server core")
    }

    /// Grants the approval job `job` of run `run_id` waits for.
    pub async fn approve(&self, run_id: i64, job: &str, by: &str) -> Result<(), CoreError> {
        let _ = (run_id, job, by);
        todo!("server core")
    }

    /// A new run of the same commit; with `failed_only`, only jobs that did not pass
    /// run again and the others' results and artifacts are reused.
    pub async fn rerun(&self, run_id: i64, failed_only: bool, by: &str) -> Result<Run, CoreError> {
        let _ = (run_id, failed_only, by);
        todo!("server core")
    }

    /// What an agent needs to run a job it claimed.
    pub async fn assignment(&self, claimed: ClaimedJob) -> Result<Assignment, CoreError> {
        let _ = claimed;
        todo!("server core")
    }

    /// A tar archive of the run's commit, for agents.
    pub async fn source_archive(&self, run_id: i64) -> Result<PathBuf, CoreError> {
        let _ = run_id;
        todo!("server core")
    }

    /// Records an executor's result (and the digest of its artifacts).
    pub async fn complete_job(
        &self,
        lease: &Lease,
        outcome: JobOutcome,
        artifacts: Option<String>,
    ) -> Result<(), CoreError> {
        let _ = (lease, outcome, artifacts);
        todo!("server core")
    }

    /// Waits until a job may be claimable (something was queued) or `timeout` passes:
    /// the long-poll of agents waits here instead of polling the store.
    pub async fn wait_for_work(&self, timeout: Duration) {
        let _ = timeout;
        todo!("server core")
    }
}

impl CoreTasks {
    /// Waits for every loop to stop (after the shutdown token was cancelled).
    pub async fn join(self) {
        todo!("server core")
    }
}
