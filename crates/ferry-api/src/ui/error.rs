//! What a page or action shows when it cannot do what was asked.

use super::layout::{self, Nav};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_engine::server::CoreError;
use ferry_store::db::DbError;
use maud::html;

/// A failure shown to the person as a page.
#[derive(Debug, thiserror::Error)]
pub(super) enum UiError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 403: the role is too small or the CSRF token is wrong.
    #[error("{0}")]
    Forbidden(String),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 409: not possible in the current state, e.g. cancelling a finished run.
    #[error("{0}")]
    Conflict(String),
    /// 502: the repository could not be read.
    #[error("{0}")]
    Upstream(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

impl From<DbError> for UiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound { .. } => UiError::NotFound(e.to_string()),
            DbError::Conflict { .. } | DbError::Invalid(_) | DbError::LeaseLost { .. } => {
                UiError::Conflict(e.to_string())
            }
            _ => UiError::Internal(e.to_string()),
        }
    }
}

impl From<CoreError> for UiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound { .. } => UiError::NotFound(e.to_string()),
            CoreError::Invalid(_) => UiError::Conflict(e.to_string()),
            CoreError::Pipeline(_) => UiError::BadRequest(e.to_string()),
            CoreError::Git(_) => UiError::Upstream(e.to_string()),
            CoreError::Store(inner) => inner.into(),
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            UiError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            UiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
            UiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Cannot do that"),
            UiError::Conflict(_) => (StatusCode::CONFLICT, "Cannot do that now"),
            UiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "Repository unavailable"),
            UiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Something failed"),
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "A web UI request failed.");
        }
        let content = html! {
            section.problem {
                h1 { (title) }
                p role="alert" { (self.to_string()) }
                p { a href="/" data-back { "Go back" } " · " a href="/" { "Projects" } }
            }
        };
        let mut response = layout::respond(layout::page(title, Nav::None, None, content));
        *response.status_mut() = status;
        response
    }
}
