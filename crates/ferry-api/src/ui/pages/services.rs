//! `/services`: every service with its environments and the release live in each;
//! `/services/{name}`: one service's environments, release history and deploys, with
//! a rollback button per environment and "deploy this release" per release, which
//! lead to the confirmation (`confirm.rs`).
//!
//! Everything is read from the store: the environments come from the newest
//! release's `ferry.yml` (in promotion order), plus any environment that has a live
//! release or a deploy but is no longer declared. Changing what runs always goes
//! through the confirmation: the buttons are links to it, which the script opens in a
//! dialog.

use crate::AppState;
use crate::ui::auth::Session;
use crate::ui::error::UiError;
use crate::ui::layout::{self, Nav, badge, duration, human_ms, iso_utc, short_sha, time};
use crate::ui::live::{self, Part, Render, StreamQuery};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use ferry_store::db::{
    DbError, Deploy, DeployQuery, Event, LiveEnv, Release, ReleaseArtifact, Service, Store, now_ms,
};
use ferry_types::{EventKind, Role};
use maud::{Markup, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// Releases a service page lists (the store keeps at least 10 per service).
const RELEASES_SHOWN: i64 = 50;
/// Deploys a service page lists.
const DEPLOYS_SHOWN: i64 = 50;

/// One environment of a service, as the pages show it.
pub(in crate::ui) struct EnvView {
    /// Its name.
    pub name: String,
    /// Whether the newest release's config gates deploys to it by approval.
    pub approval: bool,
    /// The strategy the newest release's config gives it, e.g. `blue-green`.
    pub strategy: Option<&'static str>,
    /// Its live state, None before its first deploy.
    pub live: Option<LiveEnv>,
    /// The live release.
    pub live_release: Option<Release>,
    /// The deploy that made it live.
    pub live_deploy: Option<Deploy>,
    /// What a rollback goes back to: the warm release, else the one live before.
    pub rollback_to: Option<Release>,
    /// The newest deploy to it.
    pub last: Option<Deploy>,
}

/// A service with what its pages show.
pub(in crate::ui) struct ServiceView {
    /// The service.
    pub service: Service,
    /// Its releases, newest first.
    pub releases: Vec<Release>,
    /// Its environments, in promotion order.
    pub envs: Vec<EnvView>,
    /// Its deploys, newest first.
    pub deploys: Vec<Deploy>,
}

impl ServiceView {
    /// The environment named `name`.
    pub fn env(&self, name: &str) -> Option<&EnvView> {
        self.envs.iter().find(|e| e.name == name)
    }

    /// The environments release `id` is live or warm in, as (environment, warm).
    fn live_in(&self, id: i64) -> Vec<(&str, bool)> {
        let mut out = Vec::new();
        for env in &self.envs {
            let Some(live) = &env.live else { continue };
            if live.release_id == id {
                out.push((env.name.as_str(), false));
            } else if live.previous.as_ref().is_some_and(|w| w.release_id == id) {
                out.push((env.name.as_str(), true));
            }
        }
        out
    }
}

/// Release `id`: from `known` when listed there, else from the store; None when it
/// was pruned.
async fn find_release(
    store: &Store,
    known: &[Release],
    id: i64,
) -> Result<Option<Release>, DbError> {
    if let Some(r) = known.iter().find(|r| r.id == id) {
        return Ok(Some(r.clone()));
    }
    match store.release_by_id(id).await {
        Ok(r) => Ok(Some(r)),
        Err(DbError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The strategy's name as `ferry.yml` writes it.
fn strategy_name(s: &ferry_config::Strategy) -> &'static str {
    match s {
        ferry_config::Strategy::Rolling(_) => "rolling",
        ferry_config::Strategy::BlueGreen(_) => "blue-green",
        ferry_config::Strategy::Canary(_) => "canary",
        ferry_config::Strategy::Recreate => "recreate",
    }
}

/// The environments of the newest release's `deploy:` section, in promotion order,
/// with (approval, strategy); empty when it does not parse.
fn declared_envs(release: Option<&Release>) -> Vec<(String, bool, &'static str)> {
    let Some(release) = release else {
        return Vec::new();
    };
    let Ok(pipeline) = ferry_config::parse(std::path::Path::new("ferry.yml"), &release.config)
    else {
        return Vec::new();
    };
    pipeline
        .deploy
        .map(|d| {
            d.environments
                .values()
                .map(|e| {
                    (
                        e.name.clone(),
                        e.approval.is_some(),
                        strategy_name(&e.strategy),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads what the pages show of `service`; `live_all` is [`Store::live_envs`].
pub(in crate::ui) async fn load(
    store: &Store,
    service: Service,
    live_all: &[LiveEnv],
) -> Result<ServiceView, DbError> {
    let releases = store.releases(&service.name, RELEASES_SHOWN).await?;
    let deploys = store
        .deploys(&DeployQuery {
            service: Some(service.name.clone()),
            limit: Some(DEPLOYS_SHOWN),
            ..Default::default()
        })
        .await?;
    let live: Vec<&LiveEnv> = live_all
        .iter()
        .filter(|l| l.service == service.name)
        .collect();

    let mut names: Vec<(String, bool, Option<&'static str>)> = declared_envs(releases.first())
        .into_iter()
        .map(|(n, a, s)| (n, a, Some(s)))
        .collect();
    // Environments no longer declared still show while something runs or ran there.
    let mut extra: Vec<String> = live
        .iter()
        .map(|l| l.environment.clone())
        .chain(deploys.iter().map(|d| d.environment.clone()))
        .filter(|e| !names.iter().any(|(n, _, _)| n == e))
        .collect();
    extra.sort();
    extra.dedup();
    names.extend(extra.into_iter().map(|e| (e, false, None)));

    let mut envs = Vec::with_capacity(names.len());
    for (name, approval, strategy) in names {
        let live = live
            .iter()
            .find(|l| l.environment == name)
            .map(|l| (*l).clone());
        let last = deploys.iter().find(|d| d.environment == name).cloned();
        let (mut live_release, mut live_deploy, mut rollback_to) = (None, None, None);
        if let Some(l) = &live {
            live_release = find_release(store, &releases, l.release_id).await?;
            live_deploy = match deploys.iter().find(|d| d.id == l.deploy_id) {
                Some(d) => Some(d.clone()),
                None => match store.deploy(l.deploy_id).await {
                    Ok(d) => Some(d),
                    Err(DbError::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                },
            };
            let previous = l
                .previous
                .as_ref()
                .map(|w| w.release_id)
                .or_else(|| live_deploy.as_ref().and_then(|d| d.previous_release_id))
                .filter(|id| *id != l.release_id);
            if let Some(id) = previous {
                rollback_to = find_release(store, &releases, id).await?;
            }
        }
        envs.push(EnvView {
            name,
            approval,
            strategy,
            live,
            live_release,
            live_deploy,
            rollback_to,
            last,
        });
    }
    Ok(ServiceView {
        service,
        releases,
        envs,
        deploys,
    })
}

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

/// Reads one service, or a page saying it does not exist.
pub(in crate::ui) async fn service_view(store: &Store, name: &str) -> Result<ServiceView, UiError> {
    let service = match store.service(name).await {
        Ok(s) => s,
        Err(DbError::NotFound { .. }) => {
            return Err(UiError::NotFound(format!(
                "service `{name}` not found: see /services for the services Ferry knows"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let live = store.live_envs().await?;
    Ok(load(store, service, &live).await?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_come_in_promotion_order_from_the_release_config() {
        let config = r#"name: shop
jobs:
  build:
    steps:
      - run: echo build
deploy:
  name: shop
  command: ./shop
  port: 8080
  environments:
    staging:
      strategy: blue-green
    production:
      strategy: rolling
      approval: true
"#;
        let release = Release {
            id: 1,
            project: "shop".into(),
            service: "shop".into(),
            number: 1,
            sha: "a".repeat(40),
            artifact: ReleaseArtifact::Image {
                reference: "shop:1".into(),
            },
            config: config.into(),
            env: Default::default(),
            run_id: None,
            created_by: "ferry".into(),
            created_at: 0,
        };
        assert_eq!(
            declared_envs(Some(&release)),
            vec![
                ("staging".to_owned(), false, "blue-green"),
                ("production".to_owned(), true, "rolling"),
            ]
        );
        assert!(declared_envs(None).is_empty());
    }
}
