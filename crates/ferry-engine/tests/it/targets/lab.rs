//! A lab of SSH hosts: each one a network namespace joined to the root namespace by a
//! veth pair on a private /30 (10.213.X.4k+1 here, .4k+2 there), with a real `sshd`
//! listening on the namespace's address, a generated host key, and root logging in
//! with a generated client key. Every host gets its own `HOME` (sshd `SetEnv`), so
//! hosts that share this machine's filesystem still keep separate `~/.ferry` trees.
//!
//! Dropping the lab kills sshd and everything else running in the namespaces (the
//! instances the tests started there) and deletes the namespaces, also when a test
//! panics. Needs root, `ip` and `/usr/sbin/sshd`: without them the lab panics, so
//! the tests fail rather than skip.

use ferry_config::model::Host;
use ferry_engine::deploy::SshConfig;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One host of the lab.
pub struct LabHost {
    /// The network namespace.
    pub ns: String,
    /// The root namespace's end of the veth pair.
    veth: String,
    /// The host's address (in its namespace).
    pub addr: Ipv4Addr,
    /// The host's `HOME`.
    pub home: PathBuf,
    sshd: Option<Child>,
    dir: PathBuf,
}

/// Hosts sharing one client key and known_hosts file.
pub struct Lab {
    /// The hosts.
    pub hosts: Vec<LabHost>,
    dir: TempDir,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args))
}

impl Lab {
    /// Starts `n` hosts.
    pub fn start(n: usize) -> Lab {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is missing: install openssh-server (cargo xtask setup does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("ferry-lab-")
            .tempdir()
            .expect("a temporary directory for the lab");
        let key = dir.path().join("client_key");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "ferry-test", "-f"])
            .arg(&key))
        .expect("ssh-keygen makes the client key (openssh-client)");
        std::fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("authorized_keys");
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let mut lab = Lab {
            hosts: Vec::new(),
            dir,
        };
        let mut known = String::new();
        for _ in 0..n {
            let h = lab.add_host();
            let pubkey = std::fs::read_to_string(h.dir.join("host_key.pub")).expect("host key");
            known.push_str(&format!("{} {}\n", h.addr, pubkey.trim()));
            lab.hosts.push(h);
        }
        std::fs::write(lab.dir.path().join("known_hosts"), known).expect("known_hosts");
        for h in &mut lab.hosts {
            h.wait_ready();
        }
        lab
    }

    /// The client settings logging in to the lab's hosts.
    pub fn ssh_config(&self) -> SshConfig {
        SshConfig {
            identity: Some(self.dir.path().join("client_key")),
            known_hosts: Some(self.dir.path().join("known_hosts")),
            accept_new_host_keys: false,
        }
    }

    fn add_host(&mut self) -> LabHost {
        let pid = std::process::id();
        let x = 20 + pid % 200;
        let assigned = ip(&["-o", "-4", "addr", "show"]).expect("ip addr show (iproute2)");
        let mut last_error = String::new();
        loop {
            let k = NEXT.fetch_add(1, Ordering::Relaxed);
            assert!(
                k < 60,
                "cannot create a network namespace for the lab (the tests must run as root); last error: {last_error}"
            );
            let root_addr = Ipv4Addr::new(10, 213, x as u8, (4 * k + 1) as u8);
            if assigned.contains(&format!("{root_addr}/")) {
                continue;
            }
            let addr = Ipv4Addr::new(10, 213, x as u8, (4 * k + 2) as u8);
            let ns = format!("ferrylab-{pid}-{k}");
            let veth = format!("fl{x}k{k}");
            let peer = format!("fl{x}k{k}n");
            if let Err(e) = ip(&["netns", "add", &ns]) {
                last_error = e;
                continue;
            }
            let dir = self.dir.path().join(&ns);
            let home = dir.join("home");
            std::fs::create_dir_all(&home).expect("the host's home");
            let mut host = LabHost {
                ns: ns.clone(),
                veth: veth.clone(),
                addr,
                home,
                sshd: None,
                dir,
            };
            let set_up = (|| -> Result<(), String> {
                ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
                ip(&["link", "set", &peer, "netns", &ns])?;
                ip(&["addr", "add", &format!("{root_addr}/30"), "dev", &veth])?;
                ip(&["link", "set", &veth, "up"])?;
                ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{addr}/30"),
                    "dev",
                    &peer,
                ])?;
                ip(&["-n", &ns, "link", "set", &peer, "up"])?;
                ip(&["-n", &ns, "link", "set", "lo", "up"])?;
                Ok(())
            })();
            if let Err(e) = set_up {
                panic!("cannot set up network namespace `{ns}` (the tests must run as root): {e}");
            }
            host.start_sshd(self.dir.path());
            return host;
        }
    }
}

impl LabHost {
    /// The host as a deploy config names it: `root@addr:22`.
    pub fn host(&self) -> Host {
        Host {
            user: Some("root".into()),
            host: self.addr.to_string(),
            port: 22,
        }
    }

    fn start_sshd(&mut self, lab: &Path) {
        std::fs::create_dir_all(&self.dir).expect("host dir");
        let key = self.dir.join("host_key");
        run(Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "ferry-lab-host",
                "-f",
            ])
            .arg(&key))
        .expect("ssh-keygen makes the host key");
        let config = format!(
            "ListenAddress {addr}\nPort 22\nHostKey {key}\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {lab}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\n\
             UsePAM no\nPrintMotd no\nMaxSessions 64\nMaxStartups 64\nLogLevel ERROR\n\
             SetEnv HOME={home}\n",
            addr = self.addr,
            key = key.display(),
            dir = self.dir.display(),
            lab = lab.display(),
            home = self.home.display(),
        );
        let conf = self.dir.join("sshd_config");
        std::fs::write(&conf, config).expect("sshd_config");
        let log = std::fs::File::create(self.dir.join("sshd.log")).expect("sshd.log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
            ])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        self.sshd = Some(child);
    }

    fn wait_ready(&mut self) {
        let until = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from((self.addr, 22));
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(c) = &mut self.sshd
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "sshd in `{}` exited ({status}): {}",
                    self.ns,
                    std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < until,
                "sshd in `{}` does not accept connections on {addr} after 10 s",
                self.ns
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops sshd, so that the host is down for SSH (its namespace stays).
    pub fn stop_sshd(&mut self) {
        if let Some(mut c) = self.sshd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills every process in the namespace: sshd and what the tests started there.
    fn kill_all(&mut self) {
        self.stop_sshd();
        if let Ok(pids) = ip(&["netns", "pids", &self.ns]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix_kill(pid);
            }
        }
    }
}

fn nix_kill(pid: i32) -> Result<(), String> {
    run(Command::new("kill").args(["-KILL", &pid.to_string()])).map(|_| ())
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.kill_all();
            let _ = ip(&["netns", "del", &h.ns]);
            // Deleting the namespace removes the peer and with it this end; do it
            // explicitly in case something still held the namespace.
            let _ = ip(&["link", "del", &h.veth]);
        }
    }
}
