//! Live parts of pages: a stream that renders part of a page again after each event
//! that may change it, and sends it (`part`) when it did change. The deploy page and
//! the service page use it; the script swaps the part in place.
//!
//! Pages pass the event log position they were rendered at (`?after=`), so the stream
//! sends only what changed since and the page is not redrawn when it opens.

use super::error::UiError;
use axum::http::{HeaderValue, header};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use ferry_store::db::{Event, Store};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long the stream waits before trying again after a database error.
const RETRY: Duration = Duration::from_secs(1);

/// A part of a page, rendered.
pub(super) struct Part {
    /// The markup.
    pub html: String,
    /// A state name the script puts on the part (`data-state`), if any.
    pub state: Option<String>,
    /// Nothing will change any more: the script closes the stream.
    pub finished: bool,
}

/// The query of a live part's stream.
#[derive(Debug, Deserialize)]
pub(super) struct StreamQuery {
    /// The event log position the page was rendered at; without it the stream starts
    /// with the part as it is now.
    pub after: Option<i64>,
}

/// Renders the part as it is now.
pub(super) type Render = Box<dyn Fn() -> BoxFuture<'static, Result<Part, UiError>> + Send + Sync>;

fn message(part: &Part) -> SseEvent {
    let data = json!({ "html": part.html, "state": part.state, "finished": part.finished });
    SseEvent::default().event("part").data(data.to_string())
}

/// The stream of `render`'s part after each event `concerns` picks, from event `after`
/// on; without `after`, it starts with the part as it is now.
pub(super) async fn stream(
    store: Store,
    shutdown: CancellationToken,
    after: Option<i64>,
    concerns: impl Fn(&Event) -> bool + Send + 'static,
    render: Render,
) -> Result<Response, UiError> {
    let (tx, mut rx) = mpsc::channel::<SseEvent>(16);
    let from = match after {
        Some(after) => after,
        None => store.last_event_id().await?,
    };
    // Rendered once here as well, so a part that cannot be read answers with an error
    // page instead of an empty stream.
    let first = render().await?;
    let mut last = String::new();
    if after.is_none() {
        let _ = tx.send(message(&first)).await;
        last = first.html;
    }
    tokio::spawn(async move {
        // Deploy and release events carry their project, but follow them all: the part
        // decides what concerns it.
        let mut follower = store.follow(from, None);
        loop {
            let next = tokio::select! {
                _ = tx.closed() => return,
                _ = shutdown.cancelled() => return,
                next = follower.next() => next,
            };
            match next {
                Ok(event) if concerns(&event) => match render().await {
                    Ok(part) if part.html != last => {
                        if tx.send(message(&part)).await.is_err() {
                            return;
                        }
                        last = part.html;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(event_id = event.id, error = %e, "Cannot render a live part of a page.");
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot follow the event log for a live page.");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|e| e.map(Ok::<_, Infallible>))
    });
    let mut response = crate::sse::response(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies such as nginx would otherwise hold the stream back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
