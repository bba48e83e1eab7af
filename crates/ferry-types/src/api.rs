//! The wire types of the HTTP API under `/api/v1`: what the server sends and accepts
//! as JSON, shared by the server (`ferry-api`), its typed client (`ferry-client`), the
//! CLI and agents.
//!
//! These are plain serde structs with no database types in them, so a client needs
//! nothing but serde to speak the API. Times are unix milliseconds. With the `openapi`
//! feature each type also derives `utoipa::ToSchema`, for the generated OpenAPI
//! document.
//!
//! Live streams (`?follow=true`) are server-sent events: the log stream sends
//! [`LogChunk`]s as `lines` events and one [`LogEnd`] as the `end` event; the event
//! stream sends each [`Event`] as an `event` event whose SSE id is the event's id.

use crate::{
    DeployKind, DeployPhase, DeployState, EventKind, JobResult, JobStatus, Role, RunStatus, Trigger,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The body of every error answer (4xx and 5xx).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// What failed, for people: `project `web` not found`.
    pub error: String,
    /// What to do next, when there is something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The answer of `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// `ok` (process up) or `ready` (store reachable).
    pub status: String,
}

// ---------------------------------------------------------------------------------
// Projects

/// A registered project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Project {
    /// Row id.
    pub id: i64,
    /// Unique name, used in URLs and webhooks (`/hooks/github/NAME`).
    pub name: String,
    /// Repository URL or local path.
    pub repo: String,
    /// The branch runs use when none is named.
    pub default_branch: String,
    /// Whether webhooks must be signed with a secret (the secret itself is never sent).
    pub has_webhook_secret: bool,
    /// Unix ms.
    pub created_at: i64,
}

/// `POST /api/v1/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NewProject {
    /// Unique name: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Repository URL or path on the server's host.
    pub repo: String,
    /// Default branch; `main` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The secret webhooks of this project are signed with (GitHub, Gitea, Forgejo)
    /// or carry (GitLab). Without one, every webhook for the project is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

// ---------------------------------------------------------------------------------
// Runs and jobs

/// A pipeline run, pinned to one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Run {
    /// Run id.
    pub id: i64,
    /// The project's name.
    pub project: String,
    /// The commit.
    pub sha: String,
    /// The branch, when the run is for a branch.
    pub branch: Option<String>,
    /// The tag, when the run is for a tag.
    pub tag: Option<String>,
    /// What started it: `push`, `schedule`, `manual`, `api`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub trigger: Trigger,
    /// `queued`, `running`, `success`, `failure`, `cancelled`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: RunStatus,
    /// The concurrency group, if the pipeline names one.
    pub concurrency_group: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// When the first job started, unix ms.
    pub started_at: Option<i64>,
    /// When it ended, unix ms.
    pub finished_at: Option<i64>,
}

/// One job instance of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Job {
    /// Job id (agents name it in their calls).
    pub id: i64,
    /// Its run.
    pub run_id: i64,
    /// The instance name, e.g. `test` or `test (linux, 1.80)`.
    pub name: String,
    /// `queued`, `waiting_approval`, `running`, `success`, `failure`,
    /// `allowed_failure`, `skipped`, `cancelled`, `timed_out`, `lost`, `interrupted`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempt: i64,
    /// Attempts allowed (1 + `retry`).
    pub max_attempts: i64,
    /// Whether its failure does not fail the run.
    pub allow_failure: bool,
    /// Labels an executor must have.
    pub runs_on: Vec<String>,
    /// Jobs (instance names) it waits for.
    pub needs: Vec<String>,
    /// The job's definition as the engine runs it (steps, image, …).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub spec: serde_json::Value,
    /// The executor holding or last holding it.
    pub agent_id: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub started_at: Option<i64>,
    /// Unix ms.
    pub finished_at: Option<i64>,
    /// Why it ended the way it did, when there is more to say.
    pub reason: Option<String>,
}

/// `GET /api/v1/runs/{id}`: a run with its jobs and its pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RunDetail {
    /// The run.
    pub run: Run,
    /// Its jobs, in creation order.
    pub jobs: Vec<Job>,
    /// The `ferry.yml` text the run was created from.
    pub pipeline: String,
}

/// `POST /api/v1/projects/{name}/runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TriggerRequest {
    /// `main`, `refs/heads/main`, `refs/tags/v1`; the project's default branch when
    /// absent.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The commit; the ref's current commit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
}

/// What a trigger led to: `201` with `started`, `200` with `filtered`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TriggerResponse {
    /// A run was created.
    Started {
        /// The new run.
        run: Run,
    },
    /// The pipeline's `on` filters exclude this ref or commit.
    Filtered {
        /// Which filter, for people.
        reason: String,
    },
}

/// `POST /api/v1/runs/{id}/rerun`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RerunRequest {
    /// Run only the jobs that did not pass, reusing the others' results and artifacts.
    #[serde(default)]
    pub failed_only: bool,
}

// ---------------------------------------------------------------------------------
// Logs

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogLine {
    /// Line number within the job's log, from 0.
    pub number: i64,
    /// The index of the step that printed it.
    pub step: u32,
    /// The text, without the trailing newline (secrets already masked).
    pub text: String,
}

/// `GET /api/v1/runs/{id}/logs?job=&from=&limit=`: a page of one job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogPage {
    /// The run.
    pub run_id: i64,
    /// The job instance.
    pub job: String,
    /// The lines, from line `from` on.
    pub lines: Vec<LogLine>,
    /// The line number to ask for next (`from` of the next page).
    pub next: i64,
    /// How many lines the log holds now.
    pub total: i64,
    /// Whether the job has ended (its log will not grow).
    pub finished: bool,
}

/// A `lines` event of a followed log: consecutive lines of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogChunk {
    /// The job instance the lines belong to.
    pub job: String,
    /// The lines.
    pub lines: Vec<LogLine>,
}

/// The `end` event of a followed log: every followed job has ended and every line was
/// sent (or the server is shutting down: then `complete` is false).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogEnd {
    /// The run's status when the stream ended.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: RunStatus,
    /// False when the stream stopped before the jobs ended (server shutdown).
    pub complete: bool,
}

// ---------------------------------------------------------------------------------
// Events

/// An entry of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Event {
    /// Increasing id; follow from here with `after`.
    pub id: i64,
    /// Unix ms.
    pub at: i64,
    /// `run.queued`, `webhook.rejected`, …
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: EventKind,
    /// The project it concerns.
    pub project: Option<String>,
    /// The run it concerns.
    pub run_id: Option<i64>,
    /// The job it concerns.
    pub job: Option<String>,
    /// Details, by kind.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
}

// ---------------------------------------------------------------------------------
// Tokens

/// An API token's facts (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenInfo {
    /// Token id (revoke names it).
    pub id: i64,
    /// A name for people.
    pub name: String,
    /// `viewer`, `developer`, `operator`, `admin`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub role: Role,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms, when revoked.
    pub revoked_at: Option<i64>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NewToken {
    /// A name for people.
    pub name: String,
    /// The role; `developer` when absent.
    #[serde(default = "default_role")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub role: Role,
}

fn default_role() -> Role {
    Role::Developer
}

/// The answer to `POST /api/v1/tokens`: the only time the token is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedToken {
    /// Its facts.
    pub info: TokenInfo,
    /// The bearer token (`ferry_…`); store it now.
    pub token: String,
}

// ---------------------------------------------------------------------------------
// Agents

/// A remote agent the server has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Agent {
    /// The agent's stable id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// Unix ms.
    pub first_seen: i64,
    /// Last claim or heartbeat, unix ms.
    pub last_seen: i64,
}

/// `POST /api/v1/agents/claim`: asks for a job, waiting up to `wait_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ClaimRequest {
    /// The agent's stable id.
    pub agent_id: String,
    /// A name for people.
    pub name: String,
    /// Its labels; a job is handed out only if its `runs-on` labels are among them.
    #[serde(default)]
    pub labels: Vec<String>,
    /// How long the server may hold the request open when nothing is queued
    /// (at most 30 000).
    #[serde(default)]
    pub wait_ms: u64,
}

/// The right to work on one attempt of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Lease {
    /// The job.
    pub job_id: i64,
    /// The agent holding it.
    pub agent_id: String,
    /// The attempt.
    pub attempt: i64,
}

/// A claimed job: everything an agent needs to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Assignment {
    /// Name this in heartbeats, logs and the result.
    pub lease: Lease,
    /// When the lease ends unless renewed, unix ms.
    pub lease_expires_at: i64,
    /// The run.
    pub run_id: i64,
    /// The project.
    pub project: String,
    /// The job instance.
    pub job: String,
    /// The commit (its tree: `GET /api/v1/runs/{id}/source.tar`).
    pub sha: String,
    /// Branch.
    pub branch: Option<String>,
    /// Tag.
    pub tag: Option<String>,
    /// The run's `ferry.yml` text.
    pub pipeline: String,
    /// Results of the jobs it needs, by instance name.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub needs: BTreeMap<String, JobResult>,
    /// Artifact blob digests of the jobs it needs (`GET /api/v1/blobs/{digest}`).
    pub artifacts: BTreeMap<String, String>,
    /// The secrets the job references, and only those.
    pub secrets: BTreeMap<String, String>,
    /// What started the run (`push`, `schedule`, `manual`, `api`): the job's
    /// `ferry.event`.
    #[serde(default)]
    pub event: String,
}

/// `POST /api/v1/agents/jobs/{job_id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Heartbeat {
    /// The lease held.
    pub lease: Lease,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Renewal {
    /// The new end of the lease, unix ms.
    pub lease_expires_at: i64,
    /// The run was cancelled: stop the job and report it cancelled.
    pub cancel_requested: bool,
}

/// `POST /api/v1/agents/jobs/{job_id}/logs`: lines printed by one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogAppend {
    /// The lease held.
    pub lease: Lease,
    /// The step's index.
    pub step: u32,
    /// The lines, without newlines, secrets already masked.
    pub lines: Vec<String>,
}

/// The answer to a log append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogAppended {
    /// How many lines the job's log holds now.
    pub total: i64,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobOutcome {
    /// `success`, `failure`, `cancelled`, `timed_out`, … Report `failure` even for
    /// jobs with `allow_failure`: the server retries or records it as allowed.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub result: JobResult,
    /// Why, when there is more to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/v1/agents/jobs/{job_id}/finish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FinishRequest {
    /// The lease held.
    pub lease: Lease,
    /// How it ended.
    pub outcome: JobOutcome,
    /// The digest of the job's artifacts blob, uploaded first with
    /// `PUT /api/v1/blobs/{digest}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<String>,
}

/// The answer to a blob upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BlobStored {
    /// `sha256:<64 hex>`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
}

// ---------------------------------------------------------------------------------
// Webhooks

/// What a webhook delivery led to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HookResponse {
    /// `accepted` (202, stored and being processed), `duplicate` (200, seen before),
    /// `ignored` (200, not a push or a deleting push), `pong` (200, a ping).
    pub status: String,
    /// The stored delivery's row id, when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<i64>,
    /// More words, when ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------
// Deploys

/// The latest output of one live instance of a service
/// (`GET /api/v1/services/{name}/environments/{env}/output`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct InstanceOutput {
    /// The instance's name, `{service}-{environment}-{release}-{index}`.
    pub instance: String,
    /// The release it runs, `v{n}`.
    pub release: String,
    /// Its last lines of output (stdout and stderr), oldest first.
    pub lines: Vec<String>,
    /// Where to look instead, when Ferry does not keep this target's output.
    pub note: Option<String>,
}

/// A deployed service (`deploy.name` in a project's `ferry.yml`) and its environments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ServiceInfo {
    /// The service's name, unique across projects.
    pub name: String,
    /// The project whose `ferry.yml` declares it.
    pub project: String,
    /// When it was first released, unix ms.
    pub created_at: i64,
    /// The newest release, `v{n}`, if any.
    pub newest_release: Option<String>,
    /// Its environments: those the newest release's `ferry.yml` declares, in promotion
    /// order, then any other that has a live release.
    pub environments: Vec<EnvironmentInfo>,
}

/// One environment of a service and what runs in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnvironmentInfo {
    /// The environment's name, e.g. `staging`.
    pub name: String,
    /// Whether the newest release's `ferry.yml` declares it.
    pub declared: bool,
    /// `process`, `docker` or `ssh`, when declared.
    pub target: Option<String>,
    /// `rolling`, `blue-green`, `canary` or `recreate`, when declared.
    pub strategy: Option<String>,
    /// Whether deploys to it wait for an operator's approval.
    pub approval: bool,
    /// Its routes, `host/path`.
    pub routes: Vec<String>,
    /// The release serving its traffic; none before its first deploy.
    pub live: Option<LiveRelease>,
    /// The previous release, still running for an instant rollback.
    pub warm: Option<WarmRelease>,
    /// Its newest deploy, whatever its state.
    pub last_deploy: Option<DeployInfo>,
}

/// The release live in an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LiveRelease {
    /// The release's number.
    pub release: i64,
    /// Its name, `v{n}`.
    pub name: String,
    /// The commit it was built from.
    pub sha: String,
    /// The deploy that made it live.
    pub deploy_id: i64,
    /// When it went live, unix ms.
    pub since: i64,
    /// How many instances serve it.
    pub instances: usize,
}

/// A previous release kept running after a switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WarmRelease {
    /// The release's number.
    pub release: i64,
    /// Its name, `v{n}`.
    pub name: String,
    /// When its instances are stopped, unix ms.
    pub until: i64,
}

/// What a release runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReleaseArtifact {
    /// A container image.
    Image {
        /// The image reference, e.g. `shop:3f2a…`.
        reference: String,
    },
    /// A tar file in the blob store (`GET /api/v1/blobs/{digest}`).
    Tarball {
        /// `sha256:<hex>`.
        digest: String,
    },
}

/// A release: an artifact plus the `ferry.yml` and env it was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseInfo {
    /// The service.
    pub service: String,
    /// 1, 2, … per service.
    pub number: i64,
    /// `v{number}`.
    pub name: String,
    /// The commit it was built from.
    pub sha: String,
    /// What runs.
    pub artifact: ReleaseArtifact,
    /// The run that built it, if a pipeline did.
    pub run_id: Option<i64>,
    /// Who made it (a token's name, or `ferry`).
    pub created_by: String,
    /// Unix ms.
    pub created_at: i64,
    /// The environments where it is live now.
    pub live_in: Vec<String>,
}

/// A deploy of a release to an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeployInfo {
    /// Deploy id.
    pub id: i64,
    /// The service.
    pub service: String,
    /// The project.
    pub project: String,
    /// The environment.
    pub environment: String,
    /// The release's number.
    pub release: i64,
    /// Its name, `v{n}`.
    pub release_name: String,
    /// The number of the release that was live when it started, if any.
    pub previous_release: Option<i64>,
    /// `deploy`, `promote` or `rollback`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: DeployKind,
    /// `queued`, `waiting_approval`, `running`, `succeeded`, `rolled_back`, `failed`,
    /// `cancelled`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: DeployState,
    /// The step it is at: `pending`, `prepare`, `pre_migrate`, `migrate`, `start`,
    /// `health`, `smoke`, `shift`, `drain`, `rollback`, `done`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub phase: DeployPhase,
    /// Why it failed or was rolled back.
    pub reason: Option<String>,
    /// Who asked for it.
    pub requested_by: String,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// The run whose job asked for it.
    pub run_id: Option<i64>,
    /// That job's instance name.
    pub job: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub started_at: Option<i64>,
    /// Unix ms.
    pub finished_at: Option<i64>,
}

/// One line of a deploy's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeployStep {
    /// 1, 2, … within the deploy; follow from here with `after`.
    pub seq: i64,
    /// The phase it belongs to.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub phase: DeployPhase,
    /// What happened, in a sentence.
    pub message: String,
    /// Unix ms.
    pub at: i64,
}

/// `GET /api/v1/deploys/{id}`: a deploy with its progress lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeployDetail {
    /// The deploy.
    pub deploy: DeployInfo,
    /// Its progress lines, in order.
    pub steps: Vec<DeployStep>,
}

/// `POST /api/v1/services/{name}/deploys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeployRequest {
    /// The environment.
    pub environment: String,
    /// The release's number; the newest release when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<i64>,
}

/// `POST /api/v1/services/{name}/promote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PromoteRequest {
    /// The environment whose live release is promoted.
    pub from: String,
    /// The environment it goes to.
    pub to: String,
}

/// `POST /api/v1/services/{name}/rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RollbackRequest {
    /// The environment.
    pub environment: String,
    /// The release's number; the one live before the current one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
}

/// `POST /api/v1/agents/jobs/{job_id}/deploy`: a job with `deploy: ENV` asks the
/// server to release and deploy what it built. The deploy may outlast one HTTP call:
/// the server waits up to `wait_ms` and answers 202 while it is still going; the agent
/// sends the same request again, and the server never starts a second deploy for the
/// same attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobDeployRequest {
    /// The lease held.
    pub lease: Lease,
    /// The environment (the job's `deploy:`).
    pub environment: String,
    /// The digest of the job's uploaded artifacts, which become the release's tarball;
    /// absent: the commit's source (or the image the steps built).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// How long the server may hold the request open (at most 30 000).
    #[serde(default)]
    pub wait_ms: u64,
}

/// How a job's deploy ended (200), or that it is still going (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JobDeployAnswer {
    /// Still going: send the same request again.
    Deploying {
        /// The deploy, once it was queued.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deploy_id: Option<i64>,
    },
    /// Ended.
    Finished {
        /// The deploy's id.
        deploy_id: i64,
        /// The release deployed, `v{n}`.
        release: String,
        /// Whether the release went live.
        succeeded: bool,
        /// The deploy's progress lines, for the job's log.
        lines: Vec<String>,
    },
}
