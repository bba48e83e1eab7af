//! Runs and their jobs: creation with the whole job graph, reading, and the status
//! changes the engine makes outside the queue (skip, approve, cancel, finish a run).

use super::conn::{Q, Row, Tx};
use super::{DbError, Store, event, now_ms};
use ferry_types::{EventKind, JobStatus, RunStatus, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;

/// A pipeline run, pinned to one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Run id, unique in the store.
    pub id: i64,
    /// The project's name.
    pub project: String,
    /// The commit.
    pub sha: String,
    /// The branch, for branch pushes.
    pub branch: Option<String>,
    /// The tag, for tag pushes.
    pub tag: Option<String>,
    /// What started it.
    pub trigger: Trigger,
    /// Where it is.
    pub status: RunStatus,
    /// The `ferry.yml` text at `sha`.
    pub pipeline: String,
    /// Its concurrency group, if the pipeline declares one.
    pub concurrency_group: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// When its first job started, unix ms.
    pub started_at: Option<i64>,
    /// When it ended, unix ms.
    pub finished_at: Option<i64>,
}

/// What [`Store::create_run`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    /// The project's name.
    pub project: String,
    /// The commit.
    pub sha: String,
    /// The branch, if any.
    pub branch: Option<String>,
    /// The tag, if any.
    pub tag: Option<String>,
    /// What started it.
    pub trigger: Trigger,
    /// The `ferry.yml` text at `sha`.
    pub pipeline: String,
    /// The concurrency group, if any.
    pub concurrency_group: Option<String>,
    /// Its jobs; `needs` name other jobs of this list.
    pub jobs: Vec<NewJob>,
}

/// One job instance of a new run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// The job instance id, e.g. `test (os=linux)`; unique within the run.
    pub name: String,
    /// Labels an executor must all have to take it (`runs-on`).
    pub runs_on: Vec<String>,
    /// Names of jobs of this run that must end well first.
    pub needs: Vec<String>,
    /// Attempts in all: 1 + the job's `retry`.
    pub max_attempts: i64,
    /// Whether a final failure is recorded as `allowed_failure`.
    pub allow_failure: bool,
    /// Starts in `waiting_approval` instead of the queue.
    pub needs_approval: bool,
    /// What the executor needs to run it, as the engine resolved it.
    pub spec: serde_json::Value,
}

/// A job instance of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id, unique in the store.
    pub id: i64,
    /// Its run.
    pub run_id: i64,
    /// The job instance id within the run.
    pub name: String,
    /// Where it is.
    pub status: JobStatus,
    /// Attempts started so far (0 before the first claim).
    pub attempt: i64,
    /// Attempts allowed in all.
    pub max_attempts: i64,
    /// Whether a final failure counts as allowed.
    pub allow_failure: bool,
    /// Required executor labels.
    pub runs_on: Vec<String>,
    /// Jobs of the run it needs.
    pub needs: Vec<String>,
    /// What the executor needs to run it.
    pub spec: serde_json::Value,
    /// The executor holding it, while running.
    pub agent_id: Option<String>,
    /// When the holder's lease ends, unix ms, while running.
    pub lease_expires_at: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
    /// When the current or last attempt started, unix ms.
    pub started_at: Option<i64>,
    /// When it ended, unix ms.
    pub finished_at: Option<i64>,
    /// Why it ended this way, for results other than success.
    pub reason: Option<String>,
}

pub(crate) const RUN_COLUMNS: &str = "r.id, p.name AS project, r.sha, r.branch, r.tag, \
    r.trigger, r.status, r.pipeline, r.concurrency_group, r.created_at, r.started_at, r.finished_at";

pub(crate) const JOB_COLUMNS: &str = "id, run_id, name, status, attempt, max_attempts, \
    allow_failure, runs_on, needs, spec, agent_id, lease_expires_at, created_at, started_at, \
    finished_at, reason";

pub(crate) fn run_from_row(row: &Row) -> Result<Run, DbError> {
    Ok(Run {
        id: row.int("id")?,
        project: row.text("project")?,
        sha: row.text("sha")?,
        branch: row.opt_text("branch")?,
        tag: row.opt_text("tag")?,
        trigger: row.parse("trigger")?,
        status: row.parse("status")?,
        pipeline: row.text("pipeline")?,
        concurrency_group: row.opt_text("concurrency_group")?,
        created_at: row.int("created_at")?,
        started_at: row.opt_int("started_at")?,
        finished_at: row.opt_int("finished_at")?,
    })
}

pub(crate) fn job_from_row(row: &Row) -> Result<Job, DbError> {
    Ok(Job {
        id: row.int("id")?,
        run_id: row.int("run_id")?,
        name: row.text("name")?,
        status: row.parse("status")?,
        attempt: row.int("attempt")?,
        max_attempts: row.int("max_attempts")?,
        allow_failure: row.int("allow_failure")? != 0,
        runs_on: row.json("runs_on")?,
        needs: row.json("needs")?,
        spec: row.json("spec")?,
        agent_id: row.opt_text("agent_id")?,
        lease_expires_at: row.opt_int("lease_expires_at")?,
        created_at: row.int("created_at")?,
        started_at: row.opt_int("started_at")?,
        finished_at: row.opt_int("finished_at")?,
        reason: row.opt_text("reason")?,
    })
}

pub(crate) fn json_text<T: Serialize>(value: &T) -> Result<String, DbError> {
    serde_json::to_string(value).map_err(|e| DbError::Invalid(format!("cannot encode JSON: {e}")))
}

impl Store {
    /// Creates a run and all its jobs, queued (or waiting for approval), with a
    /// `run.queued` event and a `job.queued` event per job.
    pub async fn create_run(&self, new: &NewRun) -> Result<Run, DbError> {
        let mut names = HashMap::new();
        for (i, job) in new.jobs.iter().enumerate() {
            if names.insert(job.name.as_str(), i).is_some() {
                return Err(DbError::Invalid(format!(
                    "job `{}` appears twice in the run",
                    job.name
                )));
            }
        }
        for job in &new.jobs {
            if let Some(missing) = job.needs.iter().find(|n| !names.contains_key(n.as_str())) {
                return Err(DbError::Invalid(format!(
                    "job `{}` needs `{missing}`, which is not a job of this run",
                    job.name
                )));
            }
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let project_id = tx
            .fetch_optional(Q::new("SELECT id FROM projects WHERE name = $1").text(&new.project))
            .await?
            .ok_or_else(|| DbError::NotFound {
                what: "project",
                key: new.project.clone(),
            })?
            .int("id")?;
        let run_id = tx
            .fetch_one(
                Q::new(
                    "INSERT INTO runs (project_id, sha, branch, tag, trigger, status, pipeline, \
                     concurrency_group, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     RETURNING id",
                )
                .int(project_id)
                .text(&new.sha)
                .opt_text(new.branch.clone())
                .opt_text(new.tag.clone())
                .text(new.trigger.as_str())
                .text(RunStatus::Queued.as_str())
                .text(&new.pipeline)
                .opt_text(new.concurrency_group.clone())
                .int(now),
            )
            .await?
            .int("id")?;
        tx.event(event(
            EventKind::RunQueued,
            Some(&new.project),
            Some(run_id),
            None,
            json!({ "sha": new.sha, "branch": new.branch, "tag": new.tag, "trigger": new.trigger }),
        ));
        let mut ids = HashMap::new();
        for job in &new.jobs {
            let status = if job.needs_approval {
                JobStatus::WaitingApproval
            } else {
                JobStatus::Queued
            };
            let id = tx
                .fetch_one(
                    Q::new(
                        "INSERT INTO jobs (run_id, name, status, max_attempts, retry_budget, \
                         needs_approval, allow_failure, runs_on, needs, spec, created_at) \
                         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    )
                    .int(run_id)
                    .text(&job.name)
                    .text(status.as_str())
                    .int(job.max_attempts.max(1))
                    .int(i64::from(job.needs_approval))
                    .int(i64::from(job.allow_failure))
                    .text(json_text(&job.runs_on)?)
                    .text(json_text(&job.needs)?)
                    .text(json_text(&job.spec)?)
                    .int(now),
                )
                .await?
                .int("id")?;
            ids.insert(job.name.as_str(), id);
            let mut labels: Vec<&String> = job.runs_on.iter().collect();
            labels.sort();
            labels.dedup();
            for label in labels {
                tx.execute(
                    Q::new("INSERT INTO job_labels (job_id, label) VALUES ($1, $2)")
                        .int(id)
                        .text(label),
                )
                .await?;
            }
            let kind = if job.needs_approval {
                "waiting_approval"
            } else {
                "queued"
            };
            tx.event(event(
                EventKind::JobQueued,
                Some(&new.project),
                Some(run_id),
                Some(&job.name),
                json!({ "job_id": id, "status": kind, "runs_on": job.runs_on, "needs": job.needs }),
            ));
        }
        for job in &new.jobs {
            let mut needs: Vec<&String> = job.needs.iter().collect();
            needs.sort();
            needs.dedup();
            for need in needs {
                let (Some(&job_id), Some(&need_id)) =
                    (ids.get(job.name.as_str()), ids.get(need.as_str()))
                else {
                    continue; // checked above
                };
                tx.execute(
                    Q::new("INSERT INTO job_needs (job_id, need_id) VALUES ($1, $2)")
                        .int(job_id)
                        .int(need_id),
                )
                .await?;
            }
        }
        self.commit(tx).await?;
        self.get_run(run_id)
            .await?
            .ok_or_else(|| DbError::NotFound {
                what: "run",
                key: run_id.to_string(),
            })
    }

    /// The run with this id, if there is one.
    pub async fn get_run(&self, id: i64) -> Result<Option<Run>, DbError> {
        let q = Q::new(format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = $1"
        ))
        .int(id);
        self.pool
            .fetch_optional(q)
            .await?
            .as_ref()
            .map(run_from_row)
            .transpose()
    }

    /// The newest runs, of one project or of all, newest first.
    pub async fn list_runs(&self, project: Option<&str>, limit: i64) -> Result<Vec<Run>, DbError> {
        let q = match project {
            Some(p) => Q::new(format!(
                "SELECT {RUN_COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_id \
                 WHERE p.name = $1 ORDER BY r.id DESC LIMIT $2"
            ))
            .text(p),
            None => Q::new(format!(
                "SELECT {RUN_COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_id \
                 ORDER BY r.id DESC LIMIT $1"
            )),
        };
        let rows = self.pool.fetch_all(q.int(limit.max(0))).await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Runs of a project's concurrency group that have not finished, oldest first —
    /// the ones a newer run with `cancel-in-progress` cancels.
    pub async fn active_runs_in_group(
        &self,
        project: &str,
        group: &str,
    ) -> Result<Vec<Run>, DbError> {
        let q = Q::new(format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_id \
             WHERE p.name = $1 AND r.concurrency_group = $2 AND r.status IN ('queued', 'running') \
             ORDER BY r.id"
        ))
        .text(project)
        .text(group);
        let rows = self.pool.fetch_all(q).await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Moves a run to `status`, stamping its start or end time, with the matching
    /// event (`run.started`, `run.finished` or `run.cancelled`). Cancelling also
    /// cancels its jobs that have not started; running jobs learn of it when they
    /// renew their lease. Returns false if the run had already finished.
    pub async fn set_run_status(&self, run_id: i64, status: RunStatus) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let changed = set_run_status_tx(&mut tx, run_id, status, now_ms()).await?;
        if changed {
            self.commit(tx).await?;
        }
        Ok(changed)
    }

    /// Every job of a run, in creation order.
    pub async fn list_jobs(&self, run_id: i64) -> Result<Vec<Job>, DbError> {
        let q = Q::new(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE run_id = $1 ORDER BY id"
        ))
        .int(run_id);
        let rows = self.pool.fetch_all(q).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// The job with this id, if there is one.
    pub async fn get_job(&self, job_id: i64) -> Result<Option<Job>, DbError> {
        let q = Q::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")).int(job_id);
        self.pool
            .fetch_optional(q)
            .await?
            .as_ref()
            .map(job_from_row)
            .transpose()
    }
}

/// The name of a run's project.
pub(crate) async fn project_of_run(tx: &mut Tx, run_id: i64) -> Result<String, DbError> {
    tx.fetch_optional(
        Q::new("SELECT p.name FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = $1")
            .int(run_id),
    )
    .await?
    .ok_or_else(|| DbError::NotFound {
        what: "run",
        key: run_id.to_string(),
    })?
    .text("name")
}

/// [`Store::set_run_status`] inside a transaction; returns false when nothing changed.
pub(crate) async fn set_run_status_tx(
    tx: &mut Tx,
    run_id: i64,
    status: RunStatus,
    now: i64,
) -> Result<bool, DbError> {
    let sql = match status {
        RunStatus::Queued => {
            return Err(DbError::Invalid("a run cannot go back to `queued`".into()));
        }
        RunStatus::Running => {
            "UPDATE runs SET status = $1, started_at = COALESCE(started_at, $2) \
             WHERE id = $3 AND status = 'queued'"
        }
        _ => {
            "UPDATE runs SET status = $1, finished_at = $2 \
             WHERE id = $3 AND status IN ('queued', 'running')"
        }
    };
    let changed = tx
        .execute(Q::new(sql).text(status.as_str()).int(now).int(run_id))
        .await?
        > 0;
    if !changed {
        return Ok(false);
    }
    let project = project_of_run(tx, run_id).await?;
    let kind = match status {
        RunStatus::Running => EventKind::RunStarted,
        RunStatus::Cancelled => {
            tx.execute(
                Q::new(
                    "UPDATE jobs SET status = 'cancelled', finished_at = $1, reason = 'run cancelled' \
                     WHERE run_id = $2 AND status IN ('queued', 'waiting_approval')",
                )
                .int(now)
                .int(run_id),
            )
            .await?;
            EventKind::RunCancelled
        }
        _ => EventKind::RunFinished,
    };
    tx.event(event(
        kind,
        Some(&project),
        Some(run_id),
        None,
        json!({ "status": status }),
    ));
    Ok(true)
}
