//! The container executor: a job in a container of its `image`, with its `services`
//! as sibling containers on a per-job network.
//!
//! The job container runs an idle shell as PID 1; each step is a `docker exec` in it
//! with the workspace bind-mounted at the same path as on the host. Timeouts and
//! cancellation send SIGTERM to every process in the container but PID 1
//! (`kill -TERM -1`), then SIGKILL after the grace. Images are never pulled. Everything
//! created (containers, network) carries the label `ferry.run=<run id>` and is removed
//! by [`ContainerJob::cleanup`] whatever happened.

use super::host::{Limits, StepEnd};
use super::job::JobCtx;
use super::output::{StepOutput, Stream};
use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RemoveContainerOptions,
};
use ferry_config::interpolate;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// The containers and network of one job attempt.
pub(crate) struct ContainerJob {
    docker: Docker,
    network: Option<String>,
    services: Vec<String>,
    container: Option<String>,
    has_bash: bool,
}

const KEEPALIVE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

fn connect(host: Option<&str>) -> Result<Docker, bollard::errors::Error> {
    match host {
        Some(h) => Docker::connect_with_host(h),
        None => Docker::connect_with_defaults(),
    }
}

impl ContainerJob {
    /// Connects, creates the network, starts and waits for services, starts the job
    /// container. On error, what was created is removed before returning.
    pub(crate) async fn start(j: &JobCtx<'_>, image: &str) -> Result<ContainerJob, String> {
        let where_ = j
            .run
            .opts
            .docker_host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let unreachable = |e: &dyn std::fmt::Display| {
            format!(
                "job `{}` runs in image `{image}` but the Docker engine is not reachable at {where_} ({e}): start the Docker engine (dockerd) or set DOCKER_HOST",
                j.inst.id
            )
        };
        let docker = connect(j.run.opts.docker_host.as_deref()).map_err(|e| unreachable(&e))?;
        let docker =
            crate::deploy::targets::docker::engine::answering(docker, Duration::from_secs(10))
                .await
                .map_err(|e| unreachable(&e))?;
        let mut cj = ContainerJob {
            docker,
            network: None,
            services: Vec::new(),
            container: None,
            has_bash: false,
        };
        match cj.set_up(j, image).await {
            Ok(()) => Ok(cj),
            Err(e) => {
                cj.cleanup().await;
                Err(e)
            }
        }
    }

    async fn check_image(&self, image: &str, what: &str) -> Result<(), String> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(format!(
                "{what} image `{image}` is not in the local Docker engine, and Ferry does not pull images in this version: run `docker pull {image}` (or build it), then run again"
            )),
            Err(e) => Err(format!("cannot inspect {what} image `{image}`: {e}")),
        }
    }

    async fn set_up(&mut self, j: &JobCtx<'_>, image: &str) -> Result<(), String> {
        self.check_image(image, "the job's").await?;
        let labels = HashMap::from([("ferry.run".to_string(), j.run.run_id.clone())]);
        let base = format!("ferry-{}-{}-{}", j.run.run_id, j.slug, j.attempt);
        let net = base.clone();
        self.docker
            .create_network(NetworkCreateRequest {
                name: net.clone(),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot create the network `{net}`: {e}"))?;
        self.network = Some(net.clone());
        let endpoint = |alias: Option<&str>| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                net.clone(),
                EndpointSettings {
                    aliases: alias.map(|a| vec![a.to_string()]),
                    ..Default::default()
                },
            )])),
        };

        for (name, svc) in &j.job.services {
            let simage = interpolate(&svc.image, &j.ectx)
                .map_err(|e| format!("service `{name}`: `image` cannot be rendered: {e}"))?;
            self.check_image(&simage, &format!("service `{name}`'s"))
                .await?;
            let mut env = Vec::new();
            for (k, v) in &svc.env {
                let v = interpolate(v, &j.ectx)
                    .map_err(|e| format!("service `{name}`: env `{k}` cannot be rendered: {e}"))?;
                env.push(format!("{k}={v}"));
            }
            let body = ContainerCreateBody {
                image: Some(simage.clone()),
                env: Some(env),
                cmd: svc.command.clone(),
                labels: Some(labels.clone()),
                host_config: Some(HostConfig {
                    network_mode: Some(net.clone()),
                    ..Default::default()
                }),
                networking_config: Some(endpoint(Some(name))),
                ..Default::default()
            };
            let id = self
                .create_and_start(&format!("{base}-svc-{}", super::util::slug(name)), body)
                .await
                .map_err(|e| format!("cannot start service `{name}` ({simage}): {e}"))?;
            self.services.push(id.clone());
            self.wait_ready(name, &id, svc, j.run.opts.service_timeout, &j.run.cancel)
                .await?;
            j.note(0, &format!("Service `{name}` is ready.")).await;
        }

        let ws = j.workspace.display().to_string();
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec![KEEPALIVE.into()]),
            working_dir: Some(ws.clone()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{ws}:{ws}")]),
                network_mode: Some(net.clone()),
                ..Default::default()
            }),
            networking_config: Some(endpoint(None)),
            ..Default::default()
        };
        let id = self
            .create_and_start(&format!("{base}-job"), body)
            .await
            .map_err(|e| format!("cannot start the job container ({image}): {e}"))?;
        self.container = Some(id.clone());
        let probe = self
            .exec_quiet(
                &id,
                vec!["sh".into(), "-c".into(), "command -v bash".into()],
            )
            .await;
        self.has_bash = matches!(probe, Ok(0));
        Ok(())
    }

    async fn create_and_start(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, bollard::errors::Error> {
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_string()),
                    ..Default::default()
                }),
                body,
            )
            .await?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            let _ = self
                .docker
                .remove_container(
                    &created.id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        ..Default::default()
                    }),
                )
                .await;
            return Err(e);
        }
        Ok(created.id)
    }

    /// Waits until every port listens and the healthcheck passes.
    async fn wait_ready(
        &self,
        name: &str,
        id: &str,
        svc: &ferry_config::Service,
        timeout: Duration,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<(), String> {
        let until = Instant::now() + timeout;
        loop {
            let info = self
                .docker
                .inspect_container(id, None::<InspectContainerOptions>)
                .await
                .map_err(|e| format!("service `{name}`: {e}"))?;
            let state = info.state.unwrap_or_default();
            if state.running != Some(true) {
                return Err(format!(
                    "service `{name}` exited (code {}) before it was ready; see `docker logs` of its container",
                    state.exit_code.unwrap_or(-1)
                ));
            }
            let pid = state.pid.unwrap_or(0);
            let ip = info
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|m| {
                    m.into_values()
                        .find_map(|e| e.ip_address.filter(|ip| !ip.is_empty()))
                });
            let mut ready = true;
            for port in &svc.ports {
                if !port_open(pid, ip.as_deref(), *port).await {
                    ready = false;
                    break;
                }
            }
            if ready && let Some(hc) = &svc.healthcheck {
                ready = matches!(
                    self.exec_quiet(id, vec!["sh".into(), "-c".into(), hc.clone()])
                        .await,
                    Ok(0)
                );
            }
            if ready {
                return Ok(());
            }
            if Instant::now() >= until {
                let what = match (&svc.ports.is_empty(), &svc.healthcheck) {
                    (false, Some(_)) => {
                        "its ports to accept connections and its healthcheck to pass"
                    }
                    (false, None) => "its ports to accept connections",
                    _ => "its healthcheck to pass",
                };
                return Err(format!(
                    "service `{name}` was not ready after {}s (waited for {what})",
                    timeout.as_secs()
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = cancel.cancelled() => return Err(format!("the run was cancelled while waiting for service `{name}`")),
            }
        }
    }

    /// Runs a command in a container, discarding output; returns its exit code.
    async fn exec_quiet(&self, id: &str, cmd: Vec<String>) -> Result<i64, bollard::errors::Error> {
        let exec = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    cmd: Some(cmd),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await?
        {
            while output.next().await.is_some() {}
        }
        Ok(self
            .docker
            .inspect_exec(&exec.id)
            .await?
            .exit_code
            .unwrap_or(-1))
    }

    /// Runs one step in the job container.
    pub(crate) async fn exec_step(
        &self,
        mut argv: Vec<String>,
        script: &str,
        cwd: &Path,
        env: &[(String, String)],
        limits: &Limits,
        out: &mut StepOutput,
    ) -> StepEnd {
        let Some(id) = &self.container else {
            return StepEnd::NotStarted("the job container is not running".into());
        };
        if argv.is_empty() {
            argv = if self.has_bash {
                vec![
                    "bash".into(),
                    "-eo".into(),
                    "pipefail".into(),
                    "-c".into(),
                    script.into(),
                ]
            } else {
                vec!["sh".into(), "-e".into(), "-c".into(), script.into()]
            };
        }
        if !cwd.is_dir() {
            return StepEnd::NotStarted(format!(
                "the working directory {} does not exist (was the workspace deleted?)",
                cwd.display()
            ));
        }
        let opts = CreateExecOptions {
            cmd: Some(argv),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: Some(cwd.display().to_string()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = match self.docker.create_exec(id, opts).await {
            Ok(e) => e,
            Err(e) => {
                return StepEnd::NotStarted(format!("cannot start the step in the container: {e}"));
            }
        };
        let start = StartExecOptions {
            output_capacity: Some(64 * 1024),
            ..Default::default()
        };
        let mut output = match self.docker.start_exec(&exec.id, Some(start)).await {
            Ok(StartExecResults::Attached { output, .. }) => output,
            Ok(StartExecResults::Detached) => {
                return StepEnd::NotStarted("the exec started detached".into());
            }
            Err(e) => {
                return StepEnd::NotStarted(format!("cannot start the step in the container: {e}"));
            }
        };
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let mut stop: Option<StepEnd> = None;
        let mut kill_at: Option<Instant> = None;
        loop {
            let deadline = if stop.is_none() {
                limits.deadline.unwrap_or(far)
            } else {
                far
            };
            tokio::select! {
                item = output.next() => match item {
                    Some(Ok(bollard::container::LogOutput::StdErr { message })) => out.push(Stream::Stderr, &message).await,
                    Some(Ok(m)) => out.push(Stream::Stdout, &m.into_bytes()).await,
                    Some(Err(e)) => {
                        out.note(&format!("reading the step's output failed: {e}")).await;
                        break;
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(deadline), if stop.is_none() && limits.deadline.is_some() => {
                    stop = Some(StepEnd::TimedOut);
                    self.signal_all(id, "TERM").await;
                    kill_at = Some(Instant::now() + limits.grace);
                }
                () = limits.cancel.cancelled(), if stop.is_none() => {
                    stop = Some(StepEnd::Cancelled);
                    self.signal_all(id, "TERM").await;
                    kill_at = Some(Instant::now() + limits.grace);
                }
                () = tokio::time::sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() => {
                    self.signal_all(id, "KILL").await;
                    kill_at = None;
                }
            }
        }
        if let Some(end) = stop {
            return end;
        }
        match self.docker.inspect_exec(&exec.id).await {
            Ok(i) => StepEnd::Exited(i.exit_code.and_then(|c| i32::try_from(c).ok()).unwrap_or(1)),
            Err(e) => StepEnd::NotStarted(format!("cannot read the step's exit code: {e}")),
        }
    }

    /// Signals every process of the job container except its PID 1.
    async fn signal_all(&self, id: &str, sig: &str) {
        let _ = self
            .exec_quiet(
                id,
                vec!["sh".into(), "-c".into(), format!("kill -{sig} -1")],
            )
            .await;
    }

    /// Removes the job container, the services and the network. Never fails: problems
    /// are logged as warnings.
    pub(crate) async fn cleanup(&self) {
        let rm = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        for id in self.container.iter().chain(self.services.iter()) {
            if let Err(e) = self.docker.remove_container(id, Some(rm.clone())).await {
                tracing::warn!(container = %id, error = %e, "Removing a job container failed.");
            }
        }
        if let Some(net) = &self.network
            && let Err(e) = self.docker.remove_network(net).await
        {
            tracing::warn!(network = %net, error = %e, "Removing a job network failed.");
        }
    }
}

/// Whether `port` accepts TCP connections in the container.
///
/// With a local engine the container's network namespace is read through
/// `/proc/<pid>/net/tcp{,6}` (a listening socket on the port), which needs no packet on
/// any network; otherwise a connection to the container's address is tried.
async fn port_open(pid: i64, ip: Option<&str>, port: u16) -> bool {
    if pid > 0 {
        let mut readable = false;
        for file in ["tcp", "tcp6"] {
            if let Ok(text) = tokio::fs::read_to_string(format!("/proc/{pid}/net/{file}")).await {
                readable = true;
                if listens(&text, port) {
                    return true;
                }
            }
        }
        if readable {
            return false;
        }
    }
    let Some(ip) = ip else { return false };
    let addr = format!("{ip}:{port}");
    tokio::task::spawn_blocking(move || {
        addr.parse::<std::net::SocketAddr>().is_ok_and(|a| {
            std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// Whether a `/proc/net/tcp` table has a socket in state LISTEN (0A) on `port`.
fn listens(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        let local = f.nth(1).unwrap_or("");
        let state = f.nth(1).unwrap_or("");
        state == "0A"
            && local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                == Some(port)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_listening_ports_from_proc() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n";
        assert!(super::listens(table, 80));
        assert!(!super::listens(table, 8080));
    }
}
