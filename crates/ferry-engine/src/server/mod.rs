//! The server side of the engine: triggers, the pipeline reconciler, the built-in
//! executor and what agents are handed.
//!
//! [`Core`] is the handle the HTTP API (`ferry-api`) and `ferry serve` use. Desired
//! state lives in the store; background loops started by [`Core::start`] move it
//! forward one idempotent step at a time, so a crash at any point is recovered by
//! running the loops again.
//!
//! # Loops (all stop when the shutdown token is cancelled)
//! - **reconciler** (`reconcile.rs`): follows the event log and sweeps active runs
//!   every few seconds; skips jobs that can no longer run, releases jobs held for a
//!   concurrency group, and ends runs whose jobs all ended.
//! - **built-in executor** (`executor.rs`): [`CoreConfig::builtin_jobs`] workers claim
//!   jobs like agents do and run them with [`crate::ci::execute`].
//! - **lease expiry**: every 2 s, jobs whose lease ended go back to the queue (or end
//!   `lost`) — with a 15 s lease and 5 s heartbeats a dead agent is noticed within 17 s.
//! - **poller** (`poll.rs`) and **cron** (`cron.rs`).
//! - **blob collector** (`gc.rs`): hourly, deletes blobs nothing refers to any more.
//!
//! # Rules
//! - **Who skips what.** The executor that claims a job evaluates its `if` (false →
//!   it reports `skipped`); a job can only be claimed once every job it needs ended
//!   `success` or `allowed_failure`. When a job it needs ended otherwise, the
//!   reconciler ends it `skipped`. A job whose `if` looks at `needs` decides alone,
//!   as in `ferry run`: it is created without queue-level needs, held in
//!   `waiting_approval` until every job it needs ended, then released by the
//!   reconciler (`approval.granted` by `ferry`), and the executor evaluates its `if`
//!   with the needs' results — so `if: needs.build.result == 'failure'` runs after a
//!   failed `build`. Its needs are kept in its `spec` (`spec.needs`).
//! - **Triggers.** A push must pass `on.push` (branches, tags, paths); the changed
//!   paths are the sender's, or those of the commit against its first parent when the
//!   sender gave none (the poller diffs the old and new commit). Manual and API runs
//!   need `on.manual` (which a pipeline without `on` has). Cron runs come from the
//!   pipeline's own `on.schedule`. A push of a commit that already has a run of the
//!   same branch or tag starts nothing (a hook and the poller may both see it).
//! - **Concurrency.** A run's group is the first `concurrency.group` of its jobs,
//!   rendered. With `cancel-in-progress`, older active runs of the group are
//!   cancelled; without, the jobs declaring the group wait (held in
//!   `waiting_approval`, released by the reconciler with an `approval.granted` event
//!   by `ferry`) until no older run of the group is active.
//! - **Shutdown.** The executor stops claiming at once; running jobs get
//!   [`CoreOptions::drain`] to finish and report. Jobs still running after it are
//!   stopped without a report: the next start marks them interrupted and retries them
//!   per their `retry` (the same as after a crash).

mod artifacts;
mod cron;
mod deploy;
mod executor;
pub(crate) mod gc;
mod git;
mod hook;
mod ops;
mod poll;
mod reconcile;
mod trigger;
pub mod webhook_secrets;

pub use hook::{HOOK_TOKEN_FILE, install_hook, post_receive_hook, write_hook_token};

use ferry_store::BlobStore;
use ferry_store::db::{ClaimedJob, JobOutcome, Lease, Run, Store};
use ferry_types::{JobResult, Trigger};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
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
    /// How deploys run (the proxy, SSH settings, timeouts).
    pub deploy: crate::deploy::DeployConfig,
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
    /// `ferry.event`: what started the run (`push`, `schedule`, `manual`, `api`).
    #[serde(default)]
    pub event: String,
}

impl From<&Assignment> for crate::ci::JobSpec {
    fn from(a: &Assignment) -> Self {
        crate::ci::JobSpec {
            run_id: a.run_id.to_string(),
            job: a.job.clone(),
            pipeline: a.pipeline.clone(),
            sha: a.sha.clone(),
            branch: a.branch.clone(),
            tag: a.tag.clone(),
            event: a.event.clone(),
            needs: a.needs.clone(),
            artifacts: a.artifacts.clone(),
            secrets: a.secrets.clone(),
        }
    }
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

/// Time, as the cron loop sees it; tests pass a fake.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        ferry_store::db::now_ms()
    }
}

/// Tuning of the core's loops; [`CoreOptions::default`] is what `ferry serve` uses.
#[derive(Debug, Clone)]
pub struct CoreOptions {
    /// The clock of the cron loop.
    pub clock: Arc<dyn Clock>,
    /// How long running built-in jobs may take to finish after shutdown.
    pub drain: Duration,
    /// How often the reconciler sweeps every active run (besides following events).
    pub sweep: Duration,
    /// How often expired leases are taken back.
    pub lease_check: Duration,
    /// How often the cron loop looks at the clock.
    pub cron_tick: Duration,
    /// How often the built-in executor renews its leases.
    pub heartbeat: Duration,
}

impl Default for CoreOptions {
    fn default() -> Self {
        CoreOptions {
            clock: Arc::new(SystemClock),
            drain: Duration::from_secs(10),
            sweep: Duration::from_secs(5),
            lease_check: Duration::from_secs(2),
            cron_tick: Duration::from_secs(1),
            heartbeat: Duration::from_secs(5),
        }
    }
}

/// The handle to the server's engine; clones share everything.
#[derive(Debug, Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    blobs: BlobStore,
    config: CoreConfig,
    options: CoreOptions,
    /// One lock per project's mirror: fetches and clones do not overlap.
    git_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Bumped when work may have become claimable.
    work: tokio::sync::watch::Sender<u64>,
    /// The built-in executor's running jobs: job id → (run id, its cancel token), so
    /// cancelling a run stops them at once instead of at the next heartbeat.
    running: Mutex<HashMap<i64, (i64, CancellationToken)>>,
    /// The deploy engine.
    deployer: crate::deploy::Deployer,
}

/// The background loops of a core; await [`CoreTasks::join`] after cancelling the
/// shutdown token.
#[derive(Debug)]
pub struct CoreTasks {
    handles: Vec<JoinHandle<()>>,
    /// Cancels the running built-in jobs without a report (for [`CoreTasks::abort`]).
    kill: CancellationToken,
}

impl Core {
    /// Recovers from a previous crash (interrupted jobs, pending deliveries) and starts
    /// the loops: reconciler, built-in executor, lease expiry, poller, cron, blob
    /// collector.
    pub async fn start(
        store: Store,
        config: CoreConfig,
        shutdown: CancellationToken,
    ) -> Result<(Core, CoreTasks), CoreError> {
        Core::start_with(store, config, CoreOptions::default(), shutdown).await
    }

    /// [`Core::start`] with tuned loops (tests use a fake clock and short intervals).
    pub async fn start_with(
        store: Store,
        config: CoreConfig,
        options: CoreOptions,
        shutdown: CancellationToken,
    ) -> Result<(Core, CoreTasks), CoreError> {
        let core = Core::new(store, config, options);
        // Recovery first: nothing is claimed before the old local jobs are taken back.
        let taken = core
            .store()
            .interrupt_local_jobs(&core.inner.config.executor_id)
            .await?;
        for t in &taken {
            tracing::info!(run = t.run_id, job = %t.job, requeued = t.requeued, "Took back a job interrupted by the restart.");
        }
        // Workspaces of built-in jobs cut short are of no use any more.
        let work = executor::work_dir(&core.inner.config);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(work)).await;
        webhook_secrets::seal_stored(&core).await;
        core.process_pending_deliveries().await;
        let kill = CancellationToken::new();
        let mut handles = Vec::new();
        handles.push(tokio::spawn(reconcile::run(core.clone(), shutdown.clone())));
        for n in 0..core.inner.config.builtin_jobs {
            handles.push(tokio::spawn(executor::worker(
                core.clone(),
                n,
                shutdown.clone(),
                kill.clone(),
            )));
        }
        handles.push(tokio::spawn(ops::expire_loop(
            core.clone(),
            shutdown.clone(),
        )));
        if let Some(every) = core.inner.config.poll_interval {
            handles.push(tokio::spawn(poll::run(
                core.clone(),
                every,
                shutdown.clone(),
            )));
        }
        handles.push(tokio::spawn(cron::run(core.clone(), shutdown.clone())));
        handles.push(tokio::spawn(gc::run(core.clone(), shutdown.clone())));
        handles.push(
            core.inner
                .deployer
                .start(shutdown.clone())
                .await
                .map_err(|e| CoreError::Invalid(format!("starting deploys failed: {e}")))?,
        );
        core.wake_workers();
        Ok((core, CoreTasks { handles, kill }))
    }

    /// A core without loops (for [`Core::start_with`]).
    fn new(store: Store, config: CoreConfig, options: CoreOptions) -> Core {
        let blobs = BlobStore::new(config.data_dir.join("blobs"));
        let (work, _) = tokio::sync::watch::channel(0);
        let deployer = crate::deploy::Deployer::new(
            store.clone(),
            blobs.clone(),
            config.data_dir.clone(),
            config.executor_id.clone(),
            config.deploy.clone(),
        );
        Core {
            inner: Arc::new(Inner {
                store,
                blobs,
                config,
                options,
                git_locks: Mutex::new(HashMap::new()),
                work,
                running: Mutex::new(HashMap::new()),
                deployer,
            }),
        }
    }

    /// The deploy engine.
    pub fn deployer(&self) -> &crate::deploy::Deployer {
        &self.inner.deployer
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The blob store (artifacts, caches).
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// How the core runs.
    pub fn config(&self) -> &CoreConfig {
        &self.inner.config
    }

    /// Starts a run (checks `on` filters and concurrency groups).
    pub async fn trigger(&self, req: TriggerRequest) -> Result<TriggerOutcome, CoreError> {
        let outcome = trigger::trigger(self, &req).await;
        // A delivery is done with unless the failure may pass (git, the database):
        // those are tried again at the next start.
        let settled = match &outcome {
            Ok(_) => true,
            Err(e) => matches!(
                e,
                CoreError::Pipeline(_) | CoreError::NotFound { .. } | CoreError::Invalid(_)
            ),
        };
        if let (Some(id), true) = (req.delivery_id, settled) {
            self.store().mark_delivery_processed(id).await?;
        }
        if matches!(outcome, Ok(TriggerOutcome::Started(_))) {
            self.wake_workers();
        }
        outcome
    }

    /// Cancels a run: queued jobs are cancelled, running ones told to stop.
    pub async fn cancel_run(&self, run_id: i64, by: &str) -> Result<(), CoreError> {
        ops::cancel_run(self, run_id, by).await
    }

    /// Grants the approval job `job` of run `run_id` waits for.
    pub async fn approve(&self, run_id: i64, job: &str, by: &str) -> Result<(), CoreError> {
        ops::approve(self, run_id, job, by).await?;
        self.wake_workers();
        Ok(())
    }

    /// A new run of the same commit; with `failed_only`, only jobs that did not pass
    /// run again and the others' results and artifacts are reused.
    pub async fn rerun(&self, run_id: i64, failed_only: bool, by: &str) -> Result<Run, CoreError> {
        let run = ops::rerun(self, run_id, failed_only, by).await?;
        self.wake_workers();
        Ok(run)
    }

    /// What an agent needs to run a job it claimed.
    pub async fn assignment(&self, claimed: ClaimedJob) -> Result<Assignment, CoreError> {
        ops::assignment(self, claimed).await
    }

    /// A tar archive of the run's commit, for agents.
    pub async fn source_archive(&self, run_id: i64) -> Result<PathBuf, CoreError> {
        ops::source_archive(self, run_id).await
    }

    /// Records an executor's result (and the digest of its artifacts).
    pub async fn complete_job(
        &self,
        lease: &Lease,
        outcome: JobOutcome,
        artifacts: Option<String>,
    ) -> Result<(), CoreError> {
        ops::complete_job(self, lease, outcome, artifacts).await?;
        self.wake_workers();
        Ok(())
    }

    /// Waits until a job may be claimable (something was queued) or `timeout` passes:
    /// the long-poll of agents waits here instead of polling the store.
    ///
    /// Any change to the event log made in this process wakes it (a job queued,
    /// retried, finished or approved), so a waiter re-tries its claim after each.
    /// To not miss a wake-up between a failed claim and the wait, take
    /// [`Core::work_waiter`] before claiming.
    pub async fn wait_for_work(&self, timeout: Duration) {
        self.work_waiter().wait(timeout).await;
    }

    /// A waiter subscribed now; [`WorkWaiter::wait`] returns at the first wake-up
    /// after this call.
    pub fn work_waiter(&self) -> WorkWaiter {
        WorkWaiter {
            events: self.store().event_notifications(),
            work: self.inner.work.subscribe(),
        }
    }

    /// Wakes every waiter (and the built-in executor).
    fn wake_workers(&self) {
        self.inner.work.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Stops the built-in executor's jobs of run `run_id` now (they report
    /// `cancelled`); jobs on agents learn it from their next heartbeat.
    fn cancel_local(&self, run_id: i64) {
        let map = match self.inner.running.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (run, token) in map.values() {
            if *run == run_id {
                token.cancel();
            }
        }
    }

    /// The lock of a project's mirror.
    fn git_lock(&self, project: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = match self.inner.git_locks.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(project.to_string()).or_default().clone()
    }

    /// Handles webhook deliveries accepted before a crash but never acted upon.
    ///
    /// The payload's format belongs to the API's webhook handlers; here a delivery is
    /// read as a push if its JSON has a `ref` and an `after` (the API's normalized
    /// form, and what GitHub, Gitea, Forgejo and GitLab send), with changed paths
    /// from `changed_paths` or the `commits` list.
    async fn process_pending_deliveries(&self) {
        let pending = match self.store().pending_deliveries().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "Reading pending webhook deliveries failed.");
                return;
            }
        };
        for d in pending {
            let payload: serde_json::Value = serde_json::from_str(&d.payload).unwrap_or_default();
            let git_ref = payload
                .get("ref")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let sha = payload
                .get("after")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let deleted = sha.as_deref().is_some_and(|s| s.chars().all(|c| c == '0'));
            if d.kind != "push" && !d.kind.contains("Push") || git_ref.is_none() || deleted {
                let _ = self.store().mark_delivery_processed(d.id).await;
                continue;
            }
            let req = TriggerRequest {
                project: d.project.clone(),
                git_ref,
                sha,
                trigger: Trigger::Push,
                changed_paths: changed_paths(&payload),
                delivery_id: Some(d.id),
            };
            match self.trigger(req).await {
                Ok(_) => {
                    tracing::info!(project = %d.project, delivery = %d.delivery_id, "Processed a webhook delivery accepted before the restart.")
                }
                Err(e) => {
                    tracing::warn!(project = %d.project, delivery = %d.delivery_id, error = %e, "A webhook delivery accepted before the restart cannot start a run.");
                    let _ = self.store().mark_delivery_processed(d.id).await;
                }
            }
        }
    }
}

/// The paths a push payload's `commits` list as added, modified or removed (GitHub,
/// Gitea, Forgejo and GitLab all send them), if it has any.
fn changed_paths(payload: &serde_json::Value) -> Option<Vec<String>> {
    // The API stores deliveries normalized, with the list already made.
    if let Some(list) = payload.get("changed_paths").and_then(|v| v.as_array()) {
        return Some(
            list.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect(),
        );
    }
    let commits = payload.get("commits")?.as_array()?;
    let mut out: Vec<String> = Vec::new();
    for c in commits {
        for key in ["added", "modified", "removed"] {
            for p in c.get(key).and_then(|v| v.as_array()).into_iter().flatten() {
                if let Some(p) = p.as_str() {
                    out.push(p.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    (!out.is_empty()).then_some(out)
}

/// A subscription to "work may be claimable"; see [`Core::work_waiter`].
#[derive(Debug)]
pub struct WorkWaiter {
    events: tokio::sync::broadcast::Receiver<i64>,
    work: tokio::sync::watch::Receiver<u64>,
}

impl WorkWaiter {
    /// Returns at the next wake-up or after `timeout`.
    pub async fn wait(mut self, timeout: Duration) {
        tokio::select! {
            _ = self.events.recv() => {}
            _ = self.work.changed() => {}
            () = tokio::time::sleep(timeout) => {}
        }
    }
}

impl CoreTasks {
    /// Waits for every loop to stop (after the shutdown token was cancelled).
    pub async fn join(self) {
        for h in self.handles {
            if let Err(e) = h.await
                && e.is_panic()
            {
                tracing::error!(error = %e, "A loop of the server core panicked.");
            }
        }
    }

    /// Stops every loop at once, as a crash would: running built-in jobs are killed
    /// and report nothing (the next start marks them interrupted). For tests and
    /// emergencies; `ferry serve` cancels the shutdown token and calls
    /// [`CoreTasks::join`].
    pub async fn abort(self) {
        self.kill.cancel();
        for h in &self.handles {
            h.abort();
        }
        for h in self.handles {
            let _ = h.await;
        }
    }
}
