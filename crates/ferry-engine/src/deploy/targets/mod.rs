//! Deploy targets: where a release's instances run.
//!
//! Each target is a component behind [`Target`]: it starts one instance of a release,
//! stops one, tells whether one still runs, and sweeps away instances of a service it
//! no longer knows about (after a crash). [`AnyTarget`] dispatches to the three
//! implementations, picked by the environment's `target`:
//! - [`process::ProcessTarget`]: local processes supervised by Ferry;
//! - [`docker::DockerTarget`]: containers on a Docker engine, local or over SSH;
//! - [`ssh::SshTarget`]: hosts reached over SSH, the release run as a systemd unit or
//!   through the host's Docker.
//!
//! Targets know nothing of strategies or the proxy: the deploy engine asks for
//! instances, checks their health over HTTP at [`Instance::addr`], and moves traffic.

pub mod docker;
pub mod process;
pub mod ssh;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What a target needs to start one instance.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// The service (`deploy.name`).
    pub service: String,
    /// The environment.
    pub environment: String,
    /// The release name, `v{n}`.
    pub release: String,
    /// 0, 1, … within the release in this environment; with the release it makes the
    /// instance's name unique (`{service}-{environment}-{release}-{index}`), but a
    /// replacement after a crash may reuse an index, so targets must tolerate (remove)
    /// a leftover with the same name.
    pub index: u32,
    /// What runs.
    pub artifact: Artifact,
    /// `command` for a process or an ssh/systemd unit (run by `sh -c` in the release's
    /// directory); for an image, None runs the image's own entrypoint.
    pub command: Option<String>,
    /// The port the service listens on inside its container (`deploy.port`). Process
    /// and ssh targets choose a free port themselves and pass it as `PORT`.
    pub port: Option<u16>,
    /// The environment variables, secrets resolved (never log them).
    pub env: BTreeMap<String, String>,
    /// The remote host, for `ssh` and remote `docker` targets; None: local.
    pub host: Option<ferry_config::model::Host>,
    /// The path the health check probes (the target may use it for the container's
    /// own health check).
    pub health_path: String,
}

/// The release's runnable artifact, as a target receives it.
#[derive(Debug, Clone)]
pub enum Artifact {
    /// A container image reference.
    Image(String),
    /// A tarball, with a local copy unpacked.
    Tarball {
        /// The tar file (for uploading to remote hosts).
        file: PathBuf,
        /// Where it is unpacked locally (the process target runs from here).
        dir: PathBuf,
        /// Its digest `sha256:<hex>` (remote hosts keep one copy per digest).
        digest: String,
    },
}

/// A running instance, as recorded in the store (JSON) to stop or adopt it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// A name unique per target: `{service}-{environment}-{release}-{index}`.
    pub name: String,
    /// Where the proxy and health checks reach it.
    pub addr: SocketAddr,
    /// The release name it runs.
    pub release: String,
    /// Target-specific handle: a pid, a container id, a unit name and host.
    pub handle: serde_json::Value,
}

/// Why a target could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Starting failed; the message says what to fix (e.g. the image does not exist).
    #[error("{0}")]
    Start(String),
    /// Stopping failed.
    #[error("{0}")]
    Stop(String),
    /// The engine, host or daemon could not be reached.
    #[error("{0}")]
    Unreachable(String),
}

/// Where instances run. Implementations must be idempotent where noted: a deploy that
/// crashed will ask again.
pub trait Target: Send + Sync {
    /// Starts one instance and returns once it has been started (not necessarily
    /// ready: the engine probes its health). A leftover with the same name is removed
    /// first.
    fn start(
        &self,
        spec: &InstanceSpec,
    ) -> impl Future<Output = Result<Instance, TargetError>> + Send;

    /// Stops an instance: SIGTERM (or the engine's equivalent), then a kill after
    /// `grace`. Stopping one that is already gone succeeds.
    fn stop(
        &self,
        instance: &Instance,
        grace: Duration,
    ) -> impl Future<Output = Result<(), TargetError>> + Send;

    /// Whether the instance is still running (not whether it is healthy).
    fn alive(&self, instance: &Instance) -> impl Future<Output = bool> + Send;

    /// Stops every instance of `service` in `environment` that is not in `keep`
    /// (leftovers of a crashed deploy). Returns the names stopped.
    fn sweep(
        &self,
        service: &str,
        environment: &str,
        keep: &[Instance],
    ) -> impl Future<Output = Result<Vec<String>, TargetError>> + Send;

    /// Called after a deploy's switch, once the old release's instances are stopped
    /// (or kept warm): clears away what no instance uses any more, such as releases
    /// unpacked on hosts, and never what a running instance uses. A failure is logged
    /// and does not fail the deploy. By default there is nothing to clear.
    fn after_switch(&self) -> impl Future<Output = Result<(), TargetError>> + Send {
        async { Ok(()) }
    }
}

/// One of the targets, by the environment's `target`.
#[derive(Debug, Clone)]
pub enum AnyTarget {
    /// Local processes.
    Process(process::ProcessTarget),
    /// Docker.
    Docker(docker::DockerTarget),
    /// SSH hosts.
    Ssh(ssh::SshTarget),
}

impl Target for AnyTarget {
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance, TargetError> {
        match self {
            AnyTarget::Process(t) => t.start(spec).await,
            AnyTarget::Docker(t) => t.start(spec).await,
            AnyTarget::Ssh(t) => t.start(spec).await,
        }
    }

    async fn stop(&self, instance: &Instance, grace: Duration) -> Result<(), TargetError> {
        match self {
            AnyTarget::Process(t) => t.stop(instance, grace).await,
            AnyTarget::Docker(t) => t.stop(instance, grace).await,
            AnyTarget::Ssh(t) => t.stop(instance, grace).await,
        }
    }

    async fn alive(&self, instance: &Instance) -> bool {
        match self {
            AnyTarget::Process(t) => t.alive(instance).await,
            AnyTarget::Docker(t) => t.alive(instance).await,
            AnyTarget::Ssh(t) => t.alive(instance).await,
        }
    }

    async fn sweep(
        &self,
        service: &str,
        environment: &str,
        keep: &[Instance],
    ) -> Result<Vec<String>, TargetError> {
        match self {
            AnyTarget::Process(t) => t.sweep(service, environment, keep).await,
            AnyTarget::Docker(t) => t.sweep(service, environment, keep).await,
            AnyTarget::Ssh(t) => t.sweep(service, environment, keep).await,
        }
    }

    async fn after_switch(&self) -> Result<(), TargetError> {
        match self {
            AnyTarget::Process(t) => t.after_switch().await,
            AnyTarget::Docker(t) => t.after_switch().await,
            AnyTarget::Ssh(t) => t.after_switch().await,
        }
    }
}

/// The instance name for a spec: `{service}-{environment}-{release}-{index}`.
pub fn instance_name(spec: &InstanceSpec) -> String {
    format!(
        "{}-{}-{}-{}",
        spec.service, spec.environment, spec.release, spec.index
    )
}
