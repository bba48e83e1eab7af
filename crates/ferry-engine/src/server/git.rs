//! The server's mirrors of project repositories: `<data_dir>/repos/<project>.git`, a
//! bare `git clone --mirror` of the project's repository (a URL or a path), updated
//! with `git fetch --prune`. Every read (refs, `ferry.yml` at a commit, archives,
//! changed paths) goes to the mirror, never to the project's own repository.

use super::CoreError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A project's mirror.
#[derive(Debug, Clone)]
pub(crate) struct Mirror {
    pub path: PathBuf,
    pub remote: String,
}

fn run(dir: Option<&Path>, args: &[&str]) -> Result<std::process::Output, CoreError> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0");
    cmd.output().map_err(|e| {
        CoreError::Git(format!(
            "cannot run `git` ({e}); install git, the server needs it"
        ))
    })
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).trim().to_string()
}

impl Mirror {
    /// The mirror of `project` (it may not exist yet).
    pub(crate) fn new(data_dir: &Path, project: &str, remote: &str) -> Mirror {
        Mirror {
            path: data_dir.join("repos").join(format!("{project}.git")),
            remote: remote.to_string(),
        }
    }

    /// Whether the mirror has been cloned.
    pub(crate) fn exists(&self) -> bool {
        self.path.join("HEAD").is_file()
    }

    /// Clones the mirror if needed, else fetches; returns whether it was created now.
    pub(crate) fn update(&self) -> Result<bool, CoreError> {
        if !self.exists() {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| CoreError::Git(format!("{}: {e}", parent.display())))?;
            }
            let tmp = self
                .path
                .with_extension(format!("git.tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            let tmp_s = tmp.to_string_lossy().to_string();
            let out = run(
                None,
                &["clone", "--mirror", "--quiet", &self.remote, &tmp_s],
            )?;
            if !out.status.success() {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(CoreError::Git(format!(
                    "cannot clone `{}`: {}; check the project's `repo`",
                    self.remote,
                    text(&out.stderr)
                )));
            }
            if std::fs::rename(&tmp, &self.path).is_err() {
                // Another task cloned it meanwhile.
                let _ = std::fs::remove_dir_all(&tmp);
            }
            return Ok(true);
        }
        let out = run(Some(&self.path), &["fetch", "--prune", "--quiet", "origin"])?;
        if !out.status.success() {
            return Err(CoreError::Git(format!(
                "cannot fetch `{}`: {}",
                self.remote,
                text(&out.stderr)
            )));
        }
        Ok(false)
    }

    /// Every branch and tag: (full ref name, commit).
    pub(crate) fn refs(&self) -> Result<Vec<(String, String)>, CoreError> {
        let out = run(
            Some(&self.path),
            &[
                "for-each-ref",
                "--format=%(refname) %(objectname) %(*objectname)",
                "refs/heads",
                "refs/tags",
            ],
        )?;
        if !out.status.success() {
            return Err(CoreError::Git(format!(
                "cannot list refs: {}",
                text(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut parts = l.split(' ');
                let name = parts.next()?.to_string();
                let obj = parts.next()?.to_string();
                // Annotated tags: the commit they point at.
                let peeled = parts.next().filter(|p| !p.is_empty()).map(str::to_string);
                Some((name, peeled.unwrap_or(obj)))
            })
            .collect())
    }

    /// The commit `rev` names, if the mirror has it.
    pub(crate) fn resolve(&self, rev: &str) -> Result<Option<String>, CoreError> {
        if rev.starts_with('-') {
            return Err(CoreError::Invalid(format!(
                "`{rev}` is not a ref or commit"
            )));
        }
        let spec = format!("{rev}^{{commit}}");
        let out = run(Some(&self.path), &["rev-parse", "--verify", "-q", &spec])?;
        Ok(out
            .status
            .success()
            .then(|| text(&out.stdout))
            .filter(|s| !s.is_empty()))
    }

    /// The text of `file` at commit `sha`, `None` if the commit has no such file.
    pub(crate) fn show(&self, sha: &str, file: &str) -> Result<Option<String>, CoreError> {
        let spec = format!("{sha}:{file}");
        let out = run(Some(&self.path), &["show", &spec])?;
        if !out.status.success() {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// Paths changed between two commits (`old` None: by `new` against its first
    /// parent, or every file of a root commit).
    pub(crate) fn changed(&self, old: Option<&str>, new: &str) -> Result<Vec<String>, CoreError> {
        let parent = format!("{new}^");
        let base = match old {
            Some(o) => Some(o.to_string()),
            None => self.resolve(&parent)?,
        };
        let out = match &base {
            Some(b) => run(Some(&self.path), &["diff", "--name-only", "-z", b, new])?,
            None => run(
                Some(&self.path),
                &["ls-tree", "-r", "-z", "--name-only", new],
            )?,
        };
        if !out.status.success() {
            return Err(CoreError::Git(format!(
                "cannot list changed paths: {}",
                text(&out.stderr)
            )));
        }
        Ok(out
            .stdout
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect())
    }

    /// Writes `git archive` of `sha` to `dest` (atomically: a temporary file renamed).
    pub(crate) fn archive(&self, sha: &str, dest: &Path) -> Result<(), CoreError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| CoreError::Git(format!("{}: {e}", dir.display())))?;
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| CoreError::Git(format!("{}: {e}", dir.display())))?;
        let file = tmp
            .reopen()
            .map_err(|e| CoreError::Git(format!("{}: {e}", dir.display())))?;
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(["archive", "--format=tar", sha])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| CoreError::Git(format!("cannot run `git archive` ({e})")))?;
        if !out.status.success() {
            return Err(CoreError::Git(format!(
                "`git archive {sha}` failed: {}",
                text(&out.stderr)
            )));
        }
        tmp.persist(dest)
            .map_err(|e| CoreError::Git(format!("{}: {e}", dest.display())))?;
        Ok(())
    }
}

/// Splits a ref into (branch, tag): `refs/heads/x` → branch, `refs/tags/x` → tag.
pub(crate) fn branch_or_tag(full_ref: &str) -> (Option<String>, Option<String>) {
    if let Some(b) = full_ref.strip_prefix("refs/heads/") {
        (Some(b.to_string()), None)
    } else if let Some(t) = full_ref.strip_prefix("refs/tags/") {
        (None, Some(t.to_string()))
    } else {
        (None, None)
    }
}
