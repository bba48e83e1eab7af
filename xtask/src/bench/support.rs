//! What the process-driving suites (`bench server`, `bench deploy`) share: the `ferry`
//! binary to measure, the processes they start, and git.

use crate::cli::FerrySource;
use crate::{paths, phase, proc, test::cargo};
use anyhow::{Context, bail};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Processes started by a suite; dropping it kills and reaps each of them.
#[derive(Default)]
pub(super) struct Procs(Vec<(String, Child)>);

impl Procs {
    /// Starts `cmd` as `name`, its stdout to `log` and its stderr beside it
    /// (`log` with the extension `stderr`); returns its pid.
    pub(super) fn spawn(
        &mut self,
        name: &str,
        cmd: &mut Command,
        log: &Path,
    ) -> anyhow::Result<u32> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(log)?)
            .stderr(File::create(log.with_extension("stderr"))?)
            .spawn()
            .with_context(|| format!("cannot start `{}`", proc::display(cmd)))?;
        let pid = child.id();
        self.0.push((name.to_string(), child));
        Ok(pid)
    }

    /// Fails if a process has exited: the figures would mean nothing. Its stderr is
    /// read from `logs/{name}.stderr`.
    pub(super) fn check_alive(&mut self, logs: &Path) -> anyhow::Result<()> {
        for (name, child) in &mut self.0 {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "`{name}` {} during the benchmark:\n{}",
                    proc::describe(status),
                    proc::tail(&logs.join(format!("{name}.stderr")), 20)
                );
            }
        }
        Ok(())
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `ferry` to measure for `bench SUITE` (a release build of the working tree, or
/// the binary given), checked to have `subcommands`; with its version and origin.
/// `--rev` is `bench ci`'s alone.
pub(super) fn resolve_ferry(
    source: &FerrySource,
    suite: &str,
    subcommands: &[&str],
) -> anyhow::Result<(PathBuf, String)> {
    let (bin, origin) = match source {
        FerrySource::Prebuilt(path) => (path.clone(), format!("prebuilt {}", path.display())),
        FerrySource::WorkingTree => {
            let p = phase::start("preparing ferry (release build)");
            proc::run(cargo().args(["build", "--release", "--package", "ferry"]))?;
            p.done("built ferry");
            (
                paths::target_dir().join("release/ferry"),
                "release build of the working tree".to_string(),
            )
        }
        FerrySource::Rev(rev) => bail!(
            "`bench {suite} --rev {rev}` is not supported yet: build that commit and pass `--ferry PATH`"
        ),
    };
    for sub in subcommands {
        let mut cmd = Command::new(&bin);
        cmd.args([sub, "--help"]);
        if !proc::succeeds(&mut cmd) {
            bail!(
                "`{}` fails: this build of ferry cannot be benchmarked by `bench {suite}`",
                proc::display(&cmd)
            );
        }
    }
    let version = proc::output(Command::new(&bin).arg("--version"))?;
    Ok((bin, format!("{}, {origin}", version.trim())))
}

/// `git ARGS` in `dir` as a bench user; its standard output.
pub(super) fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .args([
            "-c",
            "user.name=Ferry Bench",
            "-c",
            "user.email=bench@ferry.invalid",
        ])
        .args(args);
    proc::output(&mut c)
}
