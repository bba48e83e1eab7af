//! Projects: list, add, show, remove.

use crate::AppState;
use crate::auth::{Auth, Operator, Viewer};
use crate::convert;
use crate::error::{ApiError, Json, Path};
use axum::extract::State;
use axum::http::StatusCode;
use ferry_store::db::NewProject;
use ferry_types::api::{self, ErrorBody};

/// `GET /api/v1/projects`
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, description = "Every project, by name", body = Vec<api::Project>),
        (status = 401, body = ErrorBody)))]
pub async fn list(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<api::Project>>, ApiError> {
    let projects = state.core.store().list_projects().await?;
    Ok(axum::Json(
        projects.into_iter().map(convert::project).collect(),
    ))
}

/// `POST /api/v1/projects`
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects",
    request_body = api::NewProject,
    responses((status = 201, description = "Registered", body = api::Project),
        (status = 400, body = ErrorBody), (status = 409, description = "The name is taken", body = ErrorBody)))]
pub async fn create(
    _auth: Auth<Operator>,
    State(state): State<AppState>,
    Json(new): Json<api::NewProject>,
) -> Result<(StatusCode, axum::Json<api::Project>), ApiError> {
    check_name(&new.name)?;
    if new.repo.trim().is_empty() {
        return Err(ApiError::bad_request("`repo` is empty")
            .hint("give the repository's URL or its path on the server's host"));
    }
    let branch = new.branch.filter(|b| !b.trim().is_empty());
    let webhook_secret = match new.webhook_secret.filter(|s| !s.is_empty()) {
        Some(secret) => Some(
            ferry_engine::server::webhook_secrets::seal(
                &state.core.config().data_dir,
                &new.name,
                &secret,
            )
            .await
            .map_err(|e| ApiError::internal(format!("sealing the webhook secret failed: {e}")))?,
        ),
        None => None,
    };
    let project = state
        .core
        .store()
        .add_project(&NewProject {
            name: new.name,
            repo: new.repo,
            default_branch: branch.unwrap_or_else(|| "main".to_owned()),
            webhook_secret,
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(convert::project(project))))
}

/// `GET /api/v1/projects/{name}`
#[utoipa::path(get, path = "/api/v1/projects/{name}", tag = "projects",
    params(("name" = String, Path, description = "The project's name")),
    responses((status = 200, body = api::Project), (status = 404, body = ErrorBody)))]
pub async fn show(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<api::Project>, ApiError> {
    let project = state
        .core
        .store()
        .get_project(&name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("project", &name).hint("`ferry project list` shows the projects")
        })?;
    Ok(axum::Json(convert::project(project)))
}

/// `DELETE /api/v1/projects/{name}`
#[utoipa::path(delete, path = "/api/v1/projects/{name}", tag = "projects",
    params(("name" = String, Path, description = "The project's name")),
    responses((status = 204, description = "Removed, with its runs"), (status = 404, body = ErrorBody)))]
pub async fn remove(
    _auth: Auth<Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.core.store().remove_project(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("project", &name))
    }
}

/// Project names appear in URLs and webhook paths: keep them to a safe alphabet.
fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(
            ApiError::bad_request(format!("`{name}` is not a valid project name"))
                .hint("use 1 to 100 letters, digits, `-`, `_` and `.`, not starting with `.`"),
        )
    }
}
