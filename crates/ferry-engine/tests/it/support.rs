//! Test support: temporary git repositories with a ferry.yml, runs that collect their
//! events, and the busybox image for container tests.

use ferry_engine::ci::{self, RunOptions, RunSummary};
use ferry_types::{JobResult, RunEvent};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A temporary git repository and data directory.
pub struct Repo {
    pub dir: TempDir,
    pub data: TempDir,
}

impl Repo {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> &Path {
        self.data.path()
    }

    pub fn opts(&self) -> RunOptions {
        let mut o = RunOptions::new(self.path(), self.data());
        o.grace = std::time::Duration::from_millis(500);
        o.parallelism = 4;
        o
    }

    pub fn pipeline(&self) -> ferry_config::Pipeline {
        let path = self.path().join("ferry.yml");
        match ferry_config::load(&path) {
            Ok(p) => p,
            Err(d) => panic!("ferry.yml does not parse: {d:?}"),
        }
    }
}

pub fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        st.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// A repository whose first commit holds `ferry.yml` and `files`.
pub fn repo(yml: &str, files: &[(&str, &str)]) -> Repo {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ferry.yml"), yml).expect("write");
    for (name, content) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, content).expect("write");
    }
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "init"]);
    Repo { dir, data }
}

/// The outcome of a run, with every event.
pub struct Ran {
    pub summary: RunSummary,
    pub events: Vec<RunEvent>,
}

impl Ran {
    pub fn result(&self, job: &str) -> JobResult {
        self.job(job).result
    }

    pub fn job(&self, job: &str) -> &ci::JobSummary {
        self.summary
            .jobs
            .iter()
            .find(|j| j.id == job)
            .unwrap_or_else(|| panic!("no job {job} in {:?}", self.summary.jobs))
    }

    pub fn reason(&self, job: &str) -> String {
        self.job(job).reason.clone().unwrap_or_default()
    }

    /// All log text of a job (every stream), joined by newlines.
    pub fn logs(&self, job: &str) -> String {
        let mut out = String::new();
        for e in &self.events {
            if let RunEvent::Log { job: j, line, .. } = e
                && j == job
            {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Index of the first event matching `f`.
    pub fn pos(&self, f: impl Fn(&RunEvent) -> bool) -> usize {
        self.events.iter().position(f).expect("event present")
    }

    pub fn log_dir(&self, job_slug: &str) -> PathBuf {
        self.summary.run_dir.join("logs").join(job_slug)
    }
}

pub async fn run_with(repo: &Repo, opts: RunOptions, cancel: CancellationToken) -> Ran {
    let pipeline = repo.pipeline();
    let (tx, mut rx) = mpsc::channel(64);
    let collector = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(e) = rx.recv().await {
            v.push(e);
        }
        v
    });
    let summary = ci::run(&pipeline, opts, tx, cancel)
        .await
        .expect("run starts");
    let events = collector.await.expect("collector");
    Ran { summary, events }
}

pub async fn run(repo: &Repo) -> Ran {
    run_with(repo, repo.opts(), CancellationToken::new()).await
}

pub fn pid_alive(pid: i32) -> bool {
    // Zombies count as gone: look at the state in /proc.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

pub const BUSYBOX: &str = "ferry-test/busybox:1";

/// Builds `ferry-test/busybox:1` (FROM scratch + Debian's static busybox) once.
/// Panics when the Docker engine is unreachable: container tests must fail, not skip.
pub fn busybox_image() -> &'static str {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let ping = Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]).output();
        match ping {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("the Docker engine is not reachable: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => panic!("the docker CLI cannot run: {e}"),
        }
        let have = Command::new("docker").args(["image", "inspect", BUSYBOX]).output().expect("docker runs");
        if have.status.success() {
            return;
        }
        let ctx = tempfile::tempdir().expect("tempdir");
        std::fs::copy("/usr/bin/busybox", ctx.path().join("busybox"))
            .expect("/usr/bin/busybox exists (Debian package busybox-static)");
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]\nCMD [\"/bin/sh\"]\n",
        )
        .expect("write");
        let out = Command::new("docker")
            .args(["build", "-q", "-t", BUSYBOX])
            .arg(ctx.path())
            .output()
            .expect("docker build runs");
        assert!(out.status.success(), "docker build: {}", String::from_utf8_lossy(&out.stderr));
    });
    BUSYBOX
}

/// Containers and networks Docker still has for this run id.
pub fn docker_leftovers(run_id: &str) -> (String, String) {
    let filter = format!("label=ferry.run={run_id}");
    let c = Command::new("docker")
        .args(["ps", "-aq", "--filter", &filter])
        .output()
        .expect("docker");
    let n = Command::new("docker")
        .args(["network", "ls", "-q", "--filter", &filter])
        .output()
        .expect("docker");
    (
        String::from_utf8_lossy(&c.stdout).trim().to_string(),
        String::from_utf8_lossy(&n.stdout).trim().to_string(),
    )
}
