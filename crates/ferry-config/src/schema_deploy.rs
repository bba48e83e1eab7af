//! The wire format of the `deploy:` section, for the JSON schema (see [`crate::schema`]).

#![allow(dead_code)]

use crate::schema::{Approval, Scalar, Step};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

/// The service this repository deploys: how it runs and where (`environments`).
/// Give exactly one of `command` and `image`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["command"]}, {"required": ["image"]}]))]
pub(crate) struct Deploy {
    /// The service's name (letters, digits, `-` and `_`).
    name: String,
    /// Run the service as a process with this command line.
    command: Option<String>,
    /// Run the service as a container of this image.
    image: Option<String>,
    /// The port the service listens on (1–65535).
    #[schemars(range(min = 1, max = 65535))]
    port: Option<u16>,
    /// Environment variables of the service; values may hold templates such as
    /// `${{ secrets.DATABASE_URL }}`.
    env: Option<IndexMap<String, Scalar>>,
    /// When a new instance counts as ready.
    healthcheck: Option<Healthcheck>,
    /// Steps run against a ready release before traffic moves to it.
    smoke: Option<Vec<Step>>,
    /// Steps run before the switch, e.g. database migrations.
    migrate: Option<Vec<Step>>,
    /// The environments, in promotion order, e.g. `staging` then `production`.
    environments: IndexMap<String, Option<Environment>>,
}

/// An HTTP health check.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Healthcheck {
    /// The path that answers 2xx when the service is ready, e.g. `/healthz`.
    path: String,
    /// Time between probes, e.g. `2s` (default 2s).
    interval: Option<String>,
    /// Limit of one probe, e.g. `5s` (default 5s).
    timeout: Option<String>,
    /// Failed probes in a row before an instance counts as unhealthy (default 3).
    #[schemars(range(min = 1, max = 100))]
    retries: Option<u32>,
}

/// One environment.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Environment {
    /// Where releases run (default `process` for a `command`, `docker` for an `image`).
    target: Option<TargetName>,
    /// Remote machines as `user@host[:port]` (required for `ssh`).
    hosts: Option<StringOrList>,
    /// What the proxy sends to this environment.
    routes: Option<Vec<Route>>,
    /// How traffic moves to a new release (default `rolling`).
    strategy: Option<Strategy>,
    /// A person must approve deploys to this environment.
    approval: Option<Approval>,
    /// Environment variables over the service's `env`.
    env: Option<IndexMap<String, Scalar>>,
}

/// One string or a list of strings.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

/// Where releases run.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum TargetName {
    Process,
    Docker,
    Ssh,
}

/// A route: requests for `host` under `path`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Route {
    /// The host name, e.g. `shop.example.com`.
    host: String,
    /// A path prefix starting with `/` (default `/`).
    path: Option<String>,
}

/// A strategy name (with its defaults), or a mapping of one name to its settings.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum Strategy {
    Name(StrategyName),
    Full(StrategyMap),
}

/// The strategies.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
enum StrategyName {
    Rolling,
    BlueGreen,
    Canary,
    Recreate,
}

/// One strategy with settings; give exactly one key.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
struct StrategyMap {
    /// Replace instances a few at a time.
    rolling: Option<Rolling>,
    /// Start the new release beside the old one, then switch at once.
    #[serde(rename = "blue-green")]
    blue_green: Option<BlueGreen>,
    /// Move traffic in weighted steps while watching errors and latency.
    canary: Option<Canary>,
    /// Stop the old release, then start the new one (has no settings).
    recreate: Option<()>,
}

/// `rolling` settings.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Rolling {
    /// Instances to run (default 1).
    #[schemars(range(min = 1, max = 1000))]
    instances: Option<u32>,
    /// Extra instances allowed during a deploy (default 1).
    max_surge: Option<u32>,
    /// Instances that may be down during a deploy (default 0).
    max_unavailable: Option<u32>,
}

/// `blue-green` settings.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct BlueGreen {
    /// Steps run against the new release before the switch.
    verify: Option<Vec<Step>>,
    /// Switch without waiting for a person (default true).
    auto_promote: Option<bool>,
    /// How long the old release stays warm for an instant rollback (default `10m`).
    keep_old_for: Option<String>,
}

/// `canary` settings.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Canary {
    /// Weighted steps; weights rise (default 10% then 50%, 5m each).
    steps: Option<Vec<CanaryStep>>,
    /// Limits checked during each pause; exceeding one rolls back.
    analysis: Option<Analysis>,
}

/// One canary step.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CanaryStep {
    /// Percent of requests sent to the new release (0–100).
    #[schemars(range(max = 100))]
    weight: u8,
    /// How long to watch before the next step, e.g. `5m`.
    pause: Option<String>,
}

/// Canary analysis.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Analysis {
    /// Highest share of 5xx answers: a fraction (`0.01`) or a percentage (`"1%"`).
    max_error_rate: Option<ErrorRate>,
    /// Highest 95th-percentile latency, e.g. `300ms`.
    max_p95_latency: Option<String>,
    /// Requests needed before a step's analysis counts (default 100).
    min_requests: Option<u64>,
}

/// A fraction from 0 to 1, or a percentage string such as `"1%"`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum ErrorRate {
    Fraction(#[schemars(range(min = 0.0, max = 1.0))] f64),
    Percent(#[schemars(regex(pattern = r"^\s*[0-9]+(\.[0-9]+)?\s*%$"))] String),
}
