//! The live streams: a followed log and the followed event log, decoded from
//! server-sent events.

use crate::ClientError;
use crate::sse::{SseEvent, SseParser};
use bytes::Bytes;
use ferry_types::api::{Event, LogChunk, LogEnd};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};

/// What a followed log yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogStreamItem {
    /// New lines of one job.
    Lines(LogChunk),
    /// The followed jobs ended (or the server is stopping); nothing follows.
    End(LogEnd),
}

/// Raw server-sent events from a response body.
fn sse_events(
    response: reqwest::Response,
    url: String,
) -> BoxStream<'static, Result<SseEvent, ClientError>> {
    struct State {
        body: BoxStream<'static, reqwest::Result<Bytes>>,
        parser: SseParser,
        url: String,
        done: bool,
    }
    let state = State {
        body: response.bytes_stream().boxed(),
        parser: SseParser::new(),
        url,
        done: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.parser.next_event() {
                return Some((Ok(event), st));
            }
            if st.done {
                return None;
            }
            match st.body.next().await {
                Some(Ok(bytes)) => st.parser.push(&bytes),
                Some(Err(source)) => {
                    st.done = true;
                    let err = ClientError::Connect {
                        url: st.url.clone(),
                        source,
                    };
                    return Some((Err(err), st));
                }
                None => return None,
            }
        }
    })
    .boxed()
}

fn bad(url: &str, message: String) -> ClientError {
    ClientError::Decode {
        url: url.to_owned(),
        message,
    }
}

/// What a followed stream makes of one server-sent event (or of the body's end).
enum Step<T> {
    /// Yield this item and go on.
    Item(T),
    /// Yield this and stop.
    Last(Result<T, ClientError>),
    /// Ignore the event.
    Skip,
    /// Stop without yielding anything more.
    Stop,
}

/// Decodes the server-sent events of `response` with `decode`; `closed` says what the
/// body ending means. A transport error is the last item.
fn follow<T: Send + 'static>(
    response: reqwest::Response,
    url: String,
    decode: fn(SseEvent, &str) -> Step<T>,
    closed: fn(&str) -> Step<T>,
) -> BoxStream<'static, Result<T, ClientError>> {
    let events = sse_events(response, url.clone());
    futures_util::stream::unfold(Some((events, url)), move |state| async move {
        let (mut events, url) = state?;
        loop {
            let step = match events.next().await {
                None => closed(&url),
                Some(Err(e)) => Step::Last(Err(e)),
                Some(Ok(ev)) => decode(ev, &url),
            };
            match step {
                Step::Item(item) => return Some((Ok(item), Some((events, url)))),
                Step::Last(item) => return Some((item, None)),
                Step::Skip => continue,
                Step::Stop => return None,
            }
        }
    })
    .boxed()
}

/// A followed server-sent event stream, decoded into `T`s: a [`LogStream`] or an
/// [`EventStream`].
pub struct Followed<T> {
    inner: BoxStream<'static, Result<T, ClientError>>,
}

impl<T> Stream for Followed<T> {
    type Item = Result<T, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<T> std::fmt::Debug for Followed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Followed").finish_non_exhaustive()
    }
}

/// A followed job log: [`LogStreamItem`]s until the `End`.
pub type LogStream = Followed<LogStreamItem>;

impl LogStream {
    pub(crate) fn new(response: reqwest::Response, url: String) -> LogStream {
        fn decode(ev: SseEvent, url: &str) -> Step<LogStreamItem> {
            match ev.event.as_str() {
                "lines" => match serde_json::from_str::<LogChunk>(&ev.data) {
                    Ok(chunk) => Step::Item(LogStreamItem::Lines(chunk)),
                    Err(e) => Step::Last(Err(bad(url, format!("bad `lines` event: {e}")))),
                },
                "end" => Step::Last(
                    serde_json::from_str::<LogEnd>(&ev.data)
                        .map(LogStreamItem::End)
                        .map_err(|e| bad(url, format!("bad `end` event: {e}"))),
                ),
                "error" => Step::Last(Err(bad(url, ev.data))),
                other => Step::Last(Err(bad(url, format!("unknown event `{other}`")))),
            }
        }
        fn closed(url: &str) -> Step<LogStreamItem> {
            Step::Last(Err(bad(
                url,
                "the log stream broke off before its end".into(),
            )))
        }
        Followed {
            inner: follow(response, url, decode, closed),
        }
    }
}

/// The followed event log: each [`Event`] as it is appended. It ends when the server
/// stops; an error item is the last.
pub type EventStream = Followed<Event>;

impl EventStream {
    pub(crate) fn new(response: reqwest::Response, url: String) -> EventStream {
        fn decode(ev: SseEvent, url: &str) -> Step<Event> {
            match ev.event.as_str() {
                "event" | "message" => match serde_json::from_str::<Event>(&ev.data) {
                    Ok(event) => Step::Item(event),
                    Err(e) => Step::Last(Err(bad(url, format!("bad event: {e}")))),
                },
                // The server says it is stopping.
                "end" => Step::Stop,
                "error" => Step::Last(Err(bad(url, ev.data))),
                _ => Step::Skip,
            }
        }
        Followed {
            inner: follow(response, url, decode, |_| Step::Stop),
        }
    }
}
