//! `/services`: every service with its environments and the release live in each;
//! `/services/{name}`: one service's environments, release history and deploys, with
//! a rollback button per environment and "deploy this release" per release, which
//! lead to the confirmation (`confirm.rs`).
//!
//! What is shown is read from the store (`service_view.rs`): the environments come
//! from the newest release's `ferry.yml` (in promotion order), plus any environment
//! that has a live release or a deploy but is no longer declared. Both pages follow
//! releases and deploys live (`live.rs`). Changing what runs always goes
//! through the confirmation: the buttons are links to it, which the script opens in a
//! dialog.

use super::service_view::{EnvView, ServiceView, load, service_view};
use crate::AppState;
use crate::ui::auth::Session;
use crate::ui::error::UiError;
use crate::ui::layout::{self, Nav, badge, duration, human_ms, iso_utc, short_sha, time};
use crate::ui::live::{self, Part, Render, StreamQuery};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use ferry_store::db::{Deploy, Event, Release, ReleaseArtifact, Store, now_ms};
use ferry_types::{EventKind, Role};
use maud::{Markup, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

pub(in crate::ui) fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// The path of a service's page.
pub(in crate::ui) fn service_path(name: &str) -> String {
    format!("/services/{}", enc(name))
}

/// The path of the confirmation of deploying release `number` to `env`.
fn confirm_path(service: &str, env: &str, number: i64) -> String {
    format!(
        "/services/{}/confirm?env={}&release={number}",
        enc(service),
        enc(env)
    )
}

/// `v3` with its commit.
pub(in crate::ui) fn release_cell(release: Option<&Release>, number: i64) -> Markup {
    html! {
        strong.release { "v" (number) }
        @if let Some(r) = release { " " (short_sha(&r.sha)) }
    }
}

/// The live release of an environment, with when and by whom it went live.
fn live_cell(env: &EnvView) -> Markup {
    match &env.live {
        Some(live) => html! {
            (release_cell(env.live_release.as_ref(), live.release_number))
            div.muted.small {
                (time(live.updated_at))
                @if let Some(d) = &env.live_deploy { " by " (d.requested_by) }
            }
        },
        None => html! { span.muted { "nothing deployed yet" } },
    }
}

/// The release kept warm for an instant rollback, if any.
fn warm_cell(env: &EnvView) -> Markup {
    match env.live.as_ref().and_then(|l| l.previous.as_ref()) {
        Some(w) => html! {
            span.release.warm title="Still running, for an instant rollback" { "v" (w.release_number) }
            " " span.muted.small title={ "Stopped at " (iso_utc(w.warm_until)) } {
                @match w.warm_until - now_ms() {
                    left if left > 0 => { "for " (human_ms(left)) " more" },
                    _ => { "stopping" },
                }
            }
        },
        None => html! { span.muted { "—" } },
    }
}

/// A deploy in a sentence-sized cell: state, link, release and kind.
pub(in crate::ui) fn deploy_cell(deploy: Option<&Deploy>) -> Markup {
    match deploy {
        Some(d) => html! {
            (badge(d.state.as_str())) " "
            a href={ "/deploys/" (d.id) } { "#" (d.id) } " "
            span.muted { (d.kind.as_str()) " of v" (d.release_number) }
        },
        None => html! { span.muted { "no deploys yet" } },
    }
}

/// The environments table; `actions` adds the rollback column.
fn envs_table(view: &ServiceView, session: Option<&Session>) -> Markup {
    let service = &view.service.name;
    html! {
        div.table-wrap {
            table.envs data-service=(service) {
                thead {
                    tr {
                        th scope="col" { "Environment" }
                        th scope="col" { "Live release" }
                        th scope="col" { "Warm" }
                        th scope="col" { "Last deploy" }
                        @if session.is_some() { th scope="col" { span.sr-only { "Actions" } } }
                    }
                }
                tbody {
                    @for env in &view.envs {
                        tr data-env=(env.name) {
                            th scope="row" {
                                (env.name)
                                @if let Some(s) = env.strategy { " " span.tag { (s) } }
                                @if env.approval { " " span.tag.gate title="Deploys wait for an operator's approval" { "approval" } }
                            }
                            td.live { (live_cell(env)) }
                            td { (warm_cell(env)) }
                            td { (deploy_cell(env.last.as_ref())) }
                            @if let Some(session) = session {
                                td.row-actions { (rollback_button(session, service, env)) }
                            }
                        }
                    }
                }
            }
            @if view.envs.is_empty() {
                p.empty.muted { "No environments: the service's `ferry.yml` declares none." }
            }
        }
    }
}

/// "Roll back to vN", leading to the confirmation; disabled with the reason when the
/// session may not or there is nothing to go back to.
fn rollback_button(session: &Session, service: &str, env: &EnvView) -> Markup {
    let Some(to) = &env.rollback_to else {
        return html! {
            button.danger type="button" disabled title="No earlier release to go back to" { "Roll back" }
        };
    };
    if !session.can(Role::Operator) {
        return html! {
            button.danger type="button" disabled
                title={ "Rolling back needs the `operator` role; this token has `" (session.info.role) "`" } {
                "Roll back to " (to.name())
            }
        };
    }
    html! {
        a.button.danger href=(confirm_path(service, &env.name, to.number)) data-confirm
            data-rollback=(env.name) {
            "Roll back to " (to.name())
        }
    }
}

/// How an artifact reads.
fn artifact(a: &ReleaseArtifact) -> Markup {
    match a {
        ReleaseArtifact::Image { reference } => {
            html! { code.repo title=(reference) { (reference) } }
        }
        ReleaseArtifact::Tarball { digest } => {
            let short: String = digest
                .trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect();
            html! { code title=(digest) { "tar " (short) } }
        }
    }
}

/// The release history, with "deploy to ENV" per release and environment.
fn releases_table(view: &ServiceView, session: &Session) -> Markup {
    let service = &view.service.name;
    let operator = session.can(Role::Operator);
    html! {
        div.table-wrap {
            table.releases {
                thead {
                    tr {
                        th scope="col" { "Release" }
                        th scope="col" { "Commit" }
                        th scope="col" { "Artifact" }
                        th scope="col" { "Made by" }
                        th scope="col" { "When" }
                        th scope="col" { "Run" }
                        th scope="col" { "Live in" }
                        @if operator { th scope="col" { "Deploy to" } }
                    }
                }
                tbody {
                    @for r in &view.releases {
                        @let live_in = view.live_in(r.id);
                        tr id={ "release-" (r.number) } data-release=(r.number) {
                            td { strong.release { (r.name()) } }
                            td { (short_sha(&r.sha)) }
                            td { (artifact(&r.artifact)) }
                            td { (r.created_by) }
                            td { (time(r.created_at)) }
                            td {
                                @if let Some(run) = r.run_id { a href={ "/runs/" (run) } { "#" (run) } }
                                @else { span.muted { "—" } }
                            }
                            td {
                                @for (env, warm) in &live_in {
                                    @if *warm {
                                        span.tag.warm title="Kept warm for an instant rollback" { (env) " (warm)" } " "
                                    } @else {
                                        span.tag.live { (env) } " "
                                    }
                                }
                            }
                            @if operator {
                                td.row-actions {
                                    @for env in &view.envs {
                                        @if !live_in.iter().any(|(e, warm)| *e == env.name && !warm) {
                                            a.button.small href=(confirm_path(service, &env.name, r.number))
                                                data-confirm data-deploy-to=(env.name) {
                                                "→ " (env.name)
                                            }
                                            " "
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if view.releases.is_empty() {
                p.empty.muted { "No releases yet: a pipeline job with `deploy:` makes one." }
            }
        }
    }
}

/// A deploys table.
pub(in crate::ui) fn deploys_table(deploys: &[Deploy]) -> Markup {
    html! {
        div.table-wrap {
            table.deploys {
                thead {
                    tr {
                        th scope="col" { "State" }
                        th scope="col" { "Deploy" }
                        th scope="col" { "Environment" }
                        th scope="col" { "Release" }
                        th scope="col" { "Kind" }
                        th scope="col" { "Requested by" }
                        th scope="col" { "Queued" }
                        th scope="col" { "Duration" }
                    }
                }
                tbody {
                    @for d in deploys {
                        tr id={ "deploy-" (d.id) } data-deploy-id=(d.id) {
                            td { (badge(d.state.as_str())) }
                            td { a href={ "/deploys/" (d.id) } { "#" (d.id) } }
                            td { (d.environment) }
                            td { strong.release { (d.release_name()) } }
                            td { (d.kind.as_str()) }
                            td { (d.requested_by) }
                            td { (time(d.created_at)) }
                            td { (duration(d.started_at, d.finished_at)) }
                        }
                    }
                }
            }
            @if deploys.is_empty() {
                p.empty.muted { "No deploys yet." }
            }
        }
    }
}

/// Every service with its environments: the services page below its heading (the
/// stream sends it again after each change).
async fn services_part(store: &Store) -> Result<Markup, UiError> {
    let live = store.live_envs().await?;
    let mut views = Vec::new();
    for service in store.services().await? {
        views.push(load(store, service, &live).await?);
    }
    Ok(html! {
        @if views.is_empty() {
            div.empty-state {
                p { "No services yet." }
                p.muted {
                    "A project's " code { "ferry.yml" } " declares one in its " code { "deploy:" }
                    " section; a pipeline job with " code { "deploy: ENV" } " releases and deploys it."
                }
            }
        }
        @for view in &views {
            section.service-card data-service=(view.service.name) {
                div.heading {
                    h2 {
                        a href=(service_path(&view.service.name)) { (view.service.name) }
                        " " span.muted.small { "from " a href={ "/projects/" (enc(&view.service.project)) } { (view.service.project) } }
                    }
                    span.muted.small {
                        @match view.releases.first() {
                            Some(r) => { "newest release " strong.release { (r.name()) } " " (time(r.created_at)) },
                            None => { "no releases yet" },
                        }
                    }
                }
                (envs_table(view, None))
            }
        }
    })
}

/// `GET /services`.
pub(in crate::ui) async fn index(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, UiError> {
    let store = state.core.store();
    // Read the log position first: the stream follows from it.
    let after = store.last_event_id().await?;
    let content = html! {
        div.heading { h1 { "Services" } }
        div #services-live data-live-part={ "/ui/services/stream?after=" (after) } {
            (services_part(store).await?)
        }
    };
    Ok(layout::respond(layout::page(
        "Services",
        Nav::Services,
        Some(&session),
        content,
    )))
}

/// `GET /ui/services/stream[?after=EVENT]`: `part` (the services page below its
/// heading, rendered) after each release or deploy change of any service.
pub(in crate::ui) async fn index_stream(
    State(state): State<AppState>,
    _session: Session,
    Query(q): Query<StreamQuery>,
) -> Result<Response, UiError> {
    let store = state.core.store().clone();
    let render_store = store.clone();
    let render: Render = Box::new(move || {
        let store = render_store.clone();
        Box::pin(async move {
            Ok(Part {
                html: services_part(&store).await?.into_string(),
                state: None,
                finished: false,
            })
        })
    });
    live::stream(
        store,
        state.shutdown().clone(),
        q.after,
        |e| is_service_event(e.kind),
        render,
    )
    .await
}

/// The part of the service page that changes with its deploys (the stream sends it
/// again after each change).
fn service_part(view: &ServiceView, session: &Session) -> Markup {
    let service = &view.service;
    html! {
        dl.facts {
            div { dt { "Project" } dd { a href={ "/projects/" (enc(&service.project)) } { (service.project) } } }
            div { dt { "Releases" } dd { (view.releases.len()) } }
            div { dt { "Environments" } dd { (view.envs.len()) } }
            div { dt { "First seen" } dd { (time(service.created_at)) } }
        }
        h2 { "Environments" }
        (envs_table(view, Some(session)))
        @if !session.can(Role::Operator) {
            p.muted.small { "Deploying and rolling back need the " code { "operator" } " role." }
        }
        h2 { "Releases" }
        (releases_table(view, session))
        h2 { "Deploys" }
        (deploys_table(&view.deploys))
    }
}

/// `GET /services/{name}`.
pub(in crate::ui) async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    // Read the log position first: the stream follows from it.
    let after = state.core.store().last_event_id().await?;
    let view = service_view(state.core.store(), &name).await?;
    let service = &view.service;
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/services" { "Services" } " / " }
        div.heading {
            h1 { (service.name) }
        }
        div #service-live data-service=(service.name)
            data-live-part={ "/ui/services/" (enc(&service.name)) "/stream?after=" (after) } {
            (service_part(&view, &session))
        }
    };
    Ok(layout::respond(layout::page(
        &service.name,
        Nav::Services,
        Some(&session),
        content,
    )))
}

/// Whether events of `kind` may change what the services pages show (progress
/// lines do not).
fn is_service_event(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::ReleaseCreated
            | EventKind::DeployQueued
            | EventKind::DeployApproved
            | EventKind::DeployStarted
            | EventKind::DeploySwitched
            | EventKind::DeployFinished
    )
}

/// Whether `event` may change what the page of `service` shows.
fn concerns(event: &Event, service: &str) -> bool {
    let named = event.data.get("service").and_then(|s| s.as_str());
    is_service_event(event.kind) && named.is_none_or(|n| n == service)
}

/// `GET /ui/services/{name}/stream[?after=EVENT]`: `part` (the service page below its
/// heading, rendered) after each release or deploy change of the service.
pub(in crate::ui) async fn stream(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, UiError> {
    let store = state.core.store().clone();
    let render_store = store.clone();
    let render_name = name.clone();
    let render: Render = Box::new(move || {
        let (store, session, name) = (render_store.clone(), session.clone(), render_name.clone());
        Box::pin(async move {
            let view = service_view(&store, &name).await?;
            Ok(Part {
                html: service_part(&view, &session).into_string(),
                state: None,
                finished: false,
            })
        })
    });
    live::stream(
        store,
        state.shutdown().clone(),
        q.after,
        move |e| concerns(e, &name),
        render,
    )
    .await
}
