//! Job logs: a page of lines, or with `follow=true` a live stream of server-sent
//! events — the backlog from `from`, then new lines until the jobs end, then `end`.
//!
//! Logs are stored in compressed chunks with their line ranges, so a page anywhere in
//! a log of millions of lines decompresses only the chunk or two that hold it.

use crate::AppState;
use crate::auth::{Auth, Viewer};
use crate::convert;
use crate::error::{ApiError, Path, Query};
use crate::sse;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use ferry_store::db::{Job, Store};
use ferry_types::api::{self, ErrorBody};
use futures_util::stream::{self, BoxStream, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use utoipa::IntoParams;

/// Lines per page unless `limit` says otherwise.
const DEFAULT_PAGE: i64 = 1000;
/// The most lines one page or one stream event holds.
const MAX_PAGE: i64 = 10_000;
/// Lines per `lines` event of a followed log.
const STREAM_BATCH: i64 = 500;

/// `GET /api/v1/runs/{id}/logs` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// The job instance; may be left out when the run has one job, and when following
    /// (then every job of the run is followed).
    job: Option<String>,
    /// The first line (from 0); negative counts from the end (`-100`: the last 100).
    from: Option<i64>,
    /// Lines per page (default 1000, at most 10 000).
    limit: Option<i64>,
    /// Stream the log as server-sent events instead of answering one page.
    #[serde(default)]
    follow: bool,
}

/// `GET /api/v1/runs/{id}/logs`
#[utoipa::path(get, path = "/api/v1/runs/{id}/logs", tag = "logs",
    params(("id" = i64, Path, description = "Run id"), LogsQuery),
    responses(
        (status = 200, description = "A page of the log; with `follow=true` a `text/event-stream` of \
            `lines` events (LogChunk) and a final `end` event (LogEnd)",
            content((api::LogPage = "application/json"), (api::LogChunk = "text/event-stream"))),
        (status = 400, description = "The run has several jobs: name one", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn logs(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
    Path(run_id): Path<i64>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let store = state.core.store();
    if store.get_run(run_id).await?.is_none() {
        return Err(ApiError::not_found("run", run_id).hint("`ferry runs` lists the runs"));
    }
    let jobs = store.list_jobs(run_id).await?;
    let selected: Vec<Job> = match &q.job {
        Some(name) => {
            let job = jobs
                .iter()
                .find(|j| &j.name == name)
                .cloned()
                .ok_or_else(|| {
                    ApiError::not_found("job", name)
                        .hint(format!("run {run_id} has {}", names(&jobs)))
                })?;
            vec![job]
        }
        None if q.follow || jobs.len() == 1 => jobs,
        None => {
            return Err(ApiError::bad_request(format!(
                "run {run_id} has {} jobs; say which log to read",
                jobs.len()
            ))
            .hint(format!("add `job=NAME`; the run has {}", names(&jobs))));
        }
    };
    if q.follow {
        return Ok(follow(&state, run_id, selected, q.from.unwrap_or(0))
            .await?
            .into_response());
    }
    let Some(job) = selected.into_iter().next() else {
        return Err(ApiError::bad_request(format!("run {run_id} has no jobs")));
    };
    let total = store.log_length(run_id, &job.name).await?;
    let from = start(q.from, total);
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let lines: Vec<api::LogLine> = store
        .read_log(run_id, &job.name, from, limit)
        .await?
        .into_iter()
        .map(convert::log_line)
        .collect();
    let next = lines.last().map_or(from, |l| l.number + 1);
    Ok(axum::Json(api::LogPage {
        run_id,
        job: job.name,
        lines,
        next,
        total,
        finished: job.status.is_finished(),
    })
    .into_response())
}

/// Where to start: `from`, or counted back from `total` when negative.
fn start(from: Option<i64>, total: i64) -> i64 {
    match from {
        Some(f) if f < 0 => total.saturating_add(f).max(0),
        Some(f) => f,
        None => 0,
    }
}

fn names(jobs: &[Job]) -> String {
    if jobs.is_empty() {
        return "no jobs".to_owned();
    }
    let list: Vec<String> = jobs.iter().map(|j| format!("`{}`", j.name)).collect();
    list.join(", ")
}

/// The live stream of the jobs' logs, ending with `end`.
async fn follow(
    state: &AppState,
    run_id: i64,
    jobs: Vec<Job>,
    from: i64,
) -> Result<impl IntoResponse, ApiError> {
    let store = state.core.store().clone();
    let mut per_job = Vec::with_capacity(jobs.len());
    for job in jobs {
        // Only a start counted from the end needs the log's length.
        let first = if from < 0 {
            start(Some(from), store.log_length(run_id, &job.name).await?)
        } else {
            from
        };
        per_job.push(job_stream(&store, run_id, job.name, first));
    }
    let shutdown = state.shutdown().clone();
    let end_store = store.clone();
    let end_shutdown = shutdown.clone();
    let body = stream::select_all(per_job)
        .take_until(shutdown.cancelled_owned())
        .chain(stream::once(async move {
            let complete = !end_shutdown.is_cancelled();
            match end_store.get_run(run_id).await {
                Ok(Some(run)) => sse::json_event(
                    "end",
                    &api::LogEnd {
                        status: run.status,
                        complete,
                    },
                ),
                Ok(None) => sse::error_event(&format!("run {run_id} was removed")),
                Err(e) => sse::error_event(&format!("reading run {run_id} failed: {e}")),
            }
        }))
        .map(Ok::<_, Infallible>);
    Ok(sse::response(body))
}

/// One job's lines as `lines` events until the job ends; an `error` event ends it
/// early if the store fails.
fn job_stream(
    store: &Store,
    run_id: i64,
    job: String,
    from: i64,
) -> BoxStream<'static, axum::response::sse::Event> {
    let follower = store.follow_log(run_id, &job, from);
    stream::unfold(Some((follower, job)), |state| async move {
        let (mut follower, job) = state?;
        match follower.next(STREAM_BATCH).await {
            Ok(Some(lines)) => {
                let chunk = api::LogChunk {
                    job: job.clone(),
                    lines: lines.into_iter().map(convert::log_line).collect(),
                };
                Some((sse::json_event("lines", &chunk), Some((follower, job))))
            }
            Ok(None) => None,
            Err(e) => Some((
                sse::error_event(&format!("reading the log of job `{job}` failed: {e}")),
                None,
            )),
        }
    })
    .boxed()
}
