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

use super::{DbError, Store};
use ferry_types::{DeployKind, DeployPhase, DeployState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

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

impl Store {
    /// Records that `project` declares `service`; a no-op when it already does.
    /// [`DbError::Conflict`] when another project owns the name.
    pub async fn register_service(&self, project: &str, service: &str) -> Result<Service, DbError> {
        let _ = (project, service);
        todo!("store helper")
    }

    /// Every service, by name.
    pub async fn services(&self) -> Result<Vec<Service>, DbError> {
        todo!("store helper")
    }

    /// One service; [`DbError::NotFound`] if unknown.
    pub async fn service(&self, name: &str) -> Result<Service, DbError> {
        let _ = name;
        todo!("store helper")
    }

    /// Creates the next release of the service (registering the service), or returns
    /// the existing one with the same sha and artifact. Appends `release.created` for
    /// a new one. [`DbError::Conflict`] when another project owns the service.
    pub async fn create_release(&self, new: &NewRelease) -> Result<Release, DbError> {
        let _ = new;
        todo!("store helper")
    }

    /// The service's releases, newest first, at most `limit`.
    pub async fn releases(&self, service: &str, limit: i64) -> Result<Vec<Release>, DbError> {
        let _ = (service, limit);
        todo!("store helper")
    }

    /// Release number `number` of the service; [`DbError::NotFound`] if there is none.
    pub async fn release(&self, service: &str, number: i64) -> Result<Release, DbError> {
        let _ = (service, number);
        todo!("store helper")
    }

    /// A release by database id.
    pub async fn release_by_id(&self, id: i64) -> Result<Release, DbError> {
        let _ = id;
        todo!("store helper")
    }

    /// Deletes the service's releases beyond the newest `keep`, except those live or
    /// warm in an environment or named by a deploy that has not ended. Returns what was
    /// deleted (the caller frees their blobs when nothing else uses them).
    pub async fn prune_releases(
        &self,
        service: &str,
        keep: usize,
    ) -> Result<Vec<Release>, DbError> {
        let _ = (service, keep);
        todo!("store helper")
    }

    /// Queues a deploy (`queued`, or `waiting_approval`) and appends `deploy.queued`.
    pub async fn create_deploy(&self, new: &NewDeploy) -> Result<Deploy, DbError> {
        let _ = new;
        todo!("store helper")
    }

    /// A deploy by id.
    pub async fn deploy(&self, id: i64) -> Result<Deploy, DbError> {
        let _ = id;
        todo!("store helper")
    }

    /// Deploys, newest first.
    pub async fn deploys(&self, query: &DeployQuery) -> Result<Vec<Deploy>, DbError> {
        let _ = query;
        todo!("store helper")
    }

    /// The progress lines of a deploy, in order.
    pub async fn deploy_steps(&self, id: i64) -> Result<Vec<DeployStep>, DbError> {
        let _ = id;
        todo!("store helper")
    }

    /// Approves a deploy in `waiting_approval` (→ `queued`), appending
    /// `deploy.approved`. [`DbError::Invalid`] in any other state.
    pub async fn approve_deploy(&self, id: i64, by: &str) -> Result<Deploy, DbError> {
        let _ = (id, by);
        todo!("store helper")
    }

    /// Cancels a deploy that is `queued` or `waiting_approval` (→ `cancelled`,
    /// `deploy.finished`). [`DbError::Invalid`] once it runs: a running deploy is
    /// stopped by its engine, which rolls it back.
    pub async fn cancel_deploy(&self, id: i64, by: &str) -> Result<Deploy, DbError> {
        let _ = (id, by);
        todo!("store helper")
    }

    /// Takes the oldest `queued` deploy whose service and environment has no
    /// `running` deploy: sets it `running` under `owner`'s lease, records the
    /// environment's live release as `previous_release_id`, appends `deploy.started`.
    /// Atomic across servers (`FOR UPDATE SKIP LOCKED` / `BEGIN IMMEDIATE`).
    pub async fn claim_deploy(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Deploy>, DbError> {
        let _ = (owner, lease);
        todo!("store helper")
    }

    /// Extends the lease; [`DbError::LeaseLost`]-like [`DbError::Invalid`] when `owner`
    /// no longer holds it (the deploy ended or was taken over).
    pub async fn renew_deploy(&self, id: i64, owner: &str, lease: Duration) -> Result<(), DbError> {
        let _ = (id, owner, lease);
        todo!("store helper")
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
        let _ = (id, owner, phase, message);
        todo!("store helper")
    }

    /// Replaces the deploy's `progress` record. Fails when `owner` does not hold it.
    pub async fn save_deploy_progress(
        &self,
        id: i64,
        owner: &str,
        progress: &serde_json::Value,
    ) -> Result<(), DbError> {
        let _ = (id, owner, progress);
        todo!("store helper")
    }

    /// Makes the deploy's release the live release of its environment (upserting the
    /// live row, replacing `previous` by `switch.keep_previous`), and appends
    /// `deploy.switched` — in one transaction. Fails when `owner` does not hold it.
    pub async fn switch_live(
        &self,
        id: i64,
        owner: &str,
        switch: &Switch,
    ) -> Result<LiveEnv, DbError> {
        let _ = (id, owner, switch);
        todo!("store helper")
    }

    /// Ends a running deploy in `state` (a finished state) with `reason`, phase
    /// `done`, appending `deploy.finished`. Fails when `owner` does not hold it.
    pub async fn finish_deploy(
        &self,
        id: i64,
        owner: &str,
        state: DeployState,
        reason: Option<&str>,
    ) -> Result<Deploy, DbError> {
        let _ = (id, owner, state, reason);
        todo!("store helper")
    }

    /// Running deploys whose lease ended before `now` (unix ms).
    pub async fn expired_deploys(&self, now: i64) -> Result<Vec<Deploy>, DbError> {
        let _ = now;
        todo!("store helper")
    }

    /// Running deploys held by `owner` (a restarted server finds its own).
    pub async fn deploys_owned_by(&self, owner: &str) -> Result<Vec<Deploy>, DbError> {
        let _ = owner;
        todo!("store helper")
    }

    /// Gives a running deploy to `owner` with a fresh lease if its lease has ended or
    /// `owner` already holds it; None when someone else holds a live lease.
    pub async fn take_over_deploy(
        &self,
        id: i64,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Deploy>, DbError> {
        let _ = (id, owner, lease);
        todo!("store helper")
    }

    /// Every environment's live state.
    pub async fn live_envs(&self) -> Result<Vec<LiveEnv>, DbError> {
        todo!("store helper")
    }

    /// One environment's live state, None before its first deploy.
    pub async fn live_env(
        &self,
        service: &str,
        environment: &str,
    ) -> Result<Option<LiveEnv>, DbError> {
        let _ = (service, environment);
        todo!("store helper")
    }

    /// Forgets the warm previous release of an environment once its instances were
    /// stopped (only if it is still `release_id`).
    pub async fn clear_warm(
        &self,
        service: &str,
        environment: &str,
        release_id: i64,
    ) -> Result<(), DbError> {
        let _ = (service, environment, release_id);
        todo!("store helper")
    }

    /// Replaces the live instances of an environment without changing its release
    /// (the engine restarted them after a crash); only if `release_id` is still live.
    pub async fn replace_live_instances(
        &self,
        service: &str,
        environment: &str,
        release_id: i64,
        instances: &serde_json::Value,
    ) -> Result<(), DbError> {
        let _ = (service, environment, release_id, instances);
        todo!("store helper")
    }
}
