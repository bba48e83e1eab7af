//! `/healthz` (the process is up) and `/readyz` (the store answers): no token needed,
//! for load balancers and supervisors.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use ferry_types::api::Health;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    match state.core.store().last_event_id().await {
        Ok(_) => Ok(Json(Health {
            status: "ready".to_owned(),
        })),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store cannot be reached: {e}"),
        )
        .hint("check the database (`--database-url`) or the data directory's disk")),
    }
}
