//! The UI's live streams: server-sent events the pages' script listens to.
//!
//! - `/ui/runs/{id}/stream`: `state` (the run and its jobs, as JSON) at once and after
//!   every event of the run, and `log` (a job's new lines) as they are stored;
//! - `/ui/runs/stream[?project=P]`: `run` (a rendered table row and "latest run" cell)
//!   after every run event;
//! - `/ui/events/stream?after=ID[&project=P]`: `event` (a rendered row) per new event.
//!
//! Each connection runs small tasks that follow the event log ([`Store::follow`]) or a
//! job's log ([`Store::follow_log`]) — both wake on commits in this process, so
//! nothing polls — and push into a channel the response drains. When the browser goes
//! away the channel closes and the tasks end.

use super::auth::Session;
use super::error::UiError;
use super::pages::events::event_row;
use super::pages::run::state_json;
use super::pages::{latest_cell, run_row};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use ferry_store::db::{DbError, Event, LogFollower, Store};
use ferry_types::EventKind;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Lines sent per `log` message.
const LOG_BATCH: i64 = 500;
/// A job's log is sent from at most this many lines before its end; the page says how
/// many earlier lines it leaves out (the API serves the whole log).
const LOG_TAIL: i64 = 20_000;
/// How long a stream task waits before trying again after a database error.
const RETRY: Duration = Duration::from_secs(1);

type Tx = mpsc::Sender<SseEvent>;

/// Resolves when the stream should end: the browser went away or the server is
/// shutting down (so a graceful shutdown never waits on an open page).
async fn gone(tx: &Tx, shutdown: &CancellationToken) {
    tokio::select! {
        _ = tx.closed() => {}
        _ = shutdown.cancelled() => {}
    }
}

fn message(name: &str, data: &serde_json::Value) -> SseEvent {
    // serde_json never writes a raw newline, so the data is one `data:` line.
    SseEvent::default().event(name).data(data.to_string())
}

/// The response that drains `rx` as server-sent events.
fn sse(rx: mpsc::Receiver<SseEvent>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    let mut response = crate::sse::response(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies such as nginx would otherwise hold the stream back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Waits for the next event of the log, or `None` once the browser went away.
async fn next_event(
    tx: &Tx,
    shutdown: &CancellationToken,
    follower: &mut ferry_store::db::EventFollower,
) -> Option<Result<Event, DbError>> {
    tokio::select! {
        _ = gone(tx, shutdown) => None,
        ev = follower.next() => Some(ev),
    }
}

fn is_run_event(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::RunQueued
            | EventKind::RunStarted
            | EventKind::RunFinished
            | EventKind::RunCancelled
    )
}

/// `GET /ui/runs/{id}/stream`.
pub(super) async fn run(
    State(state): State<AppState>,
    _session: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| UiError::NotFound(format!("run `{id}` not found")))?;
    let store = state.core.store().clone();
    let shutdown = state.shutdown().clone();
    let run = store
        .get_run(id)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("run `{id}` not found")))?;
    // Read the log position first: any event after it is seen by the follower, so
    // no change between the snapshot and the follow is missed.
    let after = store.last_event_id().await?;
    let jobs = store.list_jobs(id).await?;
    let (tx, rx) = mpsc::channel(64);
    let (changed, watch_rx) = watch::channel(0u64);
    if tx
        .send(message("state", &state_json(&run, &jobs)))
        .await
        .is_err()
    {
        return Ok(sse(rx));
    }
    tokio::spawn(follow_run_state(
        store.clone(),
        run.project.clone(),
        id,
        after,
        tx.clone(),
        shutdown.clone(),
        changed,
    ));
    for job in jobs {
        tokio::spawn(follow_job_log(
            store.clone(),
            id,
            job.name,
            tx.clone(),
            shutdown.clone(),
            watch_rx.clone(),
        ));
    }
    Ok(sse(rx))
}

/// Sends the run's state after each of its events, and tells the log followers.
async fn follow_run_state(
    store: Store,
    project: String,
    run_id: i64,
    after: i64,
    tx: Tx,
    shutdown: CancellationToken,
    changed: watch::Sender<u64>,
) {
    let mut follower = store.follow(after, Some(project));
    while let Some(next) = next_event(&tx, &shutdown, &mut follower).await {
        match next {
            Ok(event) if event.run_id == Some(run_id) => {
                let snapshot = async {
                    let run = store.get_run(run_id).await?;
                    let jobs = store.list_jobs(run_id).await?;
                    Ok::<_, DbError>(run.map(|r| state_json(&r, &jobs)))
                };
                match snapshot.await {
                    Ok(Some(state)) => {
                        if tx.send(message("state", &state)).await.is_err() {
                            return;
                        }
                        changed.send_modify(|n| *n += 1);
                    }
                    // The run was removed with its project.
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(run_id, error = %e, "Cannot read a run for its live page.");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(run_id, error = %e, "Cannot follow the event log for a run page.");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Sends a job's log lines as they are stored; after the job ends, waits for the run
/// to change (a re-run appends to the same log) and follows again.
async fn follow_job_log(
    store: Store,
    run_id: i64,
    job: String,
    tx: Tx,
    shutdown: CancellationToken,
    mut changed: watch::Receiver<u64>,
) {
    let length = match store.log_length(run_id, &job).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(run_id, job, error = %e, "Cannot read a job's log for its live page.");
            0
        }
    };
    let mut position = (length - LOG_TAIL).max(0);
    let mut first = true;
    loop {
        let mut follower: LogFollower = store.follow_log(run_id, &job, position);
        loop {
            let next = tokio::select! {
                _ = gone(&tx, &shutdown) => return,
                next = follower.next(LOG_BATCH) => next,
            };
            match next {
                Ok(Some(lines)) => {
                    position = follower.position();
                    let data = json!({
                        "job": job,
                        "skipped": if first { lines.first().map_or(0, |l| l.number) } else { 0 },
                        "lines": lines.iter().map(|l| json!([l.number, l.step, l.text])).collect::<Vec<_>>(),
                    });
                    first = false;
                    if tx.send(message("log", &data)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(run_id, job, error = %e, "Cannot follow a job's log for its live page.");
                    tokio::time::sleep(RETRY).await;
                    break;
                }
            }
        }
        tokio::select! {
            _ = gone(&tx, &shutdown) => return,
            res = changed.changed() => if res.is_err() { return },
        }
    }
}

/// The query of `/ui/runs/stream`.
#[derive(Debug, Deserialize)]
pub(super) struct RunsQuery {
    project: Option<String>,
}

/// `GET /ui/runs/stream`.
pub(super) async fn runs(
    State(state): State<AppState>,
    _session: Session,
    Query(q): Query<RunsQuery>,
) -> Result<Response, UiError> {
    let store = state.core.store().clone();
    let shutdown = state.shutdown().clone();
    let project = q.project.filter(|p| !p.is_empty());
    let after = store.last_event_id().await?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let with_project = project.is_none();
        let mut follower = store.follow(after, project);
        while let Some(next) = next_event(&tx, &shutdown, &mut follower).await {
            let event = match next {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot follow the event log for a runs page.");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let Some(run_id) = event.run_id.filter(|_| is_run_event(event.kind)) else {
                continue;
            };
            let rendered = async {
                let Some(run) = store.get_run(run_id).await? else {
                    return Ok(None);
                };
                let latest = store.list_runs(Some(&run.project), 1).await?;
                Ok::<_, DbError>(Some(json!({
                    "id": run.id,
                    "project": run.project,
                    "row": run_row(&run, with_project).into_string(),
                    "latest": latest_cell(latest.first()).into_string(),
                })))
            };
            match rendered.await {
                Ok(Some(data)) => {
                    if tx.send(message("run", &data)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(run_id, error = %e, "Cannot read a run for a runs page."),
            }
        }
    });
    Ok(sse(rx))
}

/// The query of `/ui/events/stream`.
#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    after: Option<i64>,
    project: Option<String>,
}

/// `GET /ui/events/stream`.
pub(super) async fn events(
    State(state): State<AppState>,
    _session: Session,
    Query(q): Query<EventsQuery>,
) -> Result<Response, UiError> {
    let store = state.core.store().clone();
    let shutdown = state.shutdown().clone();
    let after = match q.after {
        Some(a) => a,
        None => store.last_event_id().await?,
    };
    let project = q.project.filter(|p| !p.is_empty());
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut follower = store.follow(after, project);
        while let Some(next) = next_event(&tx, &shutdown, &mut follower).await {
            match next {
                Ok(event) => {
                    let data = json!({ "id": event.id, "row": event_row(&event).into_string() });
                    if tx.send(message("event", &data)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot follow the event log for the events page.");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    });
    Ok(sse(rx))
}
