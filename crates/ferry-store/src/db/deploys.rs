//! Services, releases, deploys and the live state of each environment.
//!
//! - A **service** (`deploy.name` in `ferry.yml`) belongs to the project that first
//!   declared it; names are unique across projects, so `ferry deploy shop` needs no
//!   project.
//! - A **release** is an artifact (an image reference, or a tarball in the blob store)
//!   plus the `ferry.yml` text and env it was made with. Releases are numbered per
//!   service (`v1`, `v2`, …); the same artifact at the same commit is reused, not
//!   numbered again.
//! - A **deploy** moves one environment of a service to one release. Deploys of the
//!   same service and environment run one at a time, oldest first
//!   ([`Store::claim_deploy`]), under a lease like jobs, so a server that dies mid-deploy
//!   is noticed and another (or the same, restarted) takes over
//!   ([`Store::expired_deploys`], [`Store::take_over_deploy`]).
//! - The **live state** of an environment (its release and instances) changes only in
//!   [`Store::switch_live`], in the same transaction as its `deploy.switched` event: it
//!   is the one record of which release serves traffic, and the proxy's route table is
//!   built from it.
//!
//! Instances are kept as JSON ([`serde_json::Value`]): their shape belongs to the
//! targets in `ferry-engine`.
//!
//! The methods are in `releases` (services, releases, pruning), `lifecycle` (a deploy
//! from queued to finished, its lease and progress lines) and `live` (the live state).

mod lifecycle;
mod live;
mod releases;

use super::conn::{Backend, PendingEvent, Q, Row, Tx};
use super::{DbError, Store, event};
use ferry_types::{DeployKind, DeployPhase, DeployState, EventKind};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// A service and the project it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// `deploy.name`.
    pub name: String,
    /// The project whose `ferry.yml` declares it.
    pub project: String,
    /// When it was first seen, unix ms.
    pub created_at: i64,
}

/// What a release runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReleaseArtifact {
    /// A container image, e.g. `shop:3f2a…` (as built by the pipeline).
    Image {
        /// The image reference.
        reference: String,
    },
    /// A tar file in the blob store, unpacked where the release runs.
    Tarball {
        /// Its blob digest, `sha256:<hex>`.
        digest: String,
    },
}

/// A release of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Database id.
    pub id: i64,
    /// The project.
    pub project: String,
    /// The service.
    pub service: String,
    /// 1, 2, … per service.
    pub number: i64,
    /// The commit it was built from.
    pub sha: String,
    /// What runs.
    pub artifact: ReleaseArtifact,
    /// The `ferry.yml` text at that commit (the config snapshot).
    pub config: String,
    /// The service env at release time, after `${{ }}` rendering except `secrets.*`,
    /// which stay templates and are resolved at each deploy.
    pub env: BTreeMap<String, String>,
    /// The run that built it, if a pipeline did.
    pub run_id: Option<i64>,
    /// Who made it (token name, or `ferry` for the engine).
    pub created_by: String,
    /// When, unix ms.
    pub created_at: i64,
}

impl Release {
    /// The release's name as users see it: `v` and its number.
    pub fn name(&self) -> String {
        format!("v{}", self.number)
    }
}

/// What [`Store::create_release`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRelease {
    /// The project (must own the service, or the service must be new).
    pub project: String,
    /// The service.
    pub service: String,
    /// The commit.
    pub sha: String,
    /// What runs.
    pub artifact: ReleaseArtifact,
    /// The `ferry.yml` text.
    pub config: String,
    /// The env snapshot.
    pub env: BTreeMap<String, String>,
    /// The run that built it.
    pub run_id: Option<i64>,
    /// Who makes it.
    pub created_by: String,
}

/// A deploy of a release to an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deploy {
    /// Database id.
    pub id: i64,
    /// The project.
    pub project: String,
    /// The service.
    pub service: String,
    /// The environment, e.g. `staging`.
    pub environment: String,
    /// The release being deployed.
    pub release_id: i64,
    /// Its number (`v{n}`).
    pub release_number: i64,
    /// The release that was live when the deploy started, if any (set when claimed).
    pub previous_release_id: Option<i64>,
    /// Why it was made.
    pub kind: DeployKind,
    /// Where it is.
    pub state: DeployState,
    /// The step it is at.
    pub phase: DeployPhase,
    /// Why it failed or was rolled back, in a sentence.
    pub reason: Option<String>,
    /// Who asked for it.
    pub requested_by: String,
    /// Who approved it, when the environment needs approval.
    pub approved_by: Option<String>,
    /// The run whose job asked for it, if any.
    pub run_id: Option<i64>,
    /// That job's instance id.
    pub job: Option<String>,
    /// The server process carrying it out, while running.
    pub owner: Option<String>,
    /// When the owner's lease ends unless renewed, unix ms.
    pub lease_expires_at: Option<i64>,
    /// What the engine recorded to resume or undo it after a crash (the instances it
    /// started, the ones it is replacing): free-form JSON owned by the engine.
    pub progress: serde_json::Value,
    /// When it was requested, unix ms.
    pub created_at: i64,
    /// When it started running, unix ms.
    pub started_at: Option<i64>,
    /// When it ended, unix ms.
    pub finished_at: Option<i64>,
}

impl Deploy {
    /// The release's name, `v{n}`.
    pub fn release_name(&self) -> String {
        format!("v{}", self.release_number)
    }
}

/// What [`Store::create_deploy`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeploy {
    /// The service.
    pub service: String,
    /// The environment.
    pub environment: String,
    /// The release.
    pub release_id: i64,
    /// Why.
    pub kind: DeployKind,
    /// Who asks.
    pub requested_by: String,
    /// The run and job asking, for deploys made by a pipeline job.
    pub run_id: Option<i64>,
    /// The job instance id.
    pub job: Option<String>,
    /// Start in `waiting_approval` instead of `queued`.
    pub needs_approval: bool,
}

/// One line of a deploy's progress, for the UI and `ferry deploys show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployStep {
    /// 1, 2, … within the deploy.
    pub seq: i64,
    /// The phase it belongs to.
    pub phase: DeployPhase,
    /// What happened, in a sentence.
    pub message: String,
    /// When, unix ms.
    pub at: i64,
}

/// Which deploys [`Store::deploys`] lists, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployQuery {
    /// Only this service.
    pub service: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// Only deploys asked for by this run's jobs.
    pub run_id: Option<i64>,
    /// Only deploys that have not ended.
    pub active_only: bool,
    /// At most this many (default 50).
    pub limit: Option<i64>,
}

/// The live state of one environment of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveEnv {
    /// The project.
    pub project: String,
    /// The service.
    pub service: String,
    /// The environment.
    pub environment: String,
    /// The live release.
    pub release_id: i64,
    /// Its number.
    pub release_number: i64,
    /// Its instances (JSON array, shape owned by the engine's targets).
    pub instances: serde_json::Value,
    /// The release live before it, kept warm for an instant rollback until
    /// `warm_until` (blue-green `keep_old_for`).
    pub previous: Option<WarmRelease>,
    /// The deploy that made it live.
    pub deploy_id: i64,
    /// When, unix ms.
    pub updated_at: i64,
}

/// A previous release kept running after a switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmRelease {
    /// The release.
    pub release_id: i64,
    /// Its number.
    pub release_number: i64,
    /// Its instances, still running.
    pub instances: serde_json::Value,
    /// When they are to be stopped, unix ms.
    pub warm_until: i64,
}

/// What [`Store::switch_live`] makes live.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    /// The new live instances.
    pub instances: serde_json::Value,
    /// Keep the old release's instances (as given) warm until then; None: the old
    /// release is being stopped.
    pub keep_previous: Option<(serde_json::Value, i64)>,
}

const SERVICE_COLUMNS: &str =
    "s.id AS service_id, s.project_id, s.name, p.name AS project, s.created_at";
const SERVICE_FROM: &str = "services s JOIN projects p ON p.id = s.project_id";

const RELEASE_COLUMNS: &str = "r.id, p.name AS project, s.name AS service, r.number, r.sha, \
    r.artifact, r.config, r.env, r.run_id, r.created_by, r.created_at";
const RELEASE_FROM: &str =
    "releases r JOIN services s ON s.id = r.service_id JOIN projects p ON p.id = s.project_id";

const DEPLOY_COLUMNS: &str = "d.id, d.service_id, p.name AS project, s.name AS service, \
    d.environment, d.release_id, d.release_number, d.previous_release_id, d.kind, d.state, \
    d.phase, d.reason, d.requested_by, d.approved_by, d.run_id, d.job, d.owner, \
    d.lease_expires_at, d.progress, d.created_at, d.started_at, d.finished_at";
const DEPLOY_FROM: &str =
    "deploys d JOIN services s ON s.id = d.service_id JOIN projects p ON p.id = s.project_id";

/// The states of a deploy that has not ended, as an SQL list.
const UNFINISHED: &str = "('queued', 'waiting_approval', 'running')";

fn service_from_row(row: &Row) -> Result<Service, DbError> {
    Ok(Service {
        name: row.text("name")?,
        project: row.text("project")?,
        created_at: row.int("created_at")?,
    })
}

fn release_from_row(row: &Row) -> Result<Release, DbError> {
    Ok(Release {
        id: row.int("id")?,
        project: row.text("project")?,
        service: row.text("service")?,
        number: row.int("number")?,
        sha: row.text("sha")?,
        artifact: row.json("artifact")?,
        config: row.text("config")?,
        env: row.json("env")?,
        run_id: row.opt_int("run_id")?,
        created_by: row.text("created_by")?,
        created_at: row.int("created_at")?,
    })
}

fn deploy_from_row(row: &Row) -> Result<Deploy, DbError> {
    Ok(Deploy {
        id: row.int("id")?,
        project: row.text("project")?,
        service: row.text("service")?,
        environment: row.text("environment")?,
        release_id: row.int("release_id")?,
        release_number: row.int("release_number")?,
        previous_release_id: row.opt_int("previous_release_id")?,
        kind: row.parse("kind")?,
        state: row.parse("state")?,
        phase: row.parse("phase")?,
        reason: row.opt_text("reason")?,
        requested_by: row.text("requested_by")?,
        approved_by: row.opt_text("approved_by")?,
        run_id: row.opt_int("run_id")?,
        job: row.opt_text("job")?,
        owner: row.opt_text("owner")?,
        lease_expires_at: row.opt_int("lease_expires_at")?,
        progress: row.json("progress")?,
        created_at: row.int("created_at")?,
        started_at: row.opt_int("started_at")?,
        finished_at: row.opt_int("finished_at")?,
    })
}

/// `" FOR UPDATE OF {table}"` on PostgreSQL; nothing on SQLite, where the write
/// transaction (`BEGIN IMMEDIATE`) already excludes every other writer.
fn lock_of(backend: Backend, table: &str) -> String {
    match backend {
        Backend::Postgres => format!(" FOR UPDATE OF {table}"),
        Backend::Sqlite => String::new(),
    }
}

/// A deploy and its service's id, read inside a transaction and locked until it ends.
async fn locked_deploy(tx: &mut Tx, id: i64) -> Result<(Deploy, i64), DbError> {
    let lock = lock_of(tx.backend(), "d");
    let row = tx
        .fetch_optional(
            Q::new(format!(
                "SELECT {DEPLOY_COLUMNS} FROM {DEPLOY_FROM} WHERE d.id = $1{lock}"
            ))
            .int(id),
        )
        .await?
        .ok_or_else(|| DbError::NotFound {
            what: "deploy",
            key: id.to_string(),
        })?;
    Ok((deploy_from_row(&row)?, row.int("service_id")?))
}

/// Like [`locked_deploy`], for a running deploy whose lease `owner` holds;
/// [`DbError::DeployLeaseLost`] otherwise.
async fn held_deploy(tx: &mut Tx, id: i64, owner: &str) -> Result<(Deploy, i64), DbError> {
    let lock = lock_of(tx.backend(), "d");
    let row = tx
        .fetch_optional(
            Q::new(format!(
                "SELECT {DEPLOY_COLUMNS} FROM {DEPLOY_FROM} \
                 WHERE d.id = $1 AND d.owner = $2 AND d.state = 'running'{lock}"
            ))
            .int(id)
            .text(owner),
        )
        .await?
        .ok_or_else(|| lease_lost(id, owner))?;
    Ok((deploy_from_row(&row)?, row.int("service_id")?))
}

impl Store {
    /// Ends a transaction that changed nothing, releasing its locks now. A dropped
    /// transaction is rolled back only when its connection goes back to the pool, in
    /// the background; until then it keeps its row locks, and a claim's `SKIP LOCKED`
    /// would pass over the rows it holds.
    async fn end_unchanged(&self, tx: Tx) -> Result<(), DbError> {
        self.commit(tx).await
    }
}

fn lease_lost(id: i64, owner: &str) -> DbError {
    DbError::DeployLeaseLost {
        deploy_id: id,
        owner: owner.to_owned(),
    }
}

/// An event about a deploy: its project, run and job as the subject, and in `data` what
/// every deploy event carries (id, service, environment, release, state, phase) plus the
/// fields of `extra`.
fn deploy_event(kind: EventKind, deploy: &Deploy, extra: serde_json::Value) -> PendingEvent {
    let mut data = json!({
        "deploy_id": deploy.id,
        "service": deploy.service,
        "environment": deploy.environment,
        "release": deploy.release_name(),
        "release_id": deploy.release_id,
        "kind": deploy.kind,
        "state": deploy.state,
        "phase": deploy.phase,
    });
    if let (Some(data), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    event(
        kind,
        Some(&deploy.project),
        deploy.run_id,
        deploy.job.as_deref(),
        data,
    )
}
