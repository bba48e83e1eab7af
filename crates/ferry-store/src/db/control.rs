//! What people and the engine do to runs outside the queue: approve a gated job, end
//! a job that will not run, re-run a finished run, and count runs and jobs by status
//! for the metrics.

use super::conn::Q;
use super::runs::project_of_run;
use super::{DbError, Store, event, now_ms};
use ferry_types::{EventKind, JobStatus, RunStatus};
use serde_json::json;

impl Store {
    /// Ends a job that is not running (skipped because a need failed, cancelled while
    /// queued), with a `job.finished` event. Returns false if it was running or had
    /// already ended: running jobs end through [`Store::finish_job`].
    pub async fn end_waiting_job(
        &self,
        job_id: i64,
        status: JobStatus,
        reason: Option<&str>,
    ) -> Result<bool, DbError> {
        if !status.is_finished() {
            return Err(DbError::Invalid(format!(
                "`{status}` is not a status a job ends with"
            )));
        }
        let mut tx = self.pool.begin().await?;
        let Some(row) = tx
            .fetch_optional(
                Q::new(
                    "UPDATE jobs SET status = $1, finished_at = $2, reason = $3 \
                     WHERE id = $4 AND status IN ('queued', 'waiting_approval') RETURNING run_id, name",
                )
                .text(status.as_str())
                .int(now_ms())
                .opt_text(reason)
                .int(job_id),
            )
            .await?
        else {
            return Ok(false);
        };
        let (run_id, name) = (row.int("run_id")?, row.text("name")?);
        let project = project_of_run(&mut tx, run_id).await?;
        tx.event(event(
            EventKind::JobFinished,
            Some(&project),
            Some(run_id),
            Some(&name),
            json!({ "job_id": job_id, "status": status, "reason": reason }),
        ));
        self.commit(tx).await?;
        Ok(true)
    }

    /// Approves a job waiting for approval: it joins the queue, with an
    /// `approval.granted` event naming who approved. Returns false if it was not
    /// waiting.
    pub async fn approve_job(&self, run_id: i64, job: &str, by: &str) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = tx
            .fetch_optional(
                Q::new(
                    "UPDATE jobs SET status = 'queued' \
                     WHERE run_id = $1 AND name = $2 AND status = 'waiting_approval' RETURNING id",
                )
                .int(run_id)
                .text(job),
            )
            .await?
        else {
            return Ok(false);
        };
        let job_id = row.int("id")?;
        let project = project_of_run(&mut tx, run_id).await?;
        tx.event(event(
            EventKind::ApprovalGranted,
            Some(&project),
            Some(run_id),
            Some(job),
            json!({ "job_id": job_id, "by": by }),
        ));
        self.commit(tx).await?;
        Ok(true)
    }

    /// Re-runs a finished run: its jobs that did not pass (`only_failed`), or all of
    /// them, go back to the queue — or to `waiting_approval` if they are gated — with a
    /// fresh retry budget, and the run is queued again (`run.queued` with the job
    /// names, then `job.queued` for each). Jobs that passed keep their result, so
    /// their dependants run on their artifacts. A job still running from a cancelled
    /// run is re-queued too, and its old lease stops being honoured. Returns the names
    /// re-queued; fails with [`DbError::Invalid`] while the run has not finished.
    pub async fn rerun(&self, run_id: i64, only_failed: bool) -> Result<Vec<String>, DbError> {
        let mut tx = self.pool.begin().await?;
        let reopened = tx
            .execute(
                Q::new(
                    "UPDATE runs SET status = 'queued', started_at = NULL, finished_at = NULL \
                     WHERE id = $1 AND status IN ('success', 'failure', 'cancelled')",
                )
                .int(run_id),
            )
            .await?;
        if reopened == 0 {
            let exists = tx
                .fetch_optional(Q::new("SELECT id FROM runs WHERE id = $1").int(run_id))
                .await?
                .is_some();
            return Err(if exists {
                DbError::Invalid(format!(
                    "run {run_id} has not finished; cancel it before re-running it"
                ))
            } else {
                DbError::NotFound {
                    what: "run",
                    key: run_id.to_string(),
                }
            });
        }
        let keep = if only_failed {
            "'success', 'allowed_failure'"
        } else {
            "''"
        };
        let rows = tx
            .fetch_all(
                Q::new(format!(
                    "UPDATE jobs SET \
                       status = CASE WHEN needs_approval = 1 THEN 'waiting_approval' ELSE 'queued' END, \
                       max_attempts = attempt + retry_budget, agent_id = NULL, \
                       lease_expires_at = NULL, finished_at = NULL, reason = NULL \
                     WHERE run_id = $1 AND status NOT IN ({keep}) RETURNING id, name, status"
                ))
                .int(run_id),
            )
            .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            jobs.push((
                row.int("id")?,
                row.text("name")?,
                row.parse::<JobStatus>("status")?,
            ));
        }
        jobs.sort_by_key(|(id, _, _)| *id);
        let project = project_of_run(&mut tx, run_id).await?;
        let names: Vec<String> = jobs.iter().map(|(_, name, _)| name.clone()).collect();
        tx.event(event(
            EventKind::RunQueued,
            Some(&project),
            Some(run_id),
            None,
            json!({ "rerun": true, "only_failed": only_failed, "jobs": names }),
        ));
        for (id, name, status) in &jobs {
            tx.event(event(
                EventKind::JobQueued,
                Some(&project),
                Some(run_id),
                Some(name),
                json!({ "job_id": id, "status": status, "rerun": true }),
            ));
        }
        self.commit(tx).await?;
        Ok(names)
    }

    /// How many runs there are in each status, for the metrics.
    pub async fn count_runs_by_status(&self) -> Result<Vec<(RunStatus, i64)>, DbError> {
        let rows = self
            .pool
            .fetch_all(Q::new(
                "SELECT status, COUNT(*) AS n FROM runs GROUP BY status ORDER BY status",
            ))
            .await?;
        rows.iter()
            .map(|r| Ok((r.parse("status")?, r.int("n")?)))
            .collect()
    }

    /// How many jobs there are in each status, for the metrics.
    pub async fn count_jobs_by_status(&self) -> Result<Vec<(JobStatus, i64)>, DbError> {
        let rows = self
            .pool
            .fetch_all(Q::new(
                "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status ORDER BY status",
            ))
            .await?;
        rows.iter()
            .map(|r| Ok((r.parse("status")?, r.int("n")?)))
            .collect()
    }
}
