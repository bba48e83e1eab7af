//! What the run, project, service and deploy pages' buttons do: plain form POSTs that
//! call the core and send the browser back to a page (303), so they work without the
//! script too.
//!
//! Each checks the session's role (`developer` or above; approving, deploying, rolling
//! back and cancelling deploys need `operator`) and the form's CSRF token; the
//! SameSite=Strict session cookie already keeps other sites from posting these.

use super::auth::{Session, parse_form};
use super::error::UiError;
use super::pages::confirm::{Intent, intent};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use ferry_engine::deploy::{DeployError, DeployRequest};
use ferry_engine::server::{TriggerOutcome, TriggerRequest};
use ferry_types::{Role, Trigger};
use std::collections::HashMap;

/// Checks the role, parses the form and checks its CSRF token.
fn authorize(session: &Session, body: &str) -> Result<HashMap<String, String>, UiError> {
    session.require(Role::Developer)?;
    let form = parse_form(body);
    session.check_csrf(&form)?;
    Ok(form)
}

/// The id of a `what` (run, deploy) in a path; anything but a number is not found.
fn id_of(what: &str, raw: &str) -> Result<i64, UiError> {
    raw.parse()
        .map_err(|_| UiError::NotFound(format!("{what} `{raw}` not found: {what} ids are numbers")))
}

fn run_id(raw: &str) -> Result<i64, UiError> {
    id_of("run", raw)
}

fn to_run(id: i64) -> Response {
    Redirect::to(&format!("/runs/{id}")).into_response()
}

/// `POST /ui/runs/{id}/cancel`.
pub(super) async fn cancel(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: String,
) -> Result<Response, UiError> {
    authorize(&session, &body)?;
    let id = run_id(&id)?;
    state.core.cancel_run(id, &session.actor()).await?;
    Ok(to_run(id))
}

/// `POST /ui/runs/{id}/approve` with `job`.
pub(super) async fn approve(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: String,
) -> Result<Response, UiError> {
    // Approving is an operator's decision, as in the API (`POST …/approve`).
    session.require(Role::Operator)?;
    let form = authorize(&session, &body)?;
    let id = run_id(&id)?;
    let job = form
        .get("job")
        .filter(|j| !j.is_empty())
        .ok_or_else(|| UiError::BadRequest("say which job to approve".into()))?;
    state.core.approve(id, job, &session.actor()).await?;
    Ok(to_run(id))
}

/// `POST /ui/runs/{id}/rerun`, with `failed_only=true` for only the jobs that did not
/// pass. Opens the run that re-runs it.
pub(super) async fn rerun(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: String,
) -> Result<Response, UiError> {
    let form = authorize(&session, &body)?;
    let id = run_id(&id)?;
    let failed_only = form
        .get("failed_only")
        .is_some_and(|v| matches!(v.as_str(), "true" | "on" | "1"));
    let run = state.core.rerun(id, failed_only, &session.actor()).await?;
    Ok(to_run(run.id))
}

/// `POST /ui/projects/{name}/trigger`, with an optional `ref`: a manual run.
pub(super) async fn trigger(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    body: String,
) -> Result<Response, UiError> {
    let form = authorize(&session, &body)?;
    let git_ref = form
        .get("ref")
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let outcome = state
        .core
        .trigger(TriggerRequest {
            project: name,
            git_ref,
            sha: None,
            trigger: Trigger::Manual,
            changed_paths: None,
            delivery_id: None,
        })
        .await?;
    match outcome {
        TriggerOutcome::Started(run) => Ok(to_run(run.id)),
        TriggerOutcome::Filtered(why) => Err(UiError::Conflict(format!(
            "the pipeline does not run for this: {why}"
        ))),
    }
}

/// A deploy engine failure as the page shows it.
fn deploy_error(e: DeployError) -> UiError {
    match e {
        DeployError::NotFound { .. } => UiError::NotFound(e.to_string()),
        DeployError::Invalid(_) => UiError::Conflict(e.to_string()),
        DeployError::Config(_) => UiError::BadRequest(e.to_string()),
        DeployError::Store(inner) => inner.into(),
    }
}

fn deploy_id(raw: &str) -> Result<i64, UiError> {
    id_of("deploy", raw)
}

fn to_deploy(id: i64) -> Response {
    Redirect::to(&format!("/deploys/{id}")).into_response()
}

/// `POST /ui/services/{name}/deploy` with `env` and `release`, from the confirmation
/// page: a release older than the live one is rolled back to (`ferry rollback --to`),
/// any other is deployed (`ferry deploy --release`). Opens the deploy's page.
pub(super) async fn deploy(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    body: String,
) -> Result<Response, UiError> {
    // Changing what runs is an operator's decision, like approving.
    session.require(Role::Operator)?;
    let form = authorize(&session, &body)?;
    let env = form
        .get("env")
        .filter(|e| !e.is_empty())
        .ok_or_else(|| UiError::BadRequest("say which environment to deploy to".into()))?;
    let release: i64 = form
        .get("release")
        .and_then(|r| r.trim_start_matches('v').parse().ok())
        .ok_or_else(|| UiError::BadRequest("say which release to deploy, by number".into()))?;
    let live = state.core.store().live_env(&name, env).await?;
    let deployer = state.core.deployer();
    let actor = session.actor();
    let deploy = match intent(live.as_ref(), release) {
        Intent::AlreadyLive => {
            return Err(UiError::Conflict(format!(
                "v{release} is live in `{env}` of `{name}` already: there is nothing to change"
            )));
        }
        Intent::Rollback => deployer.rollback(&name, env, Some(release), &actor).await,
        Intent::Deploy => {
            deployer
                .deploy(DeployRequest {
                    service: name.clone(),
                    environment: env.clone(),
                    release: Some(release),
                    requested_by: actor,
                    run_id: None,
                    job: None,
                })
                .await
        }
    }
    .map_err(deploy_error)?;
    Ok(to_deploy(deploy.id))
}

/// `POST /ui/deploys/{id}/approve`.
pub(super) async fn approve_deploy(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: String,
) -> Result<Response, UiError> {
    session.require(Role::Operator)?;
    authorize(&session, &body)?;
    let id = deploy_id(&id)?;
    state
        .core
        .deployer()
        .approve(id, &session.actor())
        .await
        .map_err(deploy_error)?;
    Ok(to_deploy(id))
}

/// `POST /ui/deploys/{id}/cancel`: a deploy that has not started is cancelled, a
/// running one rolled back.
pub(super) async fn cancel_deploy(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: String,
) -> Result<Response, UiError> {
    session.require(Role::Operator)?;
    authorize(&session, &body)?;
    let id = deploy_id(&id)?;
    state
        .core
        .deployer()
        .cancel(id, &session.actor())
        .await
        .map_err(deploy_error)?;
    Ok(to_deploy(id))
}
