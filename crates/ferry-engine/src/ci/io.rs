//! What differs between running a job on the server and on a remote agent.
//!
//! [`super::execute`] runs one claimed job; everything it needs from outside its own
//! machine goes through a [`JobIo`]: the commit's source, the artifacts of the jobs it
//! needs, storing its own artifacts, its log lines and its lease. The server's built-in
//! executor implements it over the store and the blob store (`server::LocalIo`);
//! `ferry agent` implements it over HTTP with the API client. Caches are not part of
//! it: a cache lives on the machine that runs the job ([`super::ExecOptions::cache_dir`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// The future every [`JobIo`] method returns.
pub type IoFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, JobIoError>> + Send + 'a>>;

/// Why a [`JobIo`] call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobIoError {
    /// The executor no longer holds the job's lease (it expired and the job went to
    /// someone else, or the job ended): stop working on it and report nothing.
    #[error("the lease on the job is no longer held")]
    LeaseLost,
    /// Anything else (network, disk, server); the text says what.
    #[error("{0}")]
    Other(String),
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Heartbeat {
    /// The run was cancelled: [`super::execute`] stops the job's steps and reports it
    /// `cancelled`.
    pub cancel_requested: bool,
}

/// The outside world of one job attempt, as [`super::execute`] sees it.
///
/// Object safe and `Send + Sync`: pass it as `Arc<dyn JobIo>`. Methods are called from
/// several tasks at once (log lines and heartbeats flow while the steps run). Blocking
/// work inside an implementation belongs in `tokio::task::spawn_blocking`.
///
/// Call order: [`JobIo::source`] first; [`JobIo::fetch_artifact`] for each needed job
/// with artifacts, before the steps; [`JobIo::append_log`] and [`JobIo::heartbeat`]
/// throughout (heartbeats every [`super::ExecOptions::heartbeat`]);
/// [`JobIo::store_artifact`] at most once, after the steps passed. The result itself
/// is not reported here: [`super::execute`] returns it, and the caller reports it
/// (locally `Core::complete_job`, remotely the API's result call) — unless the outcome
/// says the lease was lost.
pub trait JobIo: Send + Sync {
    /// A tar archive of the job's commit (as `git archive` makes it). `scratch` is a
    /// path the implementation may write the archive to; the returned path is the one
    /// to unpack (a cached archive may be returned instead of writing `scratch`). The
    /// file must stay until the job ends.
    fn source<'a>(&'a self, scratch: &'a Path) -> IoFuture<'a, PathBuf>;

    /// Writes the artifact blob with digest `digest` (`sha256:<hex>`, from
    /// [`super::JobSpec::artifacts`]) to the file `dest`.
    fn fetch_artifact<'a>(&'a self, digest: &'a str, dest: &'a Path) -> IoFuture<'a, ()>;

    /// Stores the tar file at `path` (this job's artifacts) and returns its digest
    /// `sha256:<hex>`; the caller reports the digest with the result.
    fn store_artifact<'a>(&'a self, path: &'a Path) -> IoFuture<'a, String>;

    /// Appends lines (without newlines, masked) printed by step `step` (0-based; engine
    /// notes use the step they belong to) to the job's log.
    fn append_log<'a>(&'a self, step: u32, lines: Vec<String>) -> IoFuture<'a, ()>;

    /// Renews the job's lease. [`JobIoError::LeaseLost`] stops the job without a
    /// report; other errors are retried at the next heartbeat (the lease may still
    /// expire meanwhile, which the server then handles).
    fn heartbeat(&self) -> IoFuture<'_, Heartbeat>;

    /// Releases and deploys what a job with `deploy: ENV` built, once its steps passed
    /// and its artifacts were stored, and waits until the deploy has ended. The job's
    /// result is the deploy's. Only a server can deploy: the default says so.
    fn deploy<'a>(&'a self, request: &'a JobDeploy) -> IoFuture<'a, JobDeployOutcome> {
        let _ = request;
        Box::pin(async {
            Err(JobIoError::Other(
                "deploys run on a Ferry server (`ferry up` or `ferry serve`)".into(),
            ))
        })
    }
}

/// What a job with `deploy: ENV` asks the server for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobDeploy {
    /// The environment (`deploy:` of the job).
    pub environment: String,
    /// The digest of the job's stored artifacts, which become the release's tarball;
    /// None: the release is the commit's source (or the image the steps built).
    pub artifact: Option<String>,
}

/// How a job's deploy ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobDeployOutcome {
    /// The deploy's id.
    pub deploy_id: i64,
    /// The release deployed, `v{n}`.
    pub release: String,
    /// Whether the release went live.
    pub succeeded: bool,
    /// The deploy's progress lines, for the job's log.
    pub lines: Vec<String>,
}
