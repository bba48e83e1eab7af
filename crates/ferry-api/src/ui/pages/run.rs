//! `/runs/{id}`: a run's facts, its job graph, live logs per job, and the approve,
//! cancel and re-run buttons.
//!
//! The page renders the run as it is; the script then opens `/ui/runs/{id}/stream`,
//! which sends the run's state on every change and every job's log lines, and updates
//! the badge, the graph, the buttons and the logs in place.

use crate::AppState;
use crate::ui::auth::Session;
use crate::ui::error::UiError;
use crate::ui::graph;
use crate::ui::layout::{self, Nav, badge, duration, git_ref, json_script, look, short_sha, time};
use axum::extract::{Path, State};
use axum::response::Response;
use ferry_store::db::{Job, Run};
use ferry_types::{JobStatus, Role};
use maud::{Markup, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;

/// The display names of each job's steps, from the run's `ferry.yml` snapshot (the
/// job's spec names its job in the pipeline; matrix instances share their job's steps).
/// Empty for a job whose pipeline no longer parses: the page then says "Step N".
fn step_names(run: &Run, jobs: &[Job]) -> Vec<Vec<String>> {
    let pipeline = ferry_config::parse(std::path::Path::new("ferry.yml"), &run.pipeline).ok();
    jobs.iter()
        .map(|job| {
            let key = job
                .spec
                .get("job")
                .and_then(|k| k.as_str())
                .unwrap_or(&job.name);
            pipeline
                .as_ref()
                .and_then(|p| p.jobs.get(key))
                .map(|j| j.steps.iter().map(|s| s.display_name()).collect())
                .unwrap_or_default()
        })
        .collect()
}

/// The job whose log the page opens on: the first running, else the first that
/// failed, else the first.
fn initial_job(jobs: &[Job]) -> usize {
    let bad = |s: JobStatus| {
        matches!(
            s,
            JobStatus::Failure | JobStatus::TimedOut | JobStatus::Lost | JobStatus::Interrupted
        )
    };
    jobs.iter()
        .position(|j| j.status == JobStatus::Running)
        .or_else(|| jobs.iter().position(|j| bad(j.status)))
        .unwrap_or(0)
}

/// The run's state as the stream sends it (the page embeds the first one).
pub(in crate::ui) fn state_json(run: &Run, jobs: &[Job]) -> serde_json::Value {
    let rl = look(run.status.as_str());
    json!({
        "run": {
            "id": run.id,
            "status": run.status,
            "cls": rl.cls,
            "icon": rl.icon,
            "label": rl.label,
            "finished": run.status.is_finished(),
            "failed_jobs": jobs.iter().any(|j| !j.status.lets_dependants_run() && j.status.is_finished()),
            "started_at": run.started_at,
            "finished_at": run.finished_at,
        },
        "jobs": jobs.iter().map(|j| {
            let l = look(j.status.as_str());
            json!({
                "name": j.name,
                "status": j.status,
                "cls": l.cls,
                "icon": l.icon,
                "label": l.label,
                "meta": graph::job_meta(j),
                "started_at": j.started_at,
                "finished_at": j.finished_at,
                "reason": j.reason,
                "attempt": j.attempt,
                "max_attempts": j.max_attempts,
            })
        }).collect::<Vec<_>>(),
    })
}

/// `GET /runs/{id}`.
pub(in crate::ui) async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id: i64 = id
        .trim_start_matches('#')
        .parse()
        .map_err(|_| UiError::NotFound(format!("run `{id}` not found: run ids are numbers")))?;
    let store = state.core.store();
    let run = store
        .get_run(id)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("run `{id}` not found")))?;
    let jobs = store.list_jobs(id).await?;
    let deploys = super::deploys::of_run(store, id).await?;
    let data = json!({
        "run_id": run.id,
        "stream": format!("/ui/runs/{}/stream", run.id),
        "steps": step_names(&run, &jobs),
        "state": state_json(&run, &jobs),
    });
    let title = format!("{} #{}", run.project, run.id);
    let content = html! {
        script #run-data type="application/json" { (json_script(&data)) }
        nav.crumbs aria-label="Breadcrumb" {
            a href="/" { "Projects" } " / "
            a href={ "/projects/" (utf8_percent_encode(&run.project, NON_ALPHANUMERIC)) } { (run.project) } " / "
        }
        div.heading.run-heading data-run=(run.id) {
            h1 { "Run #" (run.id) " " span #run-status { (badge(run.status.as_str())) } }
            (actions(&session, &run, &jobs))
        }
        dl.facts {
            div { dt { "Commit" } dd { (short_sha(&run.sha)) } }
            div { dt { "Branch" } dd { (git_ref(run.branch.as_deref(), run.tag.as_deref())) } }
            div { dt { "Trigger" } dd { (run.trigger.as_str()) } }
            div { dt { "Queued" } dd { (time(run.created_at)) } }
            div { dt { "Duration" } dd #run-duration { (duration(run.started_at, run.finished_at)) } }
            (super::deploys::run_fact(&deploys))
        }
        (approvals(&session, &run, &jobs))
        section.graph-section aria-labelledby="graph-h" {
            h2 #graph-h { "Jobs" }
            @if jobs.is_empty() {
                p.muted { "This run has no jobs." }
            } @else {
                (graph::render(&jobs))
            }
        }
        @if !jobs.is_empty() { (logs(&jobs)) }
    };
    Ok(layout::respond(layout::page(
        &title,
        Nav::Runs,
        Some(&session),
        content,
    )))
}

/// Cancel while the run is active; re-run (all or failed jobs) once it ended. All are
/// rendered and the script shows the ones the live state allows.
fn actions(session: &Session, run: &Run, jobs: &[Job]) -> Markup {
    if !session.can(Role::Developer) {
        return html! {};
    }
    let finished = run.status.is_finished();
    let any_failed = jobs
        .iter()
        .any(|j| j.status.is_finished() && !j.status.lets_dependants_run());
    html! {
        div.actions {
            form #cancel-form method="post" action={ "/ui/runs/" (run.id) "/cancel" } hidden[finished] {
                input type="hidden" name="csrf" value=(session.csrf);
                button.danger type="submit" accesskey="c" { "Cancel run" }
            }
            form #rerun-form method="post" action={ "/ui/runs/" (run.id) "/rerun" } hidden[!finished] {
                input type="hidden" name="csrf" value=(session.csrf);
                button #rerun-failed type="submit" name="failed_only" value="true" hidden[!any_failed] {
                    "Re-run failed jobs"
                }
                button.primary #rerun-all type="submit" accesskey="r" { "Re-run" }
            }
        }
    }
}

/// One approve callout per job, shown while the job waits for approval (the script
/// shows and hides them as the state changes).
fn approvals(session: &Session, run: &Run, jobs: &[Job]) -> Markup {
    html! {
        div.approvals {
            @for job in jobs {
                div.callout.approval data-approve-job=(job.name)
                    hidden[job.status != JobStatus::WaitingApproval] {
                    span { "⏸ " strong { (job.name) } " waits for approval." }
                    @if session.can(Role::Operator) {
                        form.inline method="post" action={ "/ui/runs/" (run.id) "/approve" } {
                            input type="hidden" name="csrf" value=(session.csrf);
                            input type="hidden" name="job" value=(job.name);
                            button.primary type="submit" { "Approve " (job.name) }
                        }
                    } @else {
                        span.muted { " An operator can approve it." }
                    }
                }
            }
        }
    }
}

/// The log viewer: a job picker, search, follow, and one pane per job.
fn logs(jobs: &[Job]) -> Markup {
    let selected = initial_job(jobs);
    html! {
        section.logs aria-labelledby="logs-h" {
            div.log-toolbar {
                h2 #logs-h { "Logs" }
                label.sr-only for="log-job" { "Job" }
                select #log-job aria-keyshortcuts="[ ]" {
                    @for (i, job) in jobs.iter().enumerate() {
                        option value=(i) selected[i == selected] { (job.name) }
                    }
                }
                label.sr-only for="log-search" { "Search the log" }
                input #log-search type="search" placeholder="Search log  ( / )" autocomplete="off"
                    aria-keyshortcuts="/";
                span #log-matches.muted aria-live="polite" {}
                label.check {
                    input #log-follow type="checkbox" checked;
                    " Follow"
                }
                a #jump-failed href="#" hidden { "Jump to the failed step" }
            }
            @for (i, job) in jobs.iter().enumerate() {
                div.log-pane #{ "job-" (i) "-log" } data-job=(job.name) data-index=(i)
                    hidden[i != selected] {
                    div.log-head {
                        strong { (job.name) } " "
                        span.job-status { (badge(job.status.as_str())) }
                        span.job-reason.muted { @if let Some(r) = &job.reason { " " (r) } }
                    }
                    div.log role="log" tabindex="0" aria-label={ "Log of " (job.name) } {
                        div.log-empty.muted { "No output yet." }
                    }
                }
            }
        }
    }
}
