//! Services the test suite talks to, started if they are not running: the Docker
//! engine (and the shared test image built on it) and PostgreSQL.
//!
//! A service that cannot start is an error, never a skip: CI must not go green on a
//! suite that quietly did not test containers. Later services (PostgreSQL, an SSH
//! server in a network namespace) get an `ensure_*` function here, called from
//! [`crate::test::prepare`].

use crate::deps::Privilege;
use crate::{paths, phase, proc};
use anyhow::{Context, bail};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long dockerd gets to answer `docker info` after it is started.
const DOCKER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The image test jobs run in: busybox on `scratch`, since nothing can be pulled.
pub const BUSYBOX_IMAGE: &str = "ferry-test/busybox:1";

/// The busybox binary copied into [`BUSYBOX_IMAGE`] (from `busybox-static`).
const BUSYBOX_BINARY: &str = "/usr/bin/busybox";

const BUSYBOX_DOCKERFILE: &str = "\
FROM scratch
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
";

fn docker() -> Command {
    Command::new("docker")
}

fn engine_version() -> Option<String> {
    let mut cmd = docker();
    cmd.args(["info", "--format", "{{.ServerVersion}}"]);
    proc::output(&mut cmd)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && !v.contains("<no value>"))
}

/// Makes sure the Docker engine answers, starting `dockerd` in the background if it
/// does not. dockerd is detached (its own session, log in `target/xtask/dockerd.log`)
/// so it outlives xtask and serves later runs too.
///
/// `XTASK_DOCKERD_ARGS` (space-separated) adds arguments to dockerd, e.g. to start a
/// second engine on its own socket and data root (with `DOCKER_HOST` pointing at it).
pub fn ensure_docker(dry_run: bool) -> anyhow::Result<()> {
    let p = phase::start("checking the Docker engine");
    if let Some(version) = engine_version() {
        p.done(&format!("Docker engine {version} running"));
        return Ok(());
    }
    p.done("Docker engine not running");
    if proc::find_program("docker").is_none() {
        bail!("the `docker` client is not installed (Debian package docker.io)");
    }
    let dockerd = proc::find_program("dockerd")
        .context("`dockerd` is not installed (Debian package docker.io)")?;
    let log = paths::xtask_dir()?.join("dockerd.log");
    let extra: Vec<String> = std::env::var("XTASK_DOCKERD_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();

    let mut cmd = match Privilege::detect() {
        Privilege::Root => Command::new(&dockerd),
        Privilege::Sudo => {
            let mut c = Command::new("sudo");
            c.arg(&dockerd);
            c
        }
        Privilege::None => bail!(
            "the Docker engine is not running and starting it needs root; start it with \
             `sudo dockerd` or your service manager"
        ),
    };
    cmd.args(&extra);
    // A new session: no controlling terminal, no Ctrl-C from ours, and it stays
    // up after xtask exits. `setsid` is util-linux (always on Debian); without it,
    // a process group of its own is the next best thing.
    if let Some(setsid) = proc::find_program("setsid") {
        let program = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        cmd = Command::new(setsid);
        cmd.arg(program).args(args);
    } else {
        cmd.process_group(0);
    }
    if dry_run {
        phase::note(&format!(
            "would run: {} >{} 2>&1 &",
            proc::display(&cmd),
            log.display()
        ));
        return Ok(());
    }

    let p = phase::start(&format!("starting dockerd (log: {})", log.display()));
    let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    // Never hand dockerd our stdout/stderr: a CI runner waits for every holder of
    // its pipes to close them, and dockerd keeps running.
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start `{}`", proc::display(&cmd)))?;
    let started = Instant::now();
    loop {
        if let Some(version) = engine_version() {
            p.done(&format!(
                "Docker engine {version} ready (pid {})",
                child.id()
            ));
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "dockerd {} before it was ready; the end of {}:\n{}",
                proc::describe(status),
                log.display(),
                proc::tail(&log, 30)
            );
        }
        if started.elapsed() > DOCKER_START_TIMEOUT {
            bail!(
                "dockerd (pid {}) did not answer `docker info` within {} s; the end of {}:\n{}",
                child.id(),
                DOCKER_START_TIMEOUT.as_secs(),
                log.display(),
                proc::tail(&log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Builds [`BUSYBOX_IMAGE`] unless the engine already has it. Tests may build it
/// themselves (idempotently); doing it once here saves each of them the time.
pub fn ensure_busybox_image(dry_run: bool) -> anyhow::Result<()> {
    let p = phase::start(&format!("checking the test image {BUSYBOX_IMAGE}"));
    if proc::succeeds(docker().args(["image", "inspect", BUSYBOX_IMAGE])) {
        p.done(&format!("{BUSYBOX_IMAGE} present"));
        return Ok(());
    }
    p.done(&format!("{BUSYBOX_IMAGE} missing"));
    let context = paths::xtask_dir()?.join("image-busybox");
    let mut build = docker();
    // Nothing in the build needs a network; without one it cannot reach for one.
    build.args(["build", "--network", "none", "--tag", BUSYBOX_IMAGE]);
    build.arg(&context);
    if dry_run {
        phase::note(&format!("would run: {}", proc::display(&build)));
        return Ok(());
    }
    let p = phase::start(&format!("building {BUSYBOX_IMAGE}"));
    write_busybox_context(&context, Path::new(BUSYBOX_BINARY))?;
    let out = build
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", proc::display(&build)))?;
    if !out.status.success() {
        bail!(
            "`{}` {}:\n{}{}",
            proc::display(&build),
            proc::describe(out.status),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    p.done(&format!("built {BUSYBOX_IMAGE}"));
    Ok(())
}

fn write_busybox_context(dir: &Path, busybox: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::copy(busybox, dir.join("busybox")).with_context(|| {
        format!(
            "cannot copy {} into the image context (Debian package busybox-static)",
            busybox.display()
        )
    })?;
    std::fs::write(dir.join("Dockerfile"), BUSYBOX_DOCKERFILE)
        .with_context(|| format!("cannot write {}/Dockerfile", dir.display()))?;
    Ok(())
}

/// The port of the test PostgreSQL server (off the default 5432, so a system server
/// is left alone).
pub const POSTGRES_PORT: u16 = 54329;

/// The admin URL tests get as `FERRY_TEST_DATABASE_URL`; each test creates and drops
/// its own database through it.
pub fn postgres_url() -> String {
    format!("postgres://postgres@127.0.0.1:{POSTGRES_PORT}/postgres")
}

/// The newest installed `/usr/lib/postgresql/<version>/bin` holding `initdb`.
pub fn postgres_bin_dir() -> Option<std::path::PathBuf> {
    let mut dirs: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn postgres_answers(url: &str) -> bool {
    proc::succeeds(Command::new("psql").args([url, "-Atqc", "SELECT 1"]))
}

/// Makes sure a PostgreSQL server answers at [`postgres_url`], creating a throwaway
/// cluster (trust auth, fsync off, loopback only) in `$TMPDIR/ferry-xtask-postgres`
/// and starting it with `pg_ctl` (detached, log beside the data) if none does.
/// The cluster lives outside the checkout because the server runs as the `postgres`
/// user, who may not be able to enter it.
pub fn ensure_postgres(dry_run: bool) -> anyhow::Result<()> {
    let url = postgres_url();
    let p = phase::start("checking PostgreSQL");
    if postgres_answers(&url) {
        p.done(&format!("PostgreSQL answering at {url}"));
        return Ok(());
    }
    p.done("PostgreSQL not running");
    let bin = match postgres_bin_dir() {
        Some(bin) => bin,
        None if dry_run => std::path::PathBuf::from("/usr/lib/postgresql/VERSION/bin"),
        None => bail!("PostgreSQL is not installed (Debian package postgresql)"),
    };
    let root = std::env::temp_dir().join("ferry-xtask-postgres");
    let data = root.join("data");
    let log = root.join("postgres.log");
    // The server refuses to run as root: as root, run its tools as `postgres`.
    let privilege = Privilege::detect();
    let as_server_user = |program: std::path::PathBuf| {
        let mut cmd = if privilege == Privilege::Root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.current_dir("/");
        cmd
    };
    let mut initdb = as_server_user(bin.join("initdb"));
    initdb
        .args([
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--no-sync",
            "--pgdata",
        ])
        .arg(&data);
    let mut start = as_server_user(bin.join("pg_ctl"));
    start
        .args(["start", "--wait", "--timeout", "60", "--pgdata"])
        .arg(&data)
        .arg("--log")
        .arg(&log)
        .arg("-o")
        .arg(format!(
            "-p {POSTGRES_PORT} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off",
            root.display()
        ));
    let fresh = !data.join("PG_VERSION").is_file();
    if dry_run {
        if fresh {
            phase::note(&format!("would run: {}", proc::display(&initdb)));
        }
        phase::note(&format!("would run: {}", proc::display(&start)));
        return Ok(());
    }
    let p = phase::start(&format!("starting PostgreSQL (log: {})", log.display()));
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    if privilege == Privilege::Root {
        proc::run(Command::new("chown").arg("postgres:postgres").arg(&root))?;
    }
    if fresh {
        let _ = std::fs::remove_dir_all(&data);
        proc::output(&mut initdb)?;
    }
    // pg_ctl leaves the server running in the background with its output in the log;
    // capturing pg_ctl's own output keeps the server off our pipes.
    if let Err(e) = proc::output(&mut start) {
        bail!(
            "{e:#}\nthe end of {}:\n{}",
            log.display(),
            proc::tail(&log, 30)
        );
    }
    if !postgres_answers(&url) {
        bail!(
            "PostgreSQL started but does not answer at {url}; the end of {}:\n{}",
            log.display(),
            proc::tail(&log, 30)
        );
    }
    p.done(&format!("PostgreSQL answering at {url}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_context_holds_the_binary_and_a_scratch_dockerfile() {
        let dir = crate::paths::ScratchDir::new("xtask-test-").unwrap();
        let fake = dir.path().join("fake-busybox");
        std::fs::write(&fake, b"not really busybox").unwrap();
        let context = dir.path().join("ctx");
        write_busybox_context(&context, &fake).unwrap();
        assert_eq!(
            std::fs::read(context.join("busybox")).unwrap(),
            b"not really busybox"
        );
        let dockerfile = std::fs::read_to_string(context.join("Dockerfile")).unwrap();
        assert!(dockerfile.starts_with("FROM scratch\n"), "{dockerfile}");
        assert!(dockerfile.contains("--install"), "{dockerfile}");
    }

    #[test]
    fn missing_busybox_names_the_package() {
        let dir = crate::paths::ScratchDir::new("xtask-test-").unwrap();
        let err = write_busybox_context(dir.path(), &dir.path().join("absent"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("busybox-static"), "{err}");
    }
}
