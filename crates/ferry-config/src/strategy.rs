//! The tree walk of an environment's `strategy`: a name (`rolling`, `blue-green`,
//! `canary`, `recreate`) for the defaults, or a mapping with one of those names as its
//! only key and the settings under it.

use crate::convert::SeenRefs;
use crate::cx::{Cx, ScalarKind, key_pos, pos, quote_list, scalar_kind, suggest};
use crate::deploy::{duration, start};
use crate::model::*;
use crate::yaml::join_key;
use marked_yaml::Node;

/// The strategy names.
pub(crate) const STRATEGIES: &[&str] = &["rolling", "blue-green", "canary", "recreate"];
/// Keys of `rolling`.
pub(crate) const ROLLING_KEYS: &[&str] = &["instances", "max_surge", "max_unavailable"];
/// Keys of `blue-green`.
pub(crate) const BLUE_GREEN_KEYS: &[&str] = &["verify", "auto_promote", "keep_old_for"];
/// Keys of `canary`.
pub(crate) const CANARY_KEYS: &[&str] = &["steps", "analysis"];
/// Keys of a canary step.
pub(crate) const CANARY_STEP_KEYS: &[&str] = &["weight", "pause"];
/// Keys of canary `analysis`.
pub(crate) const ANALYSIS_KEYS: &[&str] = &["max_error_rate", "max_p95_latency", "min_requests"];

const EXPECTED: &str = "a strategy name or a mapping with one strategy name as its key";

/// Reads `strategy`.
pub(crate) fn strategy(
    cx: &mut Cx,
    node: &Node,
    key: &str,
    seen: &mut Vec<SeenRefs>,
) -> Option<Strategy> {
    if node.as_scalar().is_some() {
        let name = cx.string(node, key)?;
        let known = known_name(cx, &name.value, name.pos, key)?;
        return settings(cx, known, None, key, seen);
    }
    let Some(map) = node.as_mapping() else {
        cx.wrong_type(node, key, EXPECTED);
        return None;
    };
    let mut entries = map.iter();
    let (Some((name, settings_node)), None) = (entries.next(), entries.next()) else {
        cx.error_hint(
            start(node),
            key,
            format!("`strategy` must have exactly one key, found {}", map.len()),
            format!("use one of {}", quote_list(STRATEGIES)),
        );
        return None;
    };
    let known = known_name(
        cx,
        name.as_str(),
        key_pos(name),
        &join_key(key, name.as_str()),
    )?;
    let is_null = settings_node
        .as_scalar()
        .is_some_and(|s| matches!(scalar_kind(s), ScalarKind::Null));
    let settings_node = (!is_null).then_some(settings_node);
    settings(cx, known, settings_node, &join_key(key, known), seen)
}

fn known_name(cx: &mut Cx, name: &str, at: (usize, usize), key: &str) -> Option<&'static str> {
    if let Some(known) = STRATEGIES.iter().find(|s| **s == name) {
        return Some(known);
    }
    let hint = match suggest(name, STRATEGIES.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("expected {}", quote_list(STRATEGIES)),
    };
    cx.error_hint(at, key, format!("unknown strategy `{name}`"), hint);
    None
}

fn settings(
    cx: &mut Cx,
    name: &str,
    node: Option<&Node>,
    key: &str,
    seen: &mut Vec<SeenRefs>,
) -> Option<Strategy> {
    match name {
        "rolling" => rolling(cx, node, key).map(Strategy::Rolling),
        "blue-green" => blue_green(cx, node, key, seen).map(Strategy::BlueGreen),
        "canary" => canary(cx, node, key).map(Strategy::Canary),
        _ => {
            if let Some(n) = node {
                cx.error_hint(
                    pos(n),
                    key,
                    "`recreate` has no settings",
                    "write `strategy: recreate`",
                );
                return None;
            }
            Some(Strategy::Recreate)
        }
    }
}

fn rolling(cx: &mut Cx, node: Option<&Node>, key: &str) -> Option<Rolling> {
    let mut out = Rolling::default();
    let Some(node) = node else {
        return Some(out);
    };
    let map = cx.mapping(node, key, "`rolling` settings (a mapping)", ROLLING_KEYS)?;
    let mut ok = true;
    for (name, into) in [
        ("instances", &mut out.instances),
        ("max_surge", &mut out.max_surge),
        ("max_unavailable", &mut out.max_unavailable),
    ] {
        if let Some(n) = map.get_node(name) {
            match cx.number(n, &join_key(key, name), 1000) {
                Some(v) => *into = v as u32,
                None => ok = false,
            }
        }
    }
    if !ok {
        return None;
    }
    if out.instances == 0 {
        cx.error_hint(
            start(node),
            &join_key(key, "instances"),
            "`instances` must be at least 1",
            "run one instance or more",
        );
        return None;
    }
    if out.max_surge == 0 && out.max_unavailable == 0 {
        cx.error_hint(
            start(node),
            key,
            "with `max_surge` and `max_unavailable` both 0 a rolling deploy cannot replace any instance",
            "allow at least one extra instance, e.g. `max_surge: 1`",
        );
        return None;
    }
    if out.max_unavailable >= out.instances {
        cx.error_hint(
            start(node),
            &join_key(key, "max_unavailable"),
            format!(
                "`max_unavailable` ({}) would take all {} instances down at once",
                out.max_unavailable, out.instances
            ),
            "keep it below `instances`, or use `strategy: recreate` if downtime is fine",
        );
        return None;
    }
    Some(out)
}

fn blue_green(
    cx: &mut Cx,
    node: Option<&Node>,
    key: &str,
    seen: &mut Vec<SeenRefs>,
) -> Option<BlueGreen> {
    let mut out = BlueGreen::default();
    let Some(node) = node else {
        return Some(out);
    };
    let map = cx.mapping(
        node,
        key,
        "`blue-green` settings (a mapping)",
        BLUE_GREEN_KEYS,
    )?;
    let k = |n: &str| join_key(key, n);
    let mut ok = true;
    if let Some(n) = map.get_node("verify") {
        let before = cx.diags.len();
        out.verify = crate::job::steps(cx, n, &k("verify"), seen);
        ok &= cx.diags.len() == before;
    }
    if let Some(n) = map.get_node("auto_promote") {
        match cx.boolean(n, &k("auto_promote")) {
            Some(b) => out.auto_promote = b,
            None => ok = false,
        }
    }
    if let Some(n) = map.get_node("keep_old_for") {
        match duration(cx, n, &k("keep_old_for"), true) {
            Some(d) => out.keep_old_for = d,
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn canary(cx: &mut Cx, node: Option<&Node>, key: &str) -> Option<Canary> {
    let mut out = Canary::default();
    let Some(node) = node else {
        return Some(out);
    };
    let map = cx.mapping(node, key, "`canary` settings (a mapping)", CANARY_KEYS)?;
    let k = |n: &str| join_key(key, n);
    let mut ok = true;
    if let Some(n) = map.get_node("steps") {
        match canary_steps(cx, n, &k("steps")) {
            Some(s) => out.steps = s,
            None => ok = false,
        }
    }
    if let Some(n) = map.get_node("analysis") {
        match analysis(cx, n, &k("analysis")) {
            Some(a) => out.analysis = a,
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn canary_steps(cx: &mut Cx, node: &Node, key: &str) -> Option<Vec<CanaryStep>> {
    let Some(items) = node.as_sequence() else {
        cx.wrong_type(node, key, "a list of `{ weight, pause }` steps");
        return None;
    };
    if items.is_empty() {
        cx.error_hint(
            start(node),
            key,
            "canary `steps` is empty",
            "add steps, e.g. `- { weight: 10, pause: 5m }`",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut last: Option<u64> = None;
    for (i, item) in items.iter().enumerate() {
        let key = format!("{key}[{i}]");
        let Some(map) = cx.mapping(item, &key, "a `{ weight, pause }` step", CANARY_STEP_KEYS)
        else {
            ok = false;
            continue;
        };
        let weight = match map.get_node("weight") {
            Some(n) => {
                let wk = join_key(&key, "weight");
                match cx.number(n, &wk, 100) {
                    Some(w) if last.is_some_and(|l| w <= l) => {
                        cx.error_hint(
                            pos(n),
                            &wk,
                            format!(
                                "canary weights must rise: {w} follows {}",
                                last.unwrap_or_default()
                            ),
                            "give each step a higher weight than the one before",
                        );
                        last = Some(w);
                        None
                    }
                    Some(w) => {
                        last = Some(w);
                        Some(w)
                    }
                    None => None,
                }
            }
            None => {
                cx.error_hint(
                    start(item),
                    &key,
                    "the canary step has no `weight`",
                    "add the percent of requests for the new release, e.g. `weight: 10`",
                );
                None
            }
        };
        let pause = match map.get_node("pause") {
            Some(n) => duration(cx, n, &join_key(&key, "pause"), true),
            None => Some(std::time::Duration::ZERO),
        };
        match (weight, pause) {
            (Some(w), Some(p)) => out.push(CanaryStep {
                weight: u8::try_from(w).unwrap_or(100),
                pause: p,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn analysis(cx: &mut Cx, node: &Node, key: &str) -> Option<Analysis> {
    let map = cx.mapping(node, key, "canary `analysis` (a mapping)", ANALYSIS_KEYS)?;
    let k = |n: &str| join_key(key, n);
    let mut out = Analysis::default();
    let mut ok = true;
    if let Some(n) = map.get_node("max_error_rate") {
        match error_rate(cx, n, &k("max_error_rate")) {
            Some(r) => out.max_error_rate = r,
            None => ok = false,
        }
    }
    if let Some(n) = map.get_node("max_p95_latency") {
        match duration(cx, n, &k("max_p95_latency"), false) {
            Some(d) => out.max_p95_latency = Some(d),
            None => ok = false,
        }
    }
    if let Some(n) = map.get_node("min_requests") {
        match cx.number(n, &k("min_requests"), 1_000_000_000) {
            Some(m) => out.min_requests = m,
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A fraction from 0 to 1 (`0.05`) or a percentage string (`"5%"`).
fn error_rate(cx: &mut Cx, node: &Node, key: &str) -> Option<f64> {
    const HINT: &str = "write a fraction from 0 to 1 or a percentage, e.g. `0.05` or `\"5%\"`";
    let Node::Scalar(s) = node else {
        cx.wrong_type(node, key, "a fraction or a percentage");
        return None;
    };
    let text = s.as_str().trim();
    let value = match (scalar_kind(s), text.strip_suffix('%')) {
        (ScalarKind::Number, _) => s.as_f64(),
        (ScalarKind::String, Some(p)) => p.trim().parse::<f64>().ok().map(|p| p / 100.0),
        _ => None,
    };
    match value {
        Some(v) if (0.0..=1.0).contains(&v) => Some(v),
        Some(_) => {
            let hint = if text.ends_with('%') {
                HINT.to_string()
            } else {
                format!("{HINT}; for percent, write `\"{text}%\"`")
            };
            cx.error_hint(
                start(node),
                key,
                format!("error rate {text} is not between 0 and 1 (0% and 100%)"),
                hint,
            );
            None
        }
        None => {
            cx.error_hint(
                start(node),
                key,
                format!("expected a fraction or a percentage, found \"{text}\""),
                HINT,
            );
            None
        }
    }
}
