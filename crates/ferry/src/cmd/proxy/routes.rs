//! The routes file of `ferry proxy`: YAML listing each route's host, path prefix and
//! service, the release serving it (a name and instance addresses) and optionally a
//! canary release taking a share of requests.
//!
//! ```yaml
//! routes:
//!   - host: app.example.com        # or *.example.com, or * for every host
//!     path: /                      # a path prefix, matched on whole segments
//!     service: web
//!     release: { name: v41, instances: [127.0.0.1:3001, 127.0.0.1:3002] }
//!     canary: { name: v42, instances: [127.0.0.1:3003], weight: 10 }
//!     sticky: true                 # keep each client on the release it first got
//! ```
//!
//! [`build`] turns a parsed file into a [`RouteTable`], taking releases that did not
//! change (same service, name and instances) from the table in use, so a reload keeps
//! their in-flight counts and only the releases that left drain.

use ferry_proxy::{Release, Route, RouteTable, Service};
use marked_yaml::Spanned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesFile {
    routes: Vec<RouteSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    host: Spanned<String>,
    #[serde(default)]
    path: Option<Spanned<String>>,
    service: Spanned<String>,
    release: ReleaseSpec,
    #[serde(default)]
    canary: Option<CanarySpec>,
    #[serde(default)]
    sticky: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseSpec {
    name: Spanned<String>,
    instances: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CanarySpec {
    name: Spanned<String>,
    instances: Vec<Spanned<String>>,
    weight: Spanned<u8>,
}

/// Reads and checks the routes file; errors start with `file:line:col`.
pub fn load(path: &Path, current: &RouteTable) -> Result<RouteTable, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the routes file: {e}", path.display()))?;
    let file = parse(path, &text)?;
    build(path, &file, current)
}

/// The keys of the file, a route, a release and a canary.
const FILE_KEYS: &[&str] = &["routes"];
const ROUTE_KEYS: &[&str] = &["host", "path", "service", "release", "canary", "sticky"];
const RELEASE_KEYS: &[&str] = &["name", "instances"];
const CANARY_KEYS: &[&str] = &["name", "instances", "weight"];

/// Parses the file's text.
pub fn parse(path: &Path, text: &str) -> Result<RoutesFile, String> {
    // serde's unknown-field errors carry no place: find such keys first.
    if let Ok(node) = marked_yaml::parse_yaml(0, text) {
        check_keys(path, &node)?;
    }
    marked_yaml::from_yaml::<RoutesFile>(0, text).map_err(|e| match &e {
        marked_yaml::FromYamlError::ParseYaml(inner) => {
            format!("{}:{inner}", path.display())
        }
        marked_yaml::FromYamlError::FromNode(inner) => {
            let place = inner.start_mark().map_or_else(
                || path.display().to_string(),
                |m| format!("{}:{}:{}", path.display(), m.line(), m.column()),
            );
            let message = e.to_string();
            let mut chars = message.chars();
            let message: String = chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default();
            format!(
                "{place}: {message}; a route has the keys host, path, service, release (name, instances), canary (name, instances, weight) and sticky"
            )
        }
    })
}

/// Unknown keys, located, with the closest known key as a hint.
fn check_keys(path: &Path, node: &marked_yaml::Node) -> Result<(), String> {
    fn keys(path: &Path, node: &marked_yaml::Node, known: &[&str]) -> Result<(), String> {
        let Some(map) = node.as_mapping() else {
            return Ok(());
        };
        for key in map.keys() {
            let name = key.as_str();
            if known.contains(&name) {
                continue;
            }
            let place = key.span().start().map_or_else(
                || path.display().to_string(),
                |m| format!("{}:{}:{}", path.display(), m.line(), m.column()),
            );
            let hint = known
                .iter()
                .map(|k| (strsim::jaro_winkler(k, name), k))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, k)| format!("did you mean `{k}`?"))
                .unwrap_or_else(|| format!("the keys here are {}", known.join(", ")));
            return Err(format!("{place}: unknown key `{name}` — {hint}"));
        }
        Ok(())
    }
    keys(path, node, FILE_KEYS)?;
    let routes = node.as_mapping().and_then(|m| m.get_sequence("routes"));
    for route in routes.into_iter().flat_map(|r| r.iter()) {
        keys(path, route, ROUTE_KEYS)?;
        if let Some(map) = route.as_mapping() {
            if let Some(release) = map.get_node("release") {
                keys(path, release, RELEASE_KEYS)?;
            }
            if let Some(canary) = map.get_node("canary") {
                keys(path, canary, CANARY_KEYS)?;
            }
        }
    }
    Ok(())
}

/// Builds the table, reusing the unchanged releases of `current`.
pub fn build(path: &Path, file: &RoutesFile, current: &RouteTable) -> Result<RouteTable, String> {
    let at = |span: &marked_yaml::Span| {
        span.start().map_or_else(
            || path.display().to_string(),
            |m| format!("{}:{}:{}", path.display(), m.line(), m.column()),
        )
    };
    // Every release of the table in use, by service, name and instances.
    let mut pool: BTreeMap<(String, String, Vec<SocketAddr>), Arc<Release>> = BTreeMap::new();
    for route in current.routes() {
        let service = &route.service;
        for release in std::iter::once(&service.live).chain(service.canary.iter()) {
            pool.insert(
                (
                    service.name.clone(),
                    release.name().to_owned(),
                    release.instances().to_vec(),
                ),
                release.clone(),
            );
        }
    }
    let mut release = |service: &str,
                       name: &Spanned<String>,
                       instances: &[Spanned<String>]|
     -> Result<Arc<Release>, String> {
        if name.trim().is_empty() {
            return Err(format!("{}: a release needs a name", at(name.span())));
        }
        if instances.is_empty() {
            return Err(format!(
                "{}: release `{}` of `{service}` lists no instances — give at least one address such as 127.0.0.1:3000",
                at(name.span()),
                name.as_str()
            ));
        }
        let addrs = instances
            .iter()
            .map(|i| {
                i.trim().parse::<SocketAddr>().map_err(|_| {
                    format!(
                        "{}: `{}` is not an instance address; write IP:PORT, such as 127.0.0.1:3000",
                        at(i.span()),
                        i.as_str()
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = (service.to_owned(), name.as_str().to_owned(), addrs);
        Ok(pool
            .entry(key.clone())
            .or_insert_with(|| Release::new(key.1, key.2))
            .clone())
    };

    let mut routes = Vec::with_capacity(file.routes.len());
    let mut seen = BTreeMap::new();
    for spec in &file.routes {
        let service_name = spec.service.trim();
        if service_name.is_empty() {
            return Err(format!(
                "{}: a route needs a service name",
                at(spec.service.span())
            ));
        }
        let live = release(service_name, &spec.release.name, &spec.release.instances)?;
        let mut service = Service::new(service_name, live).sticky(spec.sticky);
        if let Some(canary) = &spec.canary {
            if *canary.weight > 100 {
                return Err(format!(
                    "{}: the canary's weight is a percentage, 0 to 100; got {}",
                    at(canary.weight.span()),
                    *canary.weight
                ));
            }
            if canary.name.as_str() == spec.release.name.as_str() {
                return Err(format!(
                    "{}: the canary must be another release than `{}`",
                    at(canary.name.span()),
                    canary.name.as_str()
                ));
            }
            let canary_release = release(service_name, &canary.name, &canary.instances)?;
            service = service.with_canary(canary_release, *canary.weight);
        }
        let path_prefix = spec.path.as_ref().map_or("/", |p| p.as_str());
        if !path_prefix.starts_with('/') {
            let span = spec.path.as_ref().map_or(spec.host.span(), |p| p.span());
            return Err(format!(
                "{}: the path prefix `{path_prefix}` must start with `/`",
                at(span)
            ));
        }
        let route = Route::new(spec.host.trim(), path_prefix, service);
        let key = (format!("{:?}", route.host), route.path_prefix.clone());
        if let Some(first) = seen.insert(key, at(spec.host.span())) {
            return Err(format!(
                "{}: host `{}` and path `{}` are already routed at {first}",
                at(spec.host.span()),
                spec.host.as_str(),
                route.path_prefix
            ));
        }
        routes.push(route);
    }
    Ok(RouteTable::new(routes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
routes:
  - host: app.example.com
    service: web
    release: { name: v1, instances: [127.0.0.1:3001, 127.0.0.1:3002] }
  - host: app.example.com
    path: /api
    service: api
    release:
      name: a1
      instances: [127.0.0.1:4001]
    canary: { name: a2, instances: [127.0.0.1:4002], weight: 10 }
    sticky: true
";

    fn table(text: &str, current: &RouteTable) -> Result<RouteTable, String> {
        let path = Path::new("routes.yml");
        build(path, &parse(path, text)?, current)
    }

    #[test]
    fn builds_routes_with_canary_and_sticky() {
        let t = table(FILE, &RouteTable::default()).unwrap();
        let api = &t.lookup("app.example.com", "/api/items").unwrap().service;
        assert_eq!(api.name, "api");
        assert_eq!(api.canary.as_ref().unwrap().name(), "a2");
        assert_eq!(api.canary_weight, 10);
        assert!(api.sticky);
        let web = &t.lookup("app.example.com:8080", "/").unwrap().service;
        assert_eq!(web.live.instances().len(), 2);
    }

    #[test]
    fn a_reload_keeps_unchanged_releases_and_replaces_changed_ones() {
        let first = table(FILE, &RouteTable::default()).unwrap();
        let changed = FILE.replace("127.0.0.1:4001", "127.0.0.1:4009");
        let second = table(&changed, &first).unwrap();
        let web = |t: &RouteTable| {
            t.lookup("app.example.com", "/")
                .unwrap()
                .service
                .live
                .clone()
        };
        let api = |t: &RouteTable| {
            t.lookup("app.example.com", "/api")
                .unwrap()
                .service
                .live
                .clone()
        };
        assert!(Arc::ptr_eq(&web(&first), &web(&second)));
        assert!(!Arc::ptr_eq(&api(&first), &api(&second)));
    }

    #[test]
    fn errors_name_the_place() {
        let empty = RouteTable::default();
        let bad_addr = FILE.replace("127.0.0.1:3002", "localhost");
        let e = table(&bad_addr, &empty).unwrap_err();
        assert!(e.starts_with("routes.yml:4:"), "{e}");
        assert!(e.contains("`localhost` is not an instance address"), "{e}");

        let unknown = FILE.replace("sticky: true", "stiky: true");
        let e = table(&unknown, &empty).unwrap_err();
        assert!(e.starts_with("routes.yml:12:"), "{e}");
        assert!(e.contains("stiky"), "{e}");

        let heavy = FILE.replace("weight: 10", "weight: 101");
        let e = table(&heavy, &empty).unwrap_err();
        assert!(e.starts_with("routes.yml:11:"), "{e}");

        let e = table("routes: [\n", &empty).unwrap_err();
        assert!(e.starts_with("routes.yml:"), "{e}");
    }
}
