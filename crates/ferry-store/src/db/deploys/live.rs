//! The live state of each environment: which release serves its traffic, on which
//! instances, and the previous release kept warm after a switch.

use super::{LiveEnv, Switch, WarmRelease, deploy_event, held_deploy, lock_of};
use crate::db::conn::{Q, Row, Tx};
use crate::db::runs::json_text;
use crate::db::{DbError, Store, now_ms};
use ferry_types::EventKind;
use serde_json::json;

const LIVE_COLUMNS: &str = "p.name AS project, s.name AS service, l.environment, l.release_id, \
    r.number AS release_number, l.instances, l.previous_release_id, \
    pr.number AS previous_number, l.previous_instances, l.warm_until, l.deploy_id, l.updated_at";
const LIVE_FROM: &str = "live_envs l JOIN services s ON s.id = l.service_id \
    JOIN projects p ON p.id = s.project_id JOIN releases r ON r.id = l.release_id \
    LEFT JOIN releases pr ON pr.id = l.previous_release_id";

/// Selects the service named `$1`'s id, for statements on `live_envs`.
const SERVICE_ID: &str = "(SELECT id FROM services WHERE name = $1)";

impl Store {
    /// Makes the deploy's release the live release of its environment (upserting the
    /// live row, replacing `previous` by `switch.keep_previous` — given the release
    /// live until now; there is none to keep on a first deploy), and appends
    /// `deploy.switched` — in one transaction. A deploy may switch again (resumed
    /// after a crash, or each canary step): the release kept warm is still the one it
    /// replaced the first time. Fails like [`Store::renew_deploy`] when `owner` does
    /// not hold it.
    pub async fn switch_live(
        &self,
        id: i64,
        owner: &str,
        switch: &Switch,
    ) -> Result<LiveEnv, DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let (deploy, service_id) = held_deploy(&mut tx, id, owner).await?;
        let lock = lock_of(tx.backend(), "l");
        // The release replaced by this switch: the live one, or when this deploy
        // switched already (it was resumed after a crash), the one it replaced then.
        let current = tx
            .fetch_optional(
                Q::new(format!(
                    "SELECT l.release_id, r.number, l.deploy_id, l.previous_release_id, \
                     pr.number AS previous_number FROM live_envs l \
                     JOIN releases r ON r.id = l.release_id \
                     LEFT JOIN releases pr ON pr.id = l.previous_release_id \
                     WHERE l.service_id = $1 AND l.environment = $2{lock}"
                ))
                .int(service_id)
                .text(&deploy.environment),
            )
            .await?;
        let replaced = match current {
            Some(row) if row.int("deploy_id")? == deploy.id => {
                match row.opt_int("previous_release_id")? {
                    Some(release_id) => Some((release_id, row.int("previous_number")?)),
                    None => None,
                }
            }
            Some(row) => Some((row.int("release_id")?, row.int("number")?)),
            None => None,
        };
        let warm = match (&switch.keep_previous, replaced) {
            (Some((instances, until)), Some((release_id, _))) => {
                Some((release_id, json_text(instances)?, *until))
            }
            _ => None,
        };
        tx.execute(
            Q::new(
                "INSERT INTO live_envs (service_id, environment, release_id, instances, \
                 previous_release_id, previous_instances, warm_until, deploy_id, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (service_id, environment) DO UPDATE SET \
                 release_id = excluded.release_id, instances = excluded.instances, \
                 previous_release_id = excluded.previous_release_id, \
                 previous_instances = excluded.previous_instances, \
                 warm_until = excluded.warm_until, deploy_id = excluded.deploy_id, \
                 updated_at = excluded.updated_at",
            )
            .int(service_id)
            .text(&deploy.environment)
            .int(deploy.release_id)
            .text(json_text(&switch.instances)?)
            .opt_int(warm.as_ref().map(|w| w.0))
            .opt_text(warm.as_ref().map(|w| w.1.clone()))
            .opt_int(warm.as_ref().map(|w| w.2))
            .int(deploy.id)
            .int(now),
        )
        .await?;
        let live = live_env_tx(&mut tx, &deploy.service, &deploy.environment)
            .await?
            .ok_or_else(|| {
                DbError::Corrupt(format!(
                    "the live row of `{}` in `{}` vanished while it was written",
                    deploy.service, deploy.environment
                ))
            })?;
        tx.event(deploy_event(
            EventKind::DeploySwitched,
            &deploy,
            json!({
                "previous_release": replaced.map(|(_, number)| format!("v{number}")),
                "kept_warm": warm.is_some(),
                "warm_until": warm.as_ref().map(|w| w.2),
            }),
        ));
        self.commit(tx).await?;
        Ok(live)
    }

    /// Every environment's live state, by service and environment.
    pub async fn live_envs(&self) -> Result<Vec<LiveEnv>, DbError> {
        let rows = self
            .pool
            .fetch_all(Q::new(format!(
                "SELECT {LIVE_COLUMNS} FROM {LIVE_FROM} ORDER BY s.name, l.environment"
            )))
            .await?;
        rows.iter().map(live_from_row).collect()
    }

    /// One environment's live state, None before its first switch.
    pub async fn live_env(
        &self,
        service: &str,
        environment: &str,
    ) -> Result<Option<LiveEnv>, DbError> {
        let row = self
            .pool
            .fetch_optional(live_query(service, environment))
            .await?;
        row.as_ref().map(live_from_row).transpose()
    }

    /// Forgets the warm previous release of an environment once its instances were
    /// stopped (only if it is still `release_id`; otherwise nothing changes).
    pub async fn clear_warm(
        &self,
        service: &str,
        environment: &str,
        release_id: i64,
    ) -> Result<(), DbError> {
        self.pool
            .execute(
                Q::new(format!(
                    "UPDATE live_envs SET previous_release_id = NULL, previous_instances = NULL, \
                     warm_until = NULL \
                     WHERE service_id = {SERVICE_ID} AND environment = $2 \
                     AND previous_release_id = $3"
                ))
                .text(service)
                .text(environment)
                .int(release_id),
            )
            .await?;
        Ok(())
    }

    /// Replaces the live instances of an environment without changing its release
    /// (the engine restarted them after a crash); only if `release_id` is still live,
    /// otherwise nothing changes.
    pub async fn replace_live_instances(
        &self,
        service: &str,
        environment: &str,
        release_id: i64,
        instances: &serde_json::Value,
    ) -> Result<(), DbError> {
        self.pool
            .execute(
                Q::new(format!(
                    "UPDATE live_envs SET instances = $3, updated_at = $4 \
                     WHERE service_id = {SERVICE_ID} AND environment = $2 AND release_id = $5"
                ))
                .text(service)
                .text(environment)
                .text(json_text(instances)?)
                .int(now_ms())
                .int(release_id),
            )
            .await?;
        Ok(())
    }
}

fn live_query(service: &str, environment: &str) -> Q {
    Q::new(format!(
        "SELECT {LIVE_COLUMNS} FROM {LIVE_FROM} WHERE s.name = $1 AND l.environment = $2"
    ))
    .text(service)
    .text(environment)
}

async fn live_env_tx(
    tx: &mut Tx,
    service: &str,
    environment: &str,
) -> Result<Option<LiveEnv>, DbError> {
    let row = tx.fetch_optional(live_query(service, environment)).await?;
    row.as_ref().map(live_from_row).transpose()
}

fn live_from_row(row: &Row) -> Result<LiveEnv, DbError> {
    let previous = match row.opt_int("previous_release_id")? {
        Some(release_id) => Some(WarmRelease {
            release_id,
            release_number: row.int("previous_number")?,
            instances: row.json("previous_instances")?,
            warm_until: row.opt_int("warm_until")?.unwrap_or(0),
        }),
        None => None,
    };
    Ok(LiveEnv {
        project: row.text("project")?,
        service: row.text("service")?,
        environment: row.text("environment")?,
        release_id: row.int("release_id")?,
        release_number: row.int("release_number")?,
        instances: row.json("instances")?,
        previous,
        deploy_id: row.int("deploy_id")?,
        updated_at: row.int("updated_at")?,
    })
}
