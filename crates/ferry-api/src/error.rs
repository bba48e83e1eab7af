//! One error type for every API answer that is not a success, and extractors whose
//! rejections use it.
//!
//! [`ApiError`] becomes `{"error": "...", "hint": "..."}` with the status that fits:
//! 400 bad input, 401 no or bad token, 403 too weak a role, 404 unknown thing, 409 a
//! state conflict (a lost lease, a finished job), 422 a deploy that cannot be carried
//! out (an unknown environment, nothing to roll back to), 500 the server's own failure (logged).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_engine::deploy::DeployError;
use ferry_engine::server::CoreError;
use ferry_store::db::DbError;
use ferry_types::api::ErrorBody;
use serde::de::DeserializeOwned;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What failed, for people.
    pub error: String,
    /// What to do next.
    pub hint: Option<String>,
}

impl ApiError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            hint: None,
        }
    }

    /// The same error with a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> ApiError {
        self.hint = Some(hint.into());
        self
    }

    /// 400: the request is malformed or asks for something impossible.
    pub fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    /// 404: `what` `key` does not exist.
    pub fn not_found(what: &str, key: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} `{key}` not found"))
    }

    /// 409: not possible in the current state.
    pub fn conflict(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, error)
    }

    /// 500: the server failed; the cause is logged.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %error, "A request failed inside the server.");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {error}"),
        )
        .hint("the server's log has the details; retrying may help if the database was busy")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.error, self.status)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let body = ErrorBody {
            error: self.error,
            hint: self.hint,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"ferry\""),
            );
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> ApiError {
        match err {
            DbError::NotFound { what, key } => ApiError::not_found(what, key),
            DbError::Conflict { .. } => ApiError::conflict(err.to_string()),
            DbError::LeaseLost { .. } => ApiError::conflict(err.to_string())
                .hint("stop working on this job: its lease expired and it was taken back or ended"),
            DbError::Invalid(msg) => ApiError::bad_request(msg),
            other => ApiError::internal(other),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(err: CoreError) -> ApiError {
        match err {
            CoreError::NotFound { what, key } => ApiError::not_found(what, key),
            CoreError::Invalid(msg) => ApiError::conflict(msg),
            CoreError::Pipeline(msg) => ApiError::bad_request(msg)
                .hint("fix `ferry.yml` at that commit (`ferry validate` checks it locally)"),
            CoreError::Git(msg) => ApiError::bad_request(msg)
                .hint("check the project's repository and that the ref or commit exists"),
            CoreError::Store(db) => db.into(),
        }
    }
}

impl From<DeployError> for ApiError {
    fn from(err: DeployError) -> ApiError {
        match err {
            DeployError::NotFound { what, key } => ApiError::not_found(what, key),
            DeployError::Invalid(msg) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg),
            DeployError::Config(msg) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg).hint(
                "fix the `deploy:` section of the release's `ferry.yml` (`ferry validate` checks it) and make a new release",
            ),
            // The store refuses a change the deploy's state does not allow (approving
            // one not waiting, cancelling one that ended).
            DeployError::Store(DbError::Invalid(msg)) => ApiError::conflict(msg),
            DeployError::Store(db) => db.into(),
        }
    }
}

/// JSON body extractor whose rejection is an [`ApiError`] (400 with serde's words).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    let err = ApiError::new(
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            status
        } else {
            StatusCode::BAD_REQUEST
        },
        text,
    );
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            err.hint("send the body as JSON with `Content-Type: application/json`")
        }
        _ => err,
    }
}

/// Query-string extractor whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|r: QueryRejection| ApiError::bad_request(r.body_text()))
    }
}

/// Path-parameter extractor whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|r: PathRejection| ApiError::bad_request(r.body_text()))
    }
}

/// A JSON body that may be left out: an empty body is `T::default()`. For `POST`s
/// whose body only holds options (trigger, re-run), so `curl -X POST` works.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::new(r.status(), r.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalJson)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid: {e}")))
    }
}
