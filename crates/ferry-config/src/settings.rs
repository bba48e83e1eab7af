//! The smaller job settings: `services`, `artifacts`, `cache`, `approval` and
//! `concurrency`.

use crate::convert::SeenRefs;
use crate::cx::{Cx, pos};
use crate::job::{APPROVAL_KEYS, ARTIFACTS_KEYS, CACHE_KEYS, CONCURRENCY_KEYS, SERVICE_KEYS};
use crate::model::*;
use crate::yaml::join_key;
use indexmap::IndexMap;
use marked_yaml::Node;

pub(crate) fn services(
    cx: &mut Cx,
    node: &Node,
    key: &str,
    seen: &mut Vec<SeenRefs>,
) -> IndexMap<String, Service> {
    let mut out = IndexMap::new();
    let Some(map) = node.as_mapping() else {
        cx.wrong_type(node, key, "a mapping of service names to services");
        return out;
    };
    for (name, v) in map.iter() {
        let key = join_key(key, name.as_str());
        let k = |n: &str| join_key(&key, n);
        let Some(s) = cx.mapping(v, &key, "a service (a mapping with `image`)", SERVICE_KEYS)
        else {
            continue;
        };
        let image = match s.get_node("image") {
            Some(n) => cx.string(n, &k("image")),
            None => {
                cx.error_hint(
                    pos(v),
                    &key,
                    "the service has no `image`",
                    "add `image:`, e.g. `image: postgres:16`",
                );
                None
            }
        };
        if let Some(i) = &image {
            cx.template_seen(i, seen);
        }
        let env = s
            .get_node("env")
            .map(|n| cx.env_templates(n, &k("env"), seen))
            .unwrap_or_default();
        let command = s.get_node("command").and_then(|n| {
            if n.as_sequence().is_none() {
                cx.wrong_type(n, &k("command"), "a list of strings");
                return None;
            }
            let items = cx.string_list(n, &k("command"))?;
            items.iter().for_each(|i| cx.template_seen(i, seen));
            Some(items.into_iter().map(|i| i.value).collect())
        });
        let ports = s
            .get_node("ports")
            .map(|n| ports(cx, n, &k("ports")))
            .unwrap_or_default();
        let healthcheck = s
            .get_node("healthcheck")
            .and_then(|n| cx.text(n, &k("healthcheck")))
            .map(|t| t.value);
        if let Some(image) = image {
            out.insert(
                name.as_str().to_string(),
                Service {
                    image: image.value,
                    env,
                    command,
                    ports,
                    healthcheck,
                },
            );
        }
    }
    out
}

fn ports(cx: &mut Cx, node: &Node, key: &str) -> Vec<u16> {
    let Some(items) = node.as_sequence() else {
        cx.wrong_type(node, key, "a list of port numbers");
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(
            |(i, n)| match cx.number(n, &format!("{key}[{i}]"), 65535)? {
                0 => {
                    cx.error(
                        pos(n),
                        &format!("{key}[{i}]"),
                        "port 0 is not a port a service can listen on",
                    );
                    None
                }
                p => u16::try_from(p).ok(),
            },
        )
        .collect()
}

pub(crate) fn artifacts(cx: &mut Cx, node: &Node, key: &str) -> Option<Artifacts> {
    let paths = if node.as_mapping().is_some() {
        let map = cx.mapping(node, key, "a list of paths", ARTIFACTS_KEYS)?;
        match map.get_node("paths") {
            Some(n) => cx.string_list(n, &join_key(key, "paths"))?,
            None => {
                cx.error(pos(node), key, "`artifacts` has no `paths`");
                return None;
            }
        }
    } else {
        cx.string_list(node, key)?
    };
    Some(Artifacts {
        paths: paths.into_iter().map(|p| p.value).collect(),
    })
}

pub(crate) fn cache(
    cx: &mut Cx,
    node: &Node,
    key: &str,
    seen: &mut Vec<SeenRefs>,
) -> Option<Cache> {
    let map = cx.mapping(node, key, "a mapping with `key` and `paths`", CACHE_KEYS)?;
    let cache_key = match map.get_node("key") {
        Some(n) => cx.text(n, &join_key(key, "key")),
        None => {
            cx.error_hint(
                pos(node),
                key,
                "`cache` has no `key`",
                "e.g. `key: cargo-${{ hashFiles('Cargo.lock') }}`",
            );
            None
        }
    };
    if let Some(k) = &cache_key {
        cx.template_seen(k, seen);
    }
    let paths = match map.get_node("paths") {
        Some(n) => cx.string_list(n, &join_key(key, "paths")),
        None => {
            cx.error_hint(
                pos(node),
                key,
                "`cache` has no `paths`",
                "e.g. `paths: [target, ~/.cargo/registry]`",
            );
            None
        }
    };
    Some(Cache {
        key: cache_key?.value,
        paths: paths?.into_iter().map(|p| p.value).collect(),
    })
}

pub(crate) fn approval(cx: &mut Cx, node: &Node, key: &str) -> Option<Approval> {
    if node.as_scalar().is_some() {
        return cx.boolean(node, key)?.then(Approval::default);
    }
    let map = cx.mapping(
        node,
        key,
        "`true` or a mapping with `message`",
        APPROVAL_KEYS,
    )?;
    Some(Approval {
        message: map
            .get_node("message")
            .and_then(|n| cx.text(n, &join_key(key, "message")))
            .map(|t| t.value),
    })
}

pub(crate) fn concurrency(
    cx: &mut Cx,
    node: &Node,
    key: &str,
    seen: &mut Vec<SeenRefs>,
) -> Option<Concurrency> {
    if node.as_scalar().is_some() {
        let group = cx.text(node, key)?;
        cx.template_seen(&group, seen);
        return Some(Concurrency {
            group: group.value,
            cancel_in_progress: false,
        });
    }
    let map = cx.mapping(
        node,
        key,
        "a group name or a mapping with `group`",
        CONCURRENCY_KEYS,
    )?;
    let group = match map.get_node("group") {
        Some(n) => cx.text(n, &join_key(key, "group")),
        None => {
            cx.error(pos(node), key, "`concurrency` has no `group`");
            None
        }
    };
    if let Some(g) = &group {
        cx.template_seen(g, seen);
    }
    let cancel_in_progress = map
        .get_node("cancel-in-progress")
        .and_then(|n| cx.boolean(n, &join_key(key, "cancel-in-progress")))
        .unwrap_or(false);
    Some(Concurrency {
        group: group?.value,
        cancel_in_progress,
    })
}
