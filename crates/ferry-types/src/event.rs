use crate::JobResult;
use serde::{Deserialize, Serialize};

/// Identifies one step of one job instance in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRef {
    /// The job instance id, e.g. `test` or `test (os=linux, rust=1.80)`.
    pub job: String,
    /// Zero-based index of the step within the job.
    pub index: usize,
    /// The step's display name (its `name`, or the first line of its `run`).
    pub name: String,
}

/// Something that happened during a pipeline run.
///
/// The engine emits these in order; `ferry run` renders them for people, prints them as
/// JSON lines with `--json`, and the server stores them in its event log. Every text
/// field has already been passed through secret masking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run began.
    RunStarted {
        /// Run id (unique within the data directory).
        run_id: String,
        /// Commit the run is pinned to.
        sha: String,
        /// Branch, if the commit is on one.
        branch: Option<String>,
        /// Pipeline name.
        pipeline: String,
        /// Unix time in milliseconds.
        at_ms: u64,
    },
    /// A job was queued (its `needs` are satisfied and it waits for a slot).
    JobQueued {
        /// Job instance id.
        job: String,
    },
    /// A job started executing.
    JobStarted {
        /// Job instance id.
        job: String,
        /// 1 for the first attempt, 2 for the first retry, …
        attempt: u32,
        /// `host` or `container:<image>`.
        executor: String,
    },
    /// A job waits for a manual approval.
    ApprovalRequired {
        /// Job instance id.
        job: String,
        /// Who is asked / why, from the job's `approval` block.
        message: String,
    },
    /// A step started.
    StepStarted {
        /// Which step.
        step: StepRef,
    },
    /// Output of a step: one or more complete lines (or a chunk of a very long line).
    Log {
        /// Which job.
        job: String,
        /// Index of the step producing the output.
        step: usize,
        /// `stdout` or `stderr`.
        stream: String,
        /// The text, masked, lossily decoded as UTF-8: lines joined by `\n`, without the
        /// final newline. Consecutive lines are batched into one event for throughput.
        line: String,
    },
    /// A step ended.
    StepFinished {
        /// Which step.
        step: StepRef,
        /// The step's result.
        result: JobResult,
        /// Process exit code, when the step ran and exited.
        exit_code: Option<i32>,
        /// Wall-clock duration in milliseconds.
        duration_ms: u64,
    },
    /// A job ended (after all its attempts).
    JobFinished {
        /// Job instance id.
        job: String,
        /// The job's result.
        result: JobResult,
        /// Wall-clock duration in milliseconds, over all attempts.
        duration_ms: u64,
        /// Why it ended this way, for results other than success.
        reason: Option<String>,
    },
    /// A job failed and will be attempted again.
    JobRetrying {
        /// Job instance id.
        job: String,
        /// The attempt that is about to start.
        next_attempt: u32,
    },
    /// The run ended.
    RunFinished {
        /// Run id.
        run_id: String,
        /// `success` when no job has a result that fails the run.
        success: bool,
        /// Wall-clock duration in milliseconds.
        duration_ms: u64,
    },
}
