//! The route table: which service answers a host and path, and which of its releases.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// A set of instances running one version of a service.
///
/// Releases are shared (`Arc`) between route tables: keep the same `Arc` in the next
/// table while a release stays live, so its in-flight count and round-robin position
/// carry over. A release left out of a new table is *retired*: it gets no new requests
/// and [`Release::drained`] resolves once its last in-flight request has finished.
#[derive(Debug)]
pub struct Release {
    name: String,
    instances: Vec<SocketAddr>,
    next: AtomicUsize,
    in_flight: AtomicUsize,
    retired: AtomicBool,
    idle: Notify,
}

impl Release {
    /// A release called `name` (a version, such as a commit SHA) served by `instances`.
    pub fn new(name: impl Into<String>, instances: Vec<SocketAddr>) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            instances,
            next: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            idle: Notify::new(),
        })
    }

    /// The release's name, as used in metrics, the access log and the sticky cookie.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instances, in the order they are tried.
    pub fn instances(&self) -> &[SocketAddr] {
        &self.instances
    }

    /// Requests being served by this release right now (until their response body ends).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Whether a table swap has taken this release out of service.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// Resolves when the release is retired and has no request in flight, so its
    /// instances can be stopped without cutting anyone off. A streamed response or an
    /// upgraded connection (WebSocket) counts until it ends, so callers bound the wait
    /// with their own drain timeout.
    pub async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_retired() && self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The instances starting at the next round-robin position, each once.
    pub(crate) fn rotation(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let n = self.instances.len();
        let start = if n == 0 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        (0..n).map(move |i| self.instances[(start + i) % n])
    }

    /// Counts a request in; `None` when the release was retired meanwhile (the caller
    /// then reads the table again). Checking after incrementing closes the race with
    /// [`Release::drained`], which checks the count after the retirement flag.
    pub(crate) fn enter(self: &Arc<Self>) -> Option<InFlight> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self.clone());
        if self.is_retired() {
            return None;
        }
        Some(guard)
    }

    pub(crate) fn unretire(&self) {
        self.retired.store(false, Ordering::SeqCst);
    }

    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.idle.notify_waiters();
    }
}

/// Holds one in-flight request on a release; dropping it counts the request out.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Release>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A routed service: a live release and optionally a canary taking `canary_weight`
/// percent of new requests.
#[derive(Debug, Clone)]
pub struct Service {
    /// The service's name, as used in metrics and the access log.
    pub name: String,
    /// The release that takes the traffic the canary does not.
    pub live: Arc<Release>,
    /// A second release taking a share of the traffic, if any.
    pub canary: Option<Arc<Release>>,
    /// Percent of requests (0–100) sent to the canary.
    pub canary_weight: u8,
    /// Keep each client on the release it first got, with a cookie.
    pub sticky: bool,
    picks: Arc<AtomicU64>,
}

impl Service {
    /// A service with a single live release.
    pub fn new(name: impl Into<String>, live: Arc<Release>) -> Self {
        Self {
            name: name.into(),
            live,
            canary: None,
            canary_weight: 0,
            sticky: false,
            picks: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Adds a canary release taking `weight` percent (clamped to 100) of new requests.
    pub fn with_canary(mut self, canary: Arc<Release>, weight: u8) -> Self {
        self.canary = Some(canary);
        self.canary_weight = weight.min(100);
        self
    }

    /// Keeps clients on the release they first got, with a cookie.
    pub fn sticky(mut self, sticky: bool) -> Self {
        self.sticky = sticky;
        self
    }

    /// The cookie naming the release a sticky client is pinned to.
    pub fn cookie_name(&self) -> String {
        format!("ferry_release_{}", self.name)
    }

    /// The release for a request: the one named by `pinned` if it is still routed,
    /// otherwise by weight. The weighted choice is a deterministic spread (request `i`
    /// goes to the canary when `⌊(i+1)·w/100⌋ > ⌊i·w/100⌋`), so any 100 consecutive
    /// requests split exactly by weight.
    pub(crate) fn pick(&self, pinned: Option<&str>) -> &Arc<Release> {
        let Some(canary) = &self.canary else {
            return &self.live;
        };
        if let Some(name) = pinned {
            if name == canary.name() {
                return canary;
            }
            if name == self.live.name() {
                return &self.live;
            }
        }
        let i = self.picks.fetch_add(1, Ordering::Relaxed);
        let w = u64::from(self.canary_weight);
        if (i % 100 + 1) * w / 100 > (i % 100) * w / 100 {
            canary
        } else {
            &self.live
        }
    }

    fn releases(&self) -> impl Iterator<Item = &Arc<Release>> {
        std::iter::once(&self.live).chain(self.canary.iter())
    }
}

/// Which hosts a route answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Exactly this host name (case-insensitive, port ignored).
    Exact(String),
    /// Any subdomain of this suffix: `*.example.com` is `Wildcard("example.com")`.
    Wildcard(String),
    /// Every host.
    Any,
}

impl HostMatch {
    /// Parses `example.com`, `*.example.com` or `*`.
    pub fn parse(s: &str) -> Self {
        let s = s.to_ascii_lowercase();
        if s == "*" {
            Self::Any
        } else if let Some(rest) = s.strip_prefix("*.") {
            Self::Wildcard(rest.to_owned())
        } else {
            Self::Exact(s)
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => h == host,
            Self::Wildcard(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            Self::Any => true,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Exact(_) => 2,
            Self::Wildcard(_) => 1,
            Self::Any => 0,
        }
    }
}

/// One route: a host pattern and a path prefix leading to a service.
#[derive(Debug, Clone)]
pub struct Route {
    /// The hosts this route answers.
    pub host: HostMatch,
    /// The path prefix, such as `/` or `/api`; matched on whole segments.
    pub path_prefix: String,
    /// The service behind the route.
    pub service: Service,
}

impl Route {
    /// A route from `host` (`example.com`, `*.example.com` or `*`) and `path_prefix`.
    pub fn new(host: &str, path_prefix: &str, service: Service) -> Self {
        let trimmed = path_prefix.trim_matches('/');
        let path_prefix = if trimmed.is_empty() {
            "/".to_owned()
        } else {
            format!("/{trimmed}")
        };
        Self {
            host: HostMatch::parse(host),
            path_prefix,
            service,
        }
    }

    fn matches_path(&self, path: &str) -> bool {
        if self.path_prefix == "/" {
            return true;
        }
        path.strip_prefix(self.path_prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Every route the proxy serves. Immutable: build a new one and hand it to
/// [`crate::Proxy::set_routes`].
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// A table of `routes`.
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    /// The routes, in the order given.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for a request: exact hosts beat wildcards beat `*`, then the longest
    /// path prefix wins.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Route> {
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let host = host.to_ascii_lowercase();
        self.routes
            .iter()
            .filter(|r| r.host.matches(&host) && r.matches_path(path))
            .max_by_key(|r| (r.host.rank(), r.path_prefix.len()))
    }

    pub(crate) fn releases(&self) -> impl Iterator<Item = &Arc<Release>> {
        self.routes.iter().flat_map(|r| r.service.releases())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str) -> Service {
        Service::new(name, Release::new("v1", vec![]))
    }

    #[test]
    fn exact_host_beats_wildcard_and_longest_prefix_wins() {
        let table = RouteTable::new(vec![
            Route::new("*", "/", svc("any")),
            Route::new("*.example.com", "/", svc("wild")),
            Route::new("app.example.com", "/", svc("app")),
            Route::new("app.example.com", "/api/", svc("api")),
            Route::new("app.example.com", "/api/v2", svc("api2")),
        ]);
        let found = |host, path| table.lookup(host, path).map(|r| r.service.name.clone());
        assert_eq!(
            found("app.example.com", "/api/v2/x").as_deref(),
            Some("api2")
        );
        assert_eq!(found("app.example.com", "/api/v1").as_deref(), Some("api"));
        assert_eq!(found("app.example.com:443", "/").as_deref(), Some("app"));
        assert_eq!(found("a.b.example.com", "/api").as_deref(), Some("wild"));
        assert_eq!(found("example.com", "/").as_deref(), Some("any"));
    }

    #[test]
    fn weight_splits_every_hundred_requests_exactly() {
        let service = Service::new("web", Release::new("v1", vec![]))
            .with_canary(Release::new("v2", vec![]), 7);
        let canary = (0..300)
            .filter(|_| service.pick(None).name() == "v2")
            .count();
        assert_eq!(canary, 21);
        assert_eq!(service.pick(Some("v1")).name(), "v1");
        assert_eq!(service.pick(Some("v2")).name(), "v2");
    }

    #[tokio::test]
    async fn drained_waits_for_retirement_and_last_request() {
        let release = Release::new("v1", vec![]);
        let guard = release.enter().expect("live release admits requests");
        release.retire();
        assert!(
            release.enter().is_none(),
            "a retired release admits no new request"
        );
        let wait = tokio::spawn({
            let release = release.clone();
            async move { release.drained().await }
        });
        tokio::task::yield_now().await;
        assert!(!wait.is_finished());
        drop(guard);
        tokio::time::timeout(std::time::Duration::from_secs(1), wait)
            .await
            .unwrap()
            .unwrap();
    }
}
