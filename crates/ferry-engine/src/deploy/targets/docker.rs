//! The `docker` target: one container per instance on a Docker engine, the local one
//! or one on each of the environment's `hosts`, reached through a unix socket that the
//! system `ssh` client forwards to the host's `/var/run/docker.sock` ([`engine`]).
//!
//! A container is named `ferry-{service}-{environment}-{release}-{index}`, carries the
//! labels `ferry.service`, `ferry.environment`, `ferry.release` and `ferry.instance`,
//! gets the spec's env plus `PORT`, a restart policy, resource limits and (unless its
//! image has one) a health check probing the health path with the image's `wget` or
//! `curl`. The container port is published on a port Docker picks, on 127.0.0.1 for
//! the local engine and on every address of a remote host, and read back for
//! [`Instance::addr`]. Images are never pulled: they must be in the engine.

pub mod engine;

use super::ssh::client::{SshClient, host_label, sh_quote};
use super::{Artifact, Instance, InstanceSpec, Target, TargetError, instance_name};
use crate::deploy::SshConfig;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use engine::Engines;
use ferry_config::model::Host;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The restart policy of instance containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// `unless-stopped`: restarted after a crash and after the engine restarts (a host
    /// reboot), until Ferry stops it. The default: a live release survives reboots.
    UnlessStopped,
    /// `on-failure` with at most this many restarts: a crash-looping release ends up
    /// stopped, but is not brought back after an engine restart.
    OnFailure(u32),
}

/// Settings of the docker target; [`Default`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// The local engine's address (`DeployConfig::docker_host`); None: `DOCKER_HOST`
    /// or the default socket. Used when `hosts` is empty.
    pub docker_host: Option<String>,
    /// The environment's `hosts`: remote engines, reached over SSH. Empty: local.
    pub hosts: Vec<Host>,
    /// How to log in to `hosts`.
    pub ssh: SshConfig,
    /// The engine's socket on remote hosts (default `/var/run/docker.sock`); the SSH
    /// user must be allowed to use it (root, or the `docker` group).
    pub remote_socket: String,
    /// Where published ports are reached, instead of 127.0.0.1 (local engine) or the
    /// host's address (remote engines). Needed when the engine's ports are not on the
    /// address Ferry logs in to, e.g. an engine reached through a bastion.
    pub publish_addr: Option<IpAddr>,
    /// The restart policy (default [`Restart::UnlessStopped`]).
    pub restart: Restart,
    /// Memory limit in bytes (default 1 GiB); None: unlimited.
    pub memory_bytes: Option<i64>,
    /// CPU limit in CPUs (e.g. 0.5); None (default): unlimited.
    pub cpus: Option<f64>,
    /// Process limit (default 4096), against fork bombs and thread leaks.
    pub pids_limit: Option<i64>,
    /// How often the container's own health check runs (default 10 s).
    pub health_interval: Duration,
    /// How long leftovers get to stop (a replaced container of the same name, sweeps);
    /// default 5 s.
    pub leftover_grace: Duration,
    /// Connecting to an engine (default 10 s).
    pub connect_timeout: Duration,
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions {
            docker_host: None,
            hosts: Vec::new(),
            ssh: SshConfig::default(),
            remote_socket: "/var/run/docker.sock".into(),
            publish_addr: None,
            restart: Restart::UnlessStopped,
            memory_bytes: Some(1 << 30),
            cpus: None,
            pids_limit: Some(4096),
            health_interval: Duration::from_secs(10),
            leftover_grace: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The `docker` target.
#[derive(Debug, Clone)]
pub struct DockerTarget {
    inner: Arc<Inner>,
}

impl Default for DockerTarget {
    /// The local engine with [`DockerOptions::default`].
    fn default() -> Self {
        DockerTarget::new(DockerOptions::default())
    }
}

#[derive(Debug)]
struct Inner {
    opts: DockerOptions,
    engines: Engines,
}

fn is_status(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

fn host_json(host: Option<&Host>) -> serde_json::Value {
    match host {
        None => serde_json::Value::Null,
        Some(h) => serde_json::json!({ "user": h.user, "host": h.host, "port": h.port }),
    }
}

fn host_of(instance: &Instance) -> Option<Host> {
    let h = instance.handle.get("host")?;
    Some(Host {
        user: h.get("user").and_then(|u| u.as_str()).map(String::from),
        host: h.get("host")?.as_str()?.to_string(),
        port: u16::try_from(h.get("port")?.as_u64()?).ok()?,
    })
}

fn container_name(instance: &str) -> String {
    format!("ferry-{instance}")
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The health check: the health path over HTTP with the image's `wget` or `curl`;
/// passes when the image has neither (Ferry's own probe still gates traffic).
fn health_command(port: u16, path: &str) -> String {
    let url = sh_quote(&format!("http://127.0.0.1:{port}{path}"));
    format!(
        "if command -v wget >/dev/null 2>&1; then exec wget -q -O /dev/null {url}; elif command -v curl >/dev/null 2>&1; then exec curl -fsS -o /dev/null {url}; else exit 0; fi"
    )
}

impl DockerTarget {
    /// The target for an environment's `hosts` (empty: the local engine at
    /// `config.docker_host`), logging in to hosts as `config.ssh` says; the other
    /// settings are [`DockerOptions::default`].
    pub fn from_config(hosts: &[Host], config: &crate::deploy::DeployConfig) -> DockerTarget {
        DockerTarget::new(DockerOptions {
            docker_host: config.docker_host.clone(),
            hosts: hosts.to_vec(),
            ssh: config.ssh.clone(),
            ..DockerOptions::default()
        })
    }

    /// A target with `opts`. Engines are connected on first use.
    pub fn new(opts: DockerOptions) -> DockerTarget {
        let ssh = SshClient::new(opts.ssh.clone(), opts.connect_timeout);
        let engines = Engines::new(
            opts.docker_host.clone(),
            opts.remote_socket.clone(),
            ssh,
            opts.connect_timeout,
        );
        DockerTarget {
            inner: Arc::new(Inner { opts, engines }),
        }
    }

    fn where_(host: Option<&Host>) -> String {
        match host {
            None => "the local Docker engine".into(),
            Some(h) => format!("the Docker engine on {}", host_label(h)),
        }
    }

    /// Stops (after `grace`) and removes a container; gone already is fine.
    async fn remove(
        docker: &Docker,
        name: &str,
        grace: Duration,
        host: Option<&Host>,
    ) -> Result<(), TargetError> {
        let t = i32::try_from(grace.as_secs_f64().ceil() as u64).unwrap_or(i32::MAX);
        match docker
            .stop_container(
                name,
                Some(StopContainerOptions {
                    t: Some(t),
                    signal: None,
                }),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) if is_status(&e, 304) => {}
            Err(e) => {
                return Err(TargetError::Stop(format!(
                    "cannot stop container `{name}` on {}: {e}",
                    Self::where_(host)
                )));
            }
        }
        match docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
            Err(e) => Err(TargetError::Stop(format!(
                "cannot remove container `{name}` on {}: {e}",
                Self::where_(host)
            ))),
        }
    }

    fn host_config(&self, port: u16, remote: bool) -> HostConfig {
        let o = &self.inner.opts;
        let bind = if remote { "0.0.0.0" } else { "127.0.0.1" };
        let restart = match o.restart {
            Restart::UnlessStopped => RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            },
            Restart::OnFailure(max) => RestartPolicy {
                name: Some(RestartPolicyNameEnum::ON_FAILURE),
                maximum_retry_count: Some(i64::from(max)),
            },
        };
        HostConfig {
            port_bindings: Some(HashMap::from([(
                format!("{port}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some(bind.into()),
                    host_port: Some(String::new()),
                }]),
            )])),
            restart_policy: Some(restart),
            memory: o.memory_bytes,
            nano_cpus: o.cpus.map(|c| (c * 1e9) as i64),
            pids_limit: o.pids_limit,
            ..Default::default()
        }
    }

    /// The host port Docker published `port` on.
    async fn published_port(
        docker: &Docker,
        id: &str,
        port: u16,
    ) -> Result<Option<u16>, bollard::errors::Error> {
        let info = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await?;
        Ok(info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|mut p| p.remove(&format!("{port}/tcp")))
            .flatten()
            .and_then(|b| {
                b.into_iter()
                    .find_map(|b| b.host_port.and_then(|p| p.parse().ok()))
            }))
    }

    async fn address(&self, host: Option<&Host>, port: u16) -> Result<SocketAddr, TargetError> {
        if let Some(ip) = self.inner.opts.publish_addr {
            return Ok(SocketAddr::new(ip, port));
        }
        let Some(h) = host else {
            return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        };
        if let Ok(ip) = h.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let name = h.host.clone();
        let found = tokio::task::spawn_blocking(move || {
            std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port)).map(|mut a| a.next())
        })
        .await;
        match found {
            Ok(Ok(Some(a))) => Ok(a),
            _ => Err(TargetError::Unreachable(format!(
                "cannot resolve host `{}` to an address for the proxy to reach its containers",
                h.host
            ))),
        }
    }
}

impl Target for DockerTarget {
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance, TargetError> {
        let name = instance_name(spec);
        let image = match &spec.artifact {
            Artifact::Image(i) => i.clone(),
            Artifact::Tarball { .. } => {
                return Err(TargetError::Start(format!(
                    "release `{}` of `{}` is a tarball, but the `docker` target runs images: give the service an `image`, or use `target: process` or `target: ssh`",
                    spec.release, spec.service
                )));
            }
        };
        let Some(port) = spec.port else {
            return Err(TargetError::Start(format!(
                "service `{}` runs image `{image}` without `port`: set `deploy.port` to the port it listens on in its container",
                spec.service
            )));
        };
        let host = spec.host.as_ref();
        let docker = self.inner.engines.get(host).await?;
        let where_ = Self::where_(host);
        let image_info = match docker.inspect_image(&image).await {
            Ok(i) => i,
            Err(e) if is_status(&e, 404) => {
                return Err(TargetError::Start(format!(
                    "image `{image}` is not in {where_}, and Ferry does not pull images in this version: build or `docker pull {image}` there, then deploy again"
                )));
            }
            Err(e) => {
                return Err(TargetError::Unreachable(format!(
                    "cannot inspect image `{image}` in {where_}: {e}"
                )));
            }
        };
        let cname = container_name(&name);
        Self::remove(&docker, &cname, self.inner.opts.leftover_grace, host).await?;

        let mut env: Vec<String> = spec
            .env
            .iter()
            .filter(|(k, _)| k.as_str() != "PORT")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.push(format!("PORT={port}"));
        let labels = HashMap::from([
            ("ferry.service".to_string(), spec.service.clone()),
            ("ferry.environment".to_string(), spec.environment.clone()),
            ("ferry.release".to_string(), spec.release.clone()),
            ("ferry.instance".to_string(), name.clone()),
        ]);
        let image_has_healthcheck = image_info
            .config
            .as_ref()
            .and_then(|c| c.healthcheck.as_ref())
            .and_then(|h| h.test.as_ref())
            .is_some_and(|t| t.first().is_some_and(|t| t != "NONE"));
        let interval = self.inner.opts.health_interval;
        let healthcheck = (!image_has_healthcheck).then(|| HealthConfig {
            test: Some(vec![
                "CMD-SHELL".into(),
                health_command(port, &spec.health_path),
            ]),
            interval: Some(nanos(interval)),
            timeout: Some(nanos(interval.min(Duration::from_secs(5)))),
            retries: Some(3),
            start_period: Some(nanos(Duration::from_secs(30))),
            ..Default::default()
        });
        let (entrypoint, cmd) = match &spec.command {
            Some(c) => (
                Some(vec!["/bin/sh".to_string(), "-c".to_string()]),
                Some(vec![c.clone()]),
            ),
            None => (None, None),
        };
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            env: Some(env),
            entrypoint,
            cmd,
            labels: Some(labels),
            exposed_ports: Some(vec![format!("{port}/tcp")]),
            healthcheck,
            host_config: Some(self.host_config(port, host.is_some())),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(cname.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| {
                TargetError::Start(format!(
                    "cannot create container `{cname}` from `{image}` in {where_}: {e}"
                ))
            })?;
        let fail = |what: String| async {
            let _ = Self::remove(&docker, &created.id, Duration::ZERO, host).await;
            TargetError::Start(what)
        };
        if let Err(e) = docker.start_container(&created.id, None).await {
            return Err(fail(format!("cannot start container `{cname}` in {where_}: {e}")).await);
        }
        let published = match Self::published_port(&docker, &created.id, port).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(fail(format!(
                    "container `{cname}` in {where_} started, but Docker published no host port for its port {port}"
                ))
                .await);
            }
            Err(e) => {
                return Err(fail(format!(
                    "cannot inspect container `{cname}` in {where_}: {e}"
                ))
                .await);
            }
        };
        let addr = self.address(host, published).await?;
        tracing::info!(instance = %name, container = %created.id, %addr, "Started a container.");
        Ok(Instance {
            name,
            addr,
            release: spec.release.clone(),
            handle: serde_json::json!({
                "container": created.id,
                "host": host_json(host),
            }),
        })
    }

    async fn stop(&self, instance: &Instance, grace: Duration) -> Result<(), TargetError> {
        let host = host_of(instance);
        let docker = self.inner.engines.get(host.as_ref()).await?;
        // By name: a handle from before a restart may name a container that was
        // replaced; the name is what the instance is.
        Self::remove(
            &docker,
            &container_name(&instance.name),
            grace,
            host.as_ref(),
        )
        .await?;
        tracing::info!(instance = %instance.name, "Stopped a container.");
        Ok(())
    }

    async fn alive(&self, instance: &Instance) -> bool {
        let host = host_of(instance);
        let Ok(docker) = self.inner.engines.get(host.as_ref()).await else {
            return false;
        };
        match docker
            .inspect_container(
                &container_name(&instance.name),
                None::<InspectContainerOptions>,
            )
            .await
        {
            Ok(info) => info.state.and_then(|s| s.running) == Some(true),
            Err(_) => false,
        }
    }

    async fn sweep(
        &self,
        service: &str,
        environment: &str,
        keep: &[Instance],
    ) -> Result<Vec<String>, TargetError> {
        let hosts: Vec<Option<&Host>> = if self.inner.opts.hosts.is_empty() {
            vec![None]
        } else {
            self.inner.opts.hosts.iter().map(Some).collect()
        };
        let mut stopped = Vec::new();
        let mut unreachable = Vec::new();
        for host in hosts {
            let docker = match self.inner.engines.get(host).await {
                Ok(d) => d,
                Err(e) => {
                    unreachable.push(e.to_string());
                    continue;
                }
            };
            let filters = HashMap::from([(
                "label".to_string(),
                vec![
                    format!("ferry.service={service}"),
                    format!("ferry.environment={environment}"),
                ],
            )]);
            let list = docker
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filters),
                    ..Default::default()
                }))
                .await;
            let list = match list {
                Ok(l) => l,
                Err(e) => {
                    unreachable.push(format!(
                        "cannot list containers in {}: {e}",
                        Self::where_(host)
                    ));
                    continue;
                }
            };
            let here = host.map(host_label);
            for c in list {
                let Some(inst) = c.labels.as_ref().and_then(|l| l.get("ferry.instance")) else {
                    continue;
                };
                let kept = keep.iter().any(|k| {
                    &k.name == inst
                        && match (host_of(k), &here) {
                            (Some(h), Some(w)) => &host_label(&h) == w,
                            (None, None) => true,
                            _ => false,
                        }
                });
                if kept {
                    continue;
                }
                let id = c.id.clone().unwrap_or_else(|| container_name(inst));
                Self::remove(&docker, &id, self.inner.opts.leftover_grace, host).await?;
                tracing::info!(instance = %inst, "Swept a leftover container.");
                stopped.push(inst.clone());
            }
        }
        if !unreachable.is_empty() {
            return Err(TargetError::Unreachable(format!(
                "swept {} leftover container(s) of `{service}` in `{environment}`, but could not check every engine: {}",
                stopped.len(),
                unreachable.join("; ")
            )));
        }
        Ok(stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_check_quotes_the_url() {
        let c = health_command(8080, "/health?x='1'");
        assert!(
            c.contains(r"'http://127.0.0.1:8080/health?x='\''1'\'''"),
            "{c}"
        );
    }
}
