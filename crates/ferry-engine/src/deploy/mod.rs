//! Deploys: releases, strategies, the deploy reconciler and the proxy's routes.
//!
//! [`Deployer`] is the handle the server core, the API and pipeline jobs use. Desired
//! state lives in the store (deploys queued, the live release of each environment);
//! the loop started by [`Deployer::start`] claims queued deploys one per service and
//! environment and carries each out phase by phase, recording every step, so that a
//! server killed at any point resumes or rolls back on restart and never leaves two
//! half-live releases.
//!
//! Target implementations live in [`target`].

pub mod target;

use ferry_store::BlobStore;
use ferry_store::db::{DbError, Deploy, Release, ReleaseArtifact, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How deploys run on this server.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// The edge proxy whose routes deploys move; None: deploys still start, check and
    /// record releases, but no traffic is routed (`ferry serve --no-proxy`).
    pub proxy: Option<ferry_proxy::Proxy>,
    /// Docker engine address for local `docker` targets (None: the default socket).
    pub docker_host: Option<String>,
    /// SSH settings for `ssh` targets and remote Docker engines.
    pub ssh: SshConfig,
    /// How long a deploy's lease lasts without renewal.
    pub lease: Duration,
    /// How long a switch waits for requests on the old release to finish.
    pub drain_timeout: Duration,
    /// SIGTERM → kill grace when stopping instances.
    pub grace: Duration,
    /// Releases kept per service (at least 10).
    pub keep_releases: usize,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            proxy: None,
            docker_host: None,
            ssh: SshConfig::default(),
            lease: Duration::from_secs(15),
            drain_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(10),
            keep_releases: 20,
        }
    }
}

/// How Ferry logs in to hosts over SSH.
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    /// The private key (`ssh -i`); None: the ssh client's defaults.
    pub identity: Option<PathBuf>,
    /// A known_hosts file to check host keys against; None: the user's.
    pub known_hosts: Option<PathBuf>,
    /// Accept a host key not yet known, and remember it (`StrictHostKeyChecking=accept-new`).
    pub accept_new_host_keys: bool,
}

/// Why a deploy operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The named thing does not exist.
    #[error("{what} `{key}` not found")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its name.
        key: String,
    },
    /// The request is not valid (an unknown environment, nothing to roll back to).
    #[error("{0}")]
    Invalid(String),
    /// The release's `ferry.yml` has no usable `deploy:` section.
    #[error("{0}")]
    Config(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] DbError),
}

/// What [`Deployer::create_release`] needs.
#[derive(Debug, Clone)]
pub struct ReleaseRequest {
    /// The project.
    pub project: String,
    /// The commit.
    pub sha: String,
    /// The `ferry.yml` text at that commit; its `deploy:` names the service.
    pub config: String,
    /// The artifact; None: a tarball is made from `source`.
    pub artifact: Option<ReleaseArtifact>,
    /// A tar file to store as the release's tarball when `artifact` is None (a job's
    /// artifacts, or the commit's source archive).
    pub source: Option<PathBuf>,
    /// Facts for rendering `${{ ferry.* }}` in `image` and `env`.
    pub branch: Option<String>,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The run that built it.
    pub run_id: Option<i64>,
    /// Who makes it.
    pub created_by: String,
}

/// What [`Deployer::deploy`] needs.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The service.
    pub service: String,
    /// The environment.
    pub environment: String,
    /// The release number; None: the newest release.
    pub release: Option<i64>,
    /// Who asks.
    pub requested_by: String,
    /// The run and job asking (a pipeline job with `deploy:`).
    pub run_id: Option<i64>,
    /// The job instance id.
    pub job: Option<String>,
}

/// The deploy engine's handle; clones share everything.
#[derive(Debug, Clone)]
pub struct Deployer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    blobs: BlobStore,
    data_dir: PathBuf,
    owner: String,
    config: DeployConfig,
}

impl Deployer {
    /// A deployer over `store`; `owner` names this server process in deploy leases.
    pub fn new(
        store: Store,
        blobs: BlobStore,
        data_dir: PathBuf,
        owner: String,
        config: DeployConfig,
    ) -> Deployer {
        Deployer {
            inner: Arc::new(Inner {
                store,
                blobs,
                data_dir,
                owner,
                config,
            }),
        }
    }

    /// Recovers deploys cut short by a crash (resume or roll back), restores the
    /// proxy's routes from the live state, and starts the loop that claims and runs
    /// deploys and stops warm releases when their time is up.
    pub async fn start(&self, shutdown: CancellationToken) -> Result<JoinHandle<()>, DeployError> {
        let _ = (
            &self.inner.store,
            &self.inner.blobs,
            &self.inner.data_dir,
            &self.inner.owner,
        );
        Ok(tokio::spawn(async move { shutdown.cancelled().await }))
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings.
    pub fn config(&self) -> &DeployConfig {
        &self.inner.config
    }

    /// The edge proxy, when this server runs one.
    pub fn proxy(&self) -> Option<&ferry_proxy::Proxy> {
        self.inner.config.proxy.as_ref()
    }

    /// Creates (or reuses) the release of the service declared in `req.config`.
    pub async fn create_release(&self, req: ReleaseRequest) -> Result<Release, DeployError> {
        let _ = req;
        Err(DeployError::Invalid("releases are not built yet".into()))
    }

    /// Queues a deploy (waiting for approval when the environment has `approval`).
    pub async fn deploy(&self, req: DeployRequest) -> Result<Deploy, DeployError> {
        let _ = req;
        Err(DeployError::Invalid("deploys are not built yet".into()))
    }

    /// Queues a deploy of the release live in `from` to `to`.
    pub async fn promote(
        &self,
        service: &str,
        from: &str,
        to: &str,
        by: &str,
    ) -> Result<Deploy, DeployError> {
        let _ = (service, from, to, by);
        Err(DeployError::Invalid("promotion is not built yet".into()))
    }

    /// Queues a deploy of an earlier release to `environment`: release `to`, or the one
    /// live before the current one. A release still warm switches back at once.
    pub async fn rollback(
        &self,
        service: &str,
        environment: &str,
        to: Option<i64>,
        by: &str,
    ) -> Result<Deploy, DeployError> {
        let _ = (service, environment, to, by);
        Err(DeployError::Invalid("rollback is not built yet".into()))
    }

    /// Approves a deploy waiting for approval.
    pub async fn approve(&self, id: i64, by: &str) -> Result<Deploy, DeployError> {
        Ok(self.inner.store.approve_deploy(id, by).await?)
    }

    /// Cancels a deploy that has not started; a running one is rolled back.
    pub async fn cancel(&self, id: i64, by: &str) -> Result<Deploy, DeployError> {
        Ok(self.inner.store.cancel_deploy(id, by).await?)
    }

    /// Waits until the deploy has ended and returns it.
    pub async fn wait(&self, id: i64) -> Result<Deploy, DeployError> {
        let _ = id;
        Err(DeployError::Invalid("deploys are not built yet".into()))
    }
}
