//! What people and executors do to runs: cancel, approve, re-run, take an assignment,
//! fetch the source, report a result — and the lease-expiry loop.

use super::trigger::{Reuse, create, fetch_mirror, project};
use super::{Assignment, Core, CoreError, artifacts};
use ferry_store::db::{
    ClaimedJob, DbError, DeployQuery, Job, JobOutcome, Lease, NewEvent, Run, now_ms,
};
use ferry_types::{EventKind, JobResult, JobStatus, RunStatus};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

pub(crate) async fn get_run(core: &Core, run_id: i64) -> Result<Run, CoreError> {
    core.store()
        .get_run(run_id)
        .await?
        .ok_or_else(|| CoreError::NotFound {
            what: "run",
            key: run_id.to_string(),
        })
}

pub(crate) async fn cancel_run(core: &Core, run_id: i64, by: &str) -> Result<(), CoreError> {
    let run = get_run(core, run_id).await?;
    if run.status.is_finished() {
        return Err(CoreError::Invalid(format!(
            "run {run_id} has already ended ({})",
            run.status
        )));
    }
    if core
        .store()
        .set_run_status(run_id, RunStatus::Cancelled)
        .await?
    {
        tracing::info!(run = run_id, by, "Cancelled a run.");
    }
    core.cancel_local(run_id);
    cancel_run_deploys(core, run_id, by).await
}

/// Cancels the deploys the jobs of run `run_id` asked for that have not ended: one
/// not started yet ends, one running is rolled back. A job waiting for its deploy then
/// stops waiting. A deploy carried out by another server is left to it, with a warning.
pub(crate) async fn cancel_run_deploys(
    core: &Core,
    run_id: i64,
    by: &str,
) -> Result<(), CoreError> {
    let deploys = core
        .store()
        .deploys(&DeployQuery {
            run_id: Some(run_id),
            active_only: true,
            ..DeployQuery::default()
        })
        .await?;
    for d in deploys {
        match core.deployer().cancel(d.id, by).await {
            Ok(_) => tracing::info!(
                run = run_id,
                deploy = d.id,
                by,
                "Cancelled the run's deploy."
            ),
            Err(e) => {
                tracing::warn!(run = run_id, deploy = d.id, error = %e, "Could not cancel the run's deploy.");
            }
        }
    }
    Ok(())
}

/// The result a job's status shows to the jobs that need it.
pub(crate) fn result_of(status: JobStatus) -> Option<JobResult> {
    Some(match status {
        JobStatus::Success => JobResult::Success,
        JobStatus::AllowedFailure => JobResult::AllowedFailure,
        JobStatus::Skipped => JobResult::Skipped,
        JobStatus::Cancelled => JobResult::Cancelled,
        JobStatus::TimedOut => JobResult::TimedOut,
        JobStatus::Failure | JobStatus::Lost | JobStatus::Interrupted => JobResult::Failure,
        JobStatus::Queued | JobStatus::WaitingApproval | JobStatus::Running => return None,
    })
}

fn spec_str<'a>(job: &'a Job, key: &str) -> Option<&'a str> {
    job.spec.get(key).and_then(|v| v.as_str())
}

fn spec_bool(job: &Job, key: &str) -> bool {
    job.spec.get(key).and_then(|v| v.as_bool()).unwrap_or(false)
}

/// Whether a person must approve the job (`approval` in `ferry.yml`).
pub(crate) fn wants_approval(job: &Job) -> bool {
    spec_bool(job, "approval")
}

/// Whether the job is held in `waiting_approval` by the engine (for its concurrency
/// group, or until its needs ended), besides or instead of a person's approval.
pub(crate) fn engine_held(job: &Job) -> bool {
    spec_bool(job, "hold_group") || spec_bool(job, "hold_needs")
}

/// Whether the reconciler — not the queue — waits for the job's needs.
pub(crate) fn held_for_needs(job: &Job) -> bool {
    spec_bool(job, "hold_needs")
}

/// The jobs a job needs: the store's list, or for jobs held for their needs the one
/// kept in its spec.
pub(crate) fn real_needs(job: &Job) -> Vec<String> {
    if held_for_needs(job)
        && let Some(list) = job.spec.get("needs").and_then(|v| v.as_array())
    {
        return list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
    }
    job.needs.clone()
}

/// Whether nothing but (possibly) a person holds the job any more.
pub(crate) async fn holds_cleared(
    core: &Core,
    run: &Run,
    job: &Job,
    jobs: &[Job],
) -> Result<bool, CoreError> {
    if held_for_needs(job) {
        let needs = real_needs(job);
        let ended = needs
            .iter()
            .all(|n| jobs.iter().any(|j| &j.name == n && j.status.is_finished()));
        if !ended {
            return Ok(false);
        }
    }
    if spec_bool(job, "hold_group") && group_busy(core, run).await? {
        return Ok(false);
    }
    Ok(true)
}

/// Whether an older run of `run`'s concurrency group is still active.
pub(crate) async fn group_busy(core: &Core, run: &Run) -> Result<bool, CoreError> {
    let Some(group) = &run.concurrency_group else {
        return Ok(false);
    };
    let active = core
        .store()
        .active_runs_in_group(&run.project, group)
        .await?;
    Ok(active.iter().any(|r| r.id < run.id))
}

pub(crate) async fn approve(
    core: &Core,
    run_id: i64,
    job: &str,
    by: &str,
) -> Result<(), CoreError> {
    let run = get_run(core, run_id).await?;
    let jobs = core.store().list_jobs(run_id).await?;
    let Some(j) = jobs.iter().find(|j| j.name == job) else {
        return Err(CoreError::NotFound {
            what: "job",
            key: format!("{job} in run {run_id}"),
        });
    };
    if j.status != JobStatus::WaitingApproval {
        return Err(CoreError::Invalid(format!(
            "job `{job}` of run {run_id} is not waiting for approval (it is {})",
            j.status
        )));
    }
    if engine_held(j) && !holds_cleared(core, &run, j, &jobs).await? {
        return Err(CoreError::Invalid(format!(
            "job `{job}` of run {run_id} cannot start yet (it waits for the jobs it needs or for an older run of its concurrency group); approve it once it can"
        )));
    }
    if !core.store().approve_job(run_id, job, by).await? {
        return Err(CoreError::Invalid(format!(
            "job `{job}` of run {run_id} is not waiting for approval"
        )));
    }
    Ok(())
}

/// The job instances of the old run that a failed-only re-run reuses.
struct Passed(BTreeSet<String>);

impl Reuse for Passed {
    fn reused(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

pub(crate) async fn rerun(
    core: &Core,
    run_id: i64,
    failed_only: bool,
    by: &str,
) -> Result<Run, CoreError> {
    let old = get_run(core, run_id).await?;
    if !old.status.is_finished() {
        return Err(CoreError::Invalid(format!(
            "run {run_id} has not ended; cancel it before re-running it"
        )));
    }
    let pipeline = ferry_config::parse(Path::new("ferry.yml"), &old.pipeline).map_err(|d| {
        CoreError::Pipeline(format!(
            "the ferry.yml of run {run_id} does not validate any more:\n{d}"
        ))
    })?;
    let old_jobs = core.store().list_jobs(run_id).await?;
    let passed: BTreeSet<String> = if failed_only {
        old_jobs
            .iter()
            .filter(|j| j.status.lets_dependants_run())
            .map(|j| j.name.clone())
            .collect()
    } else {
        BTreeSet::new()
    };
    let reuse = Passed(passed);
    let run = create(
        core,
        &pipeline,
        old.pipeline.clone(),
        &old.project,
        &old.sha,
        old.branch.clone(),
        old.tag.clone(),
        old.trigger,
        &reuse,
    )
    .await?;
    let data_dir = core.config().data_dir.clone();
    let old_artifacts = {
        let d = data_dir.clone();
        tokio::task::spawn_blocking(move || artifacts::read(&d, run_id))
            .await
            .unwrap_or_default()
    };
    let new_jobs = core.store().list_jobs(run.id).await?;
    for name in &reuse.0 {
        let (Some(new), Some(old_job)) = (
            new_jobs.iter().find(|j| &j.name == name),
            old_jobs.iter().find(|j| &j.name == name),
        ) else {
            continue;
        };
        // The digest first: dependants may be claimed the moment the job ends.
        if let Some(digest) = old_artifacts.get(name) {
            let (d, n, dg, id) = (data_dir.clone(), name.clone(), digest.clone(), run.id);
            tokio::task::spawn_blocking(move || artifacts::record(&d, id, &n, &dg))
                .await
                .map_err(|e| CoreError::Invalid(format!("recording artifacts failed: {e}")))?
                .map_err(|e| CoreError::Invalid(format!("recording artifacts failed: {e}")))?;
        }
        let reason = format!("passed in run {run_id}; its result and artifacts are reused");
        core.store()
            .end_waiting_job(new.id, old_job.status, Some(&reason))
            .await?;
    }
    tracing::info!(old = run_id, new = run.id, failed_only, by, "Re-ran a run.");
    Ok(run)
}

pub(crate) async fn assignment(core: &Core, claimed: ClaimedJob) -> Result<Assignment, CoreError> {
    let run = &claimed.run;
    let job = &claimed.job;
    let jobs = core.store().list_jobs(run.id).await?;
    let job_needs = real_needs(job);
    let mut needs = BTreeMap::new();
    for n in &job_needs {
        if let Some(r) = jobs
            .iter()
            .find(|j| &j.name == n)
            .and_then(|j| result_of(j.status))
        {
            needs.insert(n.clone(), r);
        }
    }
    let all = {
        let (d, id) = (core.config().data_dir.clone(), run.id);
        tokio::task::spawn_blocking(move || artifacts::read(&d, id))
            .await
            .unwrap_or_default()
    };
    let artifacts: BTreeMap<String, String> = all
        .into_iter()
        .filter(|(k, _)| job_needs.contains(k))
        .collect();

    // Secrets: only those the job's templates reference.
    let mut secrets = BTreeMap::new();
    if let Ok(pipeline) = ferry_config::parse(Path::new("ferry.yml"), &run.pipeline) {
        let job_id = spec_job_id(job, &pipeline);
        if let Some(pj) = job_id.and_then(|id| pipeline.jobs.get(&id)) {
            let names = pj.referenced_secrets(&pipeline.env);
            if !names.is_empty() {
                let dir = core.config().data_dir.clone();
                let wanted: Vec<String> = names.iter().cloned().collect();
                let values = tokio::task::spawn_blocking(move || {
                    ferry_secrets::SecretStore::open(&dir).and_then(|s| s.get_many(wanted))
                })
                .await
                .map_err(|e| CoreError::Invalid(format!("reading secrets failed: {e}")))?
                .map_err(|e| CoreError::Invalid(format!("cannot read the secret store: {e}")))?;
                for (name, value) in values {
                    let mut ev = NewEvent::new(EventKind::SecretAccessed);
                    ev.project = Some(run.project.clone());
                    ev.run_id = Some(run.id);
                    ev.job = Some(job.name.clone());
                    ev.data = json!({ "secret": name, "agent": claimed.lease.agent_id });
                    core.store().append_event(ev).await?;
                    secrets.insert(name, String::from_utf8_lossy(&value).into_owned());
                }
            }
        }
    }
    Ok(Assignment {
        lease: claimed.lease.clone(),
        lease_expires_at: claimed.lease_expires_at,
        run_id: run.id,
        project: run.project.clone(),
        job: job.name.clone(),
        sha: run.sha.clone(),
        branch: run.branch.clone(),
        tag: run.tag.clone(),
        pipeline: run.pipeline.clone(),
        needs,
        artifacts,
        secrets,
        event: run.trigger.as_str().to_string(),
    })
}

/// The pipeline job id of a job row (its spec says; else the instance id's prefix).
fn spec_job_id(job: &Job, pipeline: &ferry_config::Pipeline) -> Option<String> {
    if let Some(id) = spec_str(job, "job") {
        return Some(id.to_string());
    }
    pipeline
        .instances()
        .into_iter()
        .find(|i| i.id == job.name)
        .map(|i| i.job)
}

pub(crate) async fn source_archive(core: &Core, run_id: i64) -> Result<PathBuf, CoreError> {
    let run = get_run(core, run_id).await?;
    let path = core
        .config()
        .data_dir
        .join("sources")
        .join(format!("{}.tar", run.sha));
    if path.is_file() {
        // Asked for again: the hourly sweep keeps archives used within a day.
        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
        return Ok(path);
    }
    let project = project(core, &run.project).await?;
    let mirror = fetch_mirror(core, &project, Some(&run.sha)).await?;
    let (p, sha) = (path.clone(), run.sha.clone());
    tokio::task::spawn_blocking(move || mirror.archive(&sha, &p))
        .await
        .map_err(|e| CoreError::Git(format!("archiving the commit failed: {e}")))??;
    Ok(path)
}

pub(crate) async fn complete_job(
    core: &Core,
    lease: &Lease,
    outcome: JobOutcome,
    digest: Option<String>,
) -> Result<(), CoreError> {
    if let Some(d) = &digest {
        d.parse::<ferry_store::Digest>()
            .map_err(|e| CoreError::Invalid(format!("`{d}` is not an artifact digest: {e}")))?;
        if !core.blobs().contains(
            &d.parse::<ferry_store::Digest>()
                .map_err(|e| CoreError::Invalid(e.to_string()))?,
        ) {
            return Err(CoreError::Invalid(format!(
                "artifact blob {d} was never uploaded"
            )));
        }
        let job = core
            .store()
            .get_job(lease.job_id)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                what: "job",
                key: lease.job_id.to_string(),
            })?;
        if job.agent_id.as_deref() != Some(lease.agent_id.as_str()) || job.attempt != lease.attempt
        {
            return Err(DbError::LeaseLost {
                job_id: lease.job_id,
                agent_id: lease.agent_id.clone(),
                attempt: lease.attempt,
            }
            .into());
        }
        let (dir, name, dg) = (core.config().data_dir.clone(), job.name.clone(), d.clone());
        tokio::task::spawn_blocking(move || artifacts::record(&dir, job.run_id, &name, &dg))
            .await
            .map_err(|e| CoreError::Invalid(format!("recording artifacts failed: {e}")))?
            .map_err(|e| CoreError::Invalid(format!("recording artifacts failed: {e}")))?;
    }
    core.store().finish_job(lease, &outcome).await?;
    Ok(())
}

/// Takes back jobs whose lease ended, every [`super::CoreOptions::lease_check`].
pub(crate) async fn expire_loop(core: Core, shutdown: CancellationToken) {
    let every = core.inner.options.lease_check;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match core.store().expire_leases(now_ms()).await {
            Ok(taken) if !taken.is_empty() => {
                for t in &taken {
                    tracing::warn!(run = t.run_id, job = %t.job, agent = %t.agent_id, requeued = t.requeued, "A job's lease expired: its executor is gone.");
                }
                core.wake_workers();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "Taking back expired leases failed."),
        }
    }
}
