//! From the store's and the core's types to the wire types of [`ferry_types::api`].
//!
//! The wire types leave out what clients must not see (a project's webhook secret)
//! and what they do not need (a lease's expiry on a job in a listing).

use ferry_engine::server as core;
use ferry_store::db;
use ferry_types::api;

/// A project, without its webhook secret.
pub fn project(p: db::Project) -> api::Project {
    api::Project {
        id: p.id,
        name: p.name,
        repo: p.repo,
        default_branch: p.default_branch,
        has_webhook_secret: p.webhook_secret.is_some_and(|s| !s.is_empty()),
        created_at: p.created_at,
    }
}

/// A run, without its pipeline text.
pub fn run(r: db::Run) -> api::Run {
    api::Run {
        id: r.id,
        project: r.project,
        sha: r.sha,
        branch: r.branch,
        tag: r.tag,
        trigger: r.trigger,
        status: r.status,
        concurrency_group: r.concurrency_group,
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
    }
}

/// A job.
pub fn job(j: db::Job) -> api::Job {
    api::Job {
        id: j.id,
        run_id: j.run_id,
        name: j.name,
        status: j.status,
        attempt: j.attempt,
        max_attempts: j.max_attempts,
        allow_failure: j.allow_failure,
        runs_on: j.runs_on,
        needs: j.needs,
        spec: j.spec,
        agent_id: j.agent_id,
        created_at: j.created_at,
        started_at: j.started_at,
        finished_at: j.finished_at,
        reason: j.reason,
    }
}

/// A run with its jobs and pipeline.
pub fn run_detail(r: db::Run, jobs: Vec<db::Job>) -> api::RunDetail {
    let pipeline = r.pipeline.clone();
    api::RunDetail {
        run: run(r),
        jobs: jobs.into_iter().map(job).collect(),
        pipeline,
    }
}

/// A log line.
pub fn log_line(l: db::LogLine) -> api::LogLine {
    api::LogLine {
        number: l.number,
        step: l.step,
        text: l.text,
    }
}

/// An event.
pub fn event(e: db::Event) -> api::Event {
    api::Event {
        id: e.id,
        at: e.at,
        kind: e.kind,
        project: e.project,
        run_id: e.run_id,
        job: e.job,
        data: e.data,
    }
}

/// A token's facts.
pub fn token(t: db::TokenInfo) -> api::TokenInfo {
    api::TokenInfo {
        id: t.id,
        name: t.name,
        role: t.role,
        created_at: t.created_at,
        revoked_at: t.revoked_at,
    }
}

/// An agent.
pub fn agent(a: db::Agent) -> api::Agent {
    api::Agent {
        id: a.id,
        name: a.name,
        labels: a.labels,
        first_seen: a.first_seen,
        last_seen: a.last_seen,
    }
}

/// A lease, to the wire.
pub fn lease(l: db::Lease) -> api::Lease {
    api::Lease {
        job_id: l.job_id,
        agent_id: l.agent_id,
        attempt: l.attempt,
    }
}

/// A lease, from the wire.
pub fn lease_from(l: api::Lease) -> db::Lease {
    db::Lease {
        job_id: l.job_id,
        agent_id: l.agent_id,
        attempt: l.attempt,
    }
}

/// A lease renewal.
pub fn renewal(r: db::Renewal) -> api::Renewal {
    api::Renewal {
        lease_expires_at: r.lease_expires_at,
        cancel_requested: r.cancel_requested,
    }
}

/// What an agent is handed.
pub fn assignment(a: core::Assignment) -> api::Assignment {
    api::Assignment {
        lease: lease(a.lease),
        lease_expires_at: a.lease_expires_at,
        run_id: a.run_id,
        project: a.project,
        job: a.job,
        sha: a.sha,
        branch: a.branch,
        tag: a.tag,
        pipeline: a.pipeline,
        needs: a.needs,
        artifacts: a.artifacts,
        secrets: a.secrets,
        event: a.event,
    }
}
