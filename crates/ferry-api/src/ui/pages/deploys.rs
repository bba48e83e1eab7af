//! `/deploys/{id}`: one deploy step by step — its state and reason, the phases it went
//! through, every progress line with its time — and the approve and cancel buttons.
//!
//! The page renders the deploy as it is; while it has not ended, the script opens
//! `/ui/deploys/{id}/stream` (`live.rs`), which sends the same part of the page
//! rendered again after every `deploy.*` event of this deploy, until it ends.

use super::services::service_path;
use crate::AppState;
use crate::ui::auth::Session;
use crate::ui::error::UiError;
use crate::ui::layout::{self, Nav, badge, duration, human_ms, short_sha, time};
use crate::ui::live::{self, Part, Render, StreamQuery};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use ferry_store::db::{DbError, Deploy, DeployStep, Release, Store};
use ferry_types::{DeployPhase, DeployState, EventKind, Role};
use maud::{Markup, html};

/// A deploy with what its page shows.
struct DeployView {
    deploy: Deploy,
    steps: Vec<DeployStep>,
    release: Option<Release>,
    previous: Option<Release>,
}

fn deploy_id(raw: &str) -> Result<i64, UiError> {
    raw.trim_start_matches('#')
        .parse()
        .map_err(|_| UiError::NotFound(format!("deploy `{raw}` not found: deploy ids are numbers")))
}

/// Release `id`, None when it was pruned.
async fn release(store: &Store, id: i64) -> Result<Option<Release>, DbError> {
    match store.release_by_id(id).await {
        Ok(r) => Ok(Some(r)),
        Err(DbError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn load(store: &Store, id: i64) -> Result<DeployView, UiError> {
    let deploy = match store.deploy(id).await {
        Ok(d) => d,
        Err(DbError::NotFound { .. }) => {
            return Err(UiError::NotFound(format!("deploy `{id}` not found")));
        }
        Err(e) => return Err(e.into()),
    };
    let steps = store.deploy_steps(id).await?;
    let release_row = release(store, deploy.release_id).await?;
    let previous = match deploy.previous_release_id {
        Some(p) => release(store, p).await?,
        None => None,
    };
    Ok(DeployView {
        deploy,
        steps,
        release: release_row,
        previous,
    })
}

/// Whether a phase reads as a failure.
fn phase_cls(phase: DeployPhase, current: bool, state: DeployState) -> &'static str {
    match (phase, current) {
        (DeployPhase::Rollback, _) => "bad",
        (_, false) => "ok",
        (_, true) => match state {
            DeployState::Succeeded => "ok",
            DeployState::RolledBack | DeployState::Failed => "bad",
            DeployState::Cancelled => "skip",
            _ => "busy",
        },
    }
}

/// The phases the deploy went through, in order; the last one is where it is (or
/// where it ended: `done` itself is not shown, the badge says how it ended).
fn phases(view: &DeployView) -> Markup {
    let mut seen: Vec<DeployPhase> = Vec::new();
    for step in &view.steps {
        if !seen.contains(&step.phase) {
            seen.push(step.phase);
        }
    }
    let now = view.deploy.phase;
    if !matches!(now, DeployPhase::Pending | DeployPhase::Done) && !seen.contains(&now) {
        seen.push(now);
    }
    seen.retain(|p| *p != DeployPhase::Done);
    let state = view.deploy.state;
    html! {
        @if !seen.is_empty() {
            ol.phases aria-label="Phases" {
                @for (i, p) in seen.iter().enumerate() {
                    @let current = i + 1 == seen.len();
                    li class={ "phase s-" (phase_cls(*p, current, state)) }
                        aria-current=[current.then_some("step")] data-phase=(p.as_str()) {
                        (p.as_str().replace('_', "-"))
                    }
                }
            }
        }
    }
}

/// The part of the page that changes while the deploy runs (the stream sends it
/// again after each change).
fn live_part(session: &Session, view: &DeployView) -> Markup {
    let d = &view.deploy;
    let started = d.started_at.unwrap_or(d.created_at);
    html! {
        div.heading {
            h1 {
                "Deploy #" (d.id) " "
                span #deploy-status { (badge(d.state.as_str())) }
            }
            (actions(session, d))
        }
        dl.facts {
            div { dt { "Service" } dd { a href=(service_path(&d.service)) { (d.service) } } }
            div { dt { "Environment" } dd { (d.environment) } }
            div {
                dt { "Release" }
                dd {
                    strong.release { (d.release_name()) }
                    @if let Some(r) = &view.release { " " (short_sha(&r.sha)) }
                }
            }
            div {
                dt { "Replacing" }
                dd {
                    @match &view.previous {
                        Some(p) => { strong.release { (p.name()) } " " (short_sha(&p.sha)) },
                        None => { span.muted { "—" } },
                    }
                }
            }
            div { dt { "Kind" } dd { (d.kind.as_str()) } }
            div { dt { "Requested by" } dd { (d.requested_by) } }
            @if let Some(by) = &d.approved_by { div { dt { "Approved by" } dd { (by) } } }
            @if let Some(run) = d.run_id {
                div { dt { "Run" } dd { a href={ "/runs/" (run) } { "#" (run) } @if let Some(j) = &d.job { " " (j) } } }
            }
            div { dt { "Queued" } dd { (time(d.created_at)) } }
            div { dt { "Duration" } dd { (duration(d.started_at, d.finished_at)) } }
        }
        @if let Some(reason) = &d.reason {
            p.callout.reason role="alert" { strong { "Why: " } (reason) }
        }
        @if d.state == DeployState::WaitingApproval {
            p.callout { "⏸ " (d.environment) " needs approval: the deploy starts once an operator approves it." }
        }
        h2 { "Progress" }
        (phases(view))
        div.table-wrap {
            table.steps {
                thead {
                    tr {
                        th scope="col" { "#" }
                        th scope="col" { "Phase" }
                        th scope="col" { "What happened" }
                        th scope="col" { "At" }
                        th scope="col" { "After" }
                    }
                }
                tbody {
                    @for s in &view.steps {
                        tr data-phase=(s.phase.as_str()) {
                            td.num { (s.seq) }
                            td { code.kind { (s.phase.as_str()) } }
                            td.message { (s.message) }
                            td { (time(s.at)) }
                            td.num { "+" (human_ms(s.at.saturating_sub(started))) }
                        }
                    }
                }
            }
            @if view.steps.is_empty() {
                p.empty.muted {
                    @match d.state {
                        DeployState::Queued => "Waiting for a server to take it up (one deploy per environment at a time).",
                        DeployState::WaitingApproval => "Waiting for approval.",
                        _ => "No progress recorded.",
                    }
                }
            }
        }
    }
}

/// Approve while it waits for approval; cancel until it has ended (a running deploy
/// is rolled back). Both need the `operator` role.
fn actions(session: &Session, d: &Deploy) -> Markup {
    if d.state.is_finished() {
        return html! {};
    }
    if !session.can(Role::Operator) {
        return html! { span.muted.small { "An operator can approve or cancel it." } };
    }
    html! {
        div.actions {
            @if d.state == DeployState::WaitingApproval {
                form #approve-form method="post" action={ "/ui/deploys/" (d.id) "/approve" } {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button.primary type="submit" { "Approve" }
                }
            }
            form #cancel-form method="post" action={ "/ui/deploys/" (d.id) "/cancel" } {
                input type="hidden" name="csrf" value=(session.csrf);
                button.danger type="submit" {
                    @if d.state == DeployState::Running { "Cancel and roll back" } @else { "Cancel deploy" }
                }
            }
        }
    }
}

/// `GET /deploys/{id}`.
pub(in crate::ui) async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id = deploy_id(&id)?;
    // Read the log position first: the stream follows from it, so a change between
    // this snapshot and the stream opening is still sent.
    let after = state.core.store().last_event_id().await?;
    let view = load(state.core.store(), id).await?;
    let d = &view.deploy;
    let title = format!("{} {} deploy #{}", d.service, d.environment, d.id);
    let finished = d.state.is_finished();
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/services" { "Services" } " / "
            a href=(service_path(&d.service)) { (d.service) } " / "
        }
        div #deploy-live data-deploy=(d.id) data-state=(d.state.as_str())
            data-live-part=[(!finished).then(|| format!("/ui/deploys/{}/stream?after={after}", d.id))] {
            (live_part(&session, &view))
        }
    };
    Ok(layout::respond(layout::page(
        &title,
        Nav::Services,
        Some(&session),
        content,
    )))
}

fn is_deploy_event(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::DeployQueued
            | EventKind::DeployApproved
            | EventKind::DeployStarted
            | EventKind::DeployProgress
            | EventKind::DeploySwitched
            | EventKind::DeployFinished
    )
}

/// Whether `event` may concern deploy `id` (events that name another deploy do not).
fn concerns(event: &ferry_store::db::Event, id: i64) -> bool {
    let named = ["deploy_id", "deploy"]
        .iter()
        .find_map(|k| event.data.get(*k).and_then(|v| v.as_i64()));
    is_deploy_event(event.kind) && named.is_none_or(|n| n == id)
}

/// `GET /ui/deploys/{id}/stream[?after=EVENT]`: `part` (the live part of the page,
/// rendered, with the deploy's state) after each change since `after`.
pub(in crate::ui) async fn stream(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, UiError> {
    let id = deploy_id(&id)?;
    let store = state.core.store().clone();
    let render_store = store.clone();
    let render: Render = Box::new(move || {
        let (store, session) = (render_store.clone(), session.clone());
        Box::pin(async move {
            let view = load(&store, id).await?;
            Ok(Part {
                html: live_part(&session, &view).into_string(),
                state: Some(view.deploy.state.as_str().to_owned()),
                finished: view.deploy.state.is_finished(),
            })
        })
    });
    live::stream(
        store,
        state.shutdown().clone(),
        q.after,
        move |e| concerns(e, id),
        render,
    )
    .await
}

/// Events of a run read to find its deploys (a run has a few per job).
const RUN_EVENTS_READ: i64 = 10_000;

/// The deploys run `run_id`'s jobs asked for (`deploy: ENV`), oldest first.
pub(in crate::ui) async fn of_run(store: &Store, run_id: i64) -> Result<Vec<Deploy>, DbError> {
    let events = store
        .list_events(&ferry_store::db::EventQuery {
            run_id: Some(run_id),
            limit: RUN_EVENTS_READ,
            ..Default::default()
        })
        .await?;
    let mut deploys = Vec::new();
    for event in events.iter().filter(|e| e.kind == EventKind::DeployQueued) {
        let Some(id) = event.data.get("deploy_id").and_then(|v| v.as_i64()) else {
            continue;
        };
        match store.deploy(id).await {
            Ok(d) => deploys.push(d),
            Err(DbError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deploys)
}

/// The run page's "Deploys" fact: each deploy its jobs made, with its state.
pub(in crate::ui) fn run_fact(deploys: &[Deploy]) -> Markup {
    html! {
        @if !deploys.is_empty() {
            div.wide {
                dt { "Deploys" }
                dd.run-deploys {
                    @for d in deploys {
                        a href={ "/deploys/" (d.id) } { (d.service) " " (d.release_name()) " → " (d.environment) }
                        " " (badge(d.state.as_str())) " "
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_deploy_shows_its_last_phase_red_and_the_others_done() {
        assert_eq!(
            phase_cls(DeployPhase::Health, true, DeployState::RolledBack),
            "bad"
        );
        assert_eq!(
            phase_cls(DeployPhase::Start, false, DeployState::RolledBack),
            "ok"
        );
        assert_eq!(
            phase_cls(DeployPhase::Rollback, false, DeployState::RolledBack),
            "bad"
        );
        assert_eq!(
            phase_cls(DeployPhase::Shift, true, DeployState::Running),
            "busy"
        );
    }
}
