//! The request path: route lookup, release choice, forwarding with retries on connect
//! errors, upgrades, metrics and the access log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::body::{self, Answer, ProxyBody, Reclaimable};
use crate::metrics::{Metrics, Stats};
use crate::table::{InFlight, Release, RouteTable};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// The edge proxy: a route table that can be swapped while requests flow, a pooled
/// client to the backends, and the metrics. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    table: ArcSwap<RouteTable>,
    swap: Mutex<()>,
    client: Client<HttpConnector, Reclaimable>,
    metrics: Metrics,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("routes", &self.inner.table.load().routes().len())
            .finish()
    }
}

impl Proxy {
    /// A proxy serving `table`.
    pub fn new(table: RouteTable) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self {
            inner: Arc::new(Inner {
                table: ArcSwap::from_pointee(table),
                swap: Mutex::new(()),
                client,
                metrics: Metrics::default(),
            }),
        }
    }

    /// Replaces the route table atomically: new requests see `table` at once, requests
    /// in flight finish where they are. Releases of the old table missing from the new
    /// one (compared by `Arc`) are retired; await [`Release::drained`] before stopping
    /// their instances. A retired release put back into a table serves again.
    pub fn set_routes(&self, table: RouteTable) {
        let _writer = self
            .inner
            .swap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for release in table.releases() {
            release.unretire();
        }
        let table = Arc::new(table);
        let old = self.inner.table.swap(table.clone());
        for release in old.releases() {
            if !table.releases().any(|r| Arc::ptr_eq(r, release)) {
                release.retire();
            }
        }
    }

    /// The route table in use.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.inner.table.load_full()
    }

    /// The metrics of every service and release.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Statistics of one release over the last `window`, for canary analysis.
    pub fn stats(&self, service: &str, release: &str, window: Duration) -> Stats {
        self.inner.metrics.stats(service, release, window)
    }

    /// The metrics in the Prometheus text format, for `/metrics`.
    pub fn render_metrics(&self) -> String {
        self.inner.metrics.render()
    }

    /// Answers one client request. `scheme` is `http` or `https`, for
    /// `X-Forwarded-Proto`.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        remote: SocketAddr,
        scheme: &'static str,
    ) -> Response<ProxyBody> {
        let start = Instant::now();
        let host = request_host(&req).unwrap_or_default();
        let path = req.uri().path().to_owned();
        let method = req.method().clone();

        let Some((service, release, in_flight)) = self.choose(&req, &host, &path) else {
            let response = text(
                StatusCode::NOT_FOUND,
                format!("No route for `{host}{path}`.\n"),
            );
            let access = body::Access {
                method,
                host,
                path,
                client: remote.ip(),
                status: 404,
                routed: None,
                start,
            };
            return response.map(|b| body::logged(Answer::Own(b), access));
        };
        let pinned = service
            .sticky
            .then(|| cookie(req.headers(), &service.cookie_name()))
            .flatten();

        let upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
        let (mut parts, incoming) = req.into_parts();
        prepare_request_headers(&mut parts.headers, &host, remote, scheme, upgrade.is_some());
        parts.version = Version::HTTP_11;
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());

        let (first, slot) = Reclaimable::new(incoming);
        let mut body = Some(first);
        let mut outcome = None;
        for addr in release.rotation() {
            let Some(attempt_body) = body.take().or_else(|| Reclaimable::from_slot(slot.clone()))
            else {
                break;
            };
            let Ok(uri) = format!("http://{addr}{path_and_query}").parse::<Uri>() else {
                break;
            };
            let mut attempt = Request::from_parts(parts.clone(), attempt_body);
            *attempt.uri_mut() = uri;
            match self.inner.client.request(attempt).await {
                Ok(resp) => {
                    outcome = Some(Ok(resp));
                    break;
                }
                Err(err) => {
                    let body_untouched = slot.lock().is_ok_and(|s| s.is_some());
                    tracing::warn!(
                        service = %service.name, release = %release.name(), instance = %addr,
                        error = %err, "Backend instance did not answer."
                    );
                    outcome = Some(Err(err.to_string()));
                    if !(err.is_connect() && body_untouched) {
                        break;
                    }
                }
            }
        }

        let mut response = match outcome {
            Some(Ok(resp)) => self.relay(resp, upgrade, in_flight),
            Some(Err(error)) => own(text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "Bad gateway: no instance of service `{}` (release `{}`) answered: {error}.\n",
                    service.name,
                    release.name()
                ),
            )),
            None => own(text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "Bad gateway: service `{}` (release `{}`) has no instances.\n",
                    service.name,
                    release.name()
                ),
            )),
        };

        if service.sticky && pinned.as_deref() != Some(release.name()) {
            let value = format!(
                "{}={}; Path=/; HttpOnly; SameSite=Lax",
                service.cookie_name(),
                release.name()
            );
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }

        let status = response.status().as_u16();
        let elapsed = start.elapsed();
        self.inner
            .metrics
            .record(&service.name, release.name(), status, elapsed);
        let access = body::Access {
            method,
            host,
            path,
            client: remote.ip(),
            status,
            routed: Some((service.name.clone(), release.name().to_owned())),
            start,
        };
        response.map(|b| body::logged(b, access))
    }

    /// Looks up the route and picks a release, counting the request in. Reads the
    /// table again if the picked release was retired in between.
    fn choose(
        &self,
        req: &Request<Incoming>,
        host: &str,
        path: &str,
    ) -> Option<(crate::table::Service, Arc<Release>, InFlight)> {
        for _ in 0..8 {
            let table = self.inner.table.load();
            let route = table.lookup(host, path)?;
            let service = &route.service;
            let pinned = service
                .sticky
                .then(|| cookie(req.headers(), &service.cookie_name()))
                .flatten();
            let release = service.pick(pinned.as_deref()).clone();
            if let Some(in_flight) = release.enter() {
                return Some((service.clone(), release, in_flight));
            }
        }
        None
    }

    /// Turns a backend response into the client's, splicing upgraded connections.
    fn relay(
        &self,
        resp: Response<Incoming>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        in_flight: InFlight,
    ) -> Response<Answer> {
        let (mut parts, incoming) = resp.into_parts();
        let upgraded = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        let upgrade_proto = parts.headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        if upgraded {
            let Some(client_upgrade) = client_upgrade else {
                return own(text(
                    StatusCode::BAD_GATEWAY,
                    "Bad gateway: the backend switched protocols unasked.\n",
                ));
            };
            if let Some(proto) = upgrade_proto {
                parts.headers.insert(header::UPGRADE, proto);
            }
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            let backend = Response::from_parts(parts.clone(), incoming);
            tokio::spawn(splice(client_upgrade, backend, in_flight));
            return Response::from_parts(parts, Answer::Own(body::full("")));
        }
        Response::from_parts(parts, Answer::Backend(incoming, in_flight))
    }
}

/// Copies bytes both ways between an upgraded client and backend until either closes.
async fn splice(
    client: hyper::upgrade::OnUpgrade,
    backend: Response<Incoming>,
    in_flight: InFlight,
) {
    let _in_flight = in_flight;
    let (client, backend) = match tokio::try_join!(client, hyper::upgrade::on(backend)) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::warn!(%error, "Upgrade failed after the backend agreed to it.");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(%error, "Upgraded connection ended with an error.");
    }
}

/// A response the proxy made itself, before it is logged.
fn own(response: Response<ProxyBody>) -> Response<Answer> {
    response.map(Answer::Own)
}

fn text(status: StatusCode, message: impl Into<String>) -> Response<ProxyBody> {
    let mut resp = Response::new(body::full(message.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The host a request is for: the URI's authority (HTTP/2, absolute form) or `Host`.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str().to_owned());
    }
    req.headers()
        .get(header::HOST)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn prepare_request_headers(
    headers: &mut HeaderMap,
    host: &str,
    remote: SocketAddr,
    scheme: &'static str,
    upgrade: bool,
) {
    let upgrade_proto = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    if upgrade && let Some(proto) = upgrade_proto {
        headers.insert(header::UPGRADE, proto);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {}", remote.ip()),
        None => remote.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(scheme));
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert("x-forwarded-host", v.clone());
        headers.insert(header::HOST, v);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn forwarded_headers_append_client_address() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        prepare_request_headers(
            &mut h,
            "app.example.com",
            "192.0.2.7:5000".parse().unwrap(),
            "http",
            false,
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
    }

    #[test]
    fn reads_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ferry_release_web=v2"),
        );
        assert_eq!(cookie(&h, "ferry_release_web").as_deref(), Some("v2"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
