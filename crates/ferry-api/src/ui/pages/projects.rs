//! `/`: every project with its latest run; `/projects/{name}`: one project's runs.

use super::{RUNS_SHOWN, latest_cell, runs_table};
use crate::AppState;
use crate::ui::auth::Session;
use crate::ui::error::UiError;
use crate::ui::layout::{self, Nav, time};
use axum::extract::{Path, State};
use axum::response::Response;
use ferry_types::Role;
use maud::html;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// `GET /`.
pub(in crate::ui) async fn index(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, UiError> {
    let store = state.core.store();
    let projects = store.list_projects().await?;
    let mut rows = Vec::with_capacity(projects.len());
    for project in projects {
        let latest = store.list_runs(Some(&project.name), 1).await?.pop();
        rows.push((project, latest));
    }
    let content = html! {
        div.heading {
            h1 { "Projects" }
        }
        @if rows.is_empty() {
            div.empty-state {
                p { "No projects yet." }
                p.muted {
                    "Add one with " code { "ferry project add NAME --repo URL_OR_PATH" }
                    ", or start with " code { "ferry up" } "."
                }
            }
        } @else {
            div.table-wrap {
                table.projects data-stream-runs="/ui/runs/stream" data-latest-only="true" {
                    thead {
                        tr {
                            th scope="col" { "Project" }
                            th scope="col" { "Repository" }
                            th scope="col" { "Branch" }
                            th scope="col" { "Latest run" }
                        }
                    }
                    tbody {
                        @for (project, latest) in &rows {
                            tr data-project=(project.name) {
                                td { a.strong href={ "/projects/" (utf8_percent_encode(&project.name, NON_ALPHANUMERIC)) } { (project.name) } }
                                td { code.repo title=(project.repo) { (project.repo) } }
                                td { (project.default_branch) }
                                td.latest { (latest_cell(latest.as_ref())) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::respond(layout::page(
        "Projects",
        Nav::Projects,
        Some(&session),
        content,
    )))
}

/// `GET /projects/{name}`.
pub(in crate::ui) async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    let store = state.core.store();
    let project = store
        .get_project(&name)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("project `{name}` not found")))?;
    let runs = store.list_runs(Some(&project.name), RUNS_SHOWN).await?;
    let encoded = utf8_percent_encode(&project.name, NON_ALPHANUMERIC).to_string();
    let stream = format!("/ui/runs/stream?project={encoded}");
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/" { "Projects" } " / " }
        div.heading {
            h1 { (project.name) }
            @if session.can(Role::Developer) {
                form.inline method="post" action={ "/ui/projects/" (encoded) "/trigger" } {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label.sr-only for="ref" { "Branch or tag" }
                    input #ref name="ref" placeholder=(project.default_branch) size="14";
                    button.primary type="submit" { "Run pipeline" }
                }
            }
        }
        dl.facts {
            div.wide { dt { "Repository" } dd { code.repo title=(project.repo) { (project.repo) } } }
            div { dt { "Default branch" } dd { (project.default_branch) } }
            div {
                dt { "Webhooks" }
                dd {
                    @if project.webhook_secret.is_some() { "signed (secret set)" } @else { span.muted { "no secret set" } }
                }
            }
            div { dt { "Added" } dd { (time(project.created_at)) } }
        }
        h2 { "Runs" }
        (runs_table(&runs, false, &stream))
    };
    Ok(layout::respond(layout::page(
        &project.name,
        Nav::Projects,
        Some(&session),
        content,
    )))
}
