//! `/services/{name}/confirm?env=E&release=N`: the confirmation every button that
//! changes what runs leads to. It says what runs now, what will run instead and how,
//! and its form posts to `/ui/services/{name}/deploy` (`actions.rs`). The service
//! page's script opens it in a dialog; without the script it is a page of its own.

use super::service_view::service_view;
use super::services::{enc, release_cell, service_path};
use crate::AppState;
use crate::ui::auth::Session;
use crate::ui::error::UiError;
use crate::ui::layout::{self, Nav, time};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use ferry_store::db::{DbError, LiveEnv};
use ferry_types::Role;
use maud::html;
use serde::Deserialize;

/// What deploying a release to an environment would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::ui) enum Intent {
    /// Go back to an earlier release than the live one (`ferry rollback --to`).
    Rollback,
    /// Deploy a newer release, or the first one (`ferry deploy --release`).
    Deploy,
    /// The release is live there already.
    AlreadyLive,
}

/// Deploying release `number` where `live` runs: older than the live release is a
/// rollback.
pub(in crate::ui) fn intent(live: Option<&LiveEnv>, number: i64) -> Intent {
    match live {
        Some(l) if l.release_number == number => Intent::AlreadyLive,
        Some(l) if number < l.release_number => Intent::Rollback,
        _ => Intent::Deploy,
    }
}

/// The query of the confirmation.
#[derive(Debug, Deserialize)]
pub(in crate::ui) struct ConfirmQuery {
    env: String,
    release: i64,
}

/// `GET /services/{name}/confirm?env=E&release=N`: what deploying release N to E
/// changes, and the button that does it. The service page's buttons open it in a
/// dialog.
pub(in crate::ui) async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<ConfirmQuery>,
) -> Result<Response, UiError> {
    session.require(Role::Operator)?;
    let store = state.core.store();
    let view = service_view(store, &name).await?;
    let service = &view.service.name;
    let env = view.env(&q.env).ok_or_else(|| {
        UiError::NotFound(format!(
            "service `{service}` has no environment `{}`; it has: {}",
            q.env,
            view.envs
                .iter()
                .map(|e| format!("`{}`", e.name))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let release = match view.releases.iter().find(|r| r.number == q.release) {
        Some(r) => r.clone(),
        None => match store.release(service, q.release).await {
            Ok(r) => r,
            Err(DbError::NotFound { .. }) => {
                return Err(UiError::NotFound(format!(
                    "service `{service}` has no release v{} (it may have been pruned)",
                    q.release
                )));
            }
            Err(e) => return Err(e.into()),
        },
    };
    let intent = intent(env.live.as_ref(), release.number);
    let warm = env
        .live
        .as_ref()
        .and_then(|l| l.previous.as_ref())
        .is_some_and(|w| w.release_id == release.id);
    let back = service_path(service);
    let (title, verb) = match intent {
        Intent::Rollback => (
            format!("Roll back {} of {service}?", env.name),
            "Roll back to",
        ),
        _ => (
            format!("Deploy {} to {} of {service}?", release.name(), env.name),
            "Deploy",
        ),
    };
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/services" { "Services" } " / " a href=(back) { (service) } " / "
        }
        section.confirm data-intent=(format!("{intent:?}").to_lowercase()) {
            h1 { (title) }
            @if intent == Intent::AlreadyLive {
                p { strong.release { (release.name()) } " is live in " (env.name) " already: there is nothing to change." }
                p { a.button href=(back) { "Back to " (service) } }
            } @else {
                dl.facts.compact {
                    div {
                        dt { (env.name) " runs" }
                        dd { @match &env.live { Some(l) => { (release_cell(env.live_release.as_ref(), l.release_number)) }, None => { span.muted { "nothing yet" } } } }
                    }
                    div { dt { "It will run" } dd { (release_cell(Some(&release), release.number)) } }
                    div { dt { "Made" } dd { (time(release.created_at)) " by " (release.created_by) } }
                    @if let Some(run) = release.run_id {
                        div { dt { "Built by" } dd { a href={ "/runs/" (run) } { "run #" (run) } } }
                    }
                }
                p {
                    @if warm {
                        (release.name()) " is still running (kept warm): traffic switches back to it at once. "
                    } @else {
                        (release.name()) " is started, checked and given traffic like any deploy, with "
                        (env.name) "'s strategy; if a check fails, what runs now keeps running. "
                    }
                    "The deploy's page shows its progress."
                }
                @if env.approval && intent == Intent::Deploy {
                    p.callout { "⏸ " (env.name) " needs approval: the deploy waits for an operator to approve it." }
                }
                form.confirm-form method="post" action={ "/ui/services/" (enc(service)) "/deploy" } {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="env" value=(env.name);
                    input type="hidden" name="release" value=(release.number);
                    div.actions {
                        @if intent == Intent::Rollback {
                            button.danger #confirm-submit type="submit" { (verb) " " (release.name()) }
                        } @else {
                            button.primary #confirm-submit type="submit" { (verb) " " (release.name()) }
                        }
                        a.button href=(back) data-dismiss autofocus {
                            @match &env.live { Some(l) => { "Keep v" (l.release_number) }, None => { "Cancel" } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::respond(layout::page(
        &title,
        Nav::Services,
        Some(&session),
        content,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live(number: i64) -> LiveEnv {
        LiveEnv {
            project: "shop".into(),
            service: "shop".into(),
            environment: "production".into(),
            release_id: number + 100,
            release_number: number,
            instances: json!([]),
            previous: None,
            deploy_id: 1,
            updated_at: 0,
        }
    }

    #[test]
    fn an_older_release_is_a_rollback_and_a_newer_one_a_deploy() {
        assert_eq!(intent(Some(&live(3)), 2), Intent::Rollback);
        assert_eq!(intent(Some(&live(3)), 4), Intent::Deploy);
        assert_eq!(intent(Some(&live(3)), 3), Intent::AlreadyLive);
        assert_eq!(intent(None, 1), Intent::Deploy);
    }
}
