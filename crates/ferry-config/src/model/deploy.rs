//! The validated `deploy:` section: the service, how it runs, and its environments.
//!
//! Like the rest of the model these are produced only after every check passed:
//! exactly one of `command` and `image` is set, ports are in 1–65535, canary weights
//! rise and stay within 100, every `ssh` environment has hosts, and every job's
//! `deploy` names an environment here.

use super::{Approval, Step};
use indexmap::IndexMap;
use std::time::Duration;

/// The `deploy:` section.
#[derive(Debug, Clone)]
pub struct Deploy {
    /// `name`: the service's name (letters, digits, `-` and `_`).
    pub name: String,
    /// How the service runs: `command` or `image`.
    pub run: Run,
    /// `port`: the port the service listens on (given to it as `PORT`).
    pub port: Option<u16>,
    /// `env`: values may hold `${{ … }}` templates, including `secrets.X`.
    pub env: IndexMap<String, String>,
    /// `healthcheck`: when a new instance counts as ready.
    pub healthcheck: Option<Healthcheck>,
    /// `smoke`: steps run against a ready release before traffic moves to it.
    pub smoke: Vec<Step>,
    /// `migrate`: steps run before the switch.
    pub migrate: Vec<Step>,
    /// `environments`, in promotion order, keyed by name.
    pub environments: IndexMap<String, Environment>,
}

/// How the service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// `command`: a process started with this command line (may hold templates).
    Command(String),
    /// `image`: a container of this image (may hold templates).
    Image(String),
}

/// `healthcheck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// `path`: the HTTP path that must answer 2xx, e.g. `/healthz`.
    pub path: String,
    /// `interval` between probes (default 2s).
    pub interval: Duration,
    /// `timeout` of one probe (default 5s).
    pub timeout: Duration,
    /// `retries`: failed probes in a row before the instance counts as unhealthy
    /// (default 3).
    pub retries: u32,
}

/// One environment (`environments.<name>`).
#[derive(Debug, Clone)]
pub struct Environment {
    /// The environment's name (its key).
    pub name: String,
    /// `target`: where the release runs; defaults to `process` for a `command` and
    /// `docker` for an `image`.
    pub target: Target,
    /// `hosts`: remote machines (`ssh`, or `docker` over SSH); empty means local.
    pub hosts: Vec<Host>,
    /// `routes`: what the proxy sends to this environment.
    pub routes: Vec<Route>,
    /// `strategy` (default: `rolling` with its defaults).
    pub strategy: Strategy,
    /// `approval`: a person must approve deploys to this environment.
    pub approval: Option<Approval>,
    /// Per-environment `env`, over the service's `env`.
    pub env: IndexMap<String, String>,
}

/// `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Processes supervised by Ferry.
    Process,
    /// Containers on a Docker engine (local, or on `hosts` over SSH).
    Docker,
    /// Hosts reached over SSH.
    Ssh,
}

/// One `hosts` entry, written `user@host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The user to log in as, when given.
    pub user: Option<String>,
    /// Host name or address (IPv6 without the brackets).
    pub host: String,
    /// SSH port (default 22).
    pub port: u16,
}

/// One `routes` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `host`: the request's host name, e.g. `shop.example.com`.
    pub host: String,
    /// `path`: a path prefix starting with `/` (default `/`).
    pub path: String,
}

/// `strategy`: how traffic moves from the old release to the new one.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Replace instances a few at a time.
    Rolling(Rolling),
    /// Start the new release beside the old one, then switch all traffic at once.
    BlueGreen(BlueGreen),
    /// Move traffic in weighted steps while watching error rate and latency.
    Canary(Canary),
    /// Stop the old release, then start the new one (downtime).
    Recreate,
}

/// `rolling` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rolling {
    /// `instances` to run (default 1).
    pub instances: u32,
    /// `max_surge`: extra instances allowed during a deploy (default 1).
    pub max_surge: u32,
    /// `max_unavailable`: instances that may be down during a deploy (default 0).
    pub max_unavailable: u32,
}

/// `blue-green` settings.
#[derive(Debug, Clone)]
pub struct BlueGreen {
    /// `verify`: steps run against the new release before the switch.
    pub verify: Vec<Step>,
    /// `auto_promote`: switch without waiting for a person (default true).
    pub auto_promote: bool,
    /// `keep_old_for`: how long the old release stays warm for an instant
    /// rollback (default 10m; zero stops it at once).
    pub keep_old_for: Duration,
}

impl PartialEq for BlueGreen {
    /// Steps carry compiled expressions, so compare what a deploy does: the verify
    /// commands, the promotion and the warm period.
    fn eq(&self, other: &Self) -> bool {
        let runs = |b: &BlueGreen| b.verify.iter().map(|s| s.run.clone()).collect::<Vec<_>>();
        runs(self) == runs(other)
            && self.auto_promote == other.auto_promote
            && self.keep_old_for == other.keep_old_for
    }
}

/// `canary` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    /// `steps`: weights rise strictly; after the last step all traffic moves.
    pub steps: Vec<CanaryStep>,
    /// `analysis`: checked during each pause; a failure aborts and rolls back.
    pub analysis: Analysis,
}

/// One canary step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryStep {
    /// `weight`: percent of requests sent to the new release (0–100).
    pub weight: u8,
    /// `pause` before the next step.
    pub pause: Duration,
}

/// Canary `analysis`.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// `max_error_rate`: the highest share of 5xx answers, as a fraction 0–1
    /// (written `0.01` or `"1%"`; default 0.01).
    pub max_error_rate: f64,
    /// `max_p95_latency`: the highest 95th-percentile latency, if checked.
    pub max_p95_latency: Option<Duration>,
    /// `min_requests`: requests the new release must have served before a step's
    /// analysis counts (default 100).
    pub min_requests: u64,
}

impl Default for Healthcheck {
    fn default() -> Self {
        Healthcheck {
            path: "/".into(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            retries: 3,
        }
    }
}

impl Default for Rolling {
    fn default() -> Self {
        Rolling {
            instances: 1,
            max_surge: 1,
            max_unavailable: 0,
        }
    }
}

impl Default for BlueGreen {
    fn default() -> Self {
        BlueGreen {
            verify: Vec::new(),
            auto_promote: true,
            keep_old_for: Duration::from_secs(600),
        }
    }
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            max_error_rate: 0.01,
            max_p95_latency: None,
            min_requests: 100,
        }
    }
}

impl Default for Canary {
    fn default() -> Self {
        Canary {
            steps: vec![
                CanaryStep {
                    weight: 10,
                    pause: Duration::from_secs(300),
                },
                CanaryStep {
                    weight: 50,
                    pause: Duration::from_secs(300),
                },
            ],
            analysis: Analysis::default(),
        }
    }
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy::Rolling(Rolling::default())
    }
}

impl Target {
    /// The name as written in `ferry.yml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Process => "process",
            Target::Docker => "docker",
            Target::Ssh => "ssh",
        }
    }
}
