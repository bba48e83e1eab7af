//! The validated pipeline: what the engine executes.
//!
//! These types are produced only by [`crate::parse`] / [`crate::load`], after every
//! check has passed, so the engine can rely on them: `needs` name existing jobs and form
//! no cycle, globs and cron expressions compile, every expression and `${{ … }}`
//! template parses, matrix instances have distinct ids.

use crate::expr::Expr;
use indexmap::IndexMap;
use std::path::PathBuf;
use std::time::Duration;

mod deploy;
pub use deploy::*;

/// A whole `ferry.yml`.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Where it was read from (as given to [`crate::load`]), for messages.
    pub source: PathBuf,
    /// `name`, or the repository directory's name when absent.
    pub name: String,
    /// `on`: what starts a run.
    pub on: Triggers,
    /// Pipeline-level `env`, values may hold `${{ … }}` templates.
    pub env: IndexMap<String, String>,
    /// `jobs`, in file order, keyed by job id (before matrix expansion).
    pub jobs: IndexMap<String, Job>,
    /// `deploy`: the service this repository deploys, and its environments.
    pub deploy: Option<Deploy>,
}

/// The `on` block.
#[derive(Debug, Clone, Default)]
pub struct Triggers {
    /// `on.push`; `None` when pushes do not start runs.
    pub push: Option<PushTrigger>,
    /// `on.schedule`: cron expressions.
    pub schedule: Vec<CronSchedule>,
    /// `on.manual`: runs may be started by hand (`ferry run` always may).
    pub manual: bool,
}

/// `on.push` filters; an empty list means "any".
#[derive(Debug, Clone, Default)]
pub struct PushTrigger {
    /// Branch globs, e.g. `main`, `release/**`.
    pub branches: Vec<Glob>,
    /// Tag globs, e.g. `v*`.
    pub tags: Vec<Glob>,
    /// Changed-path globs, e.g. `src/**`.
    pub paths: Vec<Glob>,
}

/// A compiled glob with its source text.
#[derive(Debug, Clone)]
pub struct Glob {
    /// The pattern as written.
    pub pattern: String,
    /// The compiled matcher.
    pub matcher: globset::GlobMatcher,
}

impl Glob {
    /// Whether `text` (a branch, tag or `/`-separated path) matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }
}

/// One `on.schedule` entry.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// The cron expression as written.
    pub cron: String,
    /// The parsed schedule.
    pub parsed: croner::Cron,
}

/// One job as written (a matrix job is expanded by [`Pipeline::instances`]).
#[derive(Debug, Clone)]
pub struct Job {
    /// The job id (its key under `jobs`).
    pub id: String,
    /// `needs`: job ids (not instance ids) that must finish first.
    pub needs: Vec<String>,
    /// `steps`, never empty.
    pub steps: Vec<Step>,
    /// Job-level `env`; values may hold templates.
    pub env: IndexMap<String, String>,
    /// `if`.
    pub condition: Option<Expr>,
    /// `image`: run in a container of this image (may hold templates).
    pub image: Option<String>,
    /// `services`: sibling containers, keyed by the host name they are reachable as.
    pub services: IndexMap<String, Service>,
    /// `artifacts`: files handed to dependent jobs.
    pub artifacts: Option<Artifacts>,
    /// `cache`: restored before and saved after the job.
    pub cache: Option<Cache>,
    /// `timeout` for the whole job (per attempt).
    pub timeout: Option<Duration>,
    /// `retry`: how many more attempts after a failed one (0 = none).
    pub retry: u32,
    /// `allow_failure`.
    pub allow_failure: bool,
    /// `matrix`.
    pub matrix: Option<Matrix>,
    /// `approval`: a person must approve before the job starts.
    pub approval: Option<Approval>,
    /// `concurrency`.
    pub concurrency: Option<Concurrency>,
    /// `runs-on` labels an agent must carry.
    pub runs_on: Vec<String>,
    /// `working-directory`, relative to the workspace root.
    pub working_directory: Option<String>,
    /// `shell` default for the job's steps.
    pub shell: Option<Shell>,
    /// `deploy`: after its steps, the job deploys to this environment of
    /// [`Pipeline::deploy`] (which is then known to exist).
    pub deploy: Option<String>,
}

/// One step of a job.
#[derive(Debug, Clone)]
pub struct Step {
    /// `name`, or `None` (display the first line of `run`).
    pub name: Option<String>,
    /// `run`: the script; may hold templates.
    pub run: String,
    /// Step-level `env`.
    pub env: IndexMap<String, String>,
    /// `if`.
    pub condition: Option<Expr>,
    /// `shell`, overriding the job's.
    pub shell: Option<Shell>,
    /// `working-directory`, relative to the job's working directory.
    pub working_directory: Option<String>,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `allow_failure`.
    pub allow_failure: bool,
}

impl Step {
    /// The name shown in output: `name`, else the first line of `run`.
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.run.lines().next().unwrap_or("").trim().to_string(),
        }
    }
}

/// How a step's script is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shell {
    /// `bash -eo pipefail` (the default on the host and in images that have bash).
    Bash,
    /// `sh -e` (the default in images without bash).
    Sh,
    /// A custom command line; `{0}` is replaced by the path of a file holding the
    /// script, e.g. `python3 {0}`.
    Command(String),
}

/// A service container (`services.<name>`).
#[derive(Debug, Clone)]
pub struct Service {
    /// `image` (may hold templates).
    pub image: String,
    /// `env` given to the service.
    pub env: IndexMap<String, String>,
    /// `command`: overrides the image's command.
    pub command: Option<Vec<String>>,
    /// `ports`: TCP ports the service listens on; the job waits until each accepts
    /// connections before its steps start.
    pub ports: Vec<u16>,
    /// `healthcheck`: a command run inside the service until it exits 0.
    pub healthcheck: Option<String>,
}

/// `artifacts`.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// Paths or globs relative to the workspace root.
    pub paths: Vec<String>,
}

/// `cache`.
#[derive(Debug, Clone)]
pub struct Cache {
    /// Key template, e.g. `cargo-${{ hashFiles('Cargo.lock') }}`.
    pub key: String,
    /// Paths relative to the workspace root.
    pub paths: Vec<String>,
}

/// `matrix`: axes, plus `include` and `exclude` lists.
#[derive(Debug, Clone, Default)]
pub struct Matrix {
    /// Axis name → values, in file order.
    pub axes: IndexMap<String, Vec<MatrixValue>>,
    /// Extra combinations added after the cross product.
    pub include: Vec<IndexMap<String, MatrixValue>>,
    /// Partial combinations removed from the cross product.
    pub exclude: Vec<IndexMap<String, MatrixValue>>,
}

/// A matrix value: YAML scalars only.
#[derive(Debug, Clone, PartialEq)]
pub enum MatrixValue {
    /// A string.
    String(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// `approval`.
#[derive(Debug, Clone, Default)]
pub struct Approval {
    /// Shown to the approver.
    pub message: Option<String>,
}

/// `concurrency`.
#[derive(Debug, Clone)]
pub struct Concurrency {
    /// Group name template.
    pub group: String,
    /// `cancel-in-progress`.
    pub cancel_in_progress: bool,
}

/// One executable instance of a job: the job itself, or one matrix combination.
#[derive(Debug, Clone)]
pub struct JobInstance {
    /// Unique id: the job id, or `job (a=1, b=x)` for a matrix combination.
    pub id: String,
    /// The job id this instance comes from.
    pub job: String,
    /// The matrix values of this combination (empty for plain jobs).
    pub matrix: IndexMap<String, MatrixValue>,
    /// Instance ids this instance waits for (every instance of every needed job).
    pub needs: Vec<String>,
}

impl std::fmt::Display for MatrixValue {
    /// The value as it appears in instance ids and templates: `linux`, `3`, `1.5`,
    /// `true`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatrixValue::String(s) => f.write_str(s),
            MatrixValue::Int(i) => write!(f, "{i}"),
            MatrixValue::Float(x) => write!(f, "{x}"),
            MatrixValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl PushTrigger {
    /// Whether a push of `branch` or `tag` changing `changed` starts a run.
    ///
    /// A branch push must match `branches` (any branch when empty, unless only `tags`
    /// are given); a tag push must match `tags` (any tag when empty, unless only
    /// `branches` are given). When `paths` is given, at least one changed path must
    /// match it (tag pushes ignore `paths`).
    pub fn matches(&self, branch: Option<&str>, tag: Option<&str>, changed: &[String]) -> bool {
        let any = |globs: &[Glob], text: &str| globs.iter().any(|g| g.is_match(text));
        let ref_ok = match (branch, tag) {
            (_, Some(t)) => {
                if self.tags.is_empty() {
                    self.branches.is_empty()
                } else {
                    any(&self.tags, t)
                }
            }
            (Some(b), None) => {
                if self.branches.is_empty() {
                    self.tags.is_empty()
                } else {
                    any(&self.branches, b)
                }
            }
            (None, None) => self.branches.is_empty() && self.tags.is_empty(),
        };
        if !ref_ok {
            return false;
        }
        if tag.is_some() || self.paths.is_empty() {
            return true;
        }
        changed.iter().any(|p| any(&self.paths, p))
    }
}
