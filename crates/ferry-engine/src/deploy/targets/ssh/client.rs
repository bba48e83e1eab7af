//! The system `ssh` client, driven with `tokio::process`.
//!
//! Every command runs in batch mode (no password prompts), with the configured identity
//! and known_hosts file, and shares one connection per host through OpenSSH connection
//! multiplexing (`ControlMaster`), whose sockets live in a private directory this
//! client owns. Remote commands are POSIX `sh` scripts sent on stdin (`sh -s`), so that
//! secrets in them never appear in a remote process list; uploads send the file on
//! stdin instead and keep their (secret-free) script on the command line.

use crate::deploy::SshConfig;
use crate::deploy::targets::TargetError;
use ferry_config::model::Host;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How long an idle multiplexed connection stays open.
const CONTROL_PERSIST: &str = "60";

/// A configured ssh client: identity, known_hosts, timeouts and the multiplexing
/// sockets' directory (removed, and its master connections closed, on drop).
#[derive(Debug)]
pub struct SshClient {
    config: SshConfig,
    connect_timeout: Duration,
    /// Made on first use, so that building a client cannot fail.
    control_dir: std::sync::OnceLock<Result<tempfile::TempDir, String>>,
    /// Hosts a master connection may have been opened to, closed on drop.
    used: Mutex<BTreeSet<String>>,
}

/// What a remote script printed and how it ended.
#[derive(Debug)]
pub struct Output {
    /// The exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Whether the script exited with 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// `user@host:port`, as people write it.
pub fn host_label(host: &Host) -> String {
    let h = if host.host.contains(':') {
        format!("[{}]", host.host)
    } else {
        host.host.clone()
    };
    match &host.user {
        Some(u) => format!("{u}@{h}:{}", host.port),
        None => format!("{h}:{}", host.port),
    }
}

/// Quotes a string for POSIX `sh` (single quotes, `'` written as `'\''`).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl SshClient {
    /// A client with `config`; `connect_timeout` bounds connecting and logging in.
    pub fn new(config: SshConfig, connect_timeout: Duration) -> SshClient {
        SshClient {
            config,
            connect_timeout,
            control_dir: std::sync::OnceLock::new(),
            used: Mutex::new(BTreeSet::new()),
        }
    }

    /// The directory this client keeps its sockets in (private, mode 0700).
    pub fn private_dir(&self) -> Result<&Path, TargetError> {
        let dir = self.control_dir.get_or_init(|| {
            tempfile::Builder::new()
                .prefix("ferry-ssh-")
                .tempdir()
                .map_err(|e| {
                    format!(
                        "cannot create a directory for SSH connection sockets in {}: {e}",
                        std::env::temp_dir().display()
                    )
                })
        });
        match dir {
            Ok(d) => Ok(d.path()),
            Err(e) => Err(TargetError::Unreachable(e.clone())),
        }
    }

    /// The `ssh` arguments before the destination: batch mode, identity, host key
    /// checking, timeouts, keep-alives. `multiplex` adds the shared connection.
    pub fn base_args(&self, host: &Host, multiplex: bool) -> Result<Vec<String>, TargetError> {
        let mut a: Vec<String> = vec!["-o".into(), "BatchMode=yes".into()];
        let mut opt = |s: String| {
            a.push("-o".into());
            a.push(s);
        };
        opt(format!(
            "ConnectTimeout={}",
            self.connect_timeout.as_secs().max(1)
        ));
        opt("ServerAliveInterval=5".into());
        opt("ServerAliveCountMax=3".into());
        opt("LogLevel=ERROR".into());
        if let Some(id) = &self.config.identity {
            opt(format!("IdentityFile={}", id.display()));
            opt("IdentitiesOnly=yes".into());
        }
        if let Some(kh) = &self.config.known_hosts {
            opt(format!("UserKnownHostsFile={}", kh.display()));
            opt("GlobalKnownHostsFile=/dev/null".into());
        }
        opt(format!(
            "StrictHostKeyChecking={}",
            if self.config.accept_new_host_keys {
                "accept-new"
            } else {
                "yes"
            }
        ));
        if multiplex {
            // %C: a hash of local host, remote host, port and user; short enough for
            // the 108-byte limit on unix socket paths.
            let path = self.private_dir()?.join("%C");
            opt("ControlMaster=auto".into());
            opt(format!("ControlPath={}", path.display()));
            opt(format!("ControlPersist={CONTROL_PERSIST}"));
        }
        a.push("-p".into());
        a.push(host.port.to_string());
        if let Some(u) = &host.user {
            a.push("-l".into());
            a.push(u.clone());
        }
        Ok(a)
    }

    /// Runs `script` with `sh -s` on `host`, the script on stdin.
    pub async fn run(
        &self,
        host: &Host,
        script: &str,
        timeout: Duration,
    ) -> Result<Output, TargetError> {
        self.exec(host, "sh -s", Input::Bytes(script.as_bytes()), timeout)
            .await
    }

    /// Runs `command` (a short, secret-free remote command line) on `host` with the
    /// contents of `file` on its stdin.
    pub async fn run_with_file(
        &self,
        host: &Host,
        command: &str,
        file: &Path,
        timeout: Duration,
    ) -> Result<Output, TargetError> {
        self.exec(host, command, Input::File(file), timeout).await
    }

    async fn exec(
        &self,
        host: &Host,
        remote: &str,
        input: Input<'_>,
        timeout: Duration,
    ) -> Result<Output, TargetError> {
        let who = host_label(host);
        self.used
            .lock()
            .expect("the set of used hosts is never poisoned: no code panics holding it")
            .insert(host_key(host));
        let mut cmd = Command::new("ssh");
        cmd.args(self.base_args(host, true)?)
            .arg("--")
            .arg(&host.host)
            .arg(remote)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match &input {
            Input::Bytes(_) => {
                cmd.stdin(Stdio::piped());
            }
            Input::File(f) => {
                let file = std::fs::File::open(f).map_err(|e| {
                    TargetError::Start(format!(
                        "cannot read `{}` to upload it to {who}: {e}",
                        f.display()
                    ))
                })?;
                cmd.stdin(Stdio::from(file));
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            TargetError::Unreachable(format!(
                "cannot run the `ssh` client to reach {who}: {e} — install OpenSSH's client (Debian package openssh-client)"
            ))
        })?;
        if let (Input::Bytes(b), Some(mut stdin)) = (&input, child.stdin.take()) {
            // A script that exits early closes its stdin; the error is the script's.
            let _ = stdin.write_all(b).await;
            drop(stdin);
        }
        let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return Err(TargetError::Unreachable(format!(
                    "lost the `ssh` client talking to {who}: {e}"
                )));
            }
            Err(_) => {
                return Err(TargetError::Unreachable(format!(
                    "{who} did not finish a command over SSH within {} s; check the host's load and network",
                    timeout.as_secs()
                )));
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        // 255 is ssh's own failure: it could not connect, log in or check the key.
        if out.status.code() == Some(255) {
            return Err(TargetError::Unreachable(format!(
                "cannot reach host {who} over SSH: {} — check that the host is up, that sshd listens on port {}, and that Ferry's key is in its authorized_keys and its host key in known_hosts",
                if stderr.is_empty() {
                    "ssh exited with 255"
                } else {
                    &stderr
                },
                host.port
            )));
        }
        Ok(Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        })
    }
}

enum Input<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

fn host_key(host: &Host) -> String {
    format!(
        "{}\u{0}{}\u{0}{}",
        host.user.as_deref().unwrap_or(""),
        host.host,
        host.port
    )
}

impl Drop for SshClient {
    fn drop(&mut self) {
        // Close the master connections now rather than after ControlPersist: they
        // would hold the remote sessions open for a minute after Ferry let go.
        if self.control_dir.get().is_none() {
            return;
        }
        let used = std::mem::take(
            self.used
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for key in used {
            let mut parts = key.split('\u{0}');
            let (Some(user), Some(h), Some(port)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let host = Host {
                user: (!user.is_empty()).then(|| user.to_string()),
                host: h.to_string(),
                port: port.parse().unwrap_or(22),
            };
            let Ok(args) = self.base_args(&host, true) else {
                return;
            };
            let _ = std::process::Command::new("ssh")
                .args(args)
                .args(["-O", "exit", "--", &host.host])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_sh() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn displays_hosts_as_written() {
        let h = Host {
            user: Some("deploy".into()),
            host: "10.0.0.2".into(),
            port: 22,
        };
        assert_eq!(host_label(&h), "deploy@10.0.0.2:22");
        let v6 = Host {
            user: None,
            host: "fd00::2".into(),
            port: 2222,
        };
        assert_eq!(host_label(&v6), "[fd00::2]:2222");
    }
}
