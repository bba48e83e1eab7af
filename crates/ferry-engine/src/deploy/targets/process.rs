//! The `process` target: local processes supervised by Ferry.
//!
//! Each instance runs `sh -c COMMAND` in the release's unpacked directory, in its own
//! process group, with `PORT` set to a free 127.0.0.1 port chosen here, the spec's env,
//! and the server's environment minus the secret store's master key. A supervisor task
//! restarts it when it exits (exponential backoff from 200 ms, capped at 30 s, reset
//! after 30 s of running). Its stdout and stderr go to the instance's log file, whose
//! new lines a tail task copies to the tracing log (debug, on the
//! `ferry_engine::deploy::instance` target).
//!
//! Everything needed to find an instance again lives on disk, in the *run directory*
//! `<root>/<service>/<environment>/<name>/` (`root` is `<data_dir>/instances`):
//! - `owner`: the token of the supervisor in charge, or `stopped`. A supervisor
//!   restarts its process only while `owner` still holds its token, so a stop — by
//!   this server or by the next one after a crash — is never undone by a restart;
//! - `pid`: the process (and group) id and its start time from `/proc`, so a recycled
//!   pid is never mistaken for the instance;
//! - `output.log`: stdout and stderr, line by line (the instance's log store), and
//!   `output.log.1`, the previous one: once `output.log` passes
//!   [`ProcessTarget::with_log_max_bytes`] (10 MiB by default) it is copied there and
//!   emptied ([`rotate_log`]); the process writes in append mode, so it goes on at the
//!   new end. The tail task checks it while this server supervises the instance, and
//!   [`Target::alive`] does too (every 10 s for live instances), so instances adopted
//!   from a previous server are kept within bounds as well.
//!
//! The instance's [`Instance::handle`] records the run directory, the token and the
//! first pid, so a restarted server can check, adopt or stop what a previous one
//! started, and [`ProcessTarget::sweep`] finds leftovers by listing run directories.

mod output;

pub use output::rotate_log;

use super::{Artifact, Instance, InstanceSpec, Target, TargetError, instance_name};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use output::{last_lines, rotate_quietly};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::process::{Child, Command};

/// First restart delay after a crash.
const BACKOFF_START: Duration = Duration::from_millis(200);
/// Longest restart delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A process that ran this long before exiting restarts after [`BACKOFF_START`] again.
const BACKOFF_RESET: Duration = Duration::from_secs(30);
/// Grace given to a leftover with the same name before it is killed.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);
/// How often new output is copied to the tracing log.
const TAIL_EVERY: Duration = Duration::from_millis(250);
/// The `owner` content of a stopped instance.
const STOPPED: &str = "stopped";
/// The default size past which `output.log` is rotated: 10 MiB.
pub const LOG_MAX_BYTES: u64 = 10 << 20;

static TOKENS: AtomicU64 = AtomicU64::new(0);

/// The `process` target; cheap to clone.
#[derive(Debug, Clone)]
pub struct ProcessTarget {
    root: PathBuf,
    log_max_bytes: u64,
}

/// What [`Instance::handle`] holds for a process instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Handle {
    /// The run directory.
    dir: PathBuf,
    /// The token of the supervisor that started it.
    token: String,
    /// The first process id (the current one is in the `pid` file).
    pid: i32,
}

impl ProcessTarget {
    /// A target keeping its run directories under `root` (`<data_dir>/instances`).
    pub fn new(root: impl Into<PathBuf>) -> ProcessTarget {
        ProcessTarget {
            root: root.into(),
            log_max_bytes: LOG_MAX_BYTES,
        }
    }

    /// The target with `output.log` rotated past `bytes` instead of
    /// [`LOG_MAX_BYTES`] (tests use a small size).
    pub fn with_log_max_bytes(mut self, bytes: u64) -> ProcessTarget {
        self.log_max_bytes = bytes;
        self
    }

    /// Where instances of `service` in `environment` keep their run directories.
    fn env_dir(&self, service: &str, environment: &str) -> PathBuf {
        self.root.join(service).join(environment)
    }

    /// The log file of an instance: its output, line by line. Earlier output may be
    /// in the rotated file beside it: [`ProcessTarget::last_output`] reads both.
    pub fn log_file(instance: &Instance) -> Option<PathBuf> {
        handle(instance).map(|h| h.dir.join("output.log"))
    }

    /// The last `n` lines of an instance's output, across a rotation (the end of
    /// `output.log.1` when `output.log` holds fewer than `n`); None when the instance
    /// is not a process. Blocking: reads files.
    pub fn last_output(instance: &Instance, n: usize) -> Option<Vec<String>> {
        let dir = handle(instance)?.dir;
        let mut lines = last_lines(&dir.join("output.log"), n);
        if lines.len() < n {
            let mut earlier = last_lines(&dir.join("output.log.1"), n - lines.len());
            earlier.append(&mut lines);
            lines = earlier;
        }
        Some(lines)
    }
}

fn handle(instance: &Instance) -> Option<Handle> {
    serde_json::from_value(instance.handle.clone()).ok()
}

fn new_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        TOKENS.fetch_add(1, Ordering::Relaxed)
    )
}

/// A free port on 127.0.0.1 (the OS picks it; released before the instance binds it).
fn free_port() -> Result<u16, TargetError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| TargetError::Start(format!("cannot find a free port on 127.0.0.1: {e}")))
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), None when there
/// is no such process or it is a zombie.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it follow the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn read_owner(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("owner"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The process recorded in the `pid` file, if it still runs.
fn running_pid(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("pid")).ok()?;
    let mut parts = text.split_whitespace();
    let pid: i32 = parts.next()?.parse().ok()?;
    let started: u64 = parts.next()?.parse().ok()?;
    (start_time(pid) == Some(started)).then_some(pid)
}

fn write_pid(dir: &Path, pid: i32) {
    let started = start_time(pid).unwrap_or(0);
    if let Err(e) = std::fs::write(dir.join("pid"), format!("{pid} {started}\n")) {
        tracing::warn!(dir = %dir.display(), error = %e, "Cannot record an instance's pid; a restarted server will not find it.");
    }
}

/// Marks the run directory stopped, then stops its process group: SIGTERM, and SIGKILL
/// after `grace`. Returns whether a process was running.
async fn stop_dir(dir: &Path, grace: Duration) -> bool {
    let _ = std::fs::write(dir.join("owner"), STOPPED);
    let Some(pid) = running_pid(dir) else {
        return false;
    };
    let group = Pid::from_raw(pid);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if start_time(pid).is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Children the service left behind in its group go too.
    let _ = killpg(group, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    while start_time(pid).is_some() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = std::fs::remove_file(dir.join("pid"));
    true
}

/// How to (re)start the instance's process.
#[derive(Debug, Clone)]
struct Launch {
    name: String,
    command: String,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    dir: PathBuf,
}

impl Launch {
    fn spawn(&self) -> Result<Child, TargetError> {
        // Output goes straight to the log file, not through a pipe to this server: an
        // instance outlives its server (a restart adopts it) and must not die of a
        // broken pipe meanwhile.
        let log = self.dir.join("output.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| {
                TargetError::Start(format!("cannot open the log file {}: {e}", log.display()))
            })?;
        let err = file.try_clone().map_err(|e| {
            TargetError::Start(format!("cannot open the log file {}: {e}", log.display()))
        })?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&self.command)
            .current_dir(&self.cwd)
            .env_remove(ferry_secrets::MASTER_KEY_ENV)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(false);
        cmd.spawn().map_err(|e| {
            TargetError::Start(format!(
                "cannot start instance `{}` (`sh -c {}` in {}): {e}",
                self.name,
                self.command,
                self.cwd.display()
            ))
        })
    }
}

/// Copies new lines of the instance's log file to the tracing log while `owner`
/// holds `token`, and rotates the file past `max` bytes.
async fn tail(name: String, dir: PathBuf, token: String, max: u64) {
    let log = dir.join("output.log");
    let mut offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let mut partial = Vec::new();
    loop {
        let running = read_owner(&dir).as_deref() == Some(token.as_str());
        // Emptied by a rotation (here or in a liveness check): start again at its top.
        if std::fs::metadata(&log).is_ok_and(|m| m.len() < offset) {
            offset = 0;
        }
        if let Ok(mut f) = tokio::fs::File::open(&log).await
            && f.seek(std::io::SeekFrom::Start(offset)).await.is_ok()
        {
            let mut buf = Vec::new();
            if let Ok(n) = f.read_to_end(&mut buf).await {
                offset += n as u64;
                partial.extend_from_slice(&buf);
                while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line[..line.len() - 1]);
                    tracing::debug!(target: "ferry_engine::deploy::instance", instance = %name, "{line}");
                }
            }
        }
        if !running {
            return;
        }
        if offset > max && rotate_quietly(&dir, max).await {
            offset = 0;
        }
        tokio::time::sleep(TAIL_EVERY).await;
    }
}

/// Keeps the instance running while `owner` holds `token`.
async fn supervise(launch: Launch, token: String, mut child: Child) {
    let mut backoff = BACKOFF_START;
    loop {
        let started = Instant::now();
        let status = child.wait().await;
        if read_owner(&launch.dir).as_deref() != Some(token.as_str()) {
            return;
        }
        if started.elapsed() >= BACKOFF_RESET {
            backoff = BACKOFF_START;
        }
        let how = match status {
            Ok(s) => s.to_string(),
            Err(e) => format!("waiting for it failed: {e}"),
        };
        tracing::warn!(instance = %launch.name, status = %how, restart_in = ?backoff, "Instance exited; restarting it.");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        if read_owner(&launch.dir).as_deref() != Some(token.as_str()) {
            return;
        }
        child = loop {
            match launch.spawn() {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(instance = %launch.name, error = %e, restart_in = ?backoff, "Restarting an instance failed; trying again.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    if read_owner(&launch.dir).as_deref() != Some(token.as_str()) {
                        return;
                    }
                }
            }
        };
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            write_pid(&launch.dir, pid);
        }
    }
}

impl Target for ProcessTarget {
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance, TargetError> {
        let name = instance_name(spec);
        let Some(command) = spec.command.clone() else {
            return Err(TargetError::Start(format!(
                "service `{}` has no `command`: the `process` target runs a command; \
                 use `target: docker` for an `image`",
                spec.service
            )));
        };
        let cwd = match &spec.artifact {
            Artifact::Tarball { dir, .. } => dir.clone(),
            Artifact::Image(image) => {
                return Err(TargetError::Start(format!(
                    "the `process` target cannot run image `{image}`: give the service a \
                     `command`, or use `target: docker`"
                )));
            }
        };
        let dir = self.env_dir(&spec.service, &spec.environment).join(&name);
        if dir.exists() {
            stop_dir(&dir, LEFTOVER_GRACE).await;
        }
        std::fs::create_dir_all(&dir).map_err(|e| {
            TargetError::Start(format!(
                "cannot create the run directory {}: {e}",
                dir.display()
            ))
        })?;
        let token = new_token();
        std::fs::write(dir.join("owner"), &token)
            .map_err(|e| TargetError::Start(format!("cannot write to {}: {e}", dir.display())))?;
        let port = free_port()?;
        let mut env: Vec<(String, String)> = spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.push(("PORT".into(), port.to_string()));
        if !spec.env.contains_key("PATH")
            && let Some(path) = path_with_ferry()
        {
            env.push(("PATH".into(), path));
        }
        let launch = Launch {
            name: name.clone(),
            command,
            cwd,
            env,
            dir: dir.clone(),
        };
        let child = launch.spawn()?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| {
                TargetError::Start(format!("instance `{name}` exited as soon as it started"))
            })?;
        write_pid(&dir, pid);
        tokio::spawn(tail(
            name.clone(),
            dir.clone(),
            token.clone(),
            self.log_max_bytes,
        ));
        tokio::spawn(supervise(launch, token.clone(), child));
        tracing::debug!(instance = %name, pid, port, "Started an instance.");
        Ok(Instance {
            name,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            release: spec.release.clone(),
            handle: serde_json::to_value(Handle { dir, token, pid })
                .expect("a handle of strings and numbers serializes"),
        })
    }

    async fn stop(&self, instance: &Instance, grace: Duration) -> Result<(), TargetError> {
        let Some(h) = handle(instance) else {
            return Err(TargetError::Stop(format!(
                "instance `{}` was not started by the `process` target (its handle is {})",
                instance.name, instance.handle
            )));
        };
        match read_owner(&h.dir) {
            // Gone, or replaced by a newer instance of the same name: nothing of ours runs.
            None => Ok(()),
            Some(owner) if owner != h.token && owner != STOPPED => Ok(()),
            Some(_) => {
                stop_dir(&h.dir, grace).await;
                Ok(())
            }
        }
    }

    async fn alive(&self, instance: &Instance) -> bool {
        let Some(h) = handle(instance) else {
            return false;
        };
        let alive = read_owner(&h.dir).as_deref() == Some(h.token.as_str())
            && running_pid(&h.dir).is_some();
        if alive {
            // Also the upkeep of instances adopted from a previous server, which have
            // no tail task: the server checks live ones every 10 s.
            rotate_quietly(&h.dir, self.log_max_bytes).await;
        }
        alive
    }

    async fn sweep(
        &self,
        service: &str,
        environment: &str,
        keep: &[Instance],
    ) -> Result<Vec<String>, TargetError> {
        let dir = self.env_dir(service, environment);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(TargetError::Unreachable(format!(
                    "cannot list {}: {e}",
                    dir.display()
                )));
            }
        };
        let mut stopped = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if !path.is_dir() || keep.iter().any(|i| i.name == name) {
                continue;
            }
            if read_owner(&path).as_deref() == Some(STOPPED) && running_pid(&path).is_none() {
                continue;
            }
            stop_dir(&path, LEFTOVER_GRACE).await;
            stopped.push(name);
        }
        stopped.sort();
        Ok(stopped)
    }
}

/// `PATH` with the directory of the running `ferry` binary first, so a service's
/// `command` can run `ferry static DIR` (as the `ferry up` example does) however the
/// server was started (`cargo run`, an absolute path). None when it cannot be known.
fn path_with_ferry() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.to_str()?.to_string();
    Some(match std::env::var("PATH") {
        Ok(path) if !path.is_empty() => format!("{dir}:{path}"),
        _ => dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec(dir: &Path, release: &str, command: &str) -> InstanceSpec {
        InstanceSpec {
            service: "web".into(),
            environment: "test".into(),
            release: release.into(),
            index: 0,
            artifact: Artifact::Tarball {
                file: dir.join("none.tar"),
                dir: dir.to_path_buf(),
                digest: "sha256:00".into(),
            },
            command: Some(command.into()),
            port: None,
            env: BTreeMap::from([("GREETING".to_string(), "hello".to_string())]),
            host: None,
            health_path: "/".into(),
        }
    }

    /// Running (not zombie) processes in process group `pgid`.
    fn group_members(pgid: i32) -> Vec<i32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            if fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str()) {
                found.push(pid);
            }
        }
        found
    }

    async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn runs_with_port_and_env_logs_output_and_stops_the_group() {
        let tmp = tempfile::tempdir().unwrap();
        let target = ProcessTarget::new(tmp.path().join("instances"));
        let s = spec(
            tmp.path(),
            "v1",
            "echo \"$GREETING on $PORT\"; sleep 300 & sleep 300",
        );
        let instance = target.start(&s).await.unwrap();
        assert_eq!(instance.name, "web-test-v1-0");
        assert!(target.alive(&instance).await);
        let log = ProcessTarget::log_file(&instance).unwrap();
        let expected = format!("hello on {}", instance.addr.port());
        wait_for("the output line", || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains(&expected))
        })
        .await;
        let h = handle(&instance).unwrap();
        target
            .stop(&instance, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!target.alive(&instance).await);
        // The whole group is gone, the backgrounded sleep included.
        assert_eq!(group_members(h.pid), Vec::<i32>::new());
        // Stopping again succeeds.
        target
            .stop(&instance, Duration::from_secs(1))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn restarts_a_crashed_instance_on_the_same_port() {
        let tmp = tempfile::tempdir().unwrap();
        let target = ProcessTarget::new(tmp.path().join("instances"));
        let instance = target
            .start(&spec(tmp.path(), "v1", "echo start $PORT; sleep 300"))
            .await
            .unwrap();
        let h = handle(&instance).unwrap();
        let log = ProcessTarget::log_file(&instance).unwrap();
        let line = format!("start {}", instance.addr.port());
        wait_for("the first start", || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains(&line))
        })
        .await;
        killpg(Pid::from_raw(h.pid), Signal::SIGKILL).unwrap();
        wait_for("the restart", || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.matches(&line).count() == 2)
        })
        .await;
        wait_for("the new pid", || {
            running_pid(&h.dir).is_some_and(|p| p != h.pid)
        })
        .await;
        assert!(target.alive(&instance).await);
        target
            .stop(&instance, Duration::from_secs(5))
            .await
            .unwrap();
        tokio::time::sleep(BACKOFF_START * 3).await;
        assert!(
            running_pid(&h.dir).is_none(),
            "a stopped instance is not restarted"
        );
    }

    #[tokio::test]
    async fn sweep_stops_leftovers_but_keeps_what_it_is_told() {
        let tmp = tempfile::tempdir().unwrap();
        let target = ProcessTarget::new(tmp.path().join("instances"));
        let a = target
            .start(&spec(tmp.path(), "v1", "sleep 300"))
            .await
            .unwrap();
        let b = target
            .start(&spec(tmp.path(), "v2", "sleep 300"))
            .await
            .unwrap();
        // A second target over the same directory: a restarted server.
        let again = ProcessTarget::new(tmp.path().join("instances"));
        assert!(again.alive(&a).await);
        let swept = again
            .sweep("web", "test", std::slice::from_ref(&a))
            .await
            .unwrap();
        assert_eq!(swept, vec!["web-test-v2-0".to_string()]);
        assert!(again.alive(&a).await);
        assert!(!again.alive(&b).await);
        assert!(
            again
                .sweep("web", "test", std::slice::from_ref(&a))
                .await
                .unwrap()
                .is_empty()
        );
        again.stop(&a, Duration::from_secs(5)).await.unwrap();
        assert!(!target.alive(&a).await);
    }

    /// The numbers of `line N` lines.
    fn numbers(lines: &[String]) -> Vec<u64> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("line ")?.parse().ok())
            .collect()
    }

    #[tokio::test]
    async fn rotates_a_chatty_log_and_reads_the_last_lines_across_the_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let target = ProcessTarget::new(tmp.path().join("instances")).with_log_max_bytes(4096);
        let chatty = "i=0; while :; do j=0; while [ $j -lt 20 ]; do i=$((i+1)); j=$((j+1)); echo \"line $i\"; done; sleep 0.02; done";
        let instance = target.start(&spec(tmp.path(), "v1", chatty)).await.unwrap();
        let h = handle(&instance).unwrap();
        let (log, previous) = (h.dir.join("output.log"), h.dir.join("output.log.1"));
        // Two rotations: the second replaces the first's file, nothing piles up.
        let first_of = |p: &Path| numbers(&last_lines(p, 1_000_000)).first().copied();
        wait_for("a first rotation", || previous.exists()).await;
        let first = first_of(&previous);
        wait_for("a second rotation", || first_of(&previous) != first).await;
        let files: Vec<String> = std::fs::read_dir(&h.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("output"))
            .collect();
        assert!(
            files.len() <= 2,
            "only output.log and output.log.1: {files:?}"
        );
        let size = std::fs::metadata(&previous).unwrap().len();
        assert!(
            size > 4096 && size < 64 * 1024,
            "rotated just past the limit: {size} bytes"
        );
        assert!(std::fs::metadata(&log).unwrap().len() < 64 * 1024);

        // Right after a rotation output.log holds few lines: the rest come from
        // output.log.1, in order.
        target
            .stop(&instance, Duration::from_secs(5))
            .await
            .unwrap();
        std::fs::write(&log, "line 1000000\n").unwrap();
        let last = ProcessTarget::last_output(&instance, 50).unwrap();
        assert_eq!(last.len(), 50, "{last:?}");
        assert_eq!(last.last().map(String::as_str), Some("line 1000000"));
        let n = numbers(&last);
        assert!(n.windows(2).all(|w| w[0] < w[1]), "in order: {n:?}");
        assert!(
            n[..49].windows(2).all(|w| w[1] == w[0] + 1),
            "the end of output.log.1, without a gap: {n:?}"
        );
    }

    #[tokio::test]
    async fn rejects_an_image() {
        let tmp = tempfile::tempdir().unwrap();
        let target = ProcessTarget::new(tmp.path().join("instances"));
        let mut s = spec(tmp.path(), "v1", "true");
        s.artifact = Artifact::Image("shop:1".into());
        let err = target.start(&s).await.unwrap_err().to_string();
        assert!(err.contains("cannot run image `shop:1`"), "{err}");
    }
}
