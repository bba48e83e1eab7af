//! Connections to Docker engines: the local one, or a remote one through a unix socket
//! that the system `ssh` client forwards to the host's `/var/run/docker.sock`.
//!
//! Connections are made on first use and kept; a forward whose `ssh` died is made
//! again on the next use.

use crate::deploy::targets::TargetError;
use crate::deploy::targets::ssh::client::{SshClient, host_label};
use bollard::Docker;
use ferry_config::model::Host;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// How long bollard waits for one API request, in seconds.
const API_TIMEOUT_SECS: u64 = 120;

/// The engines one docker target talks to.
#[derive(Debug)]
pub struct Engines {
    docker_host: Option<String>,
    remote_socket: String,
    ssh: SshClient,
    connect_timeout: Duration,
    open: tokio::sync::Mutex<HashMap<String, Engine>>,
    forwards: std::sync::atomic::AtomicU32,
}

#[derive(Debug)]
struct Engine {
    docker: Docker,
    /// The `ssh -L` process of a remote engine (killed on drop).
    forward: Option<Child>,
}

impl Engines {
    /// Engines reached at `docker_host` (local; None: `DOCKER_HOST` or the default
    /// socket) or at `remote_socket` on hosts through `ssh`.
    pub fn new(
        docker_host: Option<String>,
        remote_socket: String,
        ssh: SshClient,
        connect_timeout: Duration,
    ) -> Engines {
        Engines {
            docker_host,
            remote_socket,
            ssh,
            connect_timeout,
            open: tokio::sync::Mutex::new(HashMap::new()),
            forwards: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// A client for the engine on `host` (None: the local engine), connected and
    /// answering.
    pub async fn get(&self, host: Option<&Host>) -> Result<Docker, TargetError> {
        let key = host.map(host_label).unwrap_or_default();
        let mut open = self.open.lock().await;
        if let Some(e) = open.get_mut(&key) {
            let forward_alive = match &mut e.forward {
                None => true,
                Some(child) => matches!(child.try_wait(), Ok(None)),
            };
            if forward_alive {
                return Ok(e.docker.clone());
            }
            tracing::warn!(host = %key, "The SSH forward to a Docker engine ended; opening it again.");
            open.remove(&key);
        }
        let engine = match host {
            None => self.connect_local().await?,
            Some(h) => self.connect_remote(h).await?,
        };
        let docker = engine.docker.clone();
        open.insert(key, engine);
        Ok(docker)
    }

    async fn connect_local(&self) -> Result<Engine, TargetError> {
        let where_ = self
            .docker_host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let unreachable = |e: &dyn std::fmt::Display| {
            TargetError::Unreachable(format!(
                "the Docker engine is not reachable at {where_} ({e}): start the Docker engine (dockerd) or set the engine's address"
            ))
        };
        let docker = match &self.docker_host {
            Some(h) => Docker::connect_with_host(h),
            None => Docker::connect_with_defaults(),
        }
        .map_err(|e| unreachable(&e))?;
        let docker = answering(docker, self.connect_timeout)
            .await
            .map_err(|e| unreachable(&e))?;
        Ok(Engine {
            docker,
            forward: None,
        })
    }

    async fn connect_remote(&self, host: &Host) -> Result<Engine, TargetError> {
        let who = host_label(host);
        let n = self
            .forwards
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket: PathBuf = self.ssh.private_dir()?.join(format!("docker-{n}.sock"));
        let mut child = Command::new("ssh")
            .args(self.ssh.base_args(host, false)?)
            .args(["-nNT", "-o", "ExitOnForwardFailure=yes", "-L"])
            .arg(format!("{}:{}", socket.display(), self.remote_socket))
            .arg("--")
            .arg(&host.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                TargetError::Unreachable(format!(
                    "cannot run the `ssh` client to reach the Docker engine on {who}: {e} — install OpenSSH's client (Debian package openssh-client)"
                ))
            })?;
        let until = tokio::time::Instant::now() + self.connect_timeout + Duration::from_secs(2);
        while !socket.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err).await;
                }
                return Err(TargetError::Unreachable(format!(
                    "cannot reach the Docker engine on host {who} over SSH (ssh {status}): {} — check that the host is up, that Ferry's key and the host's key are known, and that {} exists there",
                    err.trim(),
                    self.remote_socket
                )));
            }
            if tokio::time::Instant::now() > until {
                return Err(TargetError::Unreachable(format!(
                    "cannot reach the Docker engine on host {who} over SSH: no forwarded socket after {} s",
                    (self.connect_timeout + Duration::from_secs(2)).as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let unreachable = |e: &dyn std::fmt::Display| {
            TargetError::Unreachable(format!(
                "the Docker engine on host {who} does not answer through SSH ({e}): check that dockerd runs there and that the SSH user may use {}",
                self.remote_socket
            ))
        };
        let docker = Docker::connect_with_unix(
            &socket.display().to_string(),
            API_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| unreachable(&e))?;
        let docker = answering(docker, self.connect_timeout)
            .await
            .map_err(|e| unreachable(&e))?;
        tracing::debug!(host = %who, "Forwarded a Docker engine over SSH.");
        Ok(Engine {
            docker,
            forward: Some(child),
        })
    }
}

/// Pings the engine and settles on an API version both sides speak (an older engine
/// rejects a newer client's version), each within `t`. Container jobs use it too.
pub(crate) async fn answering(docker: Docker, t: Duration) -> Result<Docker, String> {
    let docker = match tokio::time::timeout(t, docker.negotiate_version()).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("no answer within {} s", t.as_secs())),
    };
    match tokio::time::timeout(t, docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", t.as_secs())),
    }
}
