//! Helpers for the server-sent event streams (`?follow=true`).

use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use std::convert::Infallible;
use std::time::Duration;

/// An SSE event named `name` with `value` as its JSON data.
pub fn json_event<T: Serialize>(name: &str, value: &T) -> Event {
    match serde_json::to_string(value) {
        Ok(data) => Event::default().event(name).data(data),
        Err(e) => error_event(&format!("cannot encode a `{name}` event: {e}")),
    }
}

/// An `error` event: the stream failed and ends after it.
pub fn error_event(message: &str) -> Event {
    Event::default().event("error").data(message)
}

/// The response for a stream of events, with a comment every 15 s so proxies and
/// clients see the connection is alive.
pub fn response<S>(stream: S) -> impl IntoResponse
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
