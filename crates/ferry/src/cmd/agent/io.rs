//! [`HttpIo`]: the engine's [`JobIo`] over the server's HTTP API, for one claimed job.
//!
//! Calls that fail because the server cannot be reached are retried with backoff for a
//! while (a server restart must not fail the job); a 409 answer means the lease is
//! lost, which stops the job without a report.

use ferry_client::api::{JobDeployAnswer, JobDeployRequest, Lease, LogAppend};
use ferry_client::{Client, ClientError};
use ferry_engine::ci::{Heartbeat, IoFuture, JobDeploy, JobDeployOutcome, JobIo, JobIoError};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a transfer keeps retrying while the server is unreachable.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// How long one call of a job's deploy waits on the server before it is asked again:
/// under the server's 30 s cap and any proxy's idle timeout.
const DEPLOY_POLL: Duration = Duration::from_secs(25);

/// One job's outside world, reached through the API.
pub struct HttpIo {
    client: Client,
    lease: Lease,
    run_id: i64,
}

impl HttpIo {
    /// The I/O of the job `lease` names, of run `run_id`.
    pub fn new(client: Client, lease: Lease, run_id: i64) -> HttpIo {
        HttpIo {
            client,
            lease,
            run_id,
        }
    }
}

/// The engine's view of a client error.
fn io_error(e: ClientError) -> JobIoError {
    match e.status() {
        Some(409) => JobIoError::LeaseLost,
        _ => JobIoError::Other(match e.hint() {
            Some(h) if e.status().is_some() => format!("{e} ({h})"),
            _ => e.to_string(),
        }),
    }
}

/// Whether trying again later can help: the server was unreachable or overloaded.
pub fn transient(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. } => true,
        ClientError::Api { status, .. } => matches!(status, 502..=504),
        _ => false,
    }
}

/// Runs `call` until it succeeds, fails for good, or [`RETRY_FOR`] passes.
pub async fn retrying<T, F, Fut>(what: &str, mut call: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match call().await {
            Err(e) if transient(&e) && started.elapsed() < RETRY_FOR => {
                tracing::debug!(error = %e, "Retrying {what}.");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

impl JobIo for HttpIo {
    fn source<'a>(&'a self, scratch: &'a Path) -> IoFuture<'a, PathBuf> {
        Box::pin(async move {
            retrying("the source download", || {
                self.client.download_source(self.run_id, scratch)
            })
            .await
            .map_err(io_error)?;
            Ok(scratch.to_path_buf())
        })
    }

    fn fetch_artifact<'a>(&'a self, digest: &'a str, dest: &'a Path) -> IoFuture<'a, ()> {
        Box::pin(async move {
            retrying("an artifact download", || {
                self.client.get_blob(digest, dest)
            })
            .await
            .map(drop)
            .map_err(io_error)
        })
    }

    fn store_artifact<'a>(&'a self, path: &'a Path) -> IoFuture<'a, String> {
        Box::pin(async move {
            retrying("the artifact upload", || self.client.put_blob(path))
                .await
                .map(|stored| stored.digest)
                .map_err(io_error)
        })
    }

    fn append_log<'a>(&'a self, step: u32, lines: Vec<String>) -> IoFuture<'a, ()> {
        Box::pin(async move {
            let append = LogAppend {
                lease: self.lease.clone(),
                step,
                lines,
            };
            retrying("a log append", || self.client.append_log(&append))
                .await
                .map(drop)
                .map_err(io_error)
        })
    }

    /// The server carries the deploy out; this asks it again every [`DEPLOY_POLL`]
    /// until it has ended (the server starts one deploy per attempt however often it
    /// is asked, so a retried call cannot deploy twice).
    fn deploy<'a>(&'a self, request: &'a JobDeploy) -> IoFuture<'a, JobDeployOutcome> {
        Box::pin(async move {
            let call = JobDeployRequest {
                lease: self.lease.clone(),
                environment: request.environment.clone(),
                artifact: request.artifact.clone(),
                wait_ms: u64::try_from(DEPLOY_POLL.as_millis()).unwrap_or(u64::MAX),
            };
            loop {
                let answer = retrying("the deploy", || self.client.job_deploy(&call))
                    .await
                    .map_err(io_error)?;
                match answer {
                    JobDeployAnswer::Deploying { deploy_id } => {
                        tracing::debug!(
                            job_id = self.lease.job_id,
                            ?deploy_id,
                            "Deploy still going; asking again."
                        );
                    }
                    JobDeployAnswer::Finished {
                        deploy_id,
                        release,
                        succeeded,
                        lines,
                    } => {
                        return Ok(JobDeployOutcome {
                            deploy_id,
                            release,
                            succeeded,
                            lines,
                        });
                    }
                }
            }
        })
    }

    fn heartbeat(&self) -> IoFuture<'_, Heartbeat> {
        Box::pin(async move {
            // Not retried here: the engine calls again at the next beat, and the lease
            // outlives a few missed ones.
            let renewal = self.client.heartbeat(&self.lease).await.map_err(|e| {
                if transient(&e) {
                    tracing::warn!(job_id = self.lease.job_id, error = %e, "Heartbeat failed; trying again at the next one.");
                }
                io_error(e)
            })?;
            Ok(Heartbeat {
                cancel_requested: renewal.cancel_requested,
            })
        })
    }
}
