//! The example project `ferry up` registers, bundled into the binary so it works from
//! any directory and from an installed `ferry`: the pages, template and build script
//! of `examples/static-site`, with a pipeline whose checks need nothing but a shell
//! (the repository's example also serves the pages with busybox).

use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The project's name.
pub const NAME: &str = "static-site";

/// The service its `deploy:` section declares.
pub const SERVICE: &str = "example";

/// The files of the example: path, content, executable.
const FILES: &[(&str, &str, bool)] = &[
    ("ferry.yml", include_str!("example.yml"), false),
    (
        "content/index.html",
        include_str!("../../../../../examples/static-site/content/index.html"),
        false,
    ),
    (
        "content/about.html",
        include_str!("../../../../../examples/static-site/content/about.html"),
        false,
    ),
    (
        "content/docs/guide.html",
        include_str!("../../../../../examples/static-site/content/docs/guide.html"),
        false,
    ),
    (
        "template.html",
        include_str!("../../../../../examples/static-site/template.html"),
        false,
    ),
    (
        "scripts/build.sh",
        include_str!("../../../../../examples/static-site/scripts/build.sh"),
        true,
    ),
    (
        "scripts/check-links.sh",
        include_str!("check-links.sh"),
        true,
    ),
];

/// The example's repository under the data directory.
pub fn repo_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("examples").join(NAME)
}

/// Creates the example's git repository with one commit on `main`, unless it exists.
/// Returns the repository's path.
pub fn ensure_repo(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = repo_dir(data_dir);
    if dir.join(".git").is_dir() {
        return Ok(dir);
    }
    // A half-made repository from an interrupted first run is made again.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    for (path, content, executable) in FILES {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&file, content)
            .with_context(|| format!("cannot write {}", file.display()))?;
        if *executable {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", file.display()))?;
        }
    }
    git(&dir, &["init", "-q", "-b", "main"])?;
    git(&dir, &["add", "-A"])?;
    git(
        &dir,
        &[
            "-c",
            "user.name=Ferry",
            "-c",
            "user.email=ferry@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "The example site",
        ],
    )?;
    Ok(dir)
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("cannot run git: is it installed?")?;
    if !out.status.success() {
        anyhow::bail!(
            "git {} in {} failed: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_pipeline_is_valid() {
        let (_, text, _) = FILES[0];
        let pipeline = ferry_config::parse(Path::new("ferry.yml"), text)
            .unwrap_or_else(|d| panic!("the bundled ferry.yml is invalid:\n{d}"));
        assert_eq!(pipeline.jobs.len(), 3);
        let deploy = pipeline.deploy.expect("the example deploys");
        assert_eq!(deploy.name, SERVICE);
        assert_eq!(
            deploy.environments.keys().collect::<Vec<_>>(),
            ["staging", "production"]
        );
    }

    #[test]
    fn the_repository_is_made_once_with_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let repo = ensure_repo(dir.path()).unwrap();
        assert!(repo.join("scripts/build.sh").is_file());
        let mode = std::fs::metadata(repo.join("scripts/build.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        // A second call keeps what is there.
        std::fs::write(repo.join("marker"), "x").unwrap();
        ensure_repo(dir.path()).unwrap();
        assert!(repo.join("marker").exists());
    }
}
