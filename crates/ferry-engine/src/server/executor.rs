//! The built-in executor: workers that claim jobs from the queue like agents do, and
//! run them on this machine with [`crate::ci::execute`] over [`LocalIo`].

use super::{Core, CoreError};
use crate::ci::{
    self, ExecOptions, Heartbeat, IoFuture, JobDeploy, JobDeployOutcome, JobIo, JobIoError,
};
use ferry_store::db::{ClaimedJob, DbError, JobOutcome, Lease};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where the built-in executor's workspaces go: `<data_dir>/work/server-<executor id>`,
/// apart from `ferry run`'s, so clearing it at start touches nothing else.
pub(crate) fn work_dir(config: &super::CoreConfig) -> PathBuf {
    let id: String = config
        .executor_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    config.data_dir.join("work").join(format!("server-{id}"))
}

/// How long an idle worker waits before looking at the queue again without a wake-up
/// (other processes' changes send none).
const IDLE_POLL: Duration = Duration::from_secs(2);

pub(crate) async fn worker(
    core: Core,
    n: usize,
    shutdown: CancellationToken,
    kill: CancellationToken,
) {
    let config = core.config().clone();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let waiter = core.work_waiter();
        match core
            .store()
            .claim_job(&config.executor_id, &config.builtin_labels, config.lease)
            .await
        {
            Ok(Some(claimed)) => {
                tracing::debug!(worker = n, job = %claimed.job.name, run = claimed.run.id, "Claimed a job.");
                run_claimed(&core, claimed, &shutdown, &kill).await;
            }
            Ok(None) => {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = waiter.wait(IDLE_POLL) => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "Claiming a job failed.");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

async fn run_claimed(
    core: &Core,
    claimed: ClaimedJob,
    shutdown: &CancellationToken,
    kill: &CancellationToken,
) {
    let lease = claimed.lease.clone();
    let run_id = claimed.run.id;
    let job = claimed.job.name.clone();
    let assignment = match core.assignment(claimed).await {
        Ok(a) => a,
        Err(e) => {
            let outcome = JobOutcome {
                result: ferry_types::JobResult::Failure,
                reason: Some(format!("the server cannot prepare the job: {e}")),
            };
            report(core, &lease, outcome, None).await;
            return;
        }
    };
    let spec: ci::JobSpec = (&assignment).into();
    let io: Arc<dyn JobIo> = Arc::new(LocalIo {
        core: core.clone(),
        lease: lease.clone(),
        run_id,
        job: job.clone(),
    });
    let data_dir = &core.config().data_dir;
    let opts = ExecOptions {
        work_dir: work_dir(core.config()),
        grace: core.config().grace,
        docker_host: core.config().docker_host.clone(),
        heartbeat: core.inner.options.heartbeat,
        ..ExecOptions::new(data_dir)
    };
    let cancel = CancellationToken::new();
    let _registered = Registered::new(core, lease.job_id, run_id, cancel.clone());
    let exec = ci::execute(&spec, io, &opts, None, cancel.clone());
    tokio::pin!(exec);
    // Shutdown: give the job the drain time, then stop it without a report.
    let abandoned = tokio::select! {
        o = &mut exec => Some(o),
        () = kill.cancelled() => None,
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(core.inner.options.drain).await;
        } => None,
    };
    let outcome = match abandoned {
        Some(o) => o,
        None => {
            tracing::warn!(run = run_id, job = %job, "Stopping a job at shutdown; the next start retries it.");
            cancel.cancel();
            let _ = exec.await;
            return;
        }
    };
    if outcome.lease_lost {
        tracing::warn!(run = run_id, job = %job, "Lost the lease of a running job; its result is not reported.");
        return;
    }
    let result = JobOutcome {
        result: outcome.result,
        reason: outcome.reason,
    };
    report(core, &lease, result, outcome.artifacts).await;
}

/// A running job's entry in [`super::Inner::running`], removed on drop.
struct Registered<'a> {
    core: &'a Core,
    job_id: i64,
}

impl<'a> Registered<'a> {
    fn new(core: &'a Core, job_id: i64, run_id: i64, cancel: CancellationToken) -> Self {
        if let Ok(mut map) = core.inner.running.lock() {
            map.insert(job_id, (run_id, cancel));
        }
        Registered { core, job_id }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.core.inner.running.lock() {
            map.remove(&self.job_id);
        }
    }
}

async fn report(core: &Core, lease: &Lease, outcome: JobOutcome, artifacts: Option<String>) {
    match core.complete_job(lease, outcome, artifacts).await {
        Ok(()) => {}
        Err(CoreError::Store(DbError::LeaseLost { .. })) => {
            tracing::warn!(
                job = lease.job_id,
                "A job's lease was lost before its result was reported."
            );
        }
        Err(e) => {
            tracing::error!(job = lease.job_id, error = %e, "Reporting a job's result failed; its lease will expire and it is retried.")
        }
    }
}

/// [`JobIo`] of the built-in executor: the store, the blob store and the mirror.
pub(crate) struct LocalIo {
    core: Core,
    lease: Lease,
    run_id: i64,
    job: String,
}

fn other(e: impl std::fmt::Display) -> JobIoError {
    JobIoError::Other(e.to_string())
}

fn from_core(e: CoreError) -> JobIoError {
    match e {
        CoreError::Store(DbError::LeaseLost { .. }) => JobIoError::LeaseLost,
        e => other(e),
    }
}

impl JobIo for LocalIo {
    fn source<'a>(&'a self, _scratch: &'a Path) -> IoFuture<'a, PathBuf> {
        Box::pin(async move {
            self.core
                .source_archive(self.run_id)
                .await
                .map_err(from_core)
        })
    }

    fn fetch_artifact<'a>(&'a self, digest: &'a str, dest: &'a Path) -> IoFuture<'a, ()> {
        Box::pin(async move {
            let d: ferry_store::Digest = digest.parse().map_err(other)?;
            let src = self.core.blobs().path_of(&d);
            let dest = dest.to_path_buf();
            tokio::task::spawn_blocking(move || {
                std::fs::hard_link(&src, &dest).or_else(|_| std::fs::copy(&src, &dest).map(|_| ()))
            })
            .await
            .map_err(other)?
            .map_err(|e| other(format!("artifact blob {digest}: {e}")))
        })
    }

    fn store_artifact<'a>(&'a self, path: &'a Path) -> IoFuture<'a, String> {
        Box::pin(async move {
            let blobs = self.core.blobs().clone();
            let p = path.to_path_buf();
            let d = tokio::task::spawn_blocking(move || blobs.put_file(&p))
                .await
                .map_err(other)?
                .map_err(other)?;
            Ok(d.to_string())
        })
    }

    fn append_log<'a>(&'a self, step: u32, lines: Vec<String>) -> IoFuture<'a, ()> {
        Box::pin(async move {
            self.core
                .store()
                .append_log(self.run_id, &self.job, step, lines)
                .await
                .map(|_| ())
                .map_err(other)
        })
    }

    fn heartbeat(&self) -> IoFuture<'_, Heartbeat> {
        Box::pin(async move {
            match self
                .core
                .store()
                .renew_lease(&self.lease, self.core.config().lease)
                .await
            {
                Ok(r) => Ok(Heartbeat {
                    cancel_requested: r.cancel_requested,
                }),
                Err(DbError::LeaseLost { .. }) => Err(JobIoError::LeaseLost),
                Err(e) => Err(other(e)),
            }
        })
    }

    fn deploy<'a>(&'a self, request: &'a JobDeploy) -> IoFuture<'a, JobDeployOutcome> {
        Box::pin(async move {
            self.core
                .job_deploy(self.run_id, &self.job, request)
                .await
                .map_err(from_core)
        })
    }
}
