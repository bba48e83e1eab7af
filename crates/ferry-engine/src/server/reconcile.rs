//! The pipeline reconciler: one idempotent step per run towards its end.
//!
//! For a run that has not ended: a job still waiting whose needs all ended, one of
//! them without letting dependants run, ends `skipped` (unless its `if` looks at
//! `needs`); a job the engine holds (for the run's concurrency group, or until its
//! needs ended) is released once nothing holds it any more; when every
//! job has ended, the run ends `failure` if one failed, timed out, was lost,
//! interrupted or cancelled, else `success`. It reacts to the event log and also
//! sweeps every active run every [`super::CoreOptions::sweep`], so a crash at any point
//! is repaired by the next pass.

use super::ops::{engine_held, held_for_needs, holds_cleared, wants_approval};
use super::{Core, CoreError};
use ferry_store::db::Run;
use ferry_types::{EventKind, JobStatus, RunStatus};
use std::collections::BTreeSet;
use tokio_util::sync::CancellationToken;

/// Most runs looked at by a full listing (the newest).
const LIST_LIMIT: i64 = 1000;
/// Every this many sweeps, the active runs are listed from the store again (runs
/// created by another server on the same database, missed events).
const RELIST_EVERY: u32 = 12;

/// The runs the reconciler believes active: seeded from the store, grown by
/// `run.queued` events, shrunk when a run is seen ended. A sweep reads only these.
#[derive(Default)]
struct Active(BTreeSet<i64>);

impl Active {
    async fn relist(&mut self, core: &Core) {
        match core.store().list_runs(None, LIST_LIMIT).await {
            Ok(runs) => {
                self.0 = runs
                    .iter()
                    .filter(|r| !r.status.is_finished())
                    .map(|r| r.id)
                    .collect()
            }
            Err(e) => tracing::warn!(error = %e, "Listing runs failed."),
        }
    }

    /// Reconciles every active run, oldest first (so a group's older run ends
    /// before a newer one is looked at).
    async fn sweep(&mut self, core: &Core) {
        let ids: Vec<i64> = self.0.iter().copied().collect();
        for id in ids {
            if !reconcile_by_id(core, id).await {
                self.0.remove(&id);
            }
        }
    }
}

pub(crate) async fn run(core: Core, shutdown: CancellationToken) {
    let start = match core.store().last_event_id().await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "Reading the event log failed; the reconciler only sweeps.");
            0
        }
    };
    let mut follower = core.store().follow(start, None);
    let sweep_every = core.inner.options.sweep;
    let mut active = Active::default();
    // First pass at once: recovery may have left runs to finish.
    active.relist(&core).await;
    active.sweep(&core).await;
    let mut sweeps: u32 = 0;
    let mut next_sweep = tokio::time::Instant::now() + sweep_every;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(next_sweep) => {
                sweeps = sweeps.wrapping_add(1);
                if sweeps.is_multiple_of(RELIST_EVERY) {
                    active.relist(&core).await;
                }
                active.sweep(&core).await;
                next_sweep = tokio::time::Instant::now() + sweep_every;
            }
            ev = follower.next() => match ev {
                Ok(ev) => {
                    let relevant = matches!(
                        ev.kind,
                        EventKind::JobFinished | EventKind::RunFinished | EventKind::RunCancelled | EventKind::RunQueued
                    );
                    if relevant && let Some(run_id) = ev.run_id {
                        if reconcile_by_id(&core, run_id).await {
                            active.0.insert(run_id);
                        } else {
                            active.0.remove(&run_id);
                        }
                        // A run that ended may free its concurrency group.
                        if matches!(ev.kind, EventKind::RunFinished | EventKind::RunCancelled) {
                            active.sweep(&core).await;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Following the event log failed; retrying.");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            },
        }
    }
}

/// Reconciles one run; returns whether it is still active (errors count as active,
/// so the next sweep tries again).
async fn reconcile_by_id(core: &Core, run_id: i64) -> bool {
    match core.store().get_run(run_id).await {
        Ok(Some(run)) => {
            if run.status.is_finished() {
                return false;
            }
            if let Err(e) = reconcile(core, &run).await {
                tracing::warn!(run = run_id, error = %e, "Reconciling a run failed; the next sweep retries.");
                return true;
            }
            // Reconciling may have ended it.
            !matches!(core.store().get_run(run_id).await, Ok(Some(r)) if r.status.is_finished())
        }
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(run = run_id, error = %e, "Reading a run failed.");
            true
        }
    }
}

/// One pass over one run. Safe to repeat and to run concurrently with itself (every
/// store call it makes changes nothing when its condition no longer holds).
pub(crate) async fn reconcile(core: &Core, run: &Run) -> Result<(), CoreError> {
    if run.status.is_finished() {
        return Ok(());
    }
    let mut jobs = core.store().list_jobs(run.id).await?;
    let mut changed = true;
    let mut released = false;
    // Skipping one job can make its dependants skippable: repeat until stable.
    while changed {
        changed = false;
        let ended: BTreeSet<&str> = jobs
            .iter()
            .filter(|j| j.status.is_finished())
            .map(|j| j.name.as_str())
            .collect();
        let mut skip = Vec::new();
        for job in jobs
            .iter()
            .filter(|j| matches!(j.status, JobStatus::Queued | JobStatus::WaitingApproval))
        {
            // Its `if` decides, on the executor.
            if held_for_needs(job) {
                continue;
            }
            if !job.needs.iter().all(|n| ended.contains(n.as_str())) {
                continue;
            }
            let failed: Vec<String> = jobs
                .iter()
                .filter(|d| job.needs.contains(&d.name) && !d.status.lets_dependants_run())
                .map(|d| format!("`{}` ({})", d.name, d.status))
                .collect();
            if !failed.is_empty() {
                skip.push((
                    job.id,
                    format!("a job it needs did not succeed: {}", failed.join(", ")),
                ));
            }
        }
        for (id, reason) in skip {
            if core
                .store()
                .end_waiting_job(id, JobStatus::Skipped, Some(&reason))
                .await?
            {
                changed = true;
            }
        }
        if changed {
            jobs = core.store().list_jobs(run.id).await?;
        }
    }

    let mut release = Vec::new();
    for j in jobs
        .iter()
        .filter(|j| j.status == JobStatus::WaitingApproval && engine_held(j) && !wants_approval(j))
    {
        if holds_cleared(core, run, j, &jobs).await? {
            release.push(j.name.clone());
        }
    }
    for name in release {
        // `approval.granted` by `ferry`: the engine, not a person, let it go.
        released |= core
            .store()
            .approve_job(
                run.id,
                &name,
                "ferry (the jobs it needs ended; its concurrency group is free)",
            )
            .await?;
    }
    if released {
        jobs = core.store().list_jobs(run.id).await?;
    }
    if released {
        core.wake_workers();
    }

    if !jobs.is_empty() && jobs.iter().all(|j| j.status.is_finished()) {
        let failed = jobs.iter().any(|j| {
            matches!(
                j.status,
                JobStatus::Failure
                    | JobStatus::TimedOut
                    | JobStatus::Lost
                    | JobStatus::Interrupted
                    | JobStatus::Cancelled
            )
        });
        let status = if failed {
            RunStatus::Failure
        } else {
            RunStatus::Success
        };
        if core.store().set_run_status(run.id, status).await? {
            tracing::info!(run = run.id, project = %run.project, status = %status, "A run ended.");
        }
    }
    Ok(())
}
