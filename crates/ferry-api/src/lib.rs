//! Ferry's HTTP surface.
//!
//! [`router`] builds the whole application: the REST API under `/api/v1` (described
//! by the OpenAPI document at `/api/v1/openapi.json`, generated from the handlers), the
//! webhooks under `/hooks`, `/healthz`, `/readyz`, `/metrics` and the web UI ([`ui`]).
//! [`serve`] runs it on a listener until a shutdown signal, then drains. Handlers share
//! an [`AppState`].
//!
//! Where to read: [`auth`] for who may do what, [`error::ApiError`] for how failures
//! answer, `hooks.rs` for the webhook signatures, `agents.rs` for the long-poll that
//! remote agents pull work through, `logs.rs` and `events.rs` for the live streams.
#![deny(missing_docs)]

mod agents;
pub mod auth;
mod blobs;
mod convert;
mod deploys;
pub mod error;
mod events;
mod health;
mod hooks;
mod job_deploys;
mod logs;
mod metrics;
mod openapi;
mod projects;
mod runs;
mod sse;
mod tls;
mod tokens;
pub mod ui;

pub use auth::authenticate;
pub use error::ApiError;

use axum::Router;
use ferry_engine::server::Core;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Whether `/metrics` answers without a token (true by default); when false it
    /// needs a `viewer` token.
    pub metrics_public: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            metrics_public: true,
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine's server core (and through it, the store and blobs).
    pub core: Core,
    config: Arc<ApiConfig>,
    shutdown: CancellationToken,
    metrics: Arc<metrics::Metrics>,
    job_deploys: Arc<job_deploys::InFlight>,
}

impl AppState {
    /// The state of a server on `core` with `config`.
    pub fn new(core: Core, config: ApiConfig) -> AppState {
        AppState {
            core,
            config: Arc::new(config),
            shutdown: CancellationToken::new(),
            metrics: Arc::new(metrics::Metrics::new()),
            job_deploys: Arc::new(job_deploys::InFlight::default()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    /// Cancelled when the server shuts down: live streams and long-polls end then.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The same state, whose streams end when `shutdown` is cancelled.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> AppState {
        self.shutdown = shutdown;
        self
    }
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let (api, doc) = openapi::api_router().split_for_parts();
    let doc = Arc::new(openapi::render(doc));
    Router::new()
        .merge(api)
        .merge(openapi::router(doc))
        .merge(health::router())
        .merge(metrics::router())
        .merge(hooks::router())
        .merge(ui::router())
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` is cancelled, then stops accepting
/// connections, ends live streams and long-polls, and waits for requests in flight.
/// With `tls`, over HTTPS only.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state.with_shutdown(shutdown.clone()));
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        }
        Some(config) => {
            axum::serve(tls::TlsListener::new(listener, config), app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        }
    }
}
