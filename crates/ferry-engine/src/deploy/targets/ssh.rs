//! The `ssh` target: hosts reached with the system `ssh` client.
//!
//! A tarball release is uploaded once per digest and unpacked under
//! `~/.ferry/releases/<digest>/`; each instance then runs from there, either as a
//! systemd unit `ferry-<name>.service` (when logged in as root on a host whose PID 1
//! is a running systemd) or as a background process in a session of its own under a
//! small `sh` supervisor that restarts it on failure, with a pid file and a log under
//! `~/.ferry/instances/<name>/`. An image release runs in the host's Docker engine
//! (`docker run` over SSH), with the labels the `docker` target uses. Each instance
//! gets a free port on its host as `PORT`; its address is the host's.
//!
//! Hosts do not fill up: a supervised process's `output.log` is rotated past
//! [`SshTargetOptions::log_max_bytes`] (one previous file, `output.log.1`, is kept; a
//! systemd unit's output goes to the journal, which rotates itself), and after each
//! deploy's switch [`Target::after_switch`] removes the releases that no instance on
//! the host uses, but for the [`SshTargetOptions::keep_old_releases`] most recently
//! used ones.
//!
//! [`client`] runs the commands (multiplexed, batch mode); [`scripts`] holds the shell
//! scripts and describes the layout on hosts.

pub mod client;
pub mod scripts;

use super::{Artifact, Instance, InstanceSpec, Target, TargetError, instance_name};
use crate::deploy::SshConfig;
use client::{SshClient, host_label};
use ferry_config::model::Host;
use scripts::{Mode, StartScript};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Settings of the ssh target beyond [`SshConfig`]; [`Default`] gives the documented
/// defaults.
#[derive(Debug, Clone)]
pub struct SshTargetOptions {
    /// Where releases and instances live on hosts; `~/` is the login user's home.
    /// Default `~/.ferry`.
    pub remote_dir: String,
    /// Connecting and logging in (default 5 s).
    pub connect_timeout: Duration,
    /// One remote command (default 30 s).
    pub command_timeout: Duration,
    /// Uploading one release (default 10 min).
    pub upload_timeout: Duration,
    /// How long leftovers get to stop (a replaced instance of the same name, sweeps);
    /// default 5 s.
    pub leftover_grace: Duration,
    /// Run instances as systemd units where hosts allow (default true); false always
    /// runs supervised processes.
    pub systemd: bool,
    /// Where ports published by a host's Docker engine (`image` releases) are reached,
    /// instead of the host's address; None (default): the host's address.
    pub docker_publish_addr: Option<IpAddr>,
    /// The size past which a supervised process's `output.log` on its host is moved
    /// to `output.log.1` and started afresh (default 10 MiB; checked every
    /// [`scripts::LOG_CHECK_SECS`] s, so it can run over by that much output).
    pub log_max_bytes: u64,
    /// How many unpacked releases each host keeps besides those its instances use
    /// (live, warm for a rollback, or still draining), the most recently deployed
    /// first (default 3).
    pub keep_old_releases: usize,
}

impl Default for SshTargetOptions {
    fn default() -> Self {
        SshTargetOptions {
            remote_dir: "~/.ferry".into(),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(600),
            leftover_grace: Duration::from_secs(5),
            systemd: true,
            docker_publish_addr: None,
            log_max_bytes: LOG_MAX_BYTES,
            keep_old_releases: KEEP_OLD_RELEASES,
        }
    }
}

/// The `ssh` target for one environment's `hosts`.
#[derive(Debug, Clone)]
pub struct SshTarget {
    inner: Arc<Inner>,
}

impl Default for SshTarget {
    /// No hosts (sweeps visit none) and the ssh client's own identity and known_hosts.
    fn default() -> Self {
        SshTarget::new(Vec::new(), SshConfig::default())
    }
}

#[derive(Debug)]
struct Inner {
    hosts: Vec<Host>,
    client: SshClient,
    opts: SshTargetOptions,
    /// Each host's [`Mode`] for tarballs, found once.
    modes: tokio::sync::Mutex<HashMap<String, Mode>>,
    /// One lock per host and digest, so that two instances of one release on one host
    /// upload it once, while uploads to different hosts go in parallel.
    uploads: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The default of [`SshTargetOptions::log_max_bytes`]: 10 MiB.
pub const LOG_MAX_BYTES: u64 = 10 << 20;
/// The default of [`SshTargetOptions::keep_old_releases`].
pub const KEEP_OLD_RELEASES: usize = 3;

/// The ports tried are random in this range: below Linux's default range of ephemeral
/// ports (32768–60999), so that outgoing connections on the host cannot take them
/// between the check and the bind.
const PORTS: std::ops::Range<u16> = 20000..32768;

impl SshTarget {
    /// A target for `hosts` (the environment's `hosts`; `sweep` visits them all)
    /// logging in with `ssh`.
    pub fn new(hosts: Vec<Host>, ssh: SshConfig) -> SshTarget {
        SshTarget::with_options(hosts, ssh, SshTargetOptions::default())
    }

    /// The target for an environment's `hosts`, logging in as `config.ssh` says.
    pub fn from_config(hosts: &[Host], config: &crate::deploy::DeployConfig) -> SshTarget {
        SshTarget::new(hosts.to_vec(), config.ssh.clone())
    }

    /// [`SshTarget::new`] with settings.
    pub fn with_options(hosts: Vec<Host>, ssh: SshConfig, opts: SshTargetOptions) -> SshTarget {
        let client = SshClient::new(ssh, opts.connect_timeout);
        SshTarget {
            inner: Arc::new(Inner {
                hosts,
                client,
                opts,
                modes: tokio::sync::Mutex::new(HashMap::new()),
                uploads: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The hosts `sweep` visits.
    pub fn hosts(&self) -> &[Host] {
        &self.inner.hosts
    }

    async fn mode(&self, host: &Host) -> Result<Mode, TargetError> {
        if !self.inner.opts.systemd {
            return Ok(Mode::Process);
        }
        let key = host_label(host);
        let mut modes = self.inner.modes.lock().await;
        if let Some(m) = modes.get(&key) {
            return Ok(*m);
        }
        let out = self.run(host, scripts::DETECT_MODE).await?;
        let mode = if out.stdout.trim() == "systemd" {
            Mode::Systemd
        } else {
            Mode::Process
        };
        tracing::debug!(host = %key, mode = mode.as_str(), "Found how instances run on the host.");
        modes.insert(key, mode);
        Ok(mode)
    }

    async fn run(&self, host: &Host, script: &str) -> Result<client::Output, TargetError> {
        self.inner
            .client
            .run(host, script, self.inner.opts.command_timeout)
            .await
    }

    /// Uploads and unpacks the tarball unless the host has it.
    async fn ensure_release(
        &self,
        host: &Host,
        file: &std::path::Path,
        hex: &str,
    ) -> Result<(), TargetError> {
        let dir = &self.inner.opts.remote_dir;
        let lock = self
            .inner
            .uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(format!("{}\u{0}{hex}", host_label(host)))
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if self
            .run(host, &scripts::release_present(dir, hex))
            .await?
            .ok()
        {
            return Ok(());
        }
        let flags = tar_flags(file);
        let started = std::time::Instant::now();
        let out = self
            .inner
            .client
            .run_with_file(
                host,
                &scripts::unpack(dir, hex, flags),
                file,
                self.inner.opts.upload_timeout,
            )
            .await?;
        if !out.ok() {
            return Err(TargetError::Start(format!(
                "cannot unpack release `sha256:{hex}` on {}: {} — check free disk space and that `tar` is installed there",
                host_label(host),
                out.stderr
            )));
        }
        tracing::info!(host = %host_label(host), digest = %hex, elapsed_ms = started.elapsed().as_millis() as u64, "Uploaded a release.");
        Ok(())
    }
}

/// `tar` flags for the file's compression, by its magic bytes.
fn tar_flags(file: &std::path::Path) -> &'static str {
    let mut magic = [0u8; 4];
    let n = std::fs::File::open(file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut magic))
        .unwrap_or(0);
    match &magic[..n] {
        [0x1f, 0x8b, ..] => "z",
        [0x28, 0xb5, 0x2f, 0xfd] => " --zstd",
        [b'B', b'Z', b'h', ..] => "j",
        [0xfd, b'7', b'z', b'X'] => "J",
        _ => "",
    }
}

/// Port candidates for one start: random, distinct, in [`PORTS`].
fn port_candidates(n: usize) -> Vec<u16> {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut x = h.finish() | 1;
    let span = u64::from(PORTS.end - PORTS.start);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        // xorshift64: enough to spread candidates; collisions are checked on the host.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = PORTS.start + (x % span) as u16;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The address instances of `host` are reached at.
async fn resolve(host: &Host, port: u16) -> Result<SocketAddr, TargetError> {
    if let Ok(ip) = host.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let name = host.host.clone();
    let found = tokio::task::spawn_blocking(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port)).map(|mut a| a.next())
    })
    .await;
    match found {
        Ok(Ok(Some(a))) => Ok(a),
        Ok(Ok(None)) | Ok(Err(_)) | Err(_) => Err(TargetError::Unreachable(format!(
            "cannot resolve host `{}` to an address for the proxy to reach its instances",
            host.host
        ))),
    }
}

/// `key=value` lines of a script's output.
fn fields(stdout: &str) -> HashMap<&str, &str> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn host_json(host: &Host) -> serde_json::Value {
    serde_json::json!({ "user": host.user, "host": host.host, "port": host.port })
}

fn host_of(instance: &Instance) -> Option<Host> {
    let h = instance.handle.get("host")?;
    Some(Host {
        user: h.get("user").and_then(|u| u.as_str()).map(String::from),
        host: h.get("host")?.as_str()?.to_string(),
        port: u16::try_from(h.get("port")?.as_u64()?).ok()?,
    })
}

fn tenths(d: Duration) -> u64 {
    (d.as_millis() / 100) as u64
}

impl Target for SshTarget {
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance, TargetError> {
        let name = instance_name(spec);
        let Some(host) = spec.host.as_ref() else {
            return Err(TargetError::Start(format!(
                "instance `{name}` has no host: the `ssh` target needs `hosts` in environment `{}`",
                spec.environment
            )));
        };
        if let Some(bad) = spec.env.keys().find(|k| !scripts::valid_env_name(k)) {
            return Err(TargetError::Start(format!(
                "env `{bad}` of service `{}` is not a valid variable name (letters, digits and `_`, not starting with a digit)",
                spec.service
            )));
        }
        let dir = &self.inner.opts.remote_dir;
        let mut meta: Vec<(&str, String)> = vec![
            ("service", spec.service.clone()),
            ("environment", spec.environment.clone()),
            ("release", spec.release.clone()),
            ("index", spec.index.to_string()),
        ];
        let ports = port_candidates(32);
        let grace = tenths(self.inner.opts.leftover_grace);
        let (mode, script) = match &spec.artifact {
            Artifact::Tarball { file, digest, .. } => {
                let Some(command) = spec.command.as_deref() else {
                    return Err(TargetError::Start(format!(
                        "service `{}` is a tarball release without `command`: the `ssh` target runs `command` in the unpacked release",
                        spec.service
                    )));
                };
                let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
                if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(TargetError::Start(format!(
                        "release `{}` has a malformed digest `{digest}` (expected sha256:<hex>)",
                        spec.release
                    )));
                }
                self.ensure_release(host, file, hex).await?;
                let mode = self.mode(host).await?;
                meta.push(("digest", hex.to_string()));
                meta.push(("mode", mode.as_str().to_string()));
                let s = StartScript {
                    remote_dir: dir,
                    name: &name,
                    meta: &meta,
                    env: &spec.env,
                    ports: &ports,
                    grace_tenths: grace,
                    log_max_bytes: self.inner.opts.log_max_bytes,
                };
                let script = match mode {
                    Mode::Systemd => scripts::start_systemd(&s, hex, command),
                    _ => scripts::start_process(&s, hex, command),
                };
                (mode, script)
            }
            Artifact::Image(image) => {
                let Some(port) = spec.port else {
                    return Err(TargetError::Start(format!(
                        "service `{}` runs image `{image}` without `port`: set `deploy.port` to the port it listens on in its container",
                        spec.service
                    )));
                };
                meta.push(("mode", Mode::Docker.as_str().to_string()));
                let labels = [
                    ("ferry.service", spec.service.clone()),
                    ("ferry.environment", spec.environment.clone()),
                    ("ferry.release", spec.release.clone()),
                    ("ferry.instance", name.clone()),
                ];
                let s = StartScript {
                    remote_dir: dir,
                    name: &name,
                    meta: &meta,
                    env: &spec.env,
                    ports: &ports,
                    grace_tenths: grace,
                    log_max_bytes: self.inner.opts.log_max_bytes,
                };
                let script =
                    scripts::start_docker(&s, image, spec.command.as_deref(), port, &labels);
                (Mode::Docker, script)
            }
        };
        let out = self.run(host, &script).await?;
        let f = fields(&out.stdout);
        let port = f.get("port").and_then(|p| p.parse::<u16>().ok());
        let (true, Some(port)) = (out.ok(), port) else {
            return Err(TargetError::Start(format!(
                "cannot start instance `{name}` on {}: {}",
                host_label(host),
                if out.stderr.is_empty() {
                    format!("the start script exited with {:?}", out.code)
                } else {
                    out.stderr.clone()
                }
            )));
        };
        let mut handle = serde_json::json!({
            "host": host_json(host),
            "mode": mode.as_str(),
        });
        match mode {
            Mode::Process => {
                handle["pid"] = f.get("pid").and_then(|p| p.parse::<u64>().ok()).into();
            }
            Mode::Systemd => handle["unit"] = format!("ferry-{name}.service").into(),
            Mode::Docker => {
                handle["container"] = f.get("container").map(|c| c.to_string()).into();
            }
        }
        let addr = match (mode, self.inner.opts.docker_publish_addr) {
            (Mode::Docker, Some(ip)) => SocketAddr::new(ip, port),
            _ => resolve(host, port).await?,
        };
        tracing::info!(host = %host_label(host), instance = %name, mode = mode.as_str(), %addr, "Started an instance.");
        Ok(Instance {
            name,
            addr,
            release: spec.release.clone(),
            handle,
        })
    }

    async fn stop(&self, instance: &Instance, grace: Duration) -> Result<(), TargetError> {
        let Some(host) = host_of(instance) else {
            return Err(TargetError::Stop(format!(
                "instance `{}` has no host in its record, so the `ssh` target cannot stop it",
                instance.name
            )));
        };
        let script = scripts::stop(&self.inner.opts.remote_dir, &instance.name, tenths(grace));
        let out = self
            .inner
            .client
            .run(&host, &script, self.inner.opts.command_timeout + grace)
            .await?;
        if !out.ok() {
            return Err(TargetError::Stop(format!(
                "cannot stop instance `{}` on {}: {}",
                instance.name,
                host_label(&host),
                out.stderr
            )));
        }
        tracing::info!(host = %host_label(&host), instance = %instance.name, "Stopped an instance.");
        Ok(())
    }

    async fn alive(&self, instance: &Instance) -> bool {
        let Some(host) = host_of(instance) else {
            return false;
        };
        let script = scripts::alive(&self.inner.opts.remote_dir, &instance.name);
        matches!(self.run(&host, &script).await, Ok(o) if o.ok())
    }

    async fn sweep(
        &self,
        service: &str,
        environment: &str,
        keep: &[Instance],
    ) -> Result<Vec<String>, TargetError> {
        let dir = &self.inner.opts.remote_dir;
        let grace = self.inner.opts.leftover_grace;
        let mut stopped = Vec::new();
        let mut unreachable = Vec::new();
        for host in &self.inner.hosts {
            let who = host_label(host);
            let listed = match self
                .run(host, &scripts::list(dir, service, environment))
                .await
            {
                Ok(o) if o.ok() => o.stdout,
                Ok(o) => {
                    unreachable.push(format!("{who}: {}", o.stderr));
                    continue;
                }
                Err(e) => {
                    unreachable.push(e.to_string());
                    continue;
                }
            };
            for name in listed.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let kept = keep
                    .iter()
                    .any(|k| k.name == name && host_of(k).is_none_or(|h| host_label(&h) == who));
                if kept {
                    continue;
                }
                let out = self
                    .inner
                    .client
                    .run(
                        host,
                        &scripts::stop(dir, name, tenths(grace)),
                        self.inner.opts.command_timeout + grace,
                    )
                    .await?;
                if !out.ok() {
                    return Err(TargetError::Stop(format!(
                        "cannot stop leftover instance `{name}` on {who}: {}",
                        out.stderr
                    )));
                }
                tracing::info!(host = %who, instance = %name, "Swept a leftover instance.");
                stopped.push(name.to_string());
            }
        }
        if !unreachable.is_empty() {
            return Err(TargetError::Unreachable(format!(
                "swept {} leftover instance(s) of `{service}` in `{environment}`, but could not check every host: {}",
                stopped.len(),
                unreachable.join("; ")
            )));
        }
        Ok(stopped)
    }

    /// Removes, on every host, the releases no instance there uses beyond the
    /// [`SshTargetOptions::keep_old_releases`] most recently used: one script per host.
    async fn after_switch(&self) -> Result<(), TargetError> {
        let script = scripts::prune(
            &self.inner.opts.remote_dir,
            self.inner.opts.keep_old_releases,
        );
        let mut failed = Vec::new();
        for host in &self.inner.hosts {
            let who = host_label(host);
            let out = match self.run(host, &script).await {
                Ok(o) if o.ok() => o.stdout,
                Ok(o) => {
                    failed.push(format!("{who}: {}", o.stderr));
                    continue;
                }
                Err(e) => {
                    failed.push(e.to_string());
                    continue;
                }
            };
            let f: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once('=')).collect();
            if let Some((_, dir)) = f.iter().find(|(k, _)| *k == "unknown") {
                tracing::warn!(host = %who, instance_dir = %dir, "Kept every release on a host: an instance there does not record which release it runs; it will once it is deployed again.");
            }
            let removed: Vec<&str> = f
                .iter()
                .filter(|(k, _)| *k == "removed")
                .map(|(_, v)| *v)
                .collect();
            if !removed.is_empty() {
                tracing::info!(host = %who, removed = removed.len(), digests = %removed.join(" "), "Removed releases no instance uses from a host.");
            }
        }
        if !failed.is_empty() {
            return Err(TargetError::Unreachable(format!(
                "cannot remove old releases on every host: {}",
                failed.join("; ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_candidates_are_distinct_and_in_range() {
        let p = port_candidates(32);
        assert_eq!(p.len(), 32);
        assert!(p.iter().all(|p| PORTS.contains(p)));
        let mut d = p.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 32);
    }

    #[test]
    fn reads_the_host_back_from_a_handle() {
        let host = Host {
            user: Some("root".into()),
            host: "10.0.0.2".into(),
            port: 2222,
        };
        let i = Instance {
            name: "a".into(),
            addr: "10.0.0.2:1".parse().expect("a literal address"),
            release: "v1".into(),
            handle: serde_json::json!({ "host": host_json(&host) }),
        };
        assert_eq!(host_of(&i), Some(host));
    }
}
