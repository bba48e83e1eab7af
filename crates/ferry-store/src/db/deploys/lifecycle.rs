//! A deploy's life: queued (or waiting for approval), claimed under a lease, moved
//! through its phases with progress lines, finished; and taken over when its server
//! went away.

use super::releases::service_not_found;
use super::{
    DEPLOY_COLUMNS, DEPLOY_FROM, Deploy, DeployQuery, DeployStep, NewDeploy, UNFINISHED,
    deploy_event, deploy_from_row, held_deploy, lease_lost, lock_of, locked_deploy,
};
use crate::db::conn::{Backend, Q, Row, Tx};
use crate::db::runs::json_text;
use crate::db::{DbError, Store, millis, now_ms};
use ferry_types::{DeployPhase, DeployState, EventKind};
use serde_json::json;
use std::time::Duration;

/// The advisory lock that makes deploy claims take turns on PostgreSQL ("ferry-dp").
const CLAIM_LOCK_KEY: i64 = 0x6665_7272_792d_6470;

/// How many deploys [`Store::deploys`] lists when the query sets no limit.
const DEFAULT_LIMIT: i64 = 50;

impl Store {
    /// Queues a deploy (`queued`, or `waiting_approval`) and appends `deploy.queued`.
    /// [`DbError::NotFound`] for an unknown service or release, [`DbError::Invalid`]
    /// for a release of another service.
    pub async fn create_deploy(&self, new: &NewDeploy) -> Result<Deploy, DbError> {
        if new.environment.is_empty() {
            return Err(DbError::Invalid(format!(
                "a deploy of `{}` needs an environment",
                new.service
            )));
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Locking the service makes this take turns with prune_releases, so the
        // release cannot be deleted between this check and the insert.
        let lock = lock_of(tx.backend(), "s");
        let service_id = tx
            .fetch_optional(
                Q::new(format!(
                    "SELECT s.id FROM services s WHERE s.name = $1{lock}"
                ))
                .text(&new.service),
            )
            .await?
            .ok_or_else(|| service_not_found(&new.service))?
            .int("id")?;
        let release = tx
            .fetch_optional(
                Q::new("SELECT service_id, number FROM releases WHERE id = $1").int(new.release_id),
            )
            .await?;
        let Some(release) = release else {
            self.end_unchanged(tx).await?;
            return Err(DbError::NotFound {
                what: "release",
                key: new.release_id.to_string(),
            });
        };
        if release.int("service_id")? != service_id {
            self.end_unchanged(tx).await?;
            return Err(DbError::Invalid(format!(
                "release {} is not a release of `{}`: list its releases with `ferry releases {}`",
                new.release_id, new.service, new.service
            )));
        }
        let state = if new.needs_approval {
            DeployState::WaitingApproval
        } else {
            DeployState::Queued
        };
        let id = tx
            .fetch_one(
                Q::new(
                    "INSERT INTO deploys (service_id, environment, release_id, release_number, \
                     kind, state, phase, requested_by, run_id, job, progress, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                )
                .int(service_id)
                .text(&new.environment)
                .int(new.release_id)
                .int(release.int("number")?)
                .text(new.kind.as_str())
                .text(state.as_str())
                .text(DeployPhase::Pending.as_str())
                .text(&new.requested_by)
                .opt_int(new.run_id)
                .opt_text(new.job.clone())
                .text("{}")
                .int(now),
            )
            .await?
            .int("id")?;
        let (deploy, _) = locked_deploy(&mut tx, id).await?;
        tx.event(deploy_event(
            EventKind::DeployQueued,
            &deploy,
            json!({ "requested_by": deploy.requested_by }),
        ));
        self.commit(tx).await?;
        Ok(deploy)
    }

    /// A deploy by id; [`DbError::NotFound`] if there is none.
    pub async fn deploy(&self, id: i64) -> Result<Deploy, DbError> {
        let row = self
            .pool
            .fetch_optional(
                Q::new(format!(
                    "SELECT {DEPLOY_COLUMNS} FROM {DEPLOY_FROM} WHERE d.id = $1"
                ))
                .int(id),
            )
            .await?
            .ok_or_else(|| DbError::NotFound {
                what: "deploy",
                key: id.to_string(),
            })?;
        deploy_from_row(&row)
    }

    /// Deploys, newest first.
    pub async fn deploys(&self, query: &DeployQuery) -> Result<Vec<Deploy>, DbError> {
        let mut sql = format!("SELECT {DEPLOY_COLUMNS} FROM {DEPLOY_FROM} WHERE 1 = 1");
        let mut texts = Vec::new();
        if let Some(service) = &query.service {
            texts.push(service.clone());
            sql.push_str(&format!(" AND s.name = ${}", texts.len()));
        }
        if let Some(environment) = &query.environment {
            texts.push(environment.clone());
            sql.push_str(&format!(" AND d.environment = ${}", texts.len()));
        }
        let mut params = texts.len();
        if query.run_id.is_some() {
            params += 1;
            sql.push_str(&format!(" AND d.run_id = ${params}"));
        }
        if query.active_only {
            sql.push_str(&format!(" AND d.state IN {UNFINISHED}"));
        }
        sql.push_str(&format!(" ORDER BY d.id DESC LIMIT ${}", params + 1));
        let mut q = Q::new(sql);
        for text in texts {
            q = q.text(text);
        }
        if let Some(run_id) = query.run_id {
            q = q.int(run_id);
        }
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT).max(0);
        let rows = self.pool.fetch_all(q.int(limit)).await?;
        rows.iter().map(deploy_from_row).collect()
    }

    /// The progress lines of a deploy, in order. [`DbError::NotFound`] if there is no
    /// such deploy.
    pub async fn deploy_steps(&self, id: i64) -> Result<Vec<DeployStep>, DbError> {
        let rows = self
            .pool
            .fetch_all(
                Q::new(
                    "SELECT seq, phase, message, at FROM deploy_steps WHERE deploy_id = $1 \
                     ORDER BY seq",
                )
                .int(id),
            )
            .await?;
        if rows.is_empty() {
            self.deploy(id).await?;
        }
        rows.iter().map(step_from_row).collect()
    }

    /// Approves a deploy in `waiting_approval` (→ `queued`), appending
    /// `deploy.approved`. [`DbError::Invalid`] in any other state.
    pub async fn approve_deploy(&self, id: i64, by: &str) -> Result<Deploy, DbError> {
        let mut tx = self.pool.begin().await?;
        let (deploy, _) = locked_deploy(&mut tx, id).await?;
        if deploy.state != DeployState::WaitingApproval {
            self.end_unchanged(tx).await?;
            return Err(DbError::Invalid(format!(
                "deploy {id} is {}, not waiting for approval: there is nothing to approve",
                deploy.state.as_str()
            )));
        }
        tx.execute(
            Q::new("UPDATE deploys SET state = $1, approved_by = $2 WHERE id = $3")
                .text(DeployState::Queued.as_str())
                .text(by)
                .int(id),
        )
        .await?;
        let (deploy, _) = locked_deploy(&mut tx, id).await?;
        tx.event(deploy_event(
            EventKind::DeployApproved,
            &deploy,
            json!({ "approved_by": by }),
        ));
        self.commit(tx).await?;
        Ok(deploy)
    }

    /// Cancels a deploy that is `queued` or `waiting_approval` (→ `cancelled`,
    /// `deploy.finished`). [`DbError::Invalid`] once it runs: a running deploy is
    /// stopped by its engine, which rolls it back.
    pub async fn cancel_deploy(&self, id: i64, by: &str) -> Result<Deploy, DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let (deploy, _) = locked_deploy(&mut tx, id).await?;
        let refusal = match deploy.state {
            DeployState::Queued | DeployState::WaitingApproval => None,
            DeployState::Running => Some(format!(
                "deploy {id} is already running: its server stops it and rolls it back"
            )),
            ended => Some(format!(
                "deploy {id} has already ended ({})",
                ended.as_str()
            )),
        };
        if let Some(refusal) = refusal {
            self.end_unchanged(tx).await?;
            return Err(DbError::Invalid(refusal));
        }
        let reason = format!("cancelled by `{by}`");
        tx.execute(
            Q::new(
                "UPDATE deploys SET state = $1, phase = $2, reason = $3, finished_at = $4 \
                 WHERE id = $5",
            )
            .text(DeployState::Cancelled.as_str())
            .text(DeployPhase::Done.as_str())
            .text(reason.as_str())
            .int(now)
            .int(id),
        )
        .await?;
        let (deploy, _) = locked_deploy(&mut tx, id).await?;
        tx.event(deploy_event(
            EventKind::DeployFinished,
            &deploy,
            json!({ "reason": reason, "cancelled_by": by }),
        ));
        self.commit(tx).await?;
        Ok(deploy)
    }

    /// Takes the oldest `queued` deploy whose service and environment has no
    /// `running` deploy: sets it `running` under `owner`'s lease, records the
    /// environment's live release as `previous_release_id`, appends `deploy.started`.
    /// Atomic across servers: on PostgreSQL claims take turns under an advisory lock
    /// and pass over rows another transaction holds (`FOR UPDATE SKIP LOCKED`); on
    /// SQLite `BEGIN IMMEDIATE` makes them take turns. A unique index allows one
    /// running deploy per service and environment whatever happens.
    pub async fn claim_deploy(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Deploy>, DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let skip = match tx.backend() {
            Backend::Postgres => {
                // Under READ COMMITTED two claimers could each see the other's deploy
                // still queued and both start one in the same environment; taking
                // turns makes the second see the first's claim.
                tx.execute(Q::new("SELECT pg_advisory_xact_lock($1)").int(CLAIM_LOCK_KEY))
                    .await?;
                " FOR UPDATE OF d SKIP LOCKED"
            }
            Backend::Sqlite => "",
        };
        let pick = Q::new(format!(
            "SELECT d.id, d.service_id, d.environment FROM deploys d WHERE d.state = 'queued' \
             AND NOT EXISTS (SELECT 1 FROM deploys o WHERE o.service_id = d.service_id \
                 AND o.environment = d.environment \
                 AND (o.state = 'running' OR (o.state = 'queued' AND o.id < d.id))) \
             ORDER BY d.id LIMIT 1{skip}"
        ));
        let Some(row) = tx.fetch_optional(pick).await? else {
            // Hand the advisory lock to the next claimer at once.
            self.end_unchanged(tx).await?;
            return Ok(None);
        };
        let id = row.int("id")?;
        let live = tx
            .fetch_optional(
                Q::new(
                    "SELECT l.release_id, r.number FROM live_envs l \
                     JOIN releases r ON r.id = l.release_id \
                     WHERE l.service_id = $1 AND l.environment = $2",
                )
                .int(row.int("service_id")?)
                .text(row.text("environment")?),
            )
            .await?;
        let previous = match &live {
            Some(l) => Some((l.int("release_id")?, l.int("number")?)),
            None => None,
        };
        tx.execute(
            Q::new(
                "UPDATE deploys SET state = $1, owner = $2, lease_expires_at = $3, \
                 started_at = $4, previous_release_id = $5 WHERE id = $6",
            )
            .text(DeployState::Running.as_str())
            .text(owner)
            .int(now.saturating_add(millis(lease)))
            .int(now)
            .opt_int(previous.map(|(id, _)| id))
            .int(id),
        )
        .await?;
        let (deploy, _) = locked_deploy(&mut tx, id).await?;
        tx.event(deploy_event(
            EventKind::DeployStarted,
            &deploy,
            json!({
                "owner": owner,
                "previous_release": previous.map(|(_, number)| format!("v{number}")),
            }),
        ));
        self.commit(tx).await?;
        Ok(Some(deploy))
    }

    /// Extends the lease to `lease` from now; [`DbError::DeployLeaseLost`] when
    /// `owner` no longer holds it (the deploy ended or was taken over).
    pub async fn renew_deploy(&self, id: i64, owner: &str, lease: Duration) -> Result<(), DbError> {
        let changed = self
            .pool
            .execute(
                Q::new(
                    "UPDATE deploys SET lease_expires_at = $1 \
                     WHERE id = $2 AND owner = $3 AND state = 'running'",
                )
                .int(now_ms().saturating_add(millis(lease)))
                .int(id)
                .text(owner),
            )
            .await?;
        if changed == 0 {
            return Err(lease_lost(id, owner));
        }
        Ok(())
    }

    /// Moves a running deploy to `phase` and appends a progress line (and a
    /// `deploy.progress` event) with `message`. Fails like [`Store::renew_deploy`]
    /// when `owner` does not hold it.
    pub async fn deploy_step(
        &self,
        id: i64,
        owner: &str,
        phase: DeployPhase,
        message: &str,
    ) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        let (mut deploy, _) = held_deploy(&mut tx, id, owner).await?;
        tx.execute(
            Q::new("UPDATE deploys SET phase = $1 WHERE id = $2")
                .text(phase.as_str())
                .int(id),
        )
        .await?;
        deploy.phase = phase;
        let seq = append_step(&mut tx, id, phase, message).await?;
        tx.event(deploy_event(
            EventKind::DeployProgress,
            &deploy,
            json!({ "seq": seq, "message": message }),
        ));
        self.commit(tx).await
    }

    /// Replaces the deploy's `progress` record. Fails like [`Store::renew_deploy`]
    /// when `owner` does not hold it.
    pub async fn save_deploy_progress(
        &self,
        id: i64,
        owner: &str,
        progress: &serde_json::Value,
    ) -> Result<(), DbError> {
        let changed = self
            .pool
            .execute(
                Q::new(
                    "UPDATE deploys SET progress = $1 \
                     WHERE id = $2 AND owner = $3 AND state = 'running'",
                )
                .text(json_text(progress)?)
                .int(id)
                .text(owner),
            )
            .await?;
        if changed == 0 {
            return Err(lease_lost(id, owner));
        }
        Ok(())
    }

    /// Ends a running deploy in `state` (a finished state) with `reason`, phase
    /// `done`, releasing its lease and appending `deploy.finished`. Fails like
    /// [`Store::renew_deploy`] when `owner` does not hold it, [`DbError::Invalid`]
    /// for a state that is not an end.
    pub async fn finish_deploy(
        &self,
        id: i64,
        owner: &str,
        state: DeployState,
        reason: Option<&str>,
    ) -> Result<Deploy, DbError> {
        if !state.is_finished() {
            return Err(DbError::Invalid(format!(
                "cannot finish deploy {id} as `{}`: that state is not an end",
                state.as_str()
            )));
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        held_deploy(&mut tx, id, owner).await?;
        tx.execute(
            Q::new(
                "UPDATE deploys SET state = $1, phase = $2, reason = $3, owner = NULL, \
                 lease_expires_at = NULL, finished_at = $4 WHERE id = $5",
            )
            .text(state.as_str())
            .text(DeployPhase::Done.as_str())
            .opt_text(reason)
            .int(now)
            .int(id),
        )
        .await?;
        let (deploy, _) = locked_deploy(&mut tx, id).await?;
        tx.event(deploy_event(
            EventKind::DeployFinished,
            &deploy,
            json!({ "reason": reason, "owner": owner }),
        ));
        self.commit(tx).await?;
        Ok(deploy)
    }

    /// Running deploys whose lease ended before `now` (unix ms), oldest first.
    pub async fn expired_deploys(&self, now: i64) -> Result<Vec<Deploy>, DbError> {
        let rows = self
            .pool
            .fetch_all(
                Q::new(format!(
                    "SELECT {DEPLOY_COLUMNS} FROM {DEPLOY_FROM} \
                     WHERE d.state = 'running' AND d.lease_expires_at < $1 ORDER BY d.id"
                ))
                .int(now),
            )
            .await?;
        rows.iter().map(deploy_from_row).collect()
    }

    /// Running deploys held by `owner` (a restarted server finds its own), oldest
    /// first.
    pub async fn deploys_owned_by(&self, owner: &str) -> Result<Vec<Deploy>, DbError> {
        let rows = self
            .pool
            .fetch_all(
                Q::new(format!(
                    "SELECT {DEPLOY_COLUMNS} FROM {DEPLOY_FROM} \
                     WHERE d.state = 'running' AND d.owner = $1 ORDER BY d.id"
                ))
                .text(owner),
            )
            .await?;
        rows.iter().map(deploy_from_row).collect()
    }

    /// Gives a running deploy to `owner` with a fresh lease if its lease has ended or
    /// `owner` already holds it, with a progress line and a `deploy.progress` event
    /// saying so; None when someone else holds a live lease or the deploy is no longer
    /// running. [`DbError::NotFound`] if there is no such deploy.
    pub async fn take_over_deploy(
        &self,
        id: i64,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Deploy>, DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let (deploy, _) = locked_deploy(&mut tx, id).await?;
        let held_by_owner = deploy.owner.as_deref() == Some(owner);
        let expired = deploy.lease_expires_at.is_none_or(|at| at < now);
        if deploy.state != DeployState::Running || !(held_by_owner || expired) {
            self.end_unchanged(tx).await?;
            return Ok(None);
        }
        tx.execute(
            Q::new("UPDATE deploys SET owner = $1, lease_expires_at = $2 WHERE id = $3")
                .text(owner)
                .int(now.saturating_add(millis(lease)))
                .int(id),
        )
        .await?;
        let message = match deploy.owner.as_deref() {
            Some(previous) if previous != owner => {
                format!("Taken over by `{owner}`: the lease of `{previous}` ended.")
            }
            _ => format!("Taken up again by `{owner}` after a restart."),
        };
        let seq = append_step(&mut tx, id, deploy.phase, &message).await?;
        let (deploy_now, _) = locked_deploy(&mut tx, id).await?;
        tx.event(deploy_event(
            EventKind::DeployProgress,
            &deploy_now,
            json!({
                "seq": seq,
                "message": message,
                "owner": owner,
                "previous_owner": deploy.owner,
            }),
        ));
        self.commit(tx).await?;
        Ok(Some(deploy_now))
    }
}

/// Appends a progress line to a deploy whose row the transaction holds; returns its
/// number.
async fn append_step(
    tx: &mut Tx,
    id: i64,
    phase: DeployPhase,
    message: &str,
) -> Result<i64, DbError> {
    let seq = tx
        .fetch_one(
            Q::new(
                "SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM deploy_steps WHERE deploy_id = $1",
            )
            .int(id),
        )
        .await?
        .int("seq")?;
    tx.execute(
        Q::new("INSERT INTO deploy_steps (deploy_id, seq, phase, message, at) VALUES ($1, $2, $3, $4, $5)")
            .int(id)
            .int(seq)
            .text(phase.as_str())
            .text(message)
            .int(now_ms()),
    )
    .await?;
    Ok(seq)
}

fn step_from_row(row: &Row) -> Result<DeployStep, DbError> {
    Ok(DeployStep {
        seq: row.int("seq")?,
        phase: row.parse("phase")?,
        message: row.text("message")?,
        at: row.int("at")?,
    })
}
