//! Body wrappers: a request body that can be taken back when the backend never
//! connected, and a response body that keeps its release in flight until it ends and
//! then writes the access event.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::table::InFlight;

/// The error type of bodies the proxy sends to clients.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of the proxy's responses.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// A request body shared with the proxy until the client starts reading it, so that on
/// a connect error the untouched body can be sent to the next instance.
pub(crate) struct Reclaimable {
    slot: Arc<Mutex<Option<Incoming>>>,
    taken: Option<Incoming>,
    hint: SizeHint,
    end: bool,
}

impl Reclaimable {
    pub(crate) fn new(body: Incoming) -> (Self, Arc<Mutex<Option<Incoming>>>) {
        let hint = body.size_hint();
        let end = body.is_end_stream();
        let slot = Arc::new(Mutex::new(Some(body)));
        (
            Self {
                slot: slot.clone(),
                taken: None,
                hint,
                end,
            },
            slot,
        )
    }

    pub(crate) fn from_slot(slot: Arc<Mutex<Option<Incoming>>>) -> Option<Self> {
        let (hint, end) = {
            let guard = slot.lock().ok()?;
            let body = guard.as_ref()?;
            (body.size_hint(), body.is_end_stream())
        };
        Some(Self {
            slot,
            taken: None,
            hint,
            end,
        })
    }
}

impl Body for Reclaimable {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.taken.is_none() {
            let taken = self.slot.lock().ok().and_then(|mut s| s.take());
            match taken {
                Some(body) => self.taken = Some(body),
                // Another attempt owns the body (cannot happen: attempts are serial).
                None => return Poll::Ready(None),
            }
        }
        match self.taken.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.taken {
            Some(body) => body.is_end_stream(),
            None => self.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.taken {
            Some(body) => body.size_hint(),
            None => self.hint,
        }
    }
}

/// A response's body before it is logged.
pub(crate) enum Answer {
    /// The backend's, holding its release in flight until the body is done.
    Backend(Incoming, InFlight),
    /// One the proxy made (an error page, the empty body of an upgrade).
    Own(ProxyBody),
}

/// What the access log says of one request.
pub(crate) struct Access {
    pub method: hyper::Method,
    pub host: String,
    pub path: String,
    /// The address the connection came from.
    pub client: IpAddr,
    pub status: u16,
    /// The service and release that answered; `None` when no route matched.
    pub routed: Option<(String, String)>,
    /// When the request arrived.
    pub start: Instant,
}

/// A response body that writes the request's access event when it ends: sent in full,
/// or dropped because the client went away. So the event can say how many body bytes
/// were sent and how long the whole response took. A backend's body also keeps its
/// release in flight until then.
struct Logged<B> {
    inner: B,
    _in_flight: Option<InFlight>,
    access: Access,
    bytes: u64,
}

impl<B> Body for Logged<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Logged<B> {
    fn drop(&mut self) {
        let a = &self.access;
        let duration_ms = a.start.elapsed().as_secs_f64() * 1000.0;
        match &a.routed {
            Some((service, release)) => tracing::info!(
                target: "ferry_proxy::access", method = %a.method, host = %a.host,
                path = %a.path, client = %a.client, status = a.status, bytes = self.bytes,
                duration_ms, service = %service, release = %release, "Proxied request."
            ),
            None => tracing::info!(
                target: "ferry_proxy::access", method = %a.method, host = %a.host,
                path = %a.path, client = %a.client, status = a.status, bytes = self.bytes,
                duration_ms, "No route matched."
            ),
        }
    }
}

/// Boxes a response's body so its access event is written when it ends.
pub(crate) fn logged(answer: Answer, access: Access) -> ProxyBody {
    match answer {
        Answer::Backend(inner, in_flight) => BoxBody::new(Logged {
            inner,
            _in_flight: Some(in_flight),
            access,
            bytes: 0,
        }),
        Answer::Own(inner) => BoxBody::new(Logged {
            inner,
            _in_flight: None,
            access,
            bytes: 0,
        }),
    }
}

/// A complete body from text.
pub(crate) fn full(text: impl Into<Bytes>) -> ProxyBody {
    http_body_util::Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}
