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

/// A followed job log: [`LogStreamItem`]s until the `End`.
pub struct LogStream {
    inner: BoxStream<'static, Result<LogStreamItem, ClientError>>,
}

impl LogStream {
    pub(crate) fn new(response: reqwest::Response, url: String) -> LogStream {
        let events = sse_events(response, url.clone());
        let inner = futures_util::stream::unfold(
            (events, url, false),
            |(mut events, url, ended)| async move {
                if ended {
                    return None;
                }
                let item = match events.next().await {
                    None => Err(bad(&url, "the log stream broke off before its end".into())),
                    Some(Err(e)) => Err(e),
                    Some(Ok(ev)) => match ev.event.as_str() {
                        "lines" => serde_json::from_str::<LogChunk>(&ev.data)
                            .map(LogStreamItem::Lines)
                            .map_err(|e| bad(&url, format!("bad `lines` event: {e}"))),
                        "end" => serde_json::from_str::<LogEnd>(&ev.data)
                            .map(LogStreamItem::End)
                            .map_err(|e| bad(&url, format!("bad `end` event: {e}"))),
                        "error" => Err(bad(&url, ev.data)),
                        other => Err(bad(&url, format!("unknown event `{other}`"))),
                    },
                };
                let stop = !matches!(item, Ok(LogStreamItem::Lines(_)));
                Some((item, (events, url, stop)))
            },
        )
        .boxed();
        LogStream { inner }
    }
}

impl Stream for LogStream {
    type Item = Result<LogStreamItem, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for LogStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStream").finish_non_exhaustive()
    }
}

/// The followed event log: each [`Event`] as it is appended. It ends when the server
/// stops; an error item is the last.
pub struct EventStream {
    inner: BoxStream<'static, Result<Event, ClientError>>,
}

impl EventStream {
    pub(crate) fn new(response: reqwest::Response, url: String) -> EventStream {
        let events = sse_events(response, url.clone());
        let inner = futures_util::stream::unfold(
            (events, url, false),
            |(mut events, url, ended)| async move {
                if ended {
                    return None;
                }
                loop {
                    let item = match events.next().await? {
                        Err(e) => Err(e),
                        Ok(ev) if ev.event == "event" || ev.event == "message" => {
                            serde_json::from_str::<Event>(&ev.data)
                                .map_err(|e| bad(&url, format!("bad event: {e}")))
                        }
                        // The server says it is stopping.
                        Ok(ev) if ev.event == "end" => return None,
                        Ok(ev) if ev.event == "error" => Err(bad(&url, ev.data)),
                        Ok(_) => continue,
                    };
                    let stop = item.is_err();
                    return Some((item, (events, url, stop)));
                }
            },
        )
        .boxed();
        EventStream { inner }
    }
}

impl Stream for EventStream {
    type Item = Result<Event, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}
