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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, release: &Arc<Release>) -> EnvRoute {
        EnvRoute {
            routes: vec![(host.to_owned(), "/".to_owned())],
            live: release.clone(),
            canary: None,
        }
    }

    #[test]
    fn every_environment_is_published_and_one_without_routes_is_left_out() {
        let proxy = Proxy::new(RouteTable::default());
        let routes = Routes::new(Some(proxy.clone()));
        let shop = Release::new("v1", vec!["127.0.0.1:1".parse().unwrap()]);
        let blog = Release::new("v7", vec!["127.0.0.1:2".parse().unwrap()]);
        routes.set("shop", "prod", Some(entry("shop.test", &shop)));
        routes.set("blog", "prod", Some(entry("blog.test", &blog)));
        let mut quiet = entry("x", &blog);
        quiet.routes.clear();
        routes.set("worker", "prod", Some(quiet));
        let table = proxy.routes();
        let names: Vec<&str> = table
            .routes()
            .iter()
            .map(|r| r.service.name.as_str())
            .collect();
        assert_eq!(names, ["blog/prod", "shop/prod"]);
        assert!(routes.get("worker", "prod").is_none());

        // A canary, then its removal: the live release keeps its `Arc`.
        let v2 = Release::new("v2", vec!["127.0.0.1:3".parse().unwrap()]);
        let mut e = entry("shop.test", &shop);
        e.canary = Some((v2.clone(), 30));
        routes.set("shop", "prod", Some(e));
        let table = proxy.routes();
        let svc = &table.lookup("shop.test", "/").unwrap().service;
        assert_eq!(svc.canary_weight, 30);
        assert!(Arc::ptr_eq(&svc.live, &shop));
        routes.set("shop", "prod", None);
        assert!(proxy.routes().lookup("shop.test", "/").is_none());
        assert!(shop.is_retired() && v2.is_retired() && !blog.is_retired());
    }
}
