//! The job queue: claims under leases, renewal, results, and taking work back from
//! executors that went away.
//!
//! A claim is one transaction that picks the oldest queued job whose labels the agent
//! has and whose needs all ended well, and marks it running under a lease for that
//! agent and attempt. PostgreSQL picks with `FOR UPDATE SKIP LOCKED`, so concurrent
//! claimers pass over each other's rows instead of waiting; SQLite's `BEGIN IMMEDIATE`
//! makes claims take turns. Every later call names its [`Lease`] — job, agent *and*
//! attempt — so a result from an attempt whose lease was taken away is refused even
//! when the same agent claimed the job again.

use super::conn::{Backend, Q, Row, Tx};
use super::runs::{
    JOB_COLUMNS, Job, RUN_COLUMNS, Run, job_from_row, project_of_run, run_from_row,
    set_run_status_tx,
};
use super::{DbError, Store, event, millis, now_ms};
use ferry_types::{EventKind, JobResult, JobStatus, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// The right to work on one attempt of one job, until the lease expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The job.
    pub job_id: i64,
    /// The executor holding it: an agent id, or the server's own executor id.
    pub agent_id: String,
    /// The attempt this lease is for.
    pub attempt: i64,
}

/// A job handed to an executor by [`Store::claim_job`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimedJob {
    /// Name this in renewals and in the result.
    pub lease: Lease,
    /// When the lease ends unless renewed, unix ms.
    pub lease_expires_at: i64,
    /// The job, now running.
    pub job: Job,
    /// Its run (commit, pipeline snapshot).
    pub run: Run,
}

/// The answer to a lease renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewal {
    /// The new end of the lease, unix ms.
    pub lease_expires_at: i64,
    /// The run was cancelled: stop the job and report it cancelled.
    pub cancel_requested: bool,
}

/// How an attempt ended, as its executor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// The attempt's result. Report `failure` even for jobs with `allow_failure`: the
    /// store retries it if attempts remain, and records a final failure as allowed.
    pub result: JobResult,
    /// Why, for results other than success.
    pub reason: Option<String>,
}

/// A job taken back from an executor by [`Store::expire_leases`] or
/// [`Store::interrupt_local_jobs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseEvent {
    /// The job.
    pub job_id: i64,
    /// Its run.
    pub run_id: i64,
    /// The job instance id.
    pub job: String,
    /// The executor that held it.
    pub agent_id: String,
    /// The attempt that was cut short.
    pub attempt: i64,
    /// Back in the queue (attempts remain) rather than ended.
    pub requeued: bool,
}

impl Store {
    /// Hands the oldest runnable job to `agent_id` under a lease of `lease`, or `None`
    /// when nothing queued fits. Runnable: queued, every `runs-on` label among
    /// `labels`, and every job it needs ended with success or an allowed failure.
    /// Starts the run if this is its first job (`run.started`) and appends
    /// `job.started`.
    pub async fn claim_job(
        &self,
        agent_id: &str,
        labels: &[String],
        lease: Duration,
    ) -> Result<Option<ClaimedJob>, DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut sql = String::from(
            "SELECT j.id FROM jobs j WHERE j.status = 'queued' \
             AND NOT EXISTS (SELECT 1 FROM job_needs n JOIN jobs d ON d.id = n.need_id \
                 WHERE n.job_id = j.id AND d.status NOT IN ('success', 'allowed_failure')) \
             AND NOT EXISTS (SELECT 1 FROM job_labels l WHERE l.job_id = j.id",
        );
        if !labels.is_empty() {
            let list: Vec<String> = (1..=labels.len()).map(|i| format!("${i}")).collect();
            sql.push_str(&format!(" AND l.label NOT IN ({})", list.join(", ")));
        }
        sql.push_str(") ORDER BY j.id LIMIT 1");
        if tx.backend() == Backend::Postgres {
            sql.push_str(" FOR UPDATE OF j SKIP LOCKED");
        }
        let mut pick = Q::new(sql);
        for label in labels {
            pick = pick.text(label);
        }
        let Some(row) = tx.fetch_optional(pick).await? else {
            return Ok(None);
        };
        let job_id = row.int("id")?;
        let expires = now.saturating_add(millis(lease));
        let job = job_from_row(
            &tx.fetch_one(
                Q::new(format!(
                    "UPDATE jobs SET status = 'running', agent_id = $1, lease_expires_at = $2, \
                     attempt = attempt + 1, started_at = $3, finished_at = NULL \
                     WHERE id = $4 RETURNING {JOB_COLUMNS}"
                ))
                .text(agent_id)
                .int(expires)
                .int(now)
                .int(job_id),
            )
            .await?,
        )?;
        set_run_status_tx(&mut tx, job.run_id, RunStatus::Running, now).await?;
        let run = run_from_row(
            &tx.fetch_one(
                Q::new(format!(
                    "SELECT {RUN_COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = $1"
                ))
                .int(job.run_id),
            )
            .await?,
        )?;
        tx.event(event(
            EventKind::JobStarted,
            Some(&run.project),
            Some(run.id),
            Some(&job.name),
            json!({ "job_id": job.id, "attempt": job.attempt, "agent": agent_id }),
        ));
        self.commit(tx).await?;
        Ok(Some(ClaimedJob {
            lease: Lease {
                job_id,
                agent_id: agent_id.to_owned(),
                attempt: job.attempt,
            },
            lease_expires_at: expires,
            job,
            run,
        }))
    }

    /// Extends a lease to `lease` from now. Fails with [`DbError::LeaseLost`] when the
    /// lease is no longer held; the answer says whether the run was cancelled.
    pub async fn renew_lease(&self, held: &Lease, lease: Duration) -> Result<Renewal, DbError> {
        let expires = now_ms().saturating_add(millis(lease));
        let row = self
            .pool
            .fetch_optional(
                Q::new(
                    "UPDATE jobs SET lease_expires_at = $1 \
                     WHERE id = $2 AND agent_id = $3 AND attempt = $4 AND status = 'running' \
                     RETURNING run_id",
                )
                .int(expires)
                .int(held.job_id)
                .text(&held.agent_id)
                .int(held.attempt),
            )
            .await?
            .ok_or_else(|| lease_lost(held))?;
        let status: RunStatus = self
            .pool
            .fetch_one(Q::new("SELECT status FROM runs WHERE id = $1").int(row.int("run_id")?))
            .await?
            .parse("status")?;
        Ok(Renewal {
            lease_expires_at: expires,
            cancel_requested: status == RunStatus::Cancelled,
        })
    }

    /// Records how an attempt ended and releases its lease. A failure or timeout with
    /// attempts left (and the run not cancelled) goes back to the queue with
    /// `job.retried`; otherwise the job ends with `job.finished`. Returns the job's new
    /// status. Fails with [`DbError::LeaseLost`] when the lease is no longer held.
    pub async fn finish_job(
        &self,
        held: &Lease,
        outcome: &JobOutcome,
    ) -> Result<JobStatus, DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let job = held_job(&mut tx, held).await?;
        let run_active = run_is_active(&mut tx, job.run_id).await?;
        let retry = matches!(outcome.result, JobResult::Failure | JobResult::TimedOut)
            && job.attempt < job.max_attempts
            && run_active;
        let status = if retry {
            JobStatus::Queued
        } else if outcome.result == JobResult::Failure && job.allow_failure {
            JobStatus::AllowedFailure
        } else {
            JobStatus::from(outcome.result)
        };
        let finished_at = (!retry).then_some(now);
        let changed = tx
            .execute(
                Q::new(
                    "UPDATE jobs SET status = $1, finished_at = $2, reason = $3, agent_id = NULL, \
                     lease_expires_at = NULL \
                     WHERE id = $4 AND agent_id = $5 AND attempt = $6 AND status = 'running'",
                )
                .text(status.as_str())
                .opt_int(finished_at)
                .opt_text(outcome.reason.clone())
                .int(held.job_id)
                .text(&held.agent_id)
                .int(held.attempt),
            )
            .await?;
        if changed == 0 {
            return Err(lease_lost(held));
        }
        let project = project_of_run(&mut tx, job.run_id).await?;
        let (kind, data) = if retry {
            (
                EventKind::JobRetried,
                json!({ "job_id": job.id, "attempt": job.attempt, "result": outcome.result, "reason": outcome.reason }),
            )
        } else {
            (
                EventKind::JobFinished,
                json!({ "job_id": job.id, "attempt": job.attempt, "status": status, "reason": outcome.reason }),
            )
        };
        tx.event(event(
            kind,
            Some(&project),
            Some(job.run_id),
            Some(&job.name),
            data,
        ));
        self.commit(tx).await?;
        Ok(status)
    }

    /// Takes back every running job whose lease ended before `now` (unix ms): each
    /// gets `job.lost`, then goes back to the queue (`job.retried`) if attempts remain
    /// or ends as `lost` (`job.finished`).
    pub async fn expire_leases(&self, now: i64) -> Result<Vec<LeaseEvent>, DbError> {
        self.take_back(
            "lease_expires_at < $1",
            |q| q.int(now),
            EventKind::JobLost,
            JobStatus::Lost,
            "lease expired",
            now,
        )
        .await
    }

    /// For restart safety: every job the server's own executor `executor_id` held when
    /// it stopped gets `job.interrupted`, then goes back to the queue if attempts
    /// remain or ends as `interrupted`. Call it once at start-up, before the executor
    /// claims anything.
    pub async fn interrupt_local_jobs(
        &self,
        executor_id: &str,
    ) -> Result<Vec<LeaseEvent>, DbError> {
        self.take_back(
            "agent_id = $1",
            |q| q.text(executor_id),
            EventKind::JobInterrupted,
            JobStatus::Interrupted,
            "server restarted",
            now_ms(),
        )
        .await
    }

    /// Jobs waiting in the queue, for the queue-depth metric.
    pub async fn queue_depth(&self) -> Result<i64, DbError> {
        self.pool
            .fetch_one(Q::new(
                "SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued'",
            ))
            .await?
            .int("n")
    }

    /// Ends or requeues the running jobs that match `cond` (with `$1` bound by
    /// `bind`), one transaction in all. Each job is locked and checked against `cond`
    /// again before it is changed, so a lease renewed meanwhile is left alone.
    async fn take_back(
        &self,
        cond: &str,
        bind: impl Fn(Q) -> Q,
        kind: EventKind,
        terminal: JobStatus,
        reason: &str,
        now: i64,
    ) -> Result<Vec<LeaseEvent>, DbError> {
        let mut tx = self.pool.begin().await?;
        let select = Q::new(format!(
            "SELECT id FROM jobs WHERE status = 'running' AND {cond} ORDER BY id"
        ));
        let ids: Vec<i64> = tx
            .fetch_all(bind(select))
            .await?
            .iter()
            .map(|r| r.int("id"))
            .collect::<Result<_, _>>()?;
        let mut taken = Vec::new();
        for id in ids {
            let lock = if tx.backend() == Backend::Postgres {
                " FOR UPDATE SKIP LOCKED"
            } else {
                ""
            };
            let Some(row) = tx
                .fetch_optional(
                    bind(Q::new(format!(
                        "SELECT {JOB_COLUMNS} FROM jobs \
                         WHERE status = 'running' AND {cond} AND id = $2{lock}"
                    )))
                    .int(id),
                )
                .await?
            else {
                continue; // finished, renewed or taken back meanwhile
            };
            let job = job_from_row(&row)?;
            let requeued =
                job.attempt < job.max_attempts && run_is_active(&mut tx, job.run_id).await?;
            let status = if requeued {
                JobStatus::Queued
            } else {
                terminal
            };
            tx.execute(
                Q::new(
                    "UPDATE jobs SET status = $1, finished_at = $2, reason = $3, agent_id = NULL, \
                     lease_expires_at = NULL WHERE id = $4",
                )
                .text(status.as_str())
                .opt_int((!requeued).then_some(now))
                .text(reason)
                .int(id),
            )
            .await?;
            let agent_id = job.agent_id.clone().unwrap_or_default();
            let project = project_of_run(&mut tx, job.run_id).await?;
            let subject = (
                Some(project.as_str()),
                Some(job.run_id),
                Some(job.name.as_str()),
            );
            tx.event(event(
                kind,
                subject.0,
                subject.1,
                subject.2,
                json!({ "job_id": id, "attempt": job.attempt, "agent": agent_id }),
            ));
            let (next, data) = if requeued {
                (
                    EventKind::JobRetried,
                    json!({ "job_id": id, "attempt": job.attempt, "reason": reason }),
                )
            } else {
                (
                    EventKind::JobFinished,
                    json!({ "job_id": id, "attempt": job.attempt, "status": status, "reason": reason }),
                )
            };
            tx.event(event(next, subject.0, subject.1, subject.2, data));
            taken.push(LeaseEvent {
                job_id: id,
                run_id: job.run_id,
                job: job.name,
                agent_id,
                attempt: job.attempt,
                requeued,
            });
        }
        if !taken.is_empty() {
            self.commit(tx).await?;
        }
        Ok(taken)
    }
}

fn lease_lost(held: &Lease) -> DbError {
    DbError::LeaseLost {
        job_id: held.job_id,
        agent_id: held.agent_id.clone(),
        attempt: held.attempt,
    }
}

/// The job a lease names, if the lease is still held.
async fn held_job(tx: &mut Tx, held: &Lease) -> Result<Job, DbError> {
    let lock = if tx.backend() == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let row: Option<Row> = tx
        .fetch_optional(
            Q::new(format!(
                "SELECT {JOB_COLUMNS} FROM jobs \
                 WHERE id = $1 AND agent_id = $2 AND attempt = $3 AND status = 'running'{lock}"
            ))
            .int(held.job_id)
            .text(&held.agent_id)
            .int(held.attempt),
        )
        .await?;
    job_from_row(&row.ok_or_else(|| lease_lost(held))?)
}

/// Whether a run can still take work (not finished or cancelled).
async fn run_is_active(tx: &mut Tx, run_id: i64) -> Result<bool, DbError> {
    let status: RunStatus = tx
        .fetch_one(Q::new("SELECT status FROM runs WHERE id = $1").int(run_id))
        .await?
        .parse("status")?;
    Ok(!status.is_finished())
}
