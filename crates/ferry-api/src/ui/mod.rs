//! The web UI: server-rendered pages with embedded assets.

use crate::AppState;
use axum::Router;

/// The UI's routes.
pub fn router() -> Router<AppState> {
    Router::new()
}
