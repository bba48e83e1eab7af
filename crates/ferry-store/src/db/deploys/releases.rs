//! Services and their numbered releases, and pruning old releases.

use super::{
    RELEASE_COLUMNS, RELEASE_FROM, Release, SERVICE_COLUMNS, SERVICE_FROM, Service, UNFINISHED,
    lock_of, release_from_row, service_from_row,
};
use crate::db::conn::{Backend, Q, Tx};
use crate::db::runs::json_text;
use crate::db::{DbError, Store, event, now_ms};
use ferry_types::EventKind;
use serde_json::json;

use super::NewRelease;

impl Store {
    /// Records that `project` declares `service`; a no-op when it already does.
    /// [`DbError::Conflict`] when another project owns the name, [`DbError::NotFound`]
    /// when the project is unknown.
    pub async fn register_service(&self, project: &str, service: &str) -> Result<Service, DbError> {
        let mut tx = self.pool.begin().await?;
        let (registered, _) = register_tx(&mut tx, project, service).await?;
        self.commit(tx).await?;
        Ok(registered)
    }

    /// Every service, by name.
    pub async fn services(&self) -> Result<Vec<Service>, DbError> {
        let rows = self
            .pool
            .fetch_all(Q::new(format!(
                "SELECT {SERVICE_COLUMNS} FROM {SERVICE_FROM} ORDER BY s.name"
            )))
            .await?;
        rows.iter().map(service_from_row).collect()
    }

    /// One service; [`DbError::NotFound`] if unknown.
    pub async fn service(&self, name: &str) -> Result<Service, DbError> {
        let row = self
            .pool
            .fetch_optional(
                Q::new(format!(
                    "SELECT {SERVICE_COLUMNS} FROM {SERVICE_FROM} WHERE s.name = $1"
                ))
                .text(name),
            )
            .await?
            .ok_or_else(|| service_not_found(name))?;
        service_from_row(&row)
    }

    /// Creates the next release of the service (registering the service), or returns
    /// the existing one with the same sha and artifact. Appends `release.created` for
    /// a new one. [`DbError::Conflict`] when another project owns the service.
    pub async fn create_release(&self, new: &NewRelease) -> Result<Release, DbError> {
        let now = now_ms();
        let artifact = json_text(&new.artifact)?;
        let mut tx = self.pool.begin().await?;
        // The service row stays locked until commit, so two servers releasing the same
        // build at once take turns: the second finds the first's release and reuses it.
        let (_, service_id) = register_tx(&mut tx, &new.project, &new.service).await?;
        let existing = tx
            .fetch_optional(
                Q::new(format!(
                    "SELECT {RELEASE_COLUMNS} FROM {RELEASE_FROM} \
                     WHERE r.service_id = $1 AND r.sha = $2 AND r.artifact = $3"
                ))
                .int(service_id)
                .text(&new.sha)
                .text(artifact.as_str()),
            )
            .await?;
        if let Some(row) = existing {
            let release = release_from_row(&row)?;
            // Registering the service may have been the only change; keep it.
            self.commit(tx).await?;
            return Ok(release);
        }
        let number = tx
            .fetch_one(
                Q::new(
                    "UPDATE services SET last_release = last_release + 1 WHERE id = $1 \
                     RETURNING last_release",
                )
                .int(service_id),
            )
            .await?
            .int("last_release")?;
        let id = tx
            .fetch_one(
                Q::new(
                    "INSERT INTO releases (service_id, number, sha, artifact, config, env, run_id, \
                     created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     RETURNING id",
                )
                .int(service_id)
                .int(number)
                .text(&new.sha)
                .text(artifact)
                .text(&new.config)
                .text(json_text(&new.env)?)
                .opt_int(new.run_id)
                .text(&new.created_by)
                .int(now),
            )
            .await?
            .int("id")?;
        let release = release_tx(&mut tx, id).await?;
        tx.event(event(
            EventKind::ReleaseCreated,
            Some(&release.project),
            release.run_id,
            None,
            json!({
                "service": release.service,
                "release": release.name(),
                "release_id": release.id,
                "sha": release.sha,
                "artifact": release.artifact,
                "created_by": release.created_by,
            }),
        ));
        self.commit(tx).await?;
        Ok(release)
    }

    /// The service's releases, newest first, at most `limit`. [`DbError::NotFound`]
    /// if the service is unknown.
    pub async fn releases(&self, service: &str, limit: i64) -> Result<Vec<Release>, DbError> {
        let rows = self
            .pool
            .fetch_all(
                Q::new(format!(
                    "SELECT {RELEASE_COLUMNS} FROM {RELEASE_FROM} WHERE s.name = $1 \
                     ORDER BY r.number DESC LIMIT $2"
                ))
                .text(service)
                .int(limit.max(0)),
            )
            .await?;
        if rows.is_empty() {
            // Tell an unknown service from one without releases.
            self.service(service).await?;
        }
        rows.iter().map(release_from_row).collect()
    }

    /// Release number `number` of the service; [`DbError::NotFound`] if there is none.
    pub async fn release(&self, service: &str, number: i64) -> Result<Release, DbError> {
        let row = self
            .pool
            .fetch_optional(
                Q::new(format!(
                    "SELECT {RELEASE_COLUMNS} FROM {RELEASE_FROM} \
                     WHERE s.name = $1 AND r.number = $2"
                ))
                .text(service)
                .int(number),
            )
            .await?
            .ok_or_else(|| DbError::NotFound {
                what: "release",
                key: format!("{service} v{number}"),
            })?;
        release_from_row(&row)
    }

    /// A release by database id; [`DbError::NotFound`] if there is none.
    pub async fn release_by_id(&self, id: i64) -> Result<Release, DbError> {
        let row = self
            .pool
            .fetch_optional(
                Q::new(format!(
                    "SELECT {RELEASE_COLUMNS} FROM {RELEASE_FROM} WHERE r.id = $1"
                ))
                .int(id),
            )
            .await?
            .ok_or_else(|| DbError::NotFound {
                what: "release",
                key: id.to_string(),
            })?;
        release_from_row(&row)
    }

    /// Deletes the service's releases beyond the newest `keep`, except those live or
    /// warm in an environment or named by a deploy that has not ended (as its release
    /// or as the one it replaces). Returns what was deleted, oldest first (the caller
    /// frees their blobs when nothing else uses them). Release numbers are never
    /// handed out again.
    pub async fn prune_releases(
        &self,
        service: &str,
        keep: usize,
    ) -> Result<Vec<Release>, DbError> {
        let mut tx = self.pool.begin().await?;
        // The service row lock makes pruning take turns with create_deploy, which
        // locks it too: a release cannot be named by a new deploy while it is deleted.
        let lock = lock_of(tx.backend(), "s");
        let service_id = tx
            .fetch_optional(
                Q::new(format!(
                    "SELECT s.id FROM services s WHERE s.name = $1{lock}"
                ))
                .text(service),
            )
            .await?
            .ok_or_else(|| service_not_found(service))?
            .int("id")?;
        let rows = tx
            .fetch_all(
                Q::new(format!(
                    "SELECT {RELEASE_COLUMNS} FROM {RELEASE_FROM} WHERE r.service_id = $1 \
                     AND r.id NOT IN (SELECT n.id FROM releases n WHERE n.service_id = $1 \
                         ORDER BY n.number DESC LIMIT $2) \
                     AND NOT EXISTS (SELECT 1 FROM live_envs l \
                         WHERE l.release_id = r.id OR l.previous_release_id = r.id) \
                     AND NOT EXISTS (SELECT 1 FROM deploys d WHERE d.state IN {UNFINISHED} \
                         AND (d.release_id = r.id OR d.previous_release_id = r.id)) \
                     ORDER BY r.number"
                ))
                .int(service_id)
                .int(i64::try_from(keep).unwrap_or(i64::MAX)),
            )
            .await?;
        let pruned = rows
            .iter()
            .map(release_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        for release in &pruned {
            tx.execute(Q::new("DELETE FROM releases WHERE id = $1").int(release.id))
                .await?;
        }
        // Commit even when nothing was deleted, to give up the service lock now.
        self.commit(tx).await?;
        Ok(pruned)
    }
}

/// Registers `service` for `project` (a no-op when it already does) and locks its row
/// until the transaction ends. Returns it with its id.
async fn register_tx(tx: &mut Tx, project: &str, service: &str) -> Result<(Service, i64), DbError> {
    if service.is_empty() {
        return Err(DbError::Invalid(
            "a service needs a name: set `deploy.name` in `ferry.yml`".to_owned(),
        ));
    }
    let project_id = tx
        .fetch_optional(Q::new("SELECT id FROM projects WHERE name = $1").text(project))
        .await?
        .ok_or_else(|| DbError::NotFound {
            what: "project",
            key: project.to_owned(),
        })?
        .int("id")?;
    tx.execute(
        Q::new(
            "INSERT INTO services (name, project_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .text(service)
        .int(project_id)
        .int(now_ms()),
    )
    .await?;
    let row = tx
        .fetch_one(
            Q::new(format!(
                "SELECT {SERVICE_COLUMNS} FROM {SERVICE_FROM} WHERE s.name = $1"
            ))
            .text(service),
        )
        .await?;
    // Checked before locking (a service never changes project), so a refusal holds no
    // lock while its transaction is rolled back in the background.
    if row.int("project_id")? != project_id {
        return Err(DbError::Conflict {
            what: "service",
            key: service.to_owned(),
        });
    }
    let service_id = row.int("service_id")?;
    if tx.backend() == Backend::Postgres {
        tx.execute(Q::new("SELECT id FROM services WHERE id = $1 FOR UPDATE").int(service_id))
            .await?;
    }
    Ok((service_from_row(&row)?, service_id))
}

/// A release by id, inside a transaction.
async fn release_tx(tx: &mut Tx, id: i64) -> Result<Release, DbError> {
    let row = tx
        .fetch_one(
            Q::new(format!(
                "SELECT {RELEASE_COLUMNS} FROM {RELEASE_FROM} WHERE r.id = $1"
            ))
            .int(id),
        )
        .await?;
    release_from_row(&row)
}

pub(super) fn service_not_found(name: &str) -> DbError {
    DbError::NotFound {
        what: "service",
        key: name.to_owned(),
    }
}
