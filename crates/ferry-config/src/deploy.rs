//! The tree walk of `deploy:`: the service, and the check that each job's `deploy`
//! names one of its environments. Environments are read in [`crate::environment`],
//! strategies in [`crate::strategy`]; the key tables of all three live here.

use crate::convert::SeenRefs;
use crate::cx::{At, Cx, key_pos, pos, quote_list, suggest};
use crate::model::*;
use crate::yaml::join_key;
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
pub(crate) const TARGETS: &[&str] = &["process", "docker", "ssh"];

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
        Some(n) => crate::environment::environments(cx, n, &run, default_target, &mut seen),
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
pub(crate) fn name_ok(cx: &mut Cx, name: At<String>, what: &str) -> Option<At<String>> {
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
