//! API tokens: list, create (the token is shown once), revoke. Admin only.

use crate::AppState;
use crate::auth::{Admin, Auth};
use crate::convert;
use crate::error::{ApiError, Json, Path};
use axum::extract::State;
use axum::http::StatusCode;
use ferry_types::api::{self, ErrorBody};

/// `GET /api/v1/tokens`
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, description = "Every token, revoked ones included", body = Vec<api::TokenInfo>),
        (status = 403, description = "Needs the admin role", body = ErrorBody)))]
pub async fn list(
    _auth: Auth<Admin>,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<api::TokenInfo>>, ApiError> {
    let tokens = state.core.store().list_tokens().await?;
    Ok(axum::Json(tokens.into_iter().map(convert::token).collect()))
}

/// `POST /api/v1/tokens`
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = api::NewToken,
    responses((status = 201, description = "The token, shown only now", body = api::CreatedToken),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    _auth: Auth<Admin>,
    State(state): State<AppState>,
    Json(new): Json<api::NewToken>,
) -> Result<(StatusCode, axum::Json<api::CreatedToken>), ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(
            ApiError::bad_request("a token needs a name of 1 to 100 characters")
                .hint("name it after who or what uses it, e.g. `ci-agent-1`"),
        );
    }
    let created = state.core.store().create_token(name, new.role).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(api::CreatedToken {
            info: convert::token(created.info),
            token: created.token,
        }),
    ))
}

/// `DELETE /api/v1/tokens/{id}`
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "No such token, or revoked already", body = ErrorBody)))]
pub async fn revoke(
    _auth: Auth<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if state.core.store().revoke_token(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("token", id)
            .hint("`ferry token list` shows tokens and whether they are revoked"))
    }
}
