//! Runs: list, trigger, show, cancel, approve, re-run.

use crate::AppState;
use crate::auth::{Auth, Developer, Operator, Viewer};
use crate::convert;
use crate::error::{ApiError, OptionalJson, Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use ferry_engine::server::{TriggerOutcome, TriggerRequest};
use ferry_types::Trigger;
use ferry_types::api::{self, ErrorBody};
use serde::Deserialize;
use utoipa::IntoParams;

/// The most runs one listing returns.
const MAX_RUNS: i64 = 1000;

/// `GET /api/v1/runs` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this project's runs.
    project: Option<String>,
    /// At most this many (default 50, at most 1000).
    limit: Option<i64>,
}

/// `GET /api/v1/runs`
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(ListQuery),
    responses((status = 200, description = "The newest runs first", body = Vec<api::Run>),
        (status = 404, description = "No such project", body = ErrorBody)))]
pub async fn list(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<api::Run>>, ApiError> {
    let store = state.core.store();
    if let Some(p) = &q.project
        && store.get_project(p).await?.is_none()
    {
        return Err(ApiError::not_found("project", p));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_RUNS);
    let runs = store.list_runs(q.project.as_deref(), limit).await?;
    Ok(axum::Json(runs.into_iter().map(convert::run).collect()))
}

/// `POST /api/v1/projects/{name}/runs`
#[utoipa::path(post, path = "/api/v1/projects/{name}/runs", tag = "runs",
    params(("name" = String, Path, description = "The project's name")),
    request_body = api::TriggerRequest,
    responses((status = 201, description = "A run was started", body = api::TriggerResponse),
        (status = 200, description = "The pipeline's `on` filters exclude it", body = api::TriggerResponse),
        (status = 400, description = "Bad ref, commit or pipeline", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn trigger(
    _auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    OptionalJson(req): OptionalJson<api::TriggerRequest>,
) -> Result<(StatusCode, axum::Json<api::TriggerResponse>), ApiError> {
    let outcome = state
        .core
        .trigger(TriggerRequest {
            project: name,
            git_ref: req.git_ref.filter(|r| !r.is_empty()),
            sha: req.sha.filter(|s| !s.is_empty()),
            trigger: Trigger::Api,
            changed_paths: None,
            delivery_id: None,
        })
        .await?;
    Ok(match outcome {
        TriggerOutcome::Started(run) => (
            StatusCode::CREATED,
            axum::Json(api::TriggerResponse::Started {
                run: convert::run(run),
            }),
        ),
        TriggerOutcome::Filtered(reason) => (
            StatusCode::OK,
            axum::Json(api::TriggerResponse::Filtered { reason }),
        ),
    })
}

/// `GET /api/v1/runs/{id}`
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, body = api::RunDetail), (status = 404, body = ErrorBody)))]
pub async fn show(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<api::RunDetail>, ApiError> {
    detail(&state, id).await.map(axum::Json)
}

/// The run with its jobs, or 404.
pub(crate) async fn detail(state: &AppState, id: i64) -> Result<api::RunDetail, ApiError> {
    let store = state.core.store();
    let run = store
        .get_run(id)
        .await?
        .ok_or_else(|| ApiError::not_found("run", id).hint("`ferry runs` lists the runs"))?;
    let jobs = store.list_jobs(id).await?;
    Ok(convert::run_detail(run, jobs))
}

/// `POST /api/v1/runs/{id}/cancel`
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "The run after cancelling", body = api::RunDetail),
        (status = 404, body = ErrorBody), (status = 409, description = "The run has ended", body = ErrorBody)))]
pub async fn cancel(
    auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<api::RunDetail>, ApiError> {
    state.core.cancel_run(id, &auth.actor()).await?;
    detail(&state, id).await.map(axum::Json)
}

/// `POST /api/v1/runs/{id}/jobs/{job}/approve`
#[utoipa::path(post, path = "/api/v1/runs/{id}/jobs/{job}/approve", tag = "runs",
    params(("id" = i64, Path, description = "Run id"), ("job" = String, Path, description = "Job instance name")),
    responses((status = 200, description = "The approved job", body = api::Job),
        (status = 403, description = "Approving needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "The job is not waiting for approval", body = ErrorBody)))]
pub async fn approve(
    auth: Auth<Operator>,
    State(state): State<AppState>,
    Path((id, job)): Path<(i64, String)>,
) -> Result<axum::Json<api::Job>, ApiError> {
    state.core.approve(id, &job, &auth.actor()).await?;
    let jobs = state.core.store().list_jobs(id).await?;
    let found = jobs
        .into_iter()
        .find(|j| j.name == job)
        .ok_or_else(|| ApiError::not_found("job", &job))?;
    Ok(axum::Json(convert::job(found)))
}

/// `POST /api/v1/runs/{id}/rerun`
#[utoipa::path(post, path = "/api/v1/runs/{id}/rerun", tag = "runs",
    params(("id" = i64, Path, description = "Run id")),
    request_body = api::RerunRequest,
    responses((status = 201, description = "The new run", body = api::Run),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rerun(
    auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    OptionalJson(req): OptionalJson<api::RerunRequest>,
) -> Result<(StatusCode, axum::Json<api::Run>), ApiError> {
    let run = state.core.rerun(id, req.failed_only, &auth.actor()).await?;
    Ok((StatusCode::CREATED, axum::Json(convert::run(run))))
}
