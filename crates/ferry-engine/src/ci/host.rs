//! The host executor: a step is a process group on this machine.

use super::output::{StepOutput, Stream};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Pipe capacity asked for (the default 64 KiB costs a wake-up per 64 KiB).
const PIPE_SIZE: i32 = 1024 * 1024;
/// Bytes read at once from a step's pipe.
const READ_BUF: usize = 256 * 1024;

/// How a step's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StepEnd {
    /// Exited with this code (signals map to 128 + signal number).
    Exited(i32),
    /// Hit its deadline and was killed.
    TimedOut,
    /// The run was cancelled and the step killed.
    Cancelled,
    /// Could not start; the message says why.
    NotStarted(String),
}

/// When a step must stop.
#[derive(Clone)]
pub(crate) struct Limits {
    /// The earlier of the step's and the job's deadline.
    pub deadline: Option<Instant>,
    pub cancel: CancellationToken,
    pub grace: Duration,
}

/// What to execute.
pub(crate) struct HostCommand<'a> {
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
    pub path_env: Option<&'a OsString>,
}

/// Runs one step to its end, streaming its output into `out`.
pub(crate) async fn run(cmd: HostCommand<'_>, limits: &Limits, out: &mut StepOutput) -> StepEnd {
    if !cmd.cwd.is_dir() {
        return StepEnd::NotStarted(format!(
            "the working directory {} does not exist (was the workspace deleted?)",
            cmd.cwd.display()
        ));
    }
    let mut command = Command::new(cmd.program);
    command
        .args(&cmd.args)
        .current_dir(cmd.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(p) = cmd.path_env {
        command.env("PATH", p);
    }
    command.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let why = if !cmd.cwd.is_dir() {
                format!(
                    "the working directory {} does not exist (was the workspace deleted?)",
                    cmd.cwd.display()
                )
            } else {
                format!("cannot start `{}`: {e}", cmd.program.display())
            };
            return StepEnd::NotStarted(why);
        }
    };
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    // Bigger pipes: a step that floods its output wakes us 16 times less often.
    if let Some(p) = &stdout {
        let _ = nix::fcntl::fcntl(p, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    if let Some(p) = &stderr {
        let _ = nix::fcntl::fcntl(p, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    let mut buf_out = vec![0u8; READ_BUF];
    let mut buf_err = vec![0u8; READ_BUF];

    let mut stop: Option<StepEnd> = None;
    let mut kill_at: Option<Instant> = None;
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let status = loop {
        let deadline = if stop.is_none() {
            limits.deadline.unwrap_or(far)
        } else {
            far
        };
        let kill_deadline = kill_at.unwrap_or(far);
        tokio::select! {
            n = read_opt(&mut stdout, &mut buf_out) => {
                match n {
                    Some(n) if n > 0 => out.push(Stream::Stdout, &buf_out[..n]).await,
                    _ => stdout = None,
                }
            }
            n = read_opt(&mut stderr, &mut buf_err) => {
                match n {
                    Some(n) if n > 0 => out.push(Stream::Stderr, &buf_err[..n]).await,
                    _ => stderr = None,
                }
            }
            st = child.wait() => break st,
            () = tokio::time::sleep_until(deadline), if stop.is_none() && limits.deadline.is_some() => {
                stop = Some(StepEnd::TimedOut);
                signal(pgid, Signal::SIGTERM);
                kill_at = Some(Instant::now() + limits.grace);
            }
            () = limits.cancel.cancelled(), if stop.is_none() => {
                stop = Some(StepEnd::Cancelled);
                signal(pgid, Signal::SIGTERM);
                kill_at = Some(Instant::now() + limits.grace);
            }
            () = tokio::time::sleep_until(kill_deadline), if kill_at.is_some() => {
                signal(pgid, Signal::SIGKILL);
                kill_at = None;
            }
        }
    };
    // What the step left running in its group does not outlive it.
    signal(pgid, Signal::SIGKILL);
    // Drain what is left in the pipes; bounded, in case a process escaped the group
    // (setsid) and still holds them open.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while stdout.is_some() || stderr.is_some() {
        tokio::select! {
            n = read_opt(&mut stdout, &mut buf_out) => match n {
                Some(n) if n > 0 => out.push(Stream::Stdout, &buf_out[..n]).await,
                _ => stdout = None,
            },
            n = read_opt(&mut stderr, &mut buf_err) => match n {
                Some(n) if n > 0 => out.push(Stream::Stderr, &buf_err[..n]).await,
                _ => stderr = None,
            },
            () = tokio::time::sleep_until(drain_until) => break,
        }
    }
    if let Some(end) = stop {
        return end;
    }
    match status {
        Ok(st) => {
            use std::os::unix::process::ExitStatusExt;
            StepEnd::Exited(
                st.code()
                    .or_else(|| st.signal().map(|s| 128 + s))
                    .unwrap_or(1),
            )
        }
        Err(e) => StepEnd::NotStarted(format!("waiting for the step failed: {e}")),
    }
}

fn signal(pgid: Option<Pid>, sig: Signal) {
    if let Some(p) = pgid {
        // ESRCH (group gone) is the normal case after the step ended.
        let _ = killpg(p, sig);
    }
}

/// Reads from an optional pipe; a missing pipe never becomes ready.
async fn read_opt<R: tokio::io::AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> Option<usize> {
    match r {
        Some(r) => r.read(buf).await.ok(),
        None => std::future::pending().await,
    }
}
