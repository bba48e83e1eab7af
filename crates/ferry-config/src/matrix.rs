//! `matrix`: reading the axes and include/exclude lists, expanding them into
//! combinations, and the instance ids the engine runs.

use crate::cx::{Cx, ScalarKind, pos, scalar_kind, suggest};
use crate::model::{JobInstance, Matrix, MatrixValue, Pipeline};
use crate::yaml::join_key;
use indexmap::IndexMap;
use marked_yaml::Node;
use std::collections::HashMap;

/// Where a combination comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The cross product of the axes.
    Product,
    /// `include[i]`.
    Include(usize),
}

/// The combinations of a matrix: the cross product of the axes minus those matching an
/// `exclude` entry, then every `include` entry.
pub(crate) fn combinations(m: &Matrix) -> Vec<(IndexMap<String, MatrixValue>, Origin)> {
    let mut product: Vec<IndexMap<String, MatrixValue>> = Vec::new();
    if !m.axes.is_empty() {
        product.push(IndexMap::new());
        for (axis, values) in &m.axes {
            product = product
                .into_iter()
                .flat_map(|combo| {
                    values.iter().map(move |v| {
                        let mut c = combo.clone();
                        c.insert(axis.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
    }
    let excluded = |c: &IndexMap<String, MatrixValue>| {
        m.exclude
            .iter()
            .any(|ex| ex.iter().all(|(k, v)| c.get(k) == Some(v)))
    };
    product
        .into_iter()
        .filter(|c| !excluded(c))
        .map(|c| (c, Origin::Product))
        .chain(
            m.include
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), Origin::Include(i))),
        )
        .collect()
}

/// `job (a=1, b=x)`, or `job` for no values.
pub(crate) fn instance_id(job: &str, combo: &IndexMap<String, MatrixValue>) -> String {
    if combo.is_empty() {
        return job.to_string();
    }
    let pairs: Vec<String> = combo.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{job} ({})", pairs.join(", "))
}

/// A matrix combination: key → value, in order.
type Combo = IndexMap<String, MatrixValue>;

/// Expands every job into its instances, in file order.
pub(crate) fn instances(p: &Pipeline) -> Vec<JobInstance> {
    let per_job: IndexMap<&str, Vec<(String, Combo)>> = p
        .jobs
        .iter()
        .map(|(id, job)| {
            let list = match &job.matrix {
                Some(m) => combinations(m)
                    .into_iter()
                    .map(|(c, _)| (instance_id(id, &c), c))
                    .collect(),
                None => vec![(id.clone(), IndexMap::new())],
            };
            (id.as_str(), list)
        })
        .collect();
    let mut out = Vec::new();
    for (id, job) in &p.jobs {
        let needs: Vec<String> = job
            .needs
            .iter()
            .flat_map(|n| {
                per_job
                    .get(n.as_str())
                    .into_iter()
                    .flatten()
                    .map(|(iid, _)| iid.clone())
            })
            .collect();
        for (iid, combo) in per_job.get(id.as_str()).into_iter().flatten() {
            out.push(JobInstance {
                id: iid.clone(),
                job: id.clone(),
                matrix: combo.clone(),
                needs: needs.clone(),
            });
        }
    }
    out
}

fn value(cx: &mut Cx, node: &Node, key: &str) -> Option<MatrixValue> {
    let s = match node {
        Node::Scalar(s) => s,
        _ => {
            cx.wrong_type(node, key, "a string, number or boolean");
            return None;
        }
    };
    Some(match scalar_kind(s) {
        ScalarKind::Null => {
            cx.wrong_type(node, key, "a string, number or boolean");
            return None;
        }
        ScalarKind::Bool(b) => MatrixValue::Bool(b),
        ScalarKind::String => MatrixValue::String(s.as_str().to_string()),
        ScalarKind::Number => match (s.as_i64(), s.as_f64()) {
            (Some(i), _) => MatrixValue::Int(i),
            // `1.80` would print as `1.8`: keep what was written.
            (None, Some(f)) if f.to_string() == s.as_str() => MatrixValue::Float(f),
            _ => MatrixValue::String(s.as_str().to_string()),
        },
    })
}

fn combo_list(
    cx: &mut Cx,
    node: &Node,
    key: &str,
) -> Vec<(IndexMap<String, MatrixValue>, (usize, usize))> {
    let Some(items) = node.as_sequence() else {
        cx.wrong_type(node, key, "a list of mappings of matrix keys to values");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let k = format!("{key}[{i}]");
        let Some(map) = item.as_mapping() else {
            cx.wrong_type(item, &k, "a mapping of matrix keys to values");
            continue;
        };
        if map.is_empty() {
            cx.error(pos(item), &k, "the entry is empty");
            continue;
        }
        let mut combo = IndexMap::new();
        for (name, v) in map.iter() {
            if let Some(v) = value(cx, v, &join_key(&k, name.as_str())) {
                combo.insert(name.as_str().to_string(), v);
            }
        }
        out.push((combo, pos(item)));
    }
    out
}

/// Reads `matrix` and checks that it expands into distinct, non-zero instances.
pub(crate) fn matrix(cx: &mut Cx, job: &str, node: &Node, key: &str) -> Option<Matrix> {
    let Some(map) = node.as_mapping() else {
        cx.wrong_type(node, key, "a mapping of axes to lists of values");
        return None;
    };
    let mut m = Matrix::default();
    let mut include_pos = Vec::new();
    let mut axis_pos = HashMap::new();
    let mut empty_axis = false;
    for (name, v) in map.iter() {
        let k = join_key(key, name.as_str());
        match name.as_str() {
            "include" => {
                let list = combo_list(cx, v, &k);
                include_pos = list.iter().map(|(_, p)| *p).collect();
                m.include = list.into_iter().map(|(c, _)| c).collect();
            }
            "exclude" => m.exclude = combo_list(cx, v, &k).into_iter().map(|(c, _)| c).collect(),
            axis => {
                let Some(items) = v.as_sequence() else {
                    cx.wrong_type(v, &k, "a list of values");
                    continue;
                };
                if items.is_empty() {
                    empty_axis = true;
                    cx.error_hint(
                        pos(v),
                        &k,
                        format!("matrix axis `{axis}` has no values"),
                        "give at least one value, or remove the axis",
                    );
                    continue;
                }
                let values = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| value(cx, n, &format!("{k}[{i}]")))
                    .collect();
                axis_pos.insert(axis.to_string(), pos(v));
                m.axes.insert(axis.to_string(), values);
            }
        }
    }
    for (i, ex) in m.exclude.iter().enumerate() {
        for name in ex.keys() {
            if !m.axes.contains_key(name) {
                let hint = match suggest(name, m.axes.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "`exclude` entries may only use the matrix axes".to_string(),
                };
                cx.error_hint(
                    pos(node),
                    &format!("{key}.exclude[{i}]"),
                    format!("`{name}` is not a matrix axis"),
                    hint,
                );
            }
        }
    }
    let combos = combinations(&m);
    if combos.is_empty() {
        if empty_axis {
            return None;
        }
        cx.error_hint(
            pos(node),
            key,
            format!("the matrix of job \"{job}\" has no combinations"),
            "give each axis at least one value, or check that `exclude` does not remove every combination",
        );
        return None;
    }
    let mut seen: HashMap<String, Origin> = HashMap::new();
    for (combo, origin) in &combos {
        let id = instance_id(job, combo);
        if let Some(first) = seen.get(&id) {
            let (at, k, hint) = match origin {
                Origin::Include(i) => (
                    include_pos.get(*i).copied().unwrap_or(pos(node)),
                    format!("{key}.include[{i}]"),
                    match first {
                        Origin::Product => {
                            "this `include` entry repeats a combination of the axes; remove it"
                                .to_string()
                        }
                        Origin::Include(j) => {
                            format!("this `include` entry repeats `include[{j}]`; remove one")
                        }
                    },
                ),
                Origin::Product => {
                    let axis = combo
                        .keys()
                        .find(|a| {
                            m.axes.get(*a).is_some_and(|vs| {
                                vs.iter().filter(|v| Some(*v) == combo.get(*a)).count() > 1
                            })
                        })
                        .cloned()
                        .unwrap_or_default();
                    (
                        axis_pos.get(&axis).copied().unwrap_or(pos(node)),
                        join_key(key, &axis),
                        format!("axis `{axis}` lists the same value twice; remove one"),
                    )
                }
            };
            cx.error_hint(
                at,
                &k,
                format!("matrix instance \"{id}\" is produced twice"),
                hint,
            );
        } else {
            seen.insert(id, *origin);
        }
    }
    Some(m)
}
