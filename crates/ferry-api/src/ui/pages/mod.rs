//! The pages, one module each, and the run rows several of them share.

pub(super) mod agents;
pub(super) mod confirm;
pub(super) mod deploys;
pub(super) mod events;
pub(super) mod projects;
pub(super) mod run;
pub(super) mod runs;
pub(super) mod service_view;
pub(super) mod services;

use super::layout::{badge, duration, git_ref, short_sha, time};
use ferry_store::db::Run;
use maud::{Markup, html};

/// How many runs a list shows.
pub(super) const RUNS_SHOWN: i64 = 100;

/// The header of a runs table.
pub(super) fn runs_head(with_project: bool) -> Markup {
    html! {
        thead {
            tr {
                th scope="col" { "Status" }
                th scope="col" { "Run" }
                @if with_project { th scope="col" { "Project" } }
                th scope="col" { "Commit" }
                th scope="col" { "Branch" }
                th scope="col" { "Trigger" }
                th scope="col" { "Started" }
                th scope="col" { "Duration" }
            }
        }
    }
}

/// One row of a runs table; the live stream sends the same markup.
pub(super) fn run_row(run: &Run, with_project: bool) -> Markup {
    html! {
        tr id={ "run-" (run.id) } data-run-id=(run.id) data-project=(run.project) {
            td { (badge(run.status.as_str())) }
            td { a href={ "/runs/" (run.id) } { "#" (run.id) } }
            @if with_project {
                td { a href={ "/projects/" (run.project) } { (run.project) } }
            }
            td { (short_sha(&run.sha)) }
            td { (git_ref(run.branch.as_deref(), run.tag.as_deref())) }
            td { (run.trigger.as_str()) }
            td { (time(run.started_at.unwrap_or(run.created_at))) }
            td { (duration(run.started_at, run.finished_at)) }
        }
    }
}

/// The "latest run" cell of the projects page.
pub(super) fn latest_cell(run: Option<&Run>) -> Markup {
    match run {
        Some(run) => html! {
            (badge(run.status.as_str())) " "
            a href={ "/runs/" (run.id) } { "#" (run.id) } " "
            span.muted { (time(run.started_at.unwrap_or(run.created_at))) }
        },
        None => html! { span.muted { "no runs yet" } },
    }
}

/// A runs table that updates itself from `stream`.
pub(super) fn runs_table(runs: &[Run], with_project: bool, stream: &str) -> Markup {
    html! {
        div.table-wrap {
            table.runs data-stream-runs=(stream) data-with-project=(with_project) {
                (runs_head(with_project))
                tbody {
                    @for run in runs { (run_row(run, with_project)) }
                }
            }
            @if runs.is_empty() {
                p.empty.muted { "No runs yet." }
            }
        }
    }
}
