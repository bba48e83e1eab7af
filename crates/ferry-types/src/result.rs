use serde::{Deserialize, Serialize};
use std::fmt;

/// How a job (or a step) ended.
///
/// The names are the ones `if` expressions see as `needs.<job>.result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobResult {
    /// Every step passed.
    Success,
    /// A step failed (or the job timed out) and the job was not allowed to fail.
    Failure,
    /// A step failed but the job has `allow_failure: true`; dependants still run.
    AllowedFailure,
    /// The job's `if` was false, or a job it needs did not succeed.
    Skipped,
    /// The run was interrupted (Ctrl-C, a newer run of its concurrency group) before
    /// the job finished.
    Cancelled,
    /// The job hit its `timeout`.
    TimedOut,
}

impl JobResult {
    /// The lower-case name used in output, JSON and expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Success => "success",
            JobResult::Failure => "failure",
            JobResult::AllowedFailure => "allowed_failure",
            JobResult::Skipped => "skipped",
            JobResult::Cancelled => "cancelled",
            JobResult::TimedOut => "timed_out",
        }
    }

    /// Whether jobs that `need` this one may run: success, or a failure that was allowed.
    pub fn lets_dependants_run(self) -> bool {
        matches!(self, JobResult::Success | JobResult::AllowedFailure)
    }

    /// Whether this result makes the whole run fail.
    pub fn fails_run(self) -> bool {
        matches!(
            self,
            JobResult::Failure | JobResult::Cancelled | JobResult::TimedOut
        )
    }
}

impl fmt::Display for JobResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
