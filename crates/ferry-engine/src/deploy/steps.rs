//! `migrate`, `smoke` and blue-green `verify` steps, run on the server.
//!
//! A step runs like a job step on the host: `bash -eo pipefail -c SCRIPT` (or the
//! step's `shell`) in the release's directory (plus the step's `working-directory`),
//! with the release's env, the step's `env` and what the deploy adds (`FERRY_URL` for
//! smoke steps), in its own process group so a timeout stops everything it started.
//! Output is kept (the last lines) for the deploy's progress record.

use ferry_config::EvalContext;
use ferry_config::model::{Shell, Step};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// A step without `timeout` gets this long.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Output lines kept in the progress record of a step.
const TAIL_LINES: usize = 20;

/// How a step ended.
#[derive(Debug)]
pub(crate) struct StepResult {
    /// Whether it succeeded (or failed with `allow_failure`).
    pub ok: bool,
    /// A sentence for the progress record: what ran and how it ended, with the last
    /// lines of output for a failure.
    pub message: String,
}

/// Runs one step to its end.
pub(crate) async fn run(
    kind: &str,
    step: &Step,
    cwd: &Path,
    env: &BTreeMap<String, String>,
    ctx: &EvalContext,
    cancel: &CancellationToken,
) -> StepResult {
    let name = step.display_name();
    let fail = |why: String| StepResult {
        ok: step.allow_failure,
        message: format!("{kind} step `{name}` {why}"),
    };
    if let Some(condition) = &step.condition {
        match condition.evaluate(ctx) {
            Ok(true) => {}
            Ok(false) => {
                return StepResult {
                    ok: true,
                    message: format!("{kind} step `{name}` skipped: its `if` is false"),
                };
            }
            Err(e) => return fail(format!("has an `if` that could not be evaluated: {e}")),
        }
    }
    let script = match ferry_config::interpolate(&step.run, ctx) {
        Ok(s) => s,
        Err(e) => return fail(format!("could not be rendered: {e}")),
    };
    let mut vars = env.clone();
    for (k, v) in &step.env {
        match ferry_config::interpolate(v, ctx) {
            Ok(v) => {
                vars.insert(k.clone(), v);
            }
            Err(e) => return fail(format!("has an env value that could not be rendered: {e}")),
        }
    }
    let dir = match &step.working_directory {
        Some(w) => cwd.join(w),
        None => cwd.to_path_buf(),
    };
    let script_file;
    let mut cmd = match &step.shell {
        None | Some(Shell::Bash) => {
            let mut c = Command::new("bash");
            c.args(["-eo", "pipefail", "-c"]).arg(&script);
            c
        }
        Some(Shell::Sh) => {
            let mut c = Command::new("sh");
            c.args(["-e", "-c"]).arg(&script);
            c
        }
        Some(Shell::Command(line)) => {
            script_file = match tempfile::NamedTempFile::new() {
                Ok(f) => f,
                Err(e) => return fail(format!("could not be written to a file: {e}")),
            };
            if let Err(e) = std::fs::write(script_file.path(), &script) {
                return fail(format!("could not be written to a file: {e}"));
            }
            let line = line.replace("{0}", &script_file.path().display().to_string());
            let mut c = Command::new("sh");
            c.arg("-c").arg(line);
            c
        }
    };
    cmd.current_dir(&dir)
        .env_remove(ferry_secrets::MASTER_KEY_ENV)
        .envs(&vars)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("could not start in {}: {e}", dir.display())),
    };
    let group = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .map(Pid::from_raw);
    let kill = || {
        if let Some(g) = group {
            let _ = killpg(g, Signal::SIGKILL);
        }
    };
    let limit = step.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let output = tokio::select! {
        r = tokio::time::timeout(limit, child.wait_with_output()) => r,
        _ = cancel.cancelled() => {
            kill();
            return StepResult { ok: false, message: format!("{kind} step `{name}` was stopped") };
        }
    };
    let output = match output {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return fail(format!("could not be waited for: {e}")),
        Err(_) => {
            kill();
            return fail(format!("timed out after {}", humanize(limit)));
        }
    };
    // Whatever the step left in its group goes with it.
    kill();
    if output.status.success() {
        return StepResult {
            ok: true,
            message: format!("{kind} step `{name}` passed"),
        };
    }
    let code = output
        .status
        .code()
        .map_or_else(|| "a signal".to_string(), |c| format!("exit code {c}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    let allowed = if step.allow_failure {
        " (allowed to fail)"
    } else {
        ""
    };
    let mut message = format!("{kind} step `{name}` failed with {code}{allowed}");
    if !tail.is_empty() {
        message.push_str(":\n");
        message.push_str(&tail);
    }
    StepResult {
        ok: step.allow_failure,
        message,
    }
}

/// `1.5s`, `2m`: a duration as people write it.
pub(crate) fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    fn step(run: &str) -> Step {
        Step {
            name: None,
            run: run.into(),
            env: IndexMap::new(),
            condition: None,
            shell: None,
            working_directory: None,
            timeout: None,
            allow_failure: false,
        }
    }

    #[tokio::test]
    async fn runs_with_bash_pipefail_env_and_templates() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = EvalContext::default();
        ctx.facts.sha = "abc123".into();
        let env = BTreeMap::from([("FERRY_URL".to_string(), "http://x".to_string())]);
        let s =
            step("test \"$FERRY_URL\" = http://x && test ${{ ferry.sha }} = abc123 && touch here");
        let r = run(
            "smoke",
            &s,
            dir.path(),
            &env,
            &ctx,
            &CancellationToken::new(),
        )
        .await;
        assert!(r.ok, "{}", r.message);
        assert!(dir.path().join("here").exists());

        let r = run(
            "smoke",
            &step("false | true"),
            dir.path(),
            &env,
            &ctx,
            &CancellationToken::new(),
        )
        .await;
        assert!(!r.ok);
        assert_eq!(
            r.message,
            "smoke step `false | true` failed with exit code 1"
        );
    }

    #[tokio::test]
    async fn a_step_whose_if_is_false_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = step("touch ran");
        s.condition = Some(ferry_config::Expr::new("ferry.sha == 'other'").unwrap());
        let r = run(
            "migrate",
            &s,
            dir.path(),
            &BTreeMap::new(),
            &EvalContext::default(),
            &CancellationToken::new(),
        )
        .await;
        assert!(r.ok);
        assert_eq!(
            r.message,
            "migrate step `touch ran` skipped: its `if` is false"
        );
        assert!(!dir.path().join("ran").exists());
    }

    #[tokio::test]
    async fn a_failure_keeps_the_last_output_and_a_timeout_stops_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = EvalContext::default();
        let env = BTreeMap::new();
        let r = run(
            "migrate",
            &step("echo one; echo two >&2; exit 3"),
            dir.path(),
            &env,
            &ctx,
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(
            r.message,
            "migrate step `echo one; echo two >&2; exit 3` failed with exit code 3:\none\ntwo"
        );
        let mut slow = step("sleep 30");
        slow.timeout = Some(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let r = run(
            "migrate",
            &slow,
            dir.path(),
            &env,
            &ctx,
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(r.message, "migrate step `sleep 30` timed out after 200ms");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
