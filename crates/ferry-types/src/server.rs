//! The server's state vocabulary: statuses of runs and jobs, what triggered a run, token
//! roles and the kinds of events in the event log.
//!
//! Every enum here has one lower-case name (`as_str`, `Display`, serde and `FromStr` all
//! agree), which is also what the store writes into its text columns.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A name that did not match any variant of one of these enums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What was being parsed, e.g. `run status`.
    pub what: &'static str,
    /// The text that matched no variant.
    pub name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} `{}`", self.what, self.name)
    }
}

impl std::error::Error for UnknownName {}

/// Declares an enum whose variants each have one canonical name.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical name, as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName { what: $what, name: s.to_owned() }),
                }
            }
        }
    };
}

named_enum! {
    /// Where a run is in its life.
    RunStatus, "run status" {
        /// Created; no job has started yet.
        Queued => "queued",
        /// At least one job has started.
        Running => "running",
        /// Every job ended without failing the run.
        Success => "success",
        /// A job failed the run.
        Failure => "failure",
        /// Cancelled by a person or by a newer run of its concurrency group.
        Cancelled => "cancelled",
    }
}

impl RunStatus {
    /// Whether the run has ended and will not change again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Success | RunStatus::Failure | RunStatus::Cancelled
        )
    }
}

named_enum! {
    /// Where a job (one instance of a job of a run) is in its life.
    JobStatus, "job status" {
        /// Waiting in the queue for an executor whose labels match.
        Queued => "queued",
        /// Waiting for a person to approve it.
        WaitingApproval => "waiting_approval",
        /// Held by an executor under a lease.
        Running => "running",
        /// Every step passed.
        Success => "success",
        /// A step failed and no attempts remain.
        Failure => "failure",
        /// A step failed, but the job may fail.
        AllowedFailure => "allowed_failure",
        /// Not run: its `if` was false or a job it needs did not succeed.
        Skipped => "skipped",
        /// Cancelled before it ended.
        Cancelled => "cancelled",
        /// Hit its `timeout` and no attempts remain.
        TimedOut => "timed_out",
        /// Its executor stopped renewing the lease and no attempts remain.
        Lost => "lost",
        /// The server's own executor was stopped mid-job and no attempts remain.
        Interrupted => "interrupted",
    }
}

impl JobStatus {
    /// Whether the job has ended and will not change again.
    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            JobStatus::Queued | JobStatus::WaitingApproval | JobStatus::Running
        )
    }

    /// Whether jobs that `need` this one may run.
    pub fn lets_dependants_run(self) -> bool {
        matches!(self, JobStatus::Success | JobStatus::AllowedFailure)
    }
}

impl From<crate::JobResult> for JobStatus {
    fn from(result: crate::JobResult) -> Self {
        use crate::JobResult as R;
        match result {
            R::Success => JobStatus::Success,
            R::Failure => JobStatus::Failure,
            R::AllowedFailure => JobStatus::AllowedFailure,
            R::Skipped => JobStatus::Skipped,
            R::Cancelled => JobStatus::Cancelled,
            R::TimedOut => JobStatus::TimedOut,
        }
    }
}

named_enum! {
    /// What started a run.
    Trigger, "trigger" {
        /// A push to the repository (webhook, hook or poll).
        Push => "push",
        /// An `on.schedule` cron entry.
        Schedule => "schedule",
        /// `ferry trigger` or the web UI.
        Manual => "manual",
        /// `POST /api/v1/projects/NAME/runs`.
        Api => "api",
    }
}

named_enum! {
    /// What a user or API token may do; each role includes the ones before it.
    Role, "role" {
        /// Read everything except secrets.
        Viewer => "viewer",
        /// Also trigger, cancel and re-run pipelines.
        Developer => "developer",
        /// Also approve protected environments and run runbook actions.
        Operator => "operator",
        /// Everything, including tokens and settings.
        Admin => "admin",
    }
}

named_enum! {
    /// The kind of an entry in the event log.
    EventKind, "event kind" {
        /// A project was registered.
        ProjectAdded => "project.added",
        /// A project was removed.
        ProjectRemoved => "project.removed",
        /// A webhook delivery was accepted and stored.
        WebhookReceived => "webhook.received",
        /// A webhook was refused (bad signature or token).
        WebhookRejected => "webhook.rejected",
        /// A push reached the server (webhook, hook or poll).
        PushReceived => "push.received",
        /// A run was created.
        RunQueued => "run.queued",
        /// A run's first job started.
        RunStarted => "run.started",
        /// A run ended.
        RunFinished => "run.finished",
        /// A run was cancelled.
        RunCancelled => "run.cancelled",
        /// A job entered the queue.
        JobQueued => "job.queued",
        /// An executor took a job.
        JobStarted => "job.started",
        /// A job ended.
        JobFinished => "job.finished",
        /// A job went back to the queue for another attempt.
        JobRetried => "job.retried",
        /// A job's lease expired: its executor is gone.
        JobLost => "job.lost",
        /// A job on the server's own executor was cut short by a restart.
        JobInterrupted => "job.interrupted",
        /// A person approved a job waiting for approval.
        ApprovalGranted => "approval.granted",
        /// A secret was handed to a job.
        SecretAccessed => "secret.accessed",
        /// An API token was created.
        TokenCreated => "token.created",
        /// An API token was revoked.
        TokenRevoked => "token.revoked",
        /// An agent connected for the first time.
        AgentRegistered => "agent.registered",
        /// A release (artifact plus config snapshot) was created.
        ReleaseCreated => "release.created",
        /// A deploy was requested (queued, or waiting for approval).
        DeployQueued => "deploy.queued",
        /// A person approved a deploy waiting for approval.
        DeployApproved => "deploy.approved",
        /// A deploy was taken up by a server and began.
        DeployStarted => "deploy.started",
        /// A deploy moved to its next phase; `data.message` says what happened.
        DeployProgress => "deploy.progress",
        /// Traffic moved: the deploy's release became the environment's live release.
        DeploySwitched => "deploy.switched",
        /// A deploy ended; `data.state` and `data.reason` say how.
        DeployFinished => "deploy.finished",
    }
}

named_enum! {
    /// Where a deploy is in its life.
    DeployState, "deploy state" {
        /// Waiting for a server to take it up (deploys of one service and environment
        /// run one at a time, oldest first).
        Queued => "queued",
        /// Waiting for a person to approve it (the environment has `approval`).
        WaitingApproval => "waiting_approval",
        /// Being carried out by a server, under a lease.
        Running => "running",
        /// The release is live and the old one is stopped or kept warm.
        Succeeded => "succeeded",
        /// A check failed; the previous release was kept or restored, and nothing of
        /// the new release is left running.
        RolledBack => "rolled_back",
        /// It could not run at all (no release, a config error); nothing changed.
        Failed => "failed",
        /// Cancelled by a person before it started moving traffic.
        Cancelled => "cancelled",
    }
}

impl DeployState {
    /// Whether the deploy has ended and will not change again.
    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            DeployState::Queued | DeployState::WaitingApproval | DeployState::Running
        )
    }
}

named_enum! {
    /// The step a running deploy is at, in order (a deploy that fails goes to
    /// `rollback`). Strategies skip what they do not need.
    DeployPhase, "deploy phase" {
        /// Not started yet.
        Pending => "pending",
        /// Preparing the release: unpacking the tarball, resolving env and secrets.
        Prepare => "prepare",
        /// The pre-migration hook point (backups attach here).
        PreMigrate => "pre_migrate",
        /// Running the `migrate` steps.
        Migrate => "migrate",
        /// Starting the new release's instances.
        Start => "start",
        /// Waiting for the new instances to pass their health check.
        Health => "health",
        /// Running the `smoke` (and blue-green `verify`) steps.
        Smoke => "smoke",
        /// Moving traffic (a switch, rolling batches or canary weights).
        Shift => "shift",
        /// Waiting for requests on the old release to finish, then stopping it.
        Drain => "drain",
        /// Stopping what the failed deploy started and restoring the old routes.
        Rollback => "rollback",
        /// Finished.
        Done => "done",
    }
}

named_enum! {
    /// Why a deploy was made.
    DeployKind, "deploy kind" {
        /// `ferry deploy`, or a pipeline job with `deploy:`.
        Deploy => "deploy",
        /// `ferry promote`: the release live in another environment.
        Promote => "promote",
        /// `ferry rollback`: an earlier release.
        Rollback => "rollback",
    }
}
