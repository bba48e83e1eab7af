//! The wire format of `ferry.yml` as plain structs, for the JSON schema editors use
//! (`ferry schema`).
//!
//! The structs mirror the keys the tree walk in [`crate::convert`] and [`crate::job`]
//! accepts; a test checks that both agree, key for key. The walk itself reads the
//! YAML tree directly rather than these structs, because serde stops at the first
//! error and the walk must report every one with its position.

#![allow(dead_code)]

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

/// A Ferry pipeline: what starts it (`on`) and the jobs it runs.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ferry.yml")]
struct File {
    /// The pipeline's name; defaults to the repository directory's name.
    name: Option<String>,
    /// What starts a run: `push` (with filters), `schedule` (cron) and `manual`.
    /// Without `on`, every push runs the pipeline, and runs may be started by hand.
    on: Option<On>,
    /// Environment variables for every job; values may hold `${{ … }}` templates.
    env: Option<IndexMap<String, Scalar>>,
    /// The jobs, keyed by job id (letters, digits, `-` and `_`).
    jobs: IndexMap<String, Job>,
    /// The service this repository deploys and its environments (see `docs/deploy.md`).
    deploy: Option<crate::schema_deploy::Deploy>,
}

/// A YAML scalar.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Scalar {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// One string or a list of strings.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

/// `on`: a trigger name, a list of them, or a mapping with filters.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum On {
    One(TriggerName),
    Many(Vec<TriggerName>),
    Full(OnMap),
}

/// A trigger without settings.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum TriggerName {
    Push,
    Manual,
}

/// The triggers of a pipeline.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OnMap {
    /// Run on pushes; empty (`push:`) means every push.
    push: Option<PushSpec>,
    /// Run on cron schedules (UTC).
    schedule: Option<Vec<Schedule>>,
    /// Allow starting runs by hand from the UI, API or CLI.
    manual: Option<bool>,
}

/// `on.push`: nothing (every push), `true`/`false`, or filters.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum PushSpec {
    Any(()),
    Enabled(bool),
    Filters(Push),
}

/// `on.push`: glob filters; an absent list means "any".
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Push {
    /// Branch globs, e.g. `main`, `release/**`.
    branches: Option<StringOrList>,
    /// Tag globs, e.g. `v*`.
    tags: Option<StringOrList>,
    /// Changed-path globs, e.g. `src/**`; at least one changed file must match.
    paths: Option<StringOrList>,
}

/// One cron schedule.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum Schedule {
    Entry(CronEntry),
    Cron(String),
}

/// `{ cron: "0 3 * * *" }`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CronEntry {
    /// A cron expression: minute hour day-of-month month day-of-week.
    cron: String,
}

/// A job: steps run in order on one executor.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Job {
    /// Jobs that must finish first.
    needs: Option<StringOrList>,
    /// The commands, in order.
    steps: Vec<Step>,
    /// Environment variables for the job's steps; values may hold templates.
    env: Option<IndexMap<String, Scalar>>,
    /// A condition (CEL); the job is skipped when false.
    #[serde(rename = "if")]
    condition: Option<Condition>,
    /// Run the steps in a container of this image.
    image: Option<String>,
    /// Sibling containers (databases, caches), reachable by their name.
    services: Option<IndexMap<String, Service>>,
    /// Files handed to the jobs that need this one.
    artifacts: Option<Artifacts>,
    /// Directories restored before and saved after the job.
    cache: Option<Cache>,
    /// Limit for each attempt, e.g. `10m`, `90s`, `1h 30m`.
    timeout: Option<String>,
    /// How many more attempts after a failure (0 to 100).
    #[schemars(range(max = 100))]
    retry: Option<u32>,
    /// A failure of this job does not fail the run.
    allow_failure: Option<bool>,
    /// Run the job once per combination of values.
    matrix: Option<Matrix>,
    /// A person must approve before the job starts.
    approval: Option<Approval>,
    /// At most one run of a group at a time.
    concurrency: Option<Concurrency>,
    /// Labels an agent must carry to run the job.
    #[serde(rename = "runs-on")]
    runs_on: Option<StringOrList>,
    /// Directory the steps run in, relative to the workspace.
    #[serde(rename = "working-directory")]
    working_directory: Option<String>,
    /// Default shell of the steps: `bash`, `sh`, or a command with `{0}`.
    shell: Option<String>,
    /// After its steps, deploy to this environment of the `deploy` section.
    deploy: Option<String>,
}

/// An `if:` condition: a CEL expression, or `true`/`false`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum Condition {
    Expression(String),
    Constant(bool),
}

/// A step: a command, or a mapping with `run`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Step {
    Run(String),
    Full(StepMap),
}

/// A step with settings.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepMap {
    /// Shown in output instead of the command.
    name: Option<String>,
    /// The script; may hold templates.
    run: String,
    /// Environment variables for this step.
    env: Option<IndexMap<String, Scalar>>,
    /// A condition (CEL); the step is skipped when false.
    #[serde(rename = "if")]
    condition: Option<Condition>,
    /// `bash`, `sh`, or a command with `{0}` (the script file), e.g. `python3 {0}`.
    shell: Option<String>,
    /// Directory the step runs in, relative to the job's.
    #[serde(rename = "working-directory")]
    working_directory: Option<String>,
    /// Limit for this step, e.g. `5m`.
    timeout: Option<String>,
    /// A failure of this step does not fail the job.
    allow_failure: Option<bool>,
}

/// A service container.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Service {
    /// The image, e.g. `postgres:16`.
    image: String,
    /// Environment variables of the service.
    env: Option<IndexMap<String, Scalar>>,
    /// Overrides the image's command.
    command: Option<Vec<String>>,
    /// TCP ports to wait for before the steps start.
    ports: Option<Vec<u16>>,
    /// A command run in the service until it exits 0.
    healthcheck: Option<String>,
}

/// `artifacts`: a list of paths, or `{ paths: [...] }`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum Artifacts {
    Paths(StringOrList),
    Full(ArtifactsMap),
}

/// `artifacts` as a mapping.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ArtifactsMap {
    /// Paths or globs relative to the workspace.
    paths: StringOrList,
}

/// `cache`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Cache {
    /// The cache key, e.g. `cargo-${{ hashFiles('Cargo.lock') }}`.
    key: String,
    /// Paths to cache, relative to the workspace.
    paths: StringOrList,
}

/// `matrix`: axes (lists of values) plus `include` and `exclude`.
#[derive(Deserialize, JsonSchema)]
struct Matrix {
    /// Extra combinations, added after the cross product.
    include: Option<Vec<IndexMap<String, Scalar>>>,
    /// Partial combinations removed from the cross product.
    exclude: Option<Vec<IndexMap<String, Scalar>>>,
    /// The axes.
    #[serde(flatten)]
    axes: IndexMap<String, Vec<Scalar>>,
}

/// `approval`: `true`, or `{ message }`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Approval {
    Required(bool),
    Full(ApprovalMap),
}

/// `approval` as a mapping.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalMap {
    /// Shown to the approver.
    message: Option<String>,
}

/// `concurrency`: a group name, or `{ group, cancel-in-progress }`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum Concurrency {
    Group(String),
    Full(ConcurrencyMap),
}

/// `concurrency` as a mapping.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConcurrencyMap {
    /// The group name; may hold templates, e.g. `deploy-${{ branch }}`.
    group: String,
    /// Cancel the running job of the group when a new one starts.
    #[serde(rename = "cancel-in-progress")]
    cancel_in_progress: Option<bool>,
}

/// The JSON schema (draft 2020-12) of `ferry.yml`.
pub(crate) fn schema() -> serde_json::Value {
    let mut value = schemars::schema_for!(File).to_value();
    drop_null_from_properties(&mut value);
    value
}

/// schemars lets every `Option` field be `null`; in `ferry.yml` an absent key is the
/// way to leave a setting out and `null` is rejected for most keys, so the schema
/// should not offer it. Where `null` is meaningful (`push:`) the wire type says so
/// itself, in a definition rather than on the property.
fn drop_null_from_properties(value: &mut serde_json::Value) {
    use serde_json::Value;
    let Value::Object(map) = value else {
        if let Value::Array(items) = value {
            items.iter_mut().for_each(drop_null_from_properties);
        }
        return;
    };
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for prop in props.values_mut() {
            let Value::Object(p) = prop else { continue };
            if let Some(Value::Array(types)) = p.get("type") {
                let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                let new = match rest.as_slice() {
                    [one] => one.clone(),
                    _ => Value::Array(rest),
                };
                p.insert("type".into(), new);
            }
            let is_null = |v: &Value| v.get("type").is_some_and(|t| t == "null");
            if let Some(Value::Array(any)) = p.get("anyOf")
                && any.len() == 2
                && let Some(other) = any.iter().find(|v| !is_null(v)).cloned()
                && any.iter().any(is_null)
                && let Value::Object(other) = other
            {
                p.remove("anyOf");
                p.extend(other);
            }
        }
    }
    map.values_mut().for_each(drop_null_from_properties);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys_of(schema: &serde_json::Value, def: Option<&str>) -> BTreeSet<String> {
        let node = match def {
            Some(d) => &schema["$defs"][d],
            None => schema,
        };
        node["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn schema_keys_match_the_keys_the_parser_accepts() {
        let s = schema();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(keys_of(&s, None), set(crate::convert::TOP_KEYS));
        assert_eq!(keys_of(&s, Some("OnMap")), set(crate::convert::ON_KEYS));
        assert_eq!(keys_of(&s, Some("Push")), set(crate::convert::PUSH_KEYS));
        assert_eq!(
            keys_of(&s, Some("CronEntry")),
            set(crate::convert::SCHEDULE_KEYS)
        );
        assert_eq!(keys_of(&s, Some("Job")), set(crate::job::JOB_KEYS));
        assert_eq!(keys_of(&s, Some("StepMap")), set(crate::job::STEP_KEYS));
        assert_eq!(keys_of(&s, Some("Service")), set(crate::job::SERVICE_KEYS));
        assert_eq!(
            keys_of(&s, Some("ArtifactsMap")),
            set(crate::job::ARTIFACTS_KEYS)
        );
        assert_eq!(keys_of(&s, Some("Cache")), set(crate::job::CACHE_KEYS));
        assert_eq!(
            keys_of(&s, Some("ApprovalMap")),
            set(crate::job::APPROVAL_KEYS)
        );
        assert_eq!(
            keys_of(&s, Some("ConcurrencyMap")),
            set(crate::job::CONCURRENCY_KEYS)
        );
        assert_eq!(s["$defs"]["Job"]["additionalProperties"], false);
        assert_eq!(keys_of(&s, Some("Deploy")), set(crate::deploy::DEPLOY_KEYS));
        assert_eq!(
            keys_of(&s, Some("Healthcheck")),
            set(crate::deploy::HEALTHCHECK_KEYS)
        );
        assert_eq!(
            keys_of(&s, Some("Environment")),
            set(crate::deploy::ENVIRONMENT_KEYS)
        );
        assert_eq!(keys_of(&s, Some("Route")), set(crate::deploy::ROUTE_KEYS));
        assert_eq!(
            keys_of(&s, Some("StrategyMap")),
            set(crate::strategy::STRATEGIES)
        );
        assert_eq!(
            keys_of(&s, Some("Rolling")),
            set(crate::strategy::ROLLING_KEYS)
        );
        assert_eq!(
            keys_of(&s, Some("BlueGreen")),
            set(crate::strategy::BLUE_GREEN_KEYS)
        );
        assert_eq!(
            keys_of(&s, Some("Canary")),
            set(crate::strategy::CANARY_KEYS)
        );
        assert_eq!(
            keys_of(&s, Some("CanaryStep")),
            set(crate::strategy::CANARY_STEP_KEYS)
        );
        assert_eq!(
            keys_of(&s, Some("Analysis")),
            set(crate::strategy::ANALYSIS_KEYS)
        );
        let names: Vec<&str> = s["$defs"]["StrategyName"]["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, crate::strategy::STRATEGIES);
    }
}
