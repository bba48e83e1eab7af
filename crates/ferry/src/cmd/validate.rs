//! `ferry validate`.

use crate::cli::ValidateArgs;
use crate::exit::{Failure, bad_input};
use std::path::{Path, PathBuf};

/// Checks a pipeline file and reports every problem at once (exit 2 when any).
pub fn validate(args: ValidateArgs) -> Result<(), Failure> {
    let path = match args.file {
        Some(p) => p,
        None => default_pipeline_file()?,
    };
    match ferry_config::load(&path) {
        Ok(pipeline) => {
            let instances = pipeline.instances().len();
            let jobs = pipeline.jobs.len();
            let matrix = if instances != jobs {
                format!(" ({instances} with matrix combinations)")
            } else {
                String::new()
            };
            println!(
                "{}: valid, {jobs} job{}{matrix}",
                path.display(),
                plural(jobs)
            );
            Ok(())
        }
        Err(diags) => {
            eprint!("{diags}");
            let n = diags.0.len();
            Err(bad_input(format!(
                "{}: {n} problem{} found",
                path.display(),
                plural(n)
            )))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `ferry.yml` in the current directory, else at the root of the enclosing git
/// repository.
pub fn default_pipeline_file() -> Result<PathBuf, Failure> {
    let here = Path::new("ferry.yml");
    if here.exists() {
        return Ok(here.to_path_buf());
    }
    if let Some(root) = git_root(Path::new(".")) {
        let candidate = root.join("ferry.yml");
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(bad_input(
        "no ferry.yml here or at the repository root; pass the file's path, e.g. `ferry validate path/to/ferry.yml`",
    ))
}

/// The top directory of the git work tree containing `dir`, if any.
pub fn git_root(dir: &Path) -> Option<PathBuf> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-toplevel"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(text.trim_end()))
}
