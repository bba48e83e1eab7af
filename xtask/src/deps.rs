//! The tools the test suite needs, and installing the missing ones from Debian's
//! packages.
//!
//! [`TOOLS`] is the one list to extend when a suite starts needing something new
//! (`postgresql`, `openssh-server`, `nginx`, `chromium`, …): a package name and a cheap
//! probe that tells whether it is already there.

use crate::{phase, proc};
use anyhow::bail;
use std::process::Command;

/// How to tell, without a package manager, that a tool is present.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// An executable of this name is on PATH (or in an sbin directory).
    Program(&'static str),
    /// A PostgreSQL server installation (`/usr/lib/postgresql/<version>/bin/initdb`).
    PostgresServer,
    /// This file is a statically linked executable (it gets copied into images built
    /// `FROM scratch`, where there is no dynamic loader).
    StaticBinary(&'static str),
}

/// A tool the suite needs and the Debian package that provides it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The Debian package to install when the probe fails.
    pub package: &'static str,
    /// How to tell the tool is already there.
    pub probe: Probe,
    /// What the suite uses it for (printed with the install plan).
    pub why: &'static str,
}

/// Everything `cargo xtask test` makes sure is installed.
pub const TOOLS: &[Tool] = &[
    Tool {
        package: "docker.io",
        probe: Probe::Program("dockerd"),
        why: "the Docker engine, for container jobs and services",
    },
    Tool {
        package: "busybox-static",
        probe: Probe::StaticBinary("/usr/bin/busybox"),
        why: "the userland of test images built FROM scratch",
    },
    Tool {
        package: "postgresql",
        probe: Probe::PostgresServer,
        why: "the PostgreSQL half of the store, engine, API and CLI tests",
    },
    Tool {
        package: "git",
        probe: Probe::Program("git"),
        why: "repositories that pipelines run from",
    },
    Tool {
        package: "tar",
        probe: Probe::Program("tar"),
        why: "artifacts, caches and image build contexts",
    },
    Tool {
        package: "iproute2",
        probe: Probe::Program("ip"),
        why: "network namespaces for agents on their own test hosts",
    },
    Tool {
        package: "chromium",
        probe: Probe::Program("chromium"),
        why: "the web UI's tests in a real headless browser",
    },
    Tool {
        package: "chromium-driver",
        probe: Probe::Program("chromedriver"),
        why: "WebDriver for driving Chromium in the UI tests",
    },
    Tool {
        package: "openssh-server",
        probe: Probe::Program("sshd"),
        why: "real SSH hosts in network namespaces for the ssh deploy target",
    },
    Tool {
        package: "openssh-client",
        probe: Probe::Program("ssh"),
        why: "the client the ssh deploy target drives",
    },
    Tool {
        package: "nginx",
        probe: Probe::Program("nginx"),
        why: "the reference proxy of `cargo xtask bench deploy`",
    },
    Tool {
        package: "wrk",
        probe: Probe::Program("wrk"),
        why: "the load generator of `cargo xtask bench deploy`",
    },
];

impl Probe {
    /// Whether the tool is present on this machine.
    pub fn is_present(self) -> bool {
        match self {
            Probe::Program(name) => proc::find_program(name).is_some(),
            Probe::PostgresServer => crate::services::postgres_bin_dir().is_some(),
            Probe::StaticBinary(path) => {
                std::fs::read(path).is_ok_and(|bytes| elf_is_static(&bytes) == Some(true))
            }
        }
    }
}

/// Whether an ELF64 little-endian executable has no program interpreter (no
/// `PT_INTERP` header), i.e. runs without a dynamic loader. `None` when `bytes` is not
/// such a file.
pub fn elf_is_static(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    // Magic, 64-bit class, little-endian.
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        if u32_at(phoff + i * phentsize)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

/// How to become root for apt-get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// We are root already.
    Root,
    /// Not root, but `sudo` is available.
    Sudo,
    /// Not root and no sudo: installing is impossible.
    None,
}

impl Privilege {
    /// Looks at this process and PATH.
    pub fn detect() -> Privilege {
        if effective_uid() == Some(0) {
            Privilege::Root
        } else if proc::find_program("sudo").is_some() {
            Privilege::Sudo
        } else {
            Privilege::None
        }
    }
}

/// The effective user id, from /proc/self/status (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_effective_uid(&status)
}

fn parse_effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The tools whose probe fails.
pub fn missing(tools: &[Tool], is_present: impl Fn(Probe) -> bool) -> Vec<Tool> {
    tools
        .iter()
        .copied()
        .filter(|t| !is_present(t.probe))
        .collect()
}

/// The commands that install `packages`, or an error saying why we cannot.
pub fn install_commands(packages: &[&str], privilege: Privilege) -> anyhow::Result<Vec<Command>> {
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let apt = |args: &[&str]| {
        let mut cmd = match privilege {
            Privilege::Sudo => {
                // sudo drops the environment by default; pass what apt needs.
                let mut c = Command::new("sudo");
                c.args(["DEBIAN_FRONTEND=noninteractive", "apt-get"]);
                c
            }
            _ => Command::new("apt-get"),
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        cmd
    };
    if privilege == Privilege::None {
        bail!(
            "missing packages: {}; installing them needs root, and this is not root and has no sudo. \
             Install them as root: apt-get install -y --no-install-recommends {}",
            packages.join(", "),
            packages.join(" ")
        );
    }
    // A fresh machine may still be running its own apt (unattended upgrades): wait
    // for the lock rather than fail, and retry flaky downloads.
    let patience = ["-o", "Acquire::Retries=3", "-o", "DPkg::Lock::Timeout=300"];
    let mut update = apt(&patience);
    update.arg("update");
    let mut install = apt(&patience);
    install.args(["install", "-y", "--no-install-recommends"]);
    install.args(packages);
    Ok(vec![update, install])
}

/// Checks every tool and installs the missing ones (prints the plan with `dry_run`).
pub fn ensure(dry_run: bool) -> anyhow::Result<()> {
    let p = phase::start("checking tools");
    let missing = missing(TOOLS, Probe::is_present);
    if missing.is_empty() {
        p.done("all tools present");
        return Ok(());
    }
    p.done(&format!("{} missing", missing.len()));
    for tool in &missing {
        phase::note(&format!("  {} is missing ({})", tool.package, tool.why));
    }
    let packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    let commands = install_commands(&packages, Privilege::detect())?;
    if dry_run {
        for cmd in &commands {
            phase::note(&format!("would run: {}", proc::display(cmd)));
        }
        return Ok(());
    }
    let p = phase::start(&format!("installing {}", packages.join(" ")));
    for mut cmd in commands {
        proc::run(&mut cmd)?;
    }
    let still_missing = self::missing(&missing, Probe::is_present);
    if let Some(tool) = still_missing.first() {
        bail!(
            "installed `{}` but its probe still fails ({:?}); is PATH missing its directory?",
            tool.package,
            tool.probe
        );
    }
    p.done(&format!("installed {}", packages.join(" ")));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tools_whose_probe_fails_are_missing() {
        let missing = missing(TOOLS, |probe| !matches!(probe, Probe::Program("dockerd")));
        let names: Vec<_> = missing.iter().map(|t| t.package).collect();
        assert_eq!(names, ["docker.io"]);
    }

    #[test]
    fn root_installs_with_apt_get_after_an_update() {
        let cmds = install_commands(&["docker.io", "busybox-static"], Privilege::Root).unwrap();
        let shown: Vec<_> = cmds.iter().map(proc::display).collect();
        assert_eq!(
            shown,
            [
                "apt-get -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300 update",
                "apt-get -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300 install -y \
                 --no-install-recommends docker.io busybox-static"
            ]
        );
        let noninteractive = cmds[1]
            .get_envs()
            .any(|(k, v)| k == "DEBIAN_FRONTEND" && v == Some("noninteractive".as_ref()));
        assert!(noninteractive);
    }

    #[test]
    fn non_root_goes_through_sudo() {
        let cmds = install_commands(&["git"], Privilege::Sudo).unwrap();
        assert_eq!(
            proc::display(&cmds[1]),
            "sudo DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 \
             -o DPkg::Lock::Timeout=300 install -y --no-install-recommends git"
        );
    }

    #[test]
    fn non_root_without_sudo_fails_and_says_what_to_install() {
        let err = install_commands(&["git", "tar"], Privilege::None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing packages: git, tar"), "{err}");
        assert!(
            err.contains("apt-get install -y --no-install-recommends git tar"),
            "{err}"
        );
    }

    #[test]
    fn nothing_missing_means_nothing_to_run() {
        assert!(install_commands(&[], Privilege::None).unwrap().is_empty());
    }

    #[test]
    fn effective_uid_is_the_second_uid_field() {
        let status = "Name:\txtask\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(parse_effective_uid(status), Some(0));
        assert_eq!(parse_effective_uid("Name: x\n"), None);
    }

    #[test]
    fn a_dynamically_linked_program_is_not_static() {
        // /bin/sh is dynamically linked on Debian; this test binary is too.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(elf_is_static(&me), Some(false));
        assert_eq!(elf_is_static(b"#!/bin/sh\n"), None);
        assert_eq!(elf_is_static(b"\x7fELF\x02\x01"), None);
    }

    #[test]
    fn an_elf_without_an_interpreter_is_static() {
        // A minimal ELF64 header with one PT_LOAD program header at offset 64.
        let mut elf = vec![0u8; 64 + 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        assert_eq!(elf_is_static(&elf), Some(true));
        elf[64..68].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
        assert_eq!(elf_is_static(&elf), Some(false));
    }
}
