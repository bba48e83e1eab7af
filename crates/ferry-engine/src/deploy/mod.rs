//! Deploys: releases, strategies, the deploy reconciler and the proxy's routes.
//!
//! [`Deployer`] is the handle the server core, the API and pipeline jobs use. Desired
//! state lives in the store (deploys queued, the live release of each environment);
//! the loop started by [`Deployer::start`] claims queued deploys one per service and
//! environment and carries each out phase by phase, recording every step, so that a
//! server killed at any point resumes or rolls back on restart and never leaves two
//! half-live releases.
//!
//! Target implementations live in [`targets`]. The rest, in reading order:
//! `release` (a release made runnable: config, env and secrets, artifact — a `Plan`),
//! `run` (the loop and one deploy's phases), `shift` (the strategies), `switch`
//! (the commit point and the old release's end), `rollback`, `recover`
//! (crash recovery, keeping live instances running, warm releases), `routes` (the
//! proxy's table), `health` (HTTP checks) and `steps` (`migrate` and `smoke` steps).
//! `docs/deploy.md`, "How a deploy runs", is the user's view of the same.

mod health;
mod recover;
mod release;
mod rollback;
mod routes;
mod run;
mod shift;
mod steps;
mod switch;
pub mod targets;

use ferry_store::BlobStore;
use ferry_store::db::{
    DbError, Deploy, DeployQuery, NewDeploy, NewRelease, Release, ReleaseArtifact, Store,
};
use ferry_types::{DeployKind, DeployState};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;
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

/// What a pre-migration hook is told about the deploy it runs in.
#[derive(Debug, Clone)]
pub struct HookContext {
    /// The deploy.
    pub deploy: Deploy,
    /// The release being deployed.
    pub release: Release,
    /// The release's env for this environment, secrets resolved (never log it).
    pub env: BTreeMap<String, String>,
    /// The release's directory on this server.
    pub dir: PathBuf,
}

/// A future returned by a [`PreMigrateHook`].
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

/// Something to do before a deploy's `migrate` steps (a database backup). Hooks run
/// in the order they were added; an `Err` aborts the deploy (nothing has changed yet)
/// with the message as the reason; an `Ok` message goes into the deploy's progress.
pub trait PreMigrateHook: Send + Sync + std::fmt::Debug {
    /// The hook's name in progress lines.
    fn name(&self) -> &str;
    /// Runs the hook.
    fn run<'a>(&'a self, cx: &'a HookContext) -> HookFuture<'a>;
}

/// The deploy engine's handle; clones share everything.
#[derive(Debug, Clone)]
pub struct Deployer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    store: Store,
    blobs: BlobStore,
    data_dir: PathBuf,
    owner: String,
    config: DeployConfig,
    /// The proxy's entries per service and environment.
    routes: routes::Routes,
    /// Wakes the loop when a deploy is queued or approved here.
    wake: Notify,
    /// The deploys this server is carrying out, by id.
    controls: Mutex<HashMap<i64, Arc<Control>>>,
    /// Pre-migration hooks.
    hooks: RwLock<Vec<Arc<dyn PreMigrateHook>>>,
    /// Old instances draining before they stop (sweeps leave them alone).
    retiring: Mutex<Vec<targets::Instance>>,
}

/// How a person reaches a running deploy: cancel it, or promote a blue-green release
/// waiting for it (`auto_promote: false`).
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Fired by [`Deployer::cancel`].
    pub cancel: CancellationToken,
    /// Who cancelled it.
    pub cancelled_by: Mutex<Option<String>>,
    /// Set while a blue-green deploy waits for its promotion.
    pub waiting_promotion: AtomicBool,
    /// Who promoted it.
    pub promoted_by: Mutex<Option<String>>,
    /// Fired on promotion.
    pub promoted: Notify,
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
                routes: routes::Routes::new(config.proxy.clone()),
                config,
                wake: Notify::new(),
                controls: Mutex::new(HashMap::new()),
                hooks: RwLock::new(Vec::new()),
                retiring: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Recovers deploys cut short by a crash (resume or roll back), restores the
    /// proxy's routes from the live state, and starts the loop that claims and runs
    /// deploys and stops warm releases when their time is up.
    pub async fn start(&self, shutdown: CancellationToken) -> Result<JoinHandle<()>, DeployError> {
        recover::recover(&self.inner).await?;
        Ok(tokio::spawn(run::run_loop(self.inner.clone(), shutdown)))
    }

    /// Adds a hook run before every deploy's `migrate` steps.
    pub fn add_pre_migrate_hook(&self, hook: Arc<dyn PreMigrateHook>) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
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

    /// Where the process target keeps instance `name` of `service` in `environment`:
    /// its pid file and its output (`output.log`, the instance's log).
    pub fn instance_dir(&self, service: &str, environment: &str, name: &str) -> PathBuf {
        self.inner
            .data_dir
            .join("instances")
            .join(service)
            .join(environment)
            .join(name)
    }

    /// Stops every instance: those of live and warm releases on their targets, and
    /// every process of the `process` target (draining ones included). The live state
    /// is kept, so the next [`Deployer::start`] starts the live releases again. For
    /// taking a server out of service, and for tests.
    pub async fn stop_instances(&self) -> Result<(), DeployError> {
        recover::stop_everything(&self.inner).await
    }

    /// Stops the processes of the `process` target, which are this server's children:
    /// `ferry serve` calls it when it shuts down gracefully, so nothing it started keeps
    /// running without it. The live state is kept: the next start runs them again.
    /// (After a crash they keep running and the next start adopts them.) Containers and
    /// ssh hosts are not touched.
    pub async fn stop_processes(&self) {
        recover::stop_processes(&self.inner).await
    }

    /// The last `lines` lines of output of each live instance of `service` in
    /// `environment`. Ferry keeps the output of `process` instances (in
    /// `<data_dir>/instances/…/output.log`); for containers and ssh hosts the note says
    /// where their output is.
    pub async fn instance_output(
        &self,
        service: &str,
        environment: &str,
        lines: usize,
    ) -> Result<Vec<ferry_types::api::InstanceOutput>, DeployError> {
        let live = self
            .inner
            .store
            .live_env(service, environment)
            .await?
            .ok_or_else(|| {
                DeployError::Invalid(format!(
                    "`{service}` has no live release in `{environment}`"
                ))
            })?;
        let mut out = Vec::new();
        for instance in run::instances(&live.instances) {
            let process = instance.clone();
            let tail = tokio::task::spawn_blocking(move || {
                targets::process::ProcessTarget::last_output(&process, lines)
            })
            .await
            .ok()
            .flatten();
            let (tail, note) = match tail {
                Some(tail) => (tail, None),
                None => (
                    Vec::new(),
                    Some(format!(
                        "the output of `{0}` is kept where it runs: `docker logs ferry-{0}` on a \
                         Docker engine; on an ssh host, `~/.ferry/instances/{0}/output.log` \
                         (and `output.log.1` before it), or `journalctl -u ferry-{0}.service` \
                         under systemd",
                        instance.name
                    )),
                ),
            };
            out.push(ferry_types::api::InstanceOutput {
                instance: instance.name.clone(),
                release: instance.release.clone(),
                lines: tail,
                note,
            });
        }
        Ok(out)
    }

    /// Creates (or reuses) the release of the service declared in `req.config`.
    pub async fn create_release(&self, req: ReleaseRequest) -> Result<Release, DeployError> {
        let service = release::parse_deploy(&req.config).map_err(DeployError::Config)?;
        let ctx = release::context(
            &req.sha,
            req.branch.as_deref(),
            req.tag.as_deref(),
            req.run_id,
            &service.name,
        );
        let artifact = match (req.artifact, &service.run) {
            (Some(a), _) => a,
            (None, ferry_config::model::Run::Image(image)) => ReleaseArtifact::Image {
                reference: ferry_config::interpolate(image, &ctx)
                    .map_err(|e| DeployError::Config(format!("`deploy.image`: {e}")))?,
            },
            (None, ferry_config::model::Run::Command(_)) => {
                let Some(source) = req.source else {
                    return Err(DeployError::Invalid(format!(
                        "service `{}` runs a `command`, so its release needs a tarball: \
                         give the job's artifacts or the commit's source",
                        service.name
                    )));
                };
                let blobs = self.inner.blobs.clone();
                let path = source.clone();
                let digest = tokio::task::spawn_blocking(move || blobs.put_file(&path))
                    .await
                    .map_err(|e| DeployError::Invalid(format!("storing the tarball failed: {e}")))?
                    .map_err(|e| {
                        DeployError::Invalid(format!(
                            "cannot store {} as the release's tarball: {e}",
                            source.display()
                        ))
                    })?;
                ReleaseArtifact::Tarball {
                    digest: format!("sha256:{}", digest.to_hex()),
                }
            }
        };
        let env = release::snapshot_env(&service.env, &ctx).map_err(DeployError::Config)?;
        let created = self
            .inner
            .store
            .create_release(&NewRelease {
                project: req.project,
                service: service.name.clone(),
                sha: req.sha,
                artifact,
                config: req.config,
                env,
                run_id: req.run_id,
                created_by: req.created_by,
            })
            .await?;
        self.prune(&service.name).await;
        Ok(created)
    }

    /// Deletes releases beyond `keep_releases` (at least 10) and their unpacked
    /// directories, then the blobs nothing uses any more — their tarballs, unless a
    /// kept release or a job's artifacts name the same bytes (see `server/gc.rs`; a
    /// blob written within the last hour is kept too).
    async fn prune(&self, service: &str) {
        let keep = self.inner.config.keep_releases.max(10);
        let gone = match self.inner.store.prune_releases(service, keep).await {
            Ok(gone) => gone,
            Err(e) => {
                tracing::warn!(service, error = %e, "Pruning old releases failed; they stay.");
                return;
            }
        };
        if gone.is_empty() {
            return;
        }
        for r in &gone {
            let dir = release::release_dir(&self.inner.data_dir, service, r.number);
            let _ = std::fs::remove_dir_all(dir);
        }
        let inner = &self.inner;
        match crate::server::gc::collect_now(&inner.store, &inner.blobs, &inner.data_dir).await {
            Ok(swept) => crate::server::gc::log_freed(&swept, Some((service, gone.len()))),
            Err(e) => {
                tracing::warn!(service, error = %e, "Collecting the blobs of pruned releases failed; they stay until the next try.")
            }
        }
    }

    /// Queues a deploy (waiting for approval when the environment has `approval`).
    pub async fn deploy(&self, req: DeployRequest) -> Result<Deploy, DeployError> {
        let store = &self.inner.store;
        store.service(&req.service).await?;
        let release = match req.release {
            Some(n) => store.release(&req.service, n).await?,
            None => store
                .releases(&req.service, 1)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    DeployError::Invalid(format!(
                        "service `{}` has no release yet: run its pipeline first",
                        req.service
                    ))
                })?,
        };
        self.queue(
            &release,
            &req.environment,
            DeployKind::Deploy,
            &req.requested_by,
            req.run_id,
            req.job,
        )
        .await
    }

    async fn queue(
        &self,
        release: &Release,
        environment: &str,
        kind: DeployKind,
        by: &str,
        run_id: Option<i64>,
        job: Option<String>,
    ) -> Result<Deploy, DeployError> {
        let service = release::parse_deploy(&release.config).map_err(DeployError::Config)?;
        let Some(env) = service.environments.get(environment) else {
            let known: Vec<&str> = service.environments.keys().map(String::as_str).collect();
            return Err(DeployError::Invalid(format!(
                "service `{}` has no environment `{environment}` in release {} (it has: {})",
                release.service,
                release.name(),
                known.join(", ")
            )));
        };
        let deploy = self
            .inner
            .store
            .create_deploy(&NewDeploy {
                service: release.service.clone(),
                environment: environment.to_owned(),
                release_id: release.id,
                kind,
                requested_by: by.to_owned(),
                run_id,
                job,
                needs_approval: env.approval.is_some() && kind != DeployKind::Rollback,
            })
            .await?;
        self.inner.wake.notify_one();
        Ok(deploy)
    }

    /// Queues a deploy of the release live in `from` to `to`.
    pub async fn promote(
        &self,
        service: &str,
        from: &str,
        to: &str,
        by: &str,
    ) -> Result<Deploy, DeployError> {
        if from == to {
            return Err(DeployError::Invalid(format!(
                "cannot promote `{service}` from `{from}` to itself: name the next environment"
            )));
        }
        let store = &self.inner.store;
        store.service(service).await?;
        let live = store.live_env(service, from).await?.ok_or_else(|| {
            DeployError::Invalid(format!(
                "`{service}` has no live release in `{from}` to promote: deploy there first"
            ))
        })?;
        let release = store.release_by_id(live.release_id).await?;
        self.queue(&release, to, DeployKind::Promote, by, None, None)
            .await
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
        let store = &self.inner.store;
        store.service(service).await?;
        let live = store.live_env(service, environment).await?;
        let release = match to {
            Some(n) => store.release(service, n).await?,
            None => {
                let live = live.as_ref().ok_or_else(|| {
                    DeployError::Invalid(format!(
                        "`{service}` has never been deployed to `{environment}`: nothing to roll back"
                    ))
                })?;
                let id = match &live.previous {
                    Some(warm) => Some(warm.release_id),
                    None => store
                        .deploys(&DeployQuery {
                            service: Some(service.to_owned()),
                            environment: Some(environment.to_owned()),
                            limit: Some(200),
                            ..DeployQuery::default()
                        })
                        .await?
                        .into_iter()
                        .filter(|d| d.state == DeployState::Succeeded)
                        .map(|d| d.release_id)
                        .find(|id| *id != live.release_id),
                };
                let id = id.ok_or_else(|| {
                    DeployError::Invalid(format!(
                        "`{service}` has had only release v{} in `{environment}`: nothing to \
                         roll back to (name a release with `--to`)",
                        live.release_number
                    ))
                })?;
                store.release_by_id(id).await?
            }
        };
        if live.as_ref().is_some_and(|l| l.release_id == release.id) {
            return Err(DeployError::Invalid(format!(
                "release {} is already live in `{environment}`",
                release.name()
            )));
        }
        self.queue(&release, environment, DeployKind::Rollback, by, None, None)
            .await
    }

    /// Approves a deploy waiting for approval; for a running blue-green deploy waiting
    /// to be promoted (`auto_promote: false`), moves its traffic.
    pub async fn approve(&self, id: i64, by: &str) -> Result<Deploy, DeployError> {
        if let Some(ctl) = self.control(id)
            && ctl.waiting_promotion.load(Ordering::SeqCst)
        {
            *ctl.promoted_by.lock().unwrap_or_else(|p| p.into_inner()) = Some(by.to_owned());
            ctl.promoted.notify_one();
            return Ok(self.inner.store.deploy(id).await?);
        }
        let d = self.inner.store.approve_deploy(id, by).await?;
        self.inner.wake.notify_one();
        Ok(d)
    }

    /// Cancels a deploy that has not started; a running one is rolled back.
    pub async fn cancel(&self, id: i64, by: &str) -> Result<Deploy, DeployError> {
        let d = self.inner.store.deploy(id).await?;
        if d.state == DeployState::Running {
            let Some(ctl) = self.control(id) else {
                return Err(DeployError::Invalid(format!(
                    "deploy {id} is running on server `{}`; cancel it there",
                    d.owner.as_deref().unwrap_or("?")
                )));
            };
            *ctl.cancelled_by.lock().unwrap_or_else(|p| p.into_inner()) = Some(by.to_owned());
            ctl.cancel.cancel();
            return Ok(d);
        }
        Ok(self.inner.store.cancel_deploy(id, by).await?)
    }

    fn control(&self, id: i64) -> Option<Arc<Control>> {
        self.inner
            .controls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Waits until the deploy has ended and returns it. Polls the store (so it sees
    /// deploys carried out by other servers too): every 20 ms at first, slowing to
    /// every 250 ms.
    pub async fn wait(&self, id: i64) -> Result<Deploy, DeployError> {
        let mut every = Duration::from_millis(20);
        loop {
            let d = self.inner.store.deploy(id).await?;
            if d.state.is_finished() {
                return Ok(d);
            }
            tokio::time::sleep(every).await;
            every = (every * 3 / 2).min(Duration::from_millis(250));
        }
    }
}
