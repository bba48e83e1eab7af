//! The tree walk of `jobs`: each job, its steps, services and other settings.

use crate::convert::SeenRefs;
use crate::cx::{At, Cx, ScalarKind, pos, scalar_kind, suggest};
use crate::model::*;
use crate::yaml::join_key;
use indexmap::IndexMap;
use marked_yaml::Node;

/// Keys of a job.
pub(crate) const JOB_KEYS: &[&str] = &[
    "needs",
    "steps",
    "env",
    "if",
    "image",
    "services",
    "artifacts",
    "cache",
    "timeout",
    "retry",
    "allow_failure",
    "matrix",
    "approval",
    "concurrency",
    "runs-on",
    "working-directory",
    "shell",
    "deploy",
];
/// Keys of a step.
pub(crate) const STEP_KEYS: &[&str] = &[
    "name",
    "run",
    "env",
    "if",
    "shell",
    "working-directory",
    "timeout",
    "allow_failure",
];
/// Keys of a service.
pub(crate) const SERVICE_KEYS: &[&str] = &["image", "env", "command", "ports", "healthcheck"];
/// Keys of `artifacts`.
pub(crate) const ARTIFACTS_KEYS: &[&str] = &["paths"];
/// Keys of `cache`.
pub(crate) const CACHE_KEYS: &[&str] = &["key", "paths"];
/// Keys of `approval`.
pub(crate) const APPROVAL_KEYS: &[&str] = &["message"];
/// Keys of `concurrency`.
pub(crate) const CONCURRENCY_KEYS: &[&str] = &["group", "cancel-in-progress"];

/// Where a job's parts were written, for the checks that run after the walk.
pub(crate) struct JobSpans {
    /// Each `needs` entry.
    pub needs: Vec<At<String>>,
    /// `deploy`, checked against the `deploy` section's environments.
    pub deploy: Option<At<String>>,
}

/// Reads `jobs`.
pub(crate) fn jobs(
    cx: &mut Cx,
    node: &Node,
) -> (IndexMap<String, Job>, IndexMap<String, JobSpans>) {
    let mut jobs = IndexMap::new();
    let mut spans = IndexMap::new();
    let Some(map) = node.as_mapping() else {
        if matches!(node.as_scalar().map(scalar_kind), Some(ScalarKind::Null)) {
            cx.error_hint(
                pos(node),
                "jobs",
                "`jobs` is empty",
                "add at least one job with `steps:`",
            );
        } else {
            cx.wrong_type(node, "jobs", "a mapping of job ids to jobs");
        }
        return (jobs, spans);
    };
    if map.is_empty() {
        cx.error_hint(
            pos(node),
            "jobs",
            "`jobs` is empty",
            "add at least one job with `steps:`",
        );
    }
    for (k, v) in map.iter() {
        let id = k.as_str().to_string();
        let key = join_key("jobs", &id);
        let at = crate::cx::key_pos(k);
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            cx.error_hint(
                at,
                &key,
                format!("invalid job id \"{id}\""),
                "use letters, digits, `-` and `_`, e.g. `build` or `test-linux`",
            );
        }
        if let Some((job, span)) = job(cx, &id, v, &key, at) {
            spans.insert(id.clone(), span);
            jobs.insert(id, job);
        }
    }
    (jobs, spans)
}

fn job(
    cx: &mut Cx,
    id: &str,
    node: &Node,
    key: &str,
    at: (usize, usize),
) -> Option<(Job, JobSpans)> {
    let map = cx.mapping(node, key, "a job (a mapping with `steps`)", JOB_KEYS)?;
    let k = |name: &str| join_key(key, name);
    let mut seen = Vec::new();
    let needs = map
        .get_node("needs")
        .and_then(|n| cx.string_list(n, &k("needs")))
        .unwrap_or_default();
    let steps = match map.get_node("steps") {
        Some(n) => steps(cx, n, &k("steps"), &mut seen),
        None => {
            cx.error_hint(
                at,
                key,
                format!("job \"{id}\" has no `steps`"),
                "add `steps:` with at least one `run:` command",
            );
            Vec::new()
        }
    };
    let env = map
        .get_node("env")
        .map(|n| cx.env_templates(n, &k("env"), &mut seen))
        .unwrap_or_default();
    let condition = map
        .get_node("if")
        .and_then(|n| cx.condition_seen(n, &k("if"), &mut seen));
    let image = map
        .get_node("image")
        .and_then(|n| cx.string(n, &k("image")))
        .map(|t| {
            cx.template_seen(&t, &mut seen);
            t.value
        });
    let services = map
        .get_node("services")
        .map(|n| crate::settings::services(cx, n, &k("services"), &mut seen))
        .unwrap_or_default();
    let artifacts = map
        .get_node("artifacts")
        .and_then(|n| crate::settings::artifacts(cx, n, &k("artifacts")));
    let cache = map
        .get_node("cache")
        .and_then(|n| crate::settings::cache(cx, n, &k("cache"), &mut seen));
    let timeout = map
        .get_node("timeout")
        .and_then(|n| cx.duration(n, &k("timeout")));
    let retry = map
        .get_node("retry")
        .and_then(|n| cx.number(n, &k("retry"), 100))
        .unwrap_or(0) as u32;
    let allow_failure = map
        .get_node("allow_failure")
        .and_then(|n| cx.boolean(n, &k("allow_failure")))
        .unwrap_or(false);
    let matrix = map
        .get_node("matrix")
        .and_then(|n| crate::matrix::matrix(cx, id, n, &k("matrix")));
    let approval = map
        .get_node("approval")
        .and_then(|n| crate::settings::approval(cx, n, &k("approval")));
    let concurrency = map
        .get_node("concurrency")
        .and_then(|n| crate::settings::concurrency(cx, n, &k("concurrency"), &mut seen));
    let runs_on = map
        .get_node("runs-on")
        .and_then(|n| cx.string_list(n, &k("runs-on")))
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.value)
        .collect();
    let working_directory = map
        .get_node("working-directory")
        .and_then(|n| cx.string(n, &k("working-directory")))
        .map(|t| t.value);
    let shell = map
        .get_node("shell")
        .and_then(|n| shell(cx, n, &k("shell")));
    let deploy = map
        .get_node("deploy")
        .and_then(|n| cx.string(n, &k("deploy")));
    let job = Job {
        id: id.to_string(),
        needs: needs.iter().map(|n| n.value.clone()).collect(),
        steps,
        env,
        condition,
        image,
        services,
        artifacts,
        cache,
        timeout,
        retry,
        allow_failure,
        matrix,
        approval,
        concurrency,
        runs_on,
        working_directory,
        shell,
        deploy: deploy.as_ref().map(|d| d.value.clone()),
    };
    check_refs(cx, &job, &seen);
    Some((job, JobSpans { needs, deploy }))
}

/// `matrix.X` must name a matrix key and `needs.X` a needed job.
fn check_refs(cx: &mut Cx, job: &Job, seen: &[SeenRefs]) {
    let mut matrix_keys: Vec<&str> = Vec::new();
    if let Some(m) = &job.matrix {
        matrix_keys.extend(m.axes.keys().map(String::as_str));
        for inc in &m.include {
            matrix_keys.extend(inc.keys().map(String::as_str));
        }
    }
    for s in seen {
        for axis in &s.refs.matrix {
            if matrix_keys.contains(&axis.as_str()) {
                continue;
            }
            let (message, hint) = if job.matrix.is_none() {
                (
                    format!(
                        "`matrix.{axis}` is used but job \"{}\" has no `matrix`",
                        job.id
                    ),
                    "add a `matrix:` to the job, or remove the reference".to_string(),
                )
            } else {
                (
                    format!("`matrix.{axis}` is not a key of the job's matrix"),
                    match suggest(axis, matrix_keys.iter().copied()) {
                        Some(x) => format!("did you mean `matrix.{x}`?"),
                        None => format!("the keys are {}", crate::cx::quote_list(&matrix_keys)),
                    },
                )
            };
            cx.error_hint(s.pos, &s.key, message, hint);
        }
        for need in &s.refs.needs {
            if job.needs.contains(need) {
                continue;
            }
            let hint = match suggest(need, job.needs.iter().map(String::as_str)) {
                Some(x) => format!("did you mean `needs.{x}`?"),
                None => format!("add \"{need}\" to the job's `needs` to read its result"),
            };
            cx.error_hint(
                s.pos,
                &s.key,
                format!(
                    "`needs.{need}` refers to a job that job \"{}\" does not need",
                    job.id
                ),
                hint,
            );
        }
    }
}

pub(crate) fn steps(cx: &mut Cx, node: &Node, key: &str, seen: &mut Vec<SeenRefs>) -> Vec<Step> {
    let Some(items) = node.as_sequence() else {
        cx.wrong_type(node, key, "a list of steps");
        return Vec::new();
    };
    if items.is_empty() {
        cx.error_hint(
            pos(node),
            key,
            "`steps` is empty",
            "add at least one step, e.g. `- run: make test`",
        );
    }
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| step(cx, item, &format!("{key}[{i}]"), seen))
        .collect()
}

fn step(cx: &mut Cx, node: &Node, key: &str, seen: &mut Vec<SeenRefs>) -> Option<Step> {
    if node.as_scalar().is_some() {
        let run = cx.text(node, key)?;
        cx.template_seen(&run, seen);
        return Some(Step {
            name: None,
            run: run.value,
            env: IndexMap::new(),
            condition: None,
            shell: None,
            working_directory: None,
            timeout: None,
            allow_failure: false,
        });
    }
    let map = cx.mapping(
        node,
        key,
        "a step (a command or a mapping with `run`)",
        STEP_KEYS,
    )?;
    let k = |name: &str| join_key(key, name);
    let name = map
        .get_node("name")
        .and_then(|n| cx.text(n, &k("name")))
        .map(|t| {
            cx.template_seen(&t, seen);
            t.value
        });
    let run = match map.get_node("run") {
        Some(n) => cx.text(n, &k("run")),
        None => {
            cx.error_hint(
                pos(node),
                key,
                "the step has no `run`",
                "add `run:` with the command to run",
            );
            None
        }
    };
    if let Some(run) = &run {
        cx.template_seen(run, seen);
    }
    let env = map
        .get_node("env")
        .map(|n| cx.env_templates(n, &k("env"), seen))
        .unwrap_or_default();
    let condition = map
        .get_node("if")
        .and_then(|n| cx.condition_seen(n, &k("if"), seen));
    let shell = map
        .get_node("shell")
        .and_then(|n| shell(cx, n, &k("shell")));
    let working_directory = map
        .get_node("working-directory")
        .and_then(|n| cx.string(n, &k("working-directory")))
        .map(|t| t.value);
    let timeout = map
        .get_node("timeout")
        .and_then(|n| cx.duration(n, &k("timeout")));
    let allow_failure = map
        .get_node("allow_failure")
        .and_then(|n| cx.boolean(n, &k("allow_failure")))
        .unwrap_or(false);
    Some(Step {
        name,
        run: run?.value,
        env,
        condition,
        shell,
        working_directory,
        timeout,
        allow_failure,
    })
}

/// `bash`, `sh`, or a command line with `{0}`.
fn shell(cx: &mut Cx, node: &Node, key: &str) -> Option<Shell> {
    let text = cx.string(node, key)?;
    match text.value.trim() {
        "bash" => Some(Shell::Bash),
        "sh" => Some(Shell::Sh),
        other if other.contains("{0}") => Some(Shell::Command(other.to_string())),
        other => {
            cx.error_hint(
                text.pos,
                key,
                format!("shell \"{other}\" has no `{{0}}` for the script file"),
                format!("use `bash`, `sh`, or a command with `{{0}}`, e.g. `{other} {{0}}`"),
            );
            None
        }
    }
}
