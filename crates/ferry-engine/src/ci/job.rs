//! One job instance: its condition, approval, secrets, attempts and the work around
//! its steps (workspace, artifacts, cache).

use super::ApprovalDecision;
use super::output::JobNotes;
use super::scheduler::RunCtx;
use super::steps::{self, Executor};
use super::util::ms;
use super::workspace;
use ferry_config::{EvalContext, Job, JobInstance, RunFacts, interpolate, referenced_secrets};
use ferry_secrets::Masker;
use ferry_types::{JobResult, RunEvent};
use indexmap::IndexMap;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a job instance ended.
#[derive(Debug, Clone)]
pub(crate) struct JobOutcome {
    pub result: JobResult,
    pub duration: Duration,
    pub reason: Option<String>,
    pub attempts: u32,
}

impl JobOutcome {
    pub(crate) fn not_run(result: JobResult, reason: &str) -> Self {
        JobOutcome {
            result,
            duration: Duration::ZERO,
            reason: Some(reason.to_string()),
            attempts: 0,
        }
    }
}

/// How one attempt ended.
pub(crate) struct Attempt {
    pub result: JobResult,
    pub reason: Option<String>,
}

impl Attempt {
    pub(crate) fn fail(reason: impl Into<String>) -> Self {
        Attempt {
            result: JobResult::Failure,
            reason: Some(reason.into()),
        }
    }
}

pub(crate) async fn finish_event(ctx: &RunCtx, id: &str, o: &JobOutcome) {
    ctx.events
        .send(RunEvent::JobFinished {
            job: id.to_string(),
            result: o.result,
            duration_ms: ms(o.duration),
            reason: o.reason.clone(),
        })
        .await;
}

/// Everything a job's templates can reference, for finding its secrets.
fn templates(ctx: &RunCtx, job: &Job) -> Vec<String> {
    let mut t: Vec<String> = ctx.pipeline.env.values().cloned().collect();
    t.extend(job.env.values().cloned());
    for s in &job.steps {
        t.push(s.run.clone());
        t.extend(s.env.values().cloned());
    }
    if let Some(i) = &job.image {
        t.push(i.clone());
    }
    for svc in job.services.values() {
        t.push(svc.image.clone());
        t.extend(svc.env.values().cloned());
    }
    if let Some(c) = &job.cache {
        t.push(c.key.clone());
    }
    t
}

/// The expression context every template of this job starts from.
pub(crate) fn base_context(
    ctx: &RunCtx,
    inst: &JobInstance,
    needs: &IndexMap<String, JobResult>,
    workspace: &std::path::Path,
) -> EvalContext {
    let c = &ctx.commit;
    EvalContext {
        facts: RunFacts {
            sha: c.sha.clone(),
            short_sha: c.sha.chars().take(8).collect(),
            branch: c.branch.clone(),
            tag: c.tag.clone(),
            run_id: ctx.run_id.clone(),
            event: ctx.opts.event.clone(),
            pipeline: ctx.pipeline.name.clone(),
            job: inst.id.clone(),
            workspace: workspace.display().to_string(),
        },
        matrix: inst.matrix.clone(),
        needs: needs.clone(),
        ..EvalContext::default()
    }
}

/// Runs one instance to its end, with every event it owes.
pub(crate) async fn run_instance(
    ctx: &Arc<RunCtx>,
    inst: &JobInstance,
    needs: IndexMap<String, JobResult>,
    needs_ok: bool,
) -> JobOutcome {
    let o = decide_and_run(ctx, inst, needs, needs_ok).await;
    finish_event(ctx, &inst.id, &o).await;
    o
}

async fn decide_and_run(
    ctx: &Arc<RunCtx>,
    inst: &JobInstance,
    needs: IndexMap<String, JobResult>,
    needs_ok: bool,
) -> JobOutcome {
    let Some(job) = ctx.pipeline.jobs.get(&inst.job) else {
        return JobOutcome::not_run(
            JobResult::Failure,
            "internal error: the job is not in the pipeline",
        );
    };
    let slug = ctx
        .slugs
        .get(&inst.id)
        .cloned()
        .unwrap_or_else(|| super::util::slug(&inst.id));
    let ws = workspace::job_dir(&ctx.work_root, &slug);
    let mut ectx = base_context(ctx, inst, &needs, &ws);

    // The condition. See the module docs of `ci` for the rule.
    match &job.condition {
        Some(cond) if cond.source.contains("needs") => match cond.evaluate(&ectx) {
            Ok(true) => {}
            Ok(false) => {
                return JobOutcome::not_run(
                    JobResult::Skipped,
                    &format!("its `if` is false: `{}`", cond.source),
                );
            }
            Err(e) => {
                return JobOutcome::not_run(
                    JobResult::Failure,
                    &format!("its `if` cannot be evaluated: {e}"),
                );
            }
        },
        cond => {
            if !needs_ok {
                let failed: Vec<String> = needs
                    .iter()
                    .filter(|(_, r)| !r.lets_dependants_run())
                    .map(|(j, r)| format!("`{j}` ({r})"))
                    .collect();
                return JobOutcome::not_run(
                    JobResult::Skipped,
                    &format!("a job it needs did not succeed: {}", failed.join(", ")),
                );
            }
            if let Some(cond) = cond {
                match cond.evaluate(&ectx) {
                    Ok(true) => {}
                    Ok(false) => {
                        return JobOutcome::not_run(
                            JobResult::Skipped,
                            &format!("its `if` is false: `{}`", cond.source),
                        );
                    }
                    Err(e) => {
                        return JobOutcome::not_run(
                            JobResult::Failure,
                            &format!("its `if` cannot be evaluated: {e}"),
                        );
                    }
                }
            }
        }
    }

    // Secrets: only those the job references.
    let mut names = BTreeSet::new();
    for t in templates(ctx, job) {
        names.extend(referenced_secrets(&t));
    }
    let mut values: Vec<Vec<u8>> = Vec::new();
    for name in &names {
        match ctx.opts.secrets.get(name) {
            Ok(Some(v)) => {
                ectx.secrets
                    .insert(name.clone(), String::from_utf8_lossy(&v).into_owned());
                values.push(v);
            }
            Ok(None) => {
                return JobOutcome::not_run(
                    JobResult::Failure,
                    &format!(
                        "job `{}` uses secret `{name}`, which is not set: run `ferry secret set {name}`",
                        inst.id
                    ),
                );
            }
            Err(e) => {
                return JobOutcome::not_run(
                    JobResult::Failure,
                    &format!("cannot read secret `{name}`: {e}"),
                );
            }
        }
    }
    let masker = Masker::new(values.iter().filter(|v| !v.is_empty()));

    // Approval, before taking a slot so waiting for a person blocks nobody.
    if let Some(approval) = &job.approval
        && !ctx
            .opts
            .approve
            .iter()
            .any(|a| a == &inst.id || a == &inst.job)
    {
        let message = approval
            .message
            .clone()
            .unwrap_or_else(|| format!("job `{}` needs approval to start", inst.id));
        let guard = tokio::select! {
            g = ctx.approvals.lock() => g,
            () = ctx.cancel.cancelled() => return JobOutcome::not_run(JobResult::Cancelled, "the run was cancelled while the job waited for approval"),
        };
        ctx.events
            .send(RunEvent::ApprovalRequired {
                job: inst.id.clone(),
                message: message.clone(),
            })
            .await;
        let decision = tokio::select! {
            d = ctx.opts.approver.approve(&inst.id, &message) => d,
            () = ctx.cancel.cancelled() => return JobOutcome::not_run(JobResult::Cancelled, "the run was cancelled while the job waited for approval"),
        };
        drop(guard);
        match decision {
            ApprovalDecision::Approved => {}
            ApprovalDecision::Refused(who) => {
                let by = if who.is_empty() {
                    String::new()
                } else {
                    format!(" ({who})")
                };
                return JobOutcome::not_run(
                    JobResult::Failure,
                    &format!("job `{}` was not approved{by}", inst.job),
                );
            }
            ApprovalDecision::NoApprover => {
                return JobOutcome::not_run(
                    JobResult::Failure,
                    &format!(
                        "job `{}` needs approval: run with `--approve {}`",
                        inst.job, inst.job
                    ),
                );
            }
        }
    }

    ctx.events
        .send(RunEvent::JobQueued {
            job: inst.id.clone(),
        })
        .await;
    let _permit = tokio::select! {
        p = ctx.slots.acquire() => match p {
            Ok(p) => p,
            Err(_) => return JobOutcome::not_run(JobResult::Cancelled, "the run is shutting down"),
        },
        () = ctx.cancel.cancelled() => return JobOutcome::not_run(JobResult::Cancelled, "the run was cancelled before the job started"),
    };

    let started = Instant::now();
    let log_dir = ctx.run_dir.join("logs").join(&slug);
    if let Err(e) = std::fs::create_dir_all(&log_dir) {
        return JobOutcome::not_run(
            JobResult::Failure,
            &format!("cannot create {}: {e}", log_dir.display()),
        );
    }
    let notes = JobNotes::new(&inst.id, log_dir.join("ferry.log"), ctx.events.clone());
    let executor_name = match &job.image {
        Some(img) => format!(
            "container:{}",
            interpolate(img, &ectx).unwrap_or_else(|_| img.clone())
        ),
        None => "host".to_string(),
    };
    let mut attempt_no = 1;
    let last = loop {
        ctx.events
            .send(RunEvent::JobStarted {
                job: inst.id.clone(),
                attempt: attempt_no,
                executor: masker.mask_str(&executor_name),
            })
            .await;
        let job_ctx = JobCtx {
            run: ctx.clone(),
            inst,
            job,
            slug: slug.clone(),
            workspace: ws.clone(),
            log_dir: log_dir.clone(),
            ectx: ectx.clone(),
            masker: &masker,
            notes: &notes,
            attempt: attempt_no,
        };
        let a = run_attempt(&job_ctx).await;
        let retryable = matches!(a.result, JobResult::Failure | JobResult::TimedOut);
        if retryable
            && ctx.in_process_retries
            && attempt_no <= job.retry
            && !ctx.cancel.is_cancelled()
        {
            attempt_no += 1;
            ctx.events
                .send(RunEvent::JobRetrying {
                    job: inst.id.clone(),
                    next_attempt: attempt_no,
                })
                .await;
            continue;
        }
        break a;
    };
    let mut result = last.result;
    let mut reason = last.reason.map(|r| masker.mask_str(&r));
    if job.allow_failure && matches!(result, JobResult::Failure | JobResult::TimedOut) {
        result = JobResult::AllowedFailure;
        reason = reason.map(|r| format!("{r} (allowed to fail)"));
    }
    JobOutcome {
        result,
        duration: started.elapsed(),
        reason,
        attempts: attempt_no,
    }
}

/// What one attempt needs.
pub(crate) struct JobCtx<'a> {
    pub run: Arc<RunCtx>,
    pub inst: &'a JobInstance,
    pub job: &'a Job,
    pub slug: String,
    pub workspace: PathBuf,
    pub log_dir: PathBuf,
    pub ectx: EvalContext,
    pub masker: &'a Masker,
    pub notes: &'a JobNotes,
    pub attempt: u32,
}

impl JobCtx<'_> {
    pub(crate) async fn note(&self, step: usize, text: &str) {
        self.notes.note(step, &self.masker.mask_str(text)).await;
    }
}

async fn run_attempt(j: &JobCtx<'_>) -> Attempt {
    let deadline = j.job.timeout.map(|t| tokio::time::Instant::now() + t);
    // A fresh workspace from the run's snapshot.
    let (snap, ws) = (j.run.snapshot.clone(), j.workspace.clone());
    match tokio::task::spawn_blocking(move || workspace::materialize(&snap, &ws)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Attempt::fail(format!(
                "cannot prepare the workspace {}: {e}",
                j.workspace.display()
            ));
        }
        Err(e) => return Attempt::fail(format!("preparing the workspace failed: {e}")),
    }
    // Artifacts of the jobs it needs.
    if !j.inst.needs.is_empty() {
        match j.run.artifacts.restore(&j.inst.needs, &j.workspace).await {
            Ok(notes) => {
                for n in notes {
                    j.note(0, &n).await;
                }
            }
            Err(e) => return Attempt::fail(format!("cannot restore artifacts: {e}")),
        }
    }
    // Cache.
    let mut cache_key = None;
    if let Some(cache) = &j.job.cache {
        let mut c = j.ectx.clone();
        c.workspace = Some(j.workspace.clone());
        match interpolate(&cache.key, &c) {
            Ok(key) => {
                let run = j.run.clone();
                let (k, ws) = (key.clone(), j.workspace.clone());
                match tokio::task::spawn_blocking(move || run.cache.restore(&k, &ws)).await {
                    Ok(Ok(true)) => j.note(0, &format!("Restored cache `{key}`.")).await,
                    Ok(Ok(false)) => j.note(0, &format!("No cache for `{key}` yet.")).await,
                    Ok(Err(e)) => {
                        j.note(
                            0,
                            &format!(
                                "warning: cannot restore cache `{key}`: {e}; going on without it"
                            ),
                        )
                        .await
                    }
                    Err(e) => {
                        j.note(0, &format!("warning: restoring cache failed: {e}"))
                            .await
                    }
                }
                cache_key = Some(key);
            }
            Err(e) => return Attempt::fail(format!("the cache key cannot be rendered: {e}")),
        }
    }

    let executor = match Executor::start(j).await {
        Ok(e) => e,
        Err(msg) => return Attempt::fail(msg),
    };
    let outcome = steps::run_steps(j, &executor, deadline).await;
    executor.cleanup().await;
    if outcome.result != JobResult::Success {
        return outcome;
    }

    let last_step = j.job.steps.len().saturating_sub(1);
    if let Some(art) = &j.job.artifacts {
        match j
            .run
            .artifacts
            .save(&j.inst.id, &j.workspace, &art.paths)
            .await
        {
            Ok(note) => j.note(last_step, &note).await,
            Err(e) => return Attempt::fail(format!("cannot save artifacts: {e}")),
        }
    }
    if let (Some(cache), Some(key)) = (&j.job.cache, cache_key) {
        let run = j.run.clone();
        let (ws, paths) = (j.workspace.clone(), cache.paths.clone());
        let note =
            match tokio::task::spawn_blocking(move || run.cache.save(&key, &ws, &paths)).await {
                Ok(Ok(note)) => note,
                Ok(Err(warning)) => format!("warning: {warning}"),
                Err(e) => format!("warning: saving the cache failed: {e}"),
            };
        j.note(last_step, &note).await;
    }
    if let Some(environment) = &j.job.deploy {
        return deploy(j, environment, last_step, outcome).await;
    }
    outcome
}

/// The deploy of a job with `deploy: ENV`, after its steps passed: the job's result is
/// the deploy's. `ferry run` has no server to deploy with, so it says so and passes.
async fn deploy(j: &JobCtx<'_>, environment: &str, step: usize, outcome: Attempt) -> Attempt {
    match j.run.artifacts.deploy(environment).await {
        None => {
            j.note(
                step,
                &format!(
                    "Not deploying to `{environment}`: deploys run on a Ferry server \
                     (`ferry up`, or push to a project on `ferry serve`)."
                ),
            )
            .await;
            outcome
        }
        Some(Ok(done)) => {
            for line in &done.lines {
                j.note(step, line).await;
            }
            if done.succeeded {
                j.note(
                    step,
                    &format!("Deployed {} to `{environment}`.", done.release),
                )
                .await;
                outcome
            } else {
                Attempt::fail(format!(
                    "the deploy of {} to `{environment}` did not go live (deploy {})",
                    done.release, done.deploy_id
                ))
            }
        }
        Some(Err(e)) => Attempt::fail(format!("cannot deploy to `{environment}`: {e}")),
    }
}
