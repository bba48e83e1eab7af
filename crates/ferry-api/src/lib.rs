//! Ferry's HTTP surface.
//!
//! [`router`] builds the whole application: the REST API under `/api/v1`, webhooks
//! under `/hooks`, `/healthz`, `/readyz`, `/metrics` and the web UI ([`ui`]). Handlers
//! share an [`AppState`].
#![deny(missing_docs)]

pub mod ui;

use axum::Router;
use ferry_engine::server::Core;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine's server core (and through it, the store and blobs).
    pub core: Core,
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    Router::new().merge(ui::router()).with_state(state)
}
