//! The repository side: which commit runs, and the source snapshot each job's
//! workspace is unpacked from.
//!
//! The snapshot is one tar file per run (`<data_dir>/work/<run_id>/.source.tar`):
//! `git archive` of the commit, or, for dirty runs, the files `git ls-files` lists as
//! tracked or untracked-but-not-ignored, read from the working tree. Unpacking a tar
//! per job was measured faster than `git worktree add` or `clone --shared` (no git
//! process per job, no index to write) and never touches the repository's state.

use super::EngineError;
use std::ffi::OsString;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the repository says about the commit that runs.
#[derive(Debug, Clone)]
pub(crate) struct Commit {
    pub sha: String,
    pub branch: Option<String>,
    pub tag: Option<String>,
}

fn git(
    repo: &Path,
    path_env: Option<&OsString>,
    args: &[&str],
) -> Result<std::process::Output, EngineError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(repo).args(args).stdin(Stdio::null());
    if let Some(p) = path_env {
        cmd.env("PATH", p);
    }
    cmd.output().map_err(|e| EngineError::Git {
        message: format!(
            "cannot run `git` ({e}); install git, Ferry needs it to read the repository"
        ),
    })
}

fn trimmed(out: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(out).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Reads HEAD, its branch and exact tag.
pub(crate) fn read_commit(repo: &Path, path_env: Option<&OsString>) -> Result<Commit, EngineError> {
    let head = git(
        repo,
        path_env,
        &["rev-parse", "--verify", "-q", "HEAD^{commit}"],
    )?;
    let sha = match (head.status.success(), trimmed(&head.stdout)) {
        (true, Some(sha)) => sha,
        _ => {
            let inside = git(repo, path_env, &["rev-parse", "--git-dir"])?;
            let message = if inside.status.success() {
                format!(
                    "{}: the repository has no commit yet; commit first, then run",
                    repo.display()
                )
            } else {
                format!(
                    "{}: not a git repository (Ferry runs the pipeline of a commit); run `git init` and commit",
                    repo.display()
                )
            };
            return Err(EngineError::Git { message });
        }
    };
    let branch = git(repo, path_env, &["symbolic-ref", "--short", "-q", "HEAD"])?;
    let tag = git(
        repo,
        path_env,
        &["describe", "--exact-match", "--tags", "HEAD"],
    )?;
    Ok(Commit {
        sha,
        branch: branch
            .status
            .success()
            .then(|| trimmed(&branch.stdout))
            .flatten(),
        tag: tag.status.success().then(|| trimmed(&tag.stdout)).flatten(),
    })
}

/// Writes the run's source snapshot to `dest`.
pub(crate) fn snapshot(
    repo: &Path,
    sha: &str,
    dirty: bool,
    path_env: Option<&OsString>,
    dest: &Path,
) -> Result<(), EngineError> {
    let io_err = |source| EngineError::Io {
        path: dest.to_path_buf(),
        source,
    };
    if !dirty {
        let file = File::create(dest).map_err(io_err)?;
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(repo)
            .args(["archive", "--format=tar", sha]);
        cmd.stdin(Stdio::null()).stdout(file).stderr(Stdio::piped());
        if let Some(p) = path_env {
            cmd.env("PATH", p);
        }
        let out = cmd.output().map_err(|e| EngineError::Git {
            message: format!("cannot run `git archive` ({e})"),
        })?;
        if !out.status.success() {
            return Err(EngineError::Git {
                message: format!(
                    "`git archive {sha}` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        return Ok(());
    }
    let list = git(
        repo,
        path_env,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    )?;
    if !list.status.success() {
        return Err(EngineError::Git {
            message: format!(
                "`git ls-files` failed: {}",
                String::from_utf8_lossy(&list.stderr).trim()
            ),
        });
    }
    let file = File::create(dest).map_err(io_err)?;
    let mut builder = tar::Builder::new(BufWriter::new(file));
    builder.follow_symlinks(false);
    let mut seen = std::collections::HashSet::new();
    for rel in list.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let rel = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(rel));
        if rel.as_os_str().is_empty() || !seen.insert(rel.to_path_buf()) {
            continue;
        }
        let full = repo.join(rel);
        // Tracked files deleted in the working tree are left out; so are submodules.
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.is_file() || m.file_type().is_symlink() => {
                builder.append_path_with_name(&full, rel).map_err(io_err)?;
            }
            _ => {}
        }
    }
    builder
        .into_inner()
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .map_err(io_err)?;
    Ok(())
}

/// Creates `dir` (fresh) and unpacks the snapshot into it.
pub(crate) fn materialize(snapshot: &Path, dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let file = File::open(snapshot)?;
    let mut archive = tar::Archive::new(std::io::BufReader::with_capacity(256 * 1024, file));
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.unpack(dir)
}

/// Where a job instance's workspace lives.
pub(crate) fn job_dir(work_root: &Path, job_slug: &str) -> PathBuf {
    work_root.join(job_slug)
}
