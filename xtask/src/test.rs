//! `cargo xtask test`: prepare the machine, then run the whole workspace under
//! cargo-nextest with the `ci` profile (see `.config/nextest.toml`).

use crate::{deps, paths, phase, proc, services};
use std::process::{Command, ExitCode};

/// The cargo that ran us (so a toolchain override carries through), else `cargo`.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(paths::root());
    cmd
}

/// Installs missing tools, starts the services and builds the shared test image.
pub fn prepare(dry_run: bool) -> anyhow::Result<()> {
    deps::ensure(dry_run)?;
    services::ensure_docker(dry_run)?;
    services::ensure_busybox_image(dry_run)?;
    services::ensure_postgres(dry_run)?;
    ensure_nextest(dry_run)?;
    Ok(())
}

fn ensure_nextest(dry_run: bool) -> anyhow::Result<()> {
    if proc::succeeds(cargo().args(["nextest", "--version"])) {
        return Ok(());
    }
    let mut install = cargo();
    install.args(["install", "cargo-nextest", "--locked"]);
    if dry_run {
        phase::note(&format!("would run: {}", proc::display(&install)));
        return Ok(());
    }
    let p = phase::start("installing cargo-nextest");
    proc::run(&mut install)?;
    p.done("installed cargo-nextest");
    Ok(())
}

/// The nextest command line for the suite, with the environment tests rely on.
pub fn nextest_command(extra: &[String]) -> Command {
    let mut cmd = cargo();
    cmd.args(["nextest", "run", "--workspace", "--profile", "ci"]);
    cmd.args(extra);
    // Tests that need Docker fail instead of skipping when it is missing.
    cmd.env("FERRY_TEST_REQUIRE_DOCKER", "1");
    // The PostgreSQL server `prepare` made sure of; tests create their own databases.
    cmd.env("FERRY_TEST_DATABASE_URL", services::postgres_url());
    // Tests commit to scratch repositories; a fresh machine has no git identity.
    for (var, value) in [
        ("GIT_AUTHOR_NAME", "Ferry Tests"),
        ("GIT_AUTHOR_EMAIL", "tests@ferry.invalid"),
        ("GIT_COMMITTER_NAME", "Ferry Tests"),
        ("GIT_COMMITTER_EMAIL", "tests@ferry.invalid"),
    ] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, value);
        }
    }
    cmd
}

/// `cargo xtask test`: returns nextest's exit code.
pub fn run(dry_run: bool, nextest_args: &[String]) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    prepare(dry_run)?;
    let mut nextest = nextest_command(nextest_args);
    if dry_run {
        phase::note(&format!(
            "would run: FERRY_TEST_REQUIRE_DOCKER=1 FERRY_TEST_DATABASE_URL={} {}",
            services::postgres_url(),
            proc::display(&nextest)
        ));
        return Ok(ExitCode::SUCCESS);
    }
    phase::note(&format!(
        "machine ready in {}",
        phase::seconds(started.elapsed())
    ));
    let p = phase::start(&format!("running {}", proc::display(&nextest)));
    let status = proc::status(&mut nextest)?;
    let verdict = if status.success() {
        "tests passed".to_string()
    } else {
        format!("tests failed (cargo nextest {})", proc::describe(status))
    };
    p.done(&verdict);
    phase::note(&format!("total {}", phase::seconds(started.elapsed())));
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nextest_runs_the_workspace_with_the_ci_profile_and_requires_docker() {
        let cmd = nextest_command(&["-E".into(), "test(docker)".into()]);
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "nextest",
                "run",
                "--workspace",
                "--profile",
                "ci",
                "-E",
                "test(docker)"
            ]
        );
        let requires_docker = cmd
            .get_envs()
            .any(|(k, v)| k == "FERRY_TEST_REQUIRE_DOCKER" && v == Some("1".as_ref()));
        assert!(requires_docker);
        let database = cmd.get_envs().any(|(k, v)| {
            k == "FERRY_TEST_DATABASE_URL"
                && v == Some("postgres://postgres@127.0.0.1:54329/postgres".as_ref())
        });
        assert!(database);
    }
}
