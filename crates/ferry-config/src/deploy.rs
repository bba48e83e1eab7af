//! The tree walk of `deploy:`: the service, its environments, and the check that
//! each job's `deploy` names one of them. Strategies are read in [`crate::strategy`].

use crate::convert::SeenRefs;
use crate::cx::{At, Cx, key_pos, pos, quote_list, suggest};
use crate::model::*;
use crate::yaml::join_key;
use indexmap::IndexMap;
use marked_yaml::Node;
use std::time::Duration;

/// Keys of `deploy`.
pub(crate) const DEPLOY_KEYS: &[&str] = &[
    "name",
    "command",
    "image",
    "port",
    "env",
    "healthcheck",
    "smoke",
    "migrate",
    "environments",
];
/// Keys of `deploy.healthcheck`.
pub(crate) const HEALTHCHECK_KEYS: &[&str] = &["path", "interval", "timeout", "retries"];
/// Keys of an environment.
pub(crate) const ENVIRONMENT_KEYS: &[&str] =
    &["target", "hosts", "routes", "strategy", "approval", "env"];
/// Keys of a route.
pub(crate) const ROUTE_KEYS: &[&str] = &["host", "path"];
/// The names `target` accepts.
const TARGETS: &[&str] = &["process", "docker", "ssh"];

/// Reads `deploy`; `None` (after recording why) when it cannot be used.
pub(crate) fn deploy(cx: &mut Cx, node: &Node, at: (usize, usize)) -> Option<Deploy> {
    const KEY: &str = "deploy";
    let map = cx.mapping(
        node,
        KEY,
        "a mapping with the service's `name`, `command` or `image`, and `environments`",
        DEPLOY_KEYS,
    )?;
    let k = |name: &str| join_key(KEY, name);
    let mut seen = Vec::new();
    let name = match map.get_node("name") {
        Some(n) => cx
            .text(n, &k("name"))
            .and_then(|t| name_ok(cx, t, "service name")),
        None => {
            cx.error_hint(
                at,
                KEY,
                "`deploy` has no `name`",
                "name the service, e.g. `name: shop`",
            );
            None
        }
    };
    let command = map
        .get_node("command")
        .and_then(|n| cx.text(n, &k("command")));
    let image = map
        .get_node("image")
        .and_then(|n| cx.string(n, &k("image")));
    let run = match (command, image) {
        (Some(c), None) => {
            cx.template_seen(&c, &mut seen);
            Some(Run::Command(c.value))
        }
        (None, Some(i)) => {
            cx.template_seen(&i, &mut seen);
            Some(Run::Image(i.value))
        }
        (Some(_), Some(i)) => {
            cx.error_hint(
                i.pos,
                &i.key,
                "`deploy` has both `command` and `image`",
                "keep `command` to run a process, or `image` to run a container",
            );
            None
        }
        (None, None) => {
            // Only report the missing key when neither was written at all.
            if map.get_node("command").is_none() && map.get_node("image").is_none() {
                cx.error_hint(
                    at,
                    KEY,
                    "`deploy` has neither `command` nor `image`",
                    "add `command:` to run a process, or `image:` to run a container",
                );
            }
            None
        }
    };
    let port = map.get_node("port").and_then(|n| port(cx, n, &k("port")));
    let env = map
        .get_node("env")
        .map(|n| cx.env_templates(n, &k("env"), &mut seen))
        .unwrap_or_default();
    let healthcheck = map
        .get_node("healthcheck")
        .and_then(|n| healthcheck(cx, n, &k("healthcheck")));
    let smoke = map
        .get_node("smoke")
        .map(|n| crate::job::steps(cx, n, &k("smoke"), &mut seen))
        .unwrap_or_default();
    let migrate = map
        .get_node("migrate")
        .map(|n| crate::job::steps(cx, n, &k("migrate"), &mut seen))
        .unwrap_or_default();
    let default_target = match &run {
        Some(Run::Image(_)) => Target::Docker,
        _ => Target::Process,
    };
    let environments = match map.get_node("environments") {
        Some(n) => environments(cx, n, &run, default_target, &mut seen),
        None => {
            cx.error_hint(
                at,
                KEY,
                "`deploy` has no `environments`",
                "add at least one, e.g. `environments: { staging: { target: process } }`",
            );
            None
        }
    };
    if port.is_none()
        && map.get_node("port").is_none()
        && let Some(envs) = &environments
        && let Some(env) = envs.values().find(|e| !e.routes.is_empty())
    {
        cx.error_hint(
            at,
            KEY,
            format!(
                "environment \"{}\" has `routes` but the service has no `port`",
                env.name
            ),
            "add the port the service listens on, e.g. `port: 8080`",
        );
    }
    no_job_refs(cx, &seen);
    Some(Deploy {
        name: name?.value,
        run: run?,
        port,
        env,
        healthcheck,
        smoke,
        migrate,
        environments: environments?,
    })
}

/// Where a mapping starts: its first key (a mapping's own span starts at its first
/// value); other nodes where they start.
pub(crate) fn start(node: &Node) -> (usize, usize) {
    match node.as_mapping().and_then(|m| m.iter().next()) {
        Some((k, _)) => key_pos(k),
        None => pos(node),
    }
}

/// A name of letters, digits, `-` and `_`.
fn name_ok(cx: &mut Cx, name: At<String>, what: &str) -> Option<At<String>> {
    let valid = !name.value.is_empty()
        && name
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        return Some(name);
    }
    cx.error_hint(
        name.pos,
        &name.key,
        format!("invalid {what} \"{}\"", name.value),
        "use letters, digits, `-` and `_`, e.g. `shop` or `shop-api`",
    );
    None
}

/// `matrix.X` and `needs.X` mean nothing outside a job.
fn no_job_refs(cx: &mut Cx, seen: &[SeenRefs]) {
    for s in seen {
        for (root, names) in [("matrix", &s.refs.matrix), ("needs", &s.refs.needs)] {
            for name in names {
                cx.error_hint(
                    s.pos,
                    &s.key,
                    format!("`{root}.{name}` is not available in `deploy`"),
                    "only `secrets`, `ferry` and the run's facts are; `matrix` and `needs` belong to jobs",
                );
            }
        }
    }
}

/// A TCP port, 1–65535.
pub(crate) fn port(cx: &mut Cx, node: &Node, key: &str) -> Option<u16> {
    match cx.number(node, key, 65535)? {
        0 => {
            cx.error_hint(
                start(node),
                key,
                "port 0 is not a port a service can listen on",
                "use a port from 1 to 65535, e.g. `8080`",
            );
            None
        }
        p => u16::try_from(p).ok(),
    }
}

/// A duration such as `30s`; zero only where `zero_ok`.
pub(crate) fn duration(cx: &mut Cx, node: &Node, key: &str, zero_ok: bool) -> Option<Duration> {
    let text = cx.text(node, key)?;
    match humantime::parse_duration(text.value.trim()) {
        Ok(d) if d.is_zero() && !zero_ok => {
            cx.error_hint(
                text.pos,
                key,
                "a duration of zero is not allowed here",
                "write a number with a unit, e.g. `5s` or `2m`",
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            cx.error_hint(
                text.pos,
                key,
                format!("invalid duration \"{}\": {e}", text.value),
                "write a number with a unit, e.g. `90s`, `10m` or `1h 30m`",
            );
            None
        }
    }
}

fn healthcheck(cx: &mut Cx, node: &Node, key: &str) -> Option<Healthcheck> {
    let map = cx.mapping(node, key, "a mapping with `path`", HEALTHCHECK_KEYS)?;
    let k = |name: &str| join_key(key, name);
    let mut out = Healthcheck::default();
    let mut ok = true;
    match map.get_node("path") {
        Some(n) => match cx.string(n, &k("path")) {
            Some(p) if p.value.starts_with('/') => out.path = p.value,
            Some(p) => {
                ok = false;
                cx.error_hint(
                    p.pos,
                    &p.key,
                    format!("health check path \"{}\" does not start with `/`", p.value),
                    format!("write `/{}`", p.value),
                );
            }
            None => ok = false,
        },
        None => {
            ok = false;
            cx.error_hint(
                start(node),
                key,
                "`healthcheck` has no `path`",
                "add the HTTP path that answers 200 when the service is ready, e.g. `path: /healthz`",
            );
        }
    }
    let mut read = |name: &str, into: &mut Duration| {
        if let Some(n) = map.get_node(name) {
            match duration(cx, n, &k(name), false) {
                Some(d) => *into = d,
                None => ok = false,
            }
        }
    };
    read("interval", &mut out.interval);
    read("timeout", &mut out.timeout);
    if let Some(n) = map.get_node("retries") {
        match cx.number(n, &k("retries"), 100) {
            Some(0) => {
                ok = false;
                cx.error_hint(
                    pos(n),
                    &k("retries"),
                    "`retries` must be at least 1",
                    "the number of failed probes in a row before an instance counts as unhealthy",
                );
            }
            Some(r) => out.retries = r as u32,
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn environments(
    cx: &mut Cx,
    node: &Node,
    run: &Option<Run>,
    default_target: Target,
    seen: &mut Vec<SeenRefs>,
) -> Option<IndexMap<String, Environment>> {
    const KEY: &str = "deploy.environments";
    let Some(map) = node.as_mapping() else {
        cx.wrong_type(node, KEY, "a mapping of environment names to environments");
        return None;
    };
    if map.is_empty() {
        cx.error_hint(
            start(node),
            KEY,
            "`environments` is empty",
            "add at least one, e.g. `staging: { target: process }`",
        );
        return None;
    }
    let mut out = IndexMap::new();
    let mut ok = true;
    for (name, v) in map.iter() {
        let key = join_key(KEY, name.as_str());
        let at = At {
            value: name.as_str().to_string(),
            pos: key_pos(name),
            key: key.clone(),
        };
        let valid_name = name_ok(cx, at, "environment name").is_some();
        let env_at = (key_pos(name), v);
        match environment(cx, name.as_str(), env_at, &key, run, default_target, seen) {
            Some(env) if valid_name => {
                out.insert(name.as_str().to_string(), env);
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn environment(
    cx: &mut Cx,
    name: &str,
    (at, node): ((usize, usize), &Node),
    key: &str,
    run: &Option<Run>,
    default_target: Target,
    seen: &mut Vec<SeenRefs>,
) -> Option<Environment> {
    // `staging:` with nothing under it is an environment with every default.
    let empty = marked_yaml::types::MarkedMappingNode::new_empty(marked_yaml::Span::new_blank());
    let map = if node
        .as_scalar()
        .is_some_and(|s| matches!(crate::cx::scalar_kind(s), crate::cx::ScalarKind::Null))
    {
        &empty
    } else {
        cx.mapping(node, key, "an environment (a mapping)", ENVIRONMENT_KEYS)?
    };
    let k = |n: &str| join_key(key, n);
    let mut ok = true;
    let target = match map.get_node("target") {
        Some(n) => match target(cx, n, &k("target"), run) {
            Some(t) => t,
            None => {
                ok = false;
                default_target
            }
        },
        None => default_target,
    };
    let hosts = match map.get_node("hosts") {
        Some(n) => {
            let list = cx.string_list(n, &k("hosts"));
            let mut hosts = Vec::new();
            for h in list.iter().flatten() {
                match host(cx, h) {
                    Some(h) => hosts.push(h),
                    None => ok = false,
                }
            }
            if target == Target::Process && list.is_some() {
                ok = false;
                cx.error_hint(
                    pos(n),
                    &k("hosts"),
                    "the `process` target runs on this machine and takes no `hosts`",
                    "use `target: ssh` (or `docker`) to deploy to other machines",
                );
            }
            hosts
        }
        None => Vec::new(),
    };
    if target == Target::Ssh && map.get_node("hosts").is_none() {
        ok = false;
        cx.error_hint(
            at,
            key,
            format!("environment \"{name}\" uses the `ssh` target but has no `hosts`"),
            "add `hosts:`, e.g. `hosts: [deploy@web1.example.com]`",
        );
    }
    let routes = map
        .get_node("routes")
        .map(|n| routes(cx, n, &k("routes"), &mut ok))
        .unwrap_or_default();
    let strategy = match map.get_node("strategy") {
        Some(n) => crate::strategy::strategy(cx, n, &k("strategy"), seen),
        None => Some(Strategy::default()),
    };
    let approval = map
        .get_node("approval")
        .and_then(|n| crate::settings::approval(cx, n, &k("approval")));
    let env = map
        .get_node("env")
        .map(|n| cx.env_templates(n, &k("env"), seen))
        .unwrap_or_default();
    let strategy = strategy?;
    ok.then(|| Environment {
        name: name.to_string(),
        target,
        hosts,
        routes,
        strategy,
        approval,
        env,
    })
}

fn target(cx: &mut Cx, node: &Node, key: &str, run: &Option<Run>) -> Option<Target> {
    let text = cx.string(node, key)?;
    let target = match text.value.as_str() {
        "process" => Target::Process,
        "docker" => Target::Docker,
        "ssh" => Target::Ssh,
        other => {
            let hint = match suggest(other, TARGETS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("expected {}", quote_list(TARGETS)),
            };
            cx.error_hint(text.pos, key, format!("unknown target `{other}`"), hint);
            return None;
        }
    };
    let mismatch = match (target, run) {
        (Target::Process, Some(Run::Image(_))) => Some((
            "the `process` target runs a `command`, but the service has an `image`",
            "use `target: docker` for an image",
        )),
        (Target::Docker, Some(Run::Command(_))) => Some((
            "the `docker` target runs an `image`, but the service has a `command`",
            "use `target: process` (or `ssh`) for a command",
        )),
        _ => None,
    };
    if let Some((message, hint)) = mismatch {
        cx.error_hint(text.pos, key, message, hint);
        return None;
    }
    Some(target)
}

/// `user@host[:port]`; IPv6 addresses go in brackets: `root@[::1]:2222`.
fn host(cx: &mut Cx, text: &At<String>) -> Option<Host> {
    let parsed = parse_host(&text.value);
    if parsed.is_none() {
        cx.error_hint(
            text.pos,
            &text.key,
            format!("invalid host \"{}\"", text.value),
            "write `user@host` or `user@host:port`, e.g. `deploy@web1.example.com:2222`",
        );
    }
    parsed
}

pub(crate) fn parse_host(text: &str) -> Option<Host> {
    let (user, rest) = match text.split_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, text),
    };
    if user.is_some_and(|u| u.is_empty() || u.contains(|c: char| c.is_whitespace() || c == ':')) {
        return None;
    }
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (h, after) = inner.split_once(']')?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':')?)),
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
    if !host_ok {
        return None;
    }
    let port = match port {
        None => 22,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0)?,
    };
    Some(Host {
        user: user.map(str::to_string),
        host: host.to_string(),
        port,
    })
}

fn routes(cx: &mut Cx, node: &Node, key: &str, ok: &mut bool) -> Vec<Route> {
    let Some(items) = node.as_sequence() else {
        *ok = false;
        cx.wrong_type(node, key, "a list of `{ host, path }` routes");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("{key}[{i}]");
        let Some(map) = cx.mapping(item, &key, "a route (a mapping with `host`)", ROUTE_KEYS)
        else {
            *ok = false;
            continue;
        };
        let host = match map.get_node("host") {
            Some(n) => cx.string(n, &join_key(&key, "host")),
            None => {
                cx.error_hint(
                    start(item),
                    &key,
                    "the route has no `host`",
                    "add the host name it answers, e.g. `host: shop.example.com`",
                );
                None
            }
        };
        let host = host.filter(|h| {
            let valid = !h.value.is_empty()
                && h.value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.*".contains(c));
            if !valid {
                cx.error_hint(
                    h.pos,
                    &h.key,
                    format!("invalid host name \"{}\"", h.value),
                    "write a host name without scheme or path, e.g. `shop.example.com`",
                );
            }
            valid
        });
        let path = match map.get_node("path") {
            Some(n) => cx.string(n, &join_key(&key, "path")).filter(|p| {
                let valid = p.value.starts_with('/');
                if !valid {
                    cx.error_hint(
                        p.pos,
                        &p.key,
                        format!("route path \"{}\" does not start with `/`", p.value),
                        format!("write `/{}`", p.value),
                    );
                }
                valid
            }),
            None => Some(At {
                value: "/".into(),
                pos: start(item),
                key: key.clone(),
            }),
        };
        match (host, path) {
            (Some(h), Some(p)) => out.push(Route {
                host: h.value,
                path: p.value,
            }),
            _ => *ok = false,
        }
    }
    out
}

/// Each job's `deploy` must name an environment of the `deploy` section.
pub(crate) fn check_jobs(cx: &mut Cx, deploy: Option<&Deploy>, wanted: &[At<String>]) {
    for want in wanted {
        let Some(deploy) = deploy else {
            cx.error_hint(
                want.pos,
                &want.key,
                format!(
                    "the job deploys to \"{}\" but the file has no `deploy` section",
                    want.value
                ),
                "add `deploy:` with the service and its `environments`",
            );
            continue;
        };
        if deploy.environments.contains_key(&want.value) {
            continue;
        }
        let names: Vec<&str> = deploy.environments.keys().map(String::as_str).collect();
        let hint = match suggest(&want.value, names.iter().copied()) {
            Some(s) => format!("did you mean \"{s}\"?"),
            None => format!("the environments are {}", quote_list(&names)),
        };
        cx.error_hint(
            want.pos,
            &want.key,
            format!("the job deploys to unknown environment \"{}\"", want.value),
            hint,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hosts_with_and_without_user_and_port() {
        let h = |s: &str| parse_host(s).map(|h| (h.user, h.host, h.port));
        assert_eq!(
            h("deploy@web1:2222"),
            Some((Some("deploy".into()), "web1".into(), 2222))
        );
        assert_eq!(
            h("web1.example.com"),
            Some((None, "web1.example.com".into(), 22))
        );
        assert_eq!(
            h("root@[::1]:22"),
            Some((Some("root".into()), "::1".into(), 22))
        );
        assert_eq!(h("@web1"), None);
        assert_eq!(h("web1:0"), None);
        assert_eq!(h("web1:ssh"), None);
        assert_eq!(h("a b"), None);
    }
}
