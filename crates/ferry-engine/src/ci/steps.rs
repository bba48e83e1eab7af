//! The steps of one attempt: env, script, shell, and dispatch to an executor.

use super::container::ContainerJob;
use super::host::{self, HostCommand, Limits, StepEnd};
use super::job::{Attempt, JobCtx};
use super::output::StepOutput;
use super::util::{ms, slug, which};
use ferry_config::{Shell, Step, interpolate};
use ferry_types::{JobResult, RunEvent, StepRef};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where steps run.
pub(crate) enum Executor {
    Host,
    Container(Box<ContainerJob>),
}

impl Executor {
    /// Prepares the executor (for containers: network, services, job container).
    pub(crate) async fn start(j: &JobCtx<'_>) -> Result<Executor, String> {
        match &j.job.image {
            None => Ok(Executor::Host),
            Some(image) => {
                let image = interpolate(image, &j.ectx)
                    .map_err(|e| format!("`image` cannot be rendered: {e}"))?;
                let c = ContainerJob::start(j, &image).await?;
                Ok(Executor::Container(Box::new(c)))
            }
        }
    }

    /// Removes what `start` created; safe to call whatever happened.
    pub(crate) async fn cleanup(self) {
        if let Executor::Container(c) = self {
            c.cleanup().await;
        }
    }
}

/// Renders pipeline → job → step env; each level sees the levels before it.
fn render_env(
    j: &JobCtx<'_>,
    step: &Step,
) -> Result<(ferry_config::EvalContext, Vec<(String, String)>), String> {
    let mut c = j.ectx.clone();
    let facts = &c.facts;
    let mut vars: Vec<(String, String)> = vec![
        ("FERRY".into(), "1".into()),
        ("CI".into(), "true".into()),
        ("FERRY_SHA".into(), facts.sha.clone()),
        (
            "FERRY_BRANCH".into(),
            facts.branch.clone().unwrap_or_default(),
        ),
        ("FERRY_RUN_ID".into(), facts.run_id.clone()),
        ("FERRY_JOB".into(), j.inst.id.clone()),
        ("FERRY_WORKSPACE".into(), j.workspace.display().to_string()),
    ];
    let levels = [
        ("pipeline", &j.run.pipeline.env),
        ("job", &j.job.env),
        ("step", &step.env),
    ];
    for (level, env) in levels {
        for (k, v) in env {
            let value = interpolate(v, &c)
                .map_err(|e| format!("{level} env `{k}` cannot be rendered: {e}"))?;
            c.env.insert(k.clone(), value);
        }
    }
    for (k, v) in &c.env {
        vars.retain(|(name, _)| name != k);
        vars.push((k.clone(), v.clone()));
    }
    Ok((c, vars))
}

/// What to execute for a step: argv[0] is a program name or path.
fn argv(
    j: &JobCtx<'_>,
    index: usize,
    step: &Step,
    script: &str,
    container: bool,
) -> Result<Vec<String>, String> {
    let shell = step.shell.clone().or_else(|| j.job.shell.clone());
    match shell {
        // In a container the image decides: bash when it has it, else sh.
        None if container => Ok(vec![]),
        None | Some(Shell::Bash) => Ok(vec![
            "bash".into(),
            "-eo".into(),
            "pipefail".into(),
            "-c".into(),
            script.into(),
        ]),
        Some(Shell::Sh) => Ok(vec!["sh".into(), "-e".into(), "-c".into(), script.into()]),
        Some(Shell::Command(cmd)) => {
            let dir = j.run.work_root.join(".scripts");
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let file = dir.join(format!("{}-{:02}-{}", j.slug, index + 1, j.attempt));
            std::fs::write(&file, script)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            let path = file.display().to_string();
            let words: Vec<String> = cmd
                .split_whitespace()
                .map(|w| w.replace("{0}", &path))
                .collect();
            if words.is_empty() {
                return Err("`shell` is empty".into());
            }
            Ok(words)
        }
    }
}

/// Runs every step; the first failure ends the attempt (later steps are `skipped`).
pub(crate) async fn run_steps(
    j: &JobCtx<'_>,
    exec: &Executor,
    deadline: Option<tokio::time::Instant>,
) -> Attempt {
    let mut failed: Option<Attempt> = None;
    let path_env: Option<OsString> = j.run.opts.path_env.clone();
    for (index, step) in j.job.steps.iter().enumerate() {
        let sref = StepRef {
            job: j.inst.id.clone(),
            index,
            name: j.masker.mask_str(&step.display_name()),
        };
        let finish = |result: JobResult, exit_code: Option<i32>, d: u64| RunEvent::StepFinished {
            step: sref.clone(),
            result,
            exit_code,
            duration_ms: d,
        };
        if failed.is_some() || j.run.cancel.is_cancelled() {
            let r = if j.run.cancel.is_cancelled() {
                JobResult::Cancelled
            } else {
                JobResult::Skipped
            };
            j.run.events.send(finish(r, None, 0)).await;
            if failed.is_none() {
                failed = Some(Attempt {
                    result: JobResult::Cancelled,
                    reason: Some("the run was cancelled".into()),
                });
            }
            continue;
        }
        let (ctx, env) = match render_env(j, step) {
            Ok(x) => x,
            Err(e) => {
                j.run.events.send(finish(JobResult::Failure, None, 0)).await;
                failed = Some(Attempt::fail(format!(
                    "step {} ({}): {e}",
                    index + 1,
                    sref.name
                )));
                continue;
            }
        };
        if let Some(cond) = &step.condition {
            match cond.evaluate(&ctx) {
                Ok(true) => {}
                Ok(false) => {
                    j.run.events.send(finish(JobResult::Skipped, None, 0)).await;
                    continue;
                }
                Err(e) => {
                    j.run.events.send(finish(JobResult::Failure, None, 0)).await;
                    failed = Some(Attempt::fail(format!(
                        "step {} ({}): its `if` cannot be evaluated: {e}",
                        index + 1,
                        sref.name
                    )));
                    continue;
                }
            }
        }
        j.run
            .events
            .send(RunEvent::StepStarted { step: sref.clone() })
            .await;
        let started = Instant::now();
        let log_name = if j.attempt == 1 {
            format!("{:02}-{}.log", index + 1, slug(&sref.name))
        } else {
            format!(
                "{:02}-{}.attempt-{}.log",
                index + 1,
                slug(&sref.name),
                j.attempt
            )
        };
        let mut out = StepOutput::new(
            &j.inst.id,
            index,
            &j.log_dir.join(log_name),
            j.masker,
            j.run.events.clone(),
        );
        let end = match interpolate(&step.run, &ctx) {
            Err(e) => StepEnd::NotStarted(format!("the `run` script cannot be rendered: {e}")),
            Ok(script) => {
                let step_deadline = step.timeout.map(|t| tokio::time::Instant::now() + t);
                let limits = Limits {
                    deadline: match (step_deadline, deadline) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    },
                    cancel: j.run.cancel.clone(),
                    grace: j.run.opts.grace,
                };
                let cwd = step_dir(j, step);
                let container = matches!(exec, Executor::Container(_));
                match argv(j, index, step, &script, container) {
                    Err(e) => StepEnd::NotStarted(e),
                    Ok(args) => match exec {
                        Executor::Host => {
                            run_on_host(args, &cwd, &env, path_env.as_ref(), &limits, &mut out)
                                .await
                        }
                        Executor::Container(c) => {
                            c.exec_step(args, &script, &cwd, &env, &limits, &mut out)
                                .await
                        }
                    },
                }
            }
        };
        if let StepEnd::NotStarted(msg) = &end {
            out.note(msg).await;
        }
        out.finish().await;
        let d = ms(started.elapsed());
        let (result, code, reason) = match &end {
            StepEnd::Exited(0) => (JobResult::Success, Some(0), None),
            StepEnd::Exited(c) => (
                JobResult::Failure,
                Some(*c),
                Some(format!(
                    "step {} ({}) exited with code {c}",
                    index + 1,
                    sref.name
                )),
            ),
            StepEnd::TimedOut => (
                JobResult::TimedOut,
                None,
                Some(format!(
                    "step {} ({}) hit the timeout and was killed",
                    index + 1,
                    sref.name
                )),
            ),
            StepEnd::Cancelled => (
                JobResult::Cancelled,
                None,
                Some("the run was cancelled".to_string()),
            ),
            StepEnd::NotStarted(m) => (
                JobResult::Failure,
                None,
                Some(format!("step {} ({}): {m}", index + 1, sref.name)),
            ),
        };
        let result =
            if step.allow_failure && matches!(result, JobResult::Failure | JobResult::TimedOut) {
                JobResult::AllowedFailure
            } else {
                result
            };
        j.run.events.send(finish(result, code, d)).await;
        if !matches!(result, JobResult::Success | JobResult::AllowedFailure) {
            failed = Some(Attempt { result, reason });
        }
    }
    failed.unwrap_or(Attempt {
        result: JobResult::Success,
        reason: None,
    })
}

fn step_dir(j: &JobCtx<'_>, step: &Step) -> PathBuf {
    let mut dir = j.workspace.clone();
    if let Some(w) = &j.job.working_directory {
        dir.push(w);
    }
    if let Some(w) = &step.working_directory {
        dir.push(w);
    }
    dir
}

async fn run_on_host(
    args: Vec<String>,
    cwd: &Path,
    env: &[(String, String)],
    path_env: Option<&OsString>,
    limits: &Limits,
    out: &mut StepOutput,
) -> StepEnd {
    let Some((first, rest)) = args.split_first() else {
        return StepEnd::NotStarted("nothing to run".into());
    };
    let Some(program) = which(first, path_env.map(|p| p.as_os_str())) else {
        return StepEnd::NotStarted(if first == "bash" {
            "`bash` was not found on PATH; install bash or set `shell: sh`".to_string()
        } else {
            format!("`{first}` was not found on PATH")
        });
    };
    let cmd = HostCommand {
        program: &program,
        args: rest.iter().map(OsString::from).collect(),
        cwd,
        env,
        path_env,
    };
    host::run(cmd, limits, out).await
}
