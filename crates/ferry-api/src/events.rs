//! The event log: a listing, or with `follow=true` a live stream of server-sent
//! events (each event's SSE id is its id, so a client can resume with `after` or
//! `Last-Event-ID`).

use crate::AppState;
use crate::auth::{Auth, Viewer};
use crate::convert;
use crate::error::{ApiError, Query};
use crate::sse;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use ferry_store::db::{EventFollower, EventQuery};
use ferry_types::api::{self, ErrorBody};
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use utoipa::IntoParams;

/// The most events one listing returns.
const MAX_EVENTS: i64 = 1000;

/// `GET /api/v1/events` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this project's events.
    project: Option<String>,
    /// Only this run's events.
    run: Option<i64>,
    /// Only events at or after this time, unix ms.
    since: Option<i64>,
    /// Only events with an id greater than this.
    after: Option<i64>,
    /// At most this many (default 100, at most 1000). Without `since` or `after`, the
    /// newest ones; always returned oldest first.
    limit: Option<i64>,
    /// After the listing, stream new events as server-sent events.
    #[serde(default)]
    follow: bool,
}

/// `GET /api/v1/events`
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses(
        (status = 200, description = "Events, oldest first; with `follow=true` a `text/event-stream` \
            of `event` events (Event), the listing first",
            content((Vec<api::Event> = "application/json"), (api::Event = "text/event-stream"))),
        (status = 401, body = ErrorBody)))]
pub async fn events(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(mut q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    if q.after.is_none() {
        q.after = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
    }
    let store = state.core.store();
    // Taken before the listing: an event appended after it has a greater id, so
    // following from here (when the listing is empty) misses nothing. A plain listing
    // does not need it.
    let last_before = if q.follow {
        store.last_event_id().await?
    } else {
        0
    };
    let query = EventQuery {
        project: q.project.clone(),
        run_id: q.run,
        after_id: q.after,
        since_ms: q.since,
        limit: q.limit.unwrap_or(100).clamp(1, MAX_EVENTS),
        newest: q.after.is_none() && q.since.is_none(),
    };
    let backlog = store.list_events(&query).await?;
    if !q.follow {
        return Ok(
            axum::Json(backlog.into_iter().map(convert::event).collect::<Vec<_>>()).into_response(),
        );
    }
    let cursor = match backlog.last() {
        Some(e) => e.id,
        None => q.after.unwrap_or(last_before).max(last_before),
    };
    let follower = store.follow(cursor, q.project.clone());
    let run = q.run;
    let shutdown = state.shutdown().clone();
    let live = stream::unfold(Some(follower), move |f| async move {
        let mut follower: EventFollower = f?;
        loop {
            match follower.next().await {
                Ok(e) if run.is_some() && e.run_id != run => continue,
                Ok(e) => return Some((to_sse(convert::event(e)), Some(follower))),
                Err(err) => {
                    return Some((
                        sse::error_event(&format!("reading the event log failed: {err}")),
                        None,
                    ));
                }
            }
        }
    });
    let body = stream::iter(backlog.into_iter().map(|e| to_sse(convert::event(e))))
        .chain(live)
        .take_until(shutdown.cancelled_owned())
        .chain(stream::once(async {
            SseEvent::default().event("end").data("{}")
        }))
        .map(Ok::<_, Infallible>);
    Ok(sse::response(body).into_response())
}

fn to_sse(event: api::Event) -> SseEvent {
    sse::json_event("event", &event).id(event.id.to_string())
}
