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

use crate::{EventKind, JobResult, JobStatus, Role, RunStatus, Trigger};
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
