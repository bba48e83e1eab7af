//! The tree walk of `deploy.environments`: each environment's target, hosts, routes,
//! strategy (read in [`crate::strategy`]), approval and env.

use crate::convert::SeenRefs;
use crate::cx::{At, Cx, key_pos, pos, quote_list, suggest};
use crate::deploy::{ENVIRONMENT_KEYS, ROUTE_KEYS, TARGETS, name_ok, start};
use crate::model::*;
use crate::yaml::join_key;
use indexmap::IndexMap;
use marked_yaml::Node;

/// Reads `deploy.environments`; `None` (after recording why) when any is unusable.
pub(crate) fn environments(
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
