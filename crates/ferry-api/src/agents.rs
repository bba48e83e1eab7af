//! What remote agents call: claim a job (long-poll), renew its lease, append its log,
//! report its result, fetch the run's source; and the list of agents.
//!
//! A claim that finds nothing waits on the core's wake-ups (a job queued, retried,
//! finished, approved) up to `wait_ms` — at most [`MAX_WAIT`] — and retries at least
//! every [`CROSS_PROCESS_POLL`] for work queued by another server process; it answers
//! 204 when nothing came. Every call that names a lease is refused with 409 once the
//! lease is lost, so an agent whose job was taken back stops.

use crate::AppState;
use crate::auth::{Auth, Developer, Viewer};
use crate::convert;
use crate::error::{ApiError, Json, Path};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_store::Digest;
use ferry_store::db::{CROSS_PROCESS_POLL, DbError, Job, JobOutcome};
use ferry_types::JobResult;
use ferry_types::api::{self, ErrorBody};
use std::time::{Duration, Instant};

/// The longest a claim waits for work.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// `POST /api/v1/agents/claim`
#[utoipa::path(post, path = "/api/v1/agents/claim", tag = "agents", request_body = api::ClaimRequest,
    responses((status = 200, description = "A job to run", body = api::Assignment),
        (status = 204, description = "Nothing to do within `wait_ms`"),
        (status = 400, body = ErrorBody)))]
pub async fn claim(
    _auth: Auth<Developer>,
    State(state): State<AppState>,
    Json(req): Json<api::ClaimRequest>,
) -> Result<Response, ApiError> {
    if req.agent_id.trim().is_empty() {
        return Err(ApiError::bad_request("`agent_id` is empty")
            .hint("an agent claims under a stable id of its own, e.g. its host name"));
    }
    let store = state.core.store();
    store
        .agent_seen(&req.agent_id, &req.name, &req.labels)
        .await?;
    let lease = state.core.config().lease;
    let deadline = Instant::now() + Duration::from_millis(req.wait_ms).min(MAX_WAIT);
    loop {
        // Subscribed before the claim, so work queued right after it wakes us.
        let waiter = state.core.work_waiter();
        if let Some(claimed) = store.claim_job(&req.agent_id, &req.labels, lease).await? {
            let held = claimed.lease.clone();
            return match state.core.assignment(claimed).await {
                Ok(a) => Ok(axum::Json(convert::assignment(a)).into_response()),
                Err(e) => {
                    // The agent will never hear of this job: end it now rather than
                    // leave it to the lease expiry.
                    let reason = format!("the server could not prepare the job: {e}");
                    let outcome = JobOutcome {
                        result: JobResult::Failure,
                        reason: Some(reason),
                    };
                    if let Err(e2) = state.core.complete_job(&held, outcome, None).await {
                        tracing::warn!(job_id = held.job_id, error = %e2, "Ending a job that could not be handed out failed.");
                    }
                    Err(e.into())
                }
            };
        }
        let now = Instant::now();
        if now >= deadline || state.shutdown().is_cancelled() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let wait = (deadline - now).min(CROSS_PROCESS_POLL);
        tokio::select! {
            () = waiter.wait(wait) => {}
            () = state.shutdown().cancelled() => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

/// The lease in a body must be for the job in the path.
fn same_job(path_job: i64, lease: &api::Lease) -> Result<(), ApiError> {
    if path_job == lease.job_id {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "the lease is for job {}, not job {path_job}",
            lease.job_id
        )))
    }
}

/// Marks the lease's agent as alive (keeping its name and labels).
async fn seen(state: &AppState, agent_id: &str) -> Result<(), ApiError> {
    let store = state.core.store();
    if let Some(agent) = store.get_agent(agent_id).await? {
        store
            .agent_seen(agent_id, &agent.name, &agent.labels)
            .await?;
    }
    Ok(())
}

/// `POST /api/v1/agents/jobs/{job_id}/heartbeat`
#[utoipa::path(post, path = "/api/v1/agents/jobs/{job_id}/heartbeat", tag = "agents",
    params(("job_id" = i64, Path, description = "Job id")), request_body = api::Heartbeat,
    responses((status = 200, description = "The lease, renewed", body = api::Renewal),
        (status = 409, description = "The lease is lost: stop the job", body = ErrorBody)))]
pub async fn heartbeat(
    _auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(job_id): Path<i64>,
    Json(req): Json<api::Heartbeat>,
) -> Result<axum::Json<api::Renewal>, ApiError> {
    same_job(job_id, &req.lease)?;
    let agent_id = req.lease.agent_id.clone();
    let lease = convert::lease_from(req.lease);
    let renewal = state
        .core
        .store()
        .renew_lease(&lease, state.core.config().lease)
        .await?;
    seen(&state, &agent_id).await?;
    Ok(axum::Json(convert::renewal(renewal)))
}

/// The job, if `lease` still holds it; 409 otherwise.
pub(crate) async fn held_job(state: &AppState, lease: &api::Lease) -> Result<Job, ApiError> {
    let job = state
        .core
        .store()
        .get_job(lease.job_id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", lease.job_id))?;
    let holds = job.status == ferry_types::JobStatus::Running
        && job.agent_id.as_deref() == Some(lease.agent_id.as_str())
        && job.attempt == lease.attempt;
    if holds {
        Ok(job)
    } else {
        Err(DbError::LeaseLost {
            job_id: lease.job_id,
            agent_id: lease.agent_id.clone(),
            attempt: lease.attempt,
        }
        .into())
    }
}

/// `POST /api/v1/agents/jobs/{job_id}/logs`
#[utoipa::path(post, path = "/api/v1/agents/jobs/{job_id}/logs", tag = "agents",
    params(("job_id" = i64, Path, description = "Job id")), request_body = api::LogAppend,
    responses((status = 200, description = "Appended", body = api::LogAppended),
        (status = 409, description = "The lease is lost: stop the job", body = ErrorBody)))]
pub async fn append_log(
    _auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(job_id): Path<i64>,
    Json(req): Json<api::LogAppend>,
) -> Result<axum::Json<api::LogAppended>, ApiError> {
    same_job(job_id, &req.lease)?;
    let job = held_job(&state, &req.lease).await?;
    let total = state
        .core
        .store()
        .append_log(job.run_id, &job.name, req.step, req.lines)
        .await?;
    Ok(axum::Json(api::LogAppended { total }))
}

/// `POST /api/v1/agents/jobs/{job_id}/finish`
#[utoipa::path(post, path = "/api/v1/agents/jobs/{job_id}/finish", tag = "agents",
    params(("job_id" = i64, Path, description = "Job id")), request_body = api::FinishRequest,
    responses((status = 204, description = "Recorded"),
        (status = 400, description = "The artifacts blob is not stored", body = ErrorBody),
        (status = 409, description = "The lease is lost", body = ErrorBody)))]
pub async fn finish(
    _auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(job_id): Path<i64>,
    Json(req): Json<api::FinishRequest>,
) -> Result<StatusCode, ApiError> {
    same_job(job_id, &req.lease)?;
    if let Some(digest) = &req.artifacts {
        let parsed: Digest = digest.parse().map_err(|_| {
            ApiError::bad_request(format!("`{digest}` is not a blob digest"))
                .hint("use `sha256:` and 64 hex digits")
        })?;
        if !state.core.blobs().contains(&parsed) {
            return Err(
                ApiError::bad_request(format!("blob {parsed} is not stored"))
                    .hint("upload the artifacts with `PUT /api/v1/blobs/{digest}` first"),
            );
        }
    }
    let lease = convert::lease_from(req.lease);
    let outcome = JobOutcome {
        result: req.outcome.result,
        reason: req.outcome.reason,
    };
    state
        .core
        .complete_job(&lease, outcome, req.artifacts)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/runs/{id}/source.tar`
#[utoipa::path(get, path = "/api/v1/runs/{id}/source.tar", tag = "agents",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "The run's commit as a tar archive", content_type = "application/x-tar"),
        (status = 404, body = ErrorBody)))]
pub async fn source(
    _auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(run_id): Path<i64>,
) -> Result<Response, ApiError> {
    let path = state.core.source_archive(run_id).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?
        .len();
    Ok(crate::blobs::file_response(file, len, "application/x-tar"))
}

/// `GET /api/v1/agents`
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    responses((status = 200, description = "Agents seen, with when", body = Vec<api::Agent>)))]
pub async fn list(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<api::Agent>>, ApiError> {
    let agents = state.core.store().list_agents().await?;
    Ok(axum::Json(agents.into_iter().map(convert::agent).collect()))
}
