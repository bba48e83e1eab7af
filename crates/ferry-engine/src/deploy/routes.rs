//! What the edge proxy routes, per service and environment.
//!
//! The proxy takes a whole [`RouteTable`] at a time; deploys of different services and
//! environments run side by side, so each keeps its own entry here and every change
//! rebuilds the table from all entries under one lock (no deploy can publish a table
//! missing another's latest change). Entries hold the proxy's `Arc<Release>` values so
//! a release that stays live keeps the same `Arc` — its in-flight count and draining
//! carry over — and a release left out is retired by the proxy.

use ferry_proxy::{Proxy, Release, Route, RouteTable, Service};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The proxy's view of one environment of a service.
#[derive(Debug, Clone)]
pub(crate) struct EnvRoute {
    /// `(host, path)` of each route in the environment's config.
    pub routes: Vec<(String, String)>,
    /// The release taking the traffic the canary does not.
    pub live: Arc<Release>,
    /// A second release and its percentage (canary steps, rolling batches).
    pub canary: Option<(Arc<Release>, u8)>,
}

/// Every environment's entry, and the proxy they are published to.
#[derive(Debug)]
pub(crate) struct Routes {
    proxy: Option<Proxy>,
    envs: Mutex<BTreeMap<String, EnvRoute>>,
}

/// The proxy's name for an environment of a service: `{service}/{environment}`.
pub(crate) fn service_name(service: &str, environment: &str) -> String {
    format!("{service}/{environment}")
}

impl Routes {
    pub(crate) fn new(proxy: Option<Proxy>) -> Routes {
        Routes {
            proxy,
            envs: Mutex::new(BTreeMap::new()),
        }
    }

    /// The entry of an environment.
    pub(crate) fn get(&self, service: &str, environment: &str) -> Option<EnvRoute> {
        self.lock()
            .get(&service_name(service, environment))
            .cloned()
    }

    /// Replaces (None: removes) the entry of an environment and publishes the table.
    /// An environment without routes gets no entry.
    pub(crate) fn set(&self, service: &str, environment: &str, entry: Option<EnvRoute>) {
        let mut envs = self.lock();
        let key = service_name(service, environment);
        match entry {
            Some(e) if !e.routes.is_empty() => {
                envs.insert(key, e);
            }
            _ => {
                envs.remove(&key);
            }
        }
        if let Some(proxy) = &self.proxy {
            let mut table = Vec::new();
            for (name, e) in envs.iter() {
                let mut svc = Service::new(name.clone(), e.live.clone());
                if let Some((canary, weight)) = &e.canary {
                    svc = svc.with_canary(canary.clone(), *weight);
                }
                for (host, path) in &e.routes {
                    table.push(Route::new(host, path, svc.clone()));
                }
            }
            proxy.set_routes(RouteTable::new(table));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, EnvRoute>> {
        self.envs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
