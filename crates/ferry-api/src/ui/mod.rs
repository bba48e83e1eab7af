//! The web UI: server-rendered pages with embedded assets and live updates.
//!
//! Pages are HTML rendered with [`maud`] from the store; one CSS and one JavaScript
//! file are compiled into the binary (`assets.rs`) and served with long cache lifetimes
//! under a content hash, so there is no front-end build. Live updates arrive as
//! server-sent events from the UI's own streams (`stream.rs`), fed by the event log
//! ([`ferry_store::db::Store::follow`]) and the log store
//! ([`ferry_store::db::Store::follow_log`]).
//!
//! Every page and action needs a session: an API token kept in an HttpOnly,
//! SameSite=Strict cookie (`auth.rs`). Viewing needs the `viewer` role; approving,
//! cancelling, re-running and triggering need `developer` or above. Forms that change
//! state carry a CSRF token derived from the session.
//!
//! Routes:
//! - `GET /` projects, `GET /projects/{name}` one project's runs, `GET /runs` all runs,
//!   `GET /runs/{id}` the run page, `GET /events`, `GET /agents`;
//! - `GET /services` services and their environments, `GET /services/{name}` one
//!   service (releases, deploys, rollback), `GET /services/{name}/confirm` the
//!   confirmation of a deploy or rollback, `GET /deploys/{id}` one deploy;
//! - `GET|POST /login` (also `/login?token=…`), `GET /logout`;
//! - `POST /ui/runs/{id}/cancel|approve|rerun`, `POST /ui/projects/{name}/trigger`;
//! - `POST /ui/services/{name}/deploy` (deploy or roll back, `operator`),
//!   `POST /ui/deploys/{id}/approve|cancel` (`operator`);
//! - `GET /ui/runs/{id}/stream`, `/ui/runs/stream`, `/ui/events/stream`,
//!   `/ui/deploys/{id}/stream`, `/ui/services/stream`, `/ui/services/{name}/stream`
//!   (SSE);
//! - `GET /ui/assets/{file}`.

mod actions;
mod assets;
mod auth;
mod error;
mod graph;
mod layout;
mod live;
mod pages;
mod stream;

use crate::AppState;
use axum::Router;
use axum::routing::{get, post};

/// The UI's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::projects::index))
        .route("/projects/{name}", get(pages::projects::show))
        .route("/runs", get(pages::runs::index))
        .route("/runs/{id}", get(pages::run::show))
        .route("/events", get(pages::events::index))
        .route("/agents", get(pages::agents::index))
        .route("/services", get(pages::services::index))
        .route("/services/{name}", get(pages::services::show))
        .route("/services/{name}/confirm", get(pages::confirm::show))
        .route("/deploys/{id}", get(pages::deploys::show))
        .route("/login", get(auth::login_page).post(auth::login_submit))
        .route("/logout", get(auth::logout))
        .route("/ui/runs/{id}/cancel", post(actions::cancel))
        .route("/ui/runs/{id}/approve", post(actions::approve))
        .route("/ui/runs/{id}/rerun", post(actions::rerun))
        .route("/ui/projects/{name}/trigger", post(actions::trigger))
        .route("/ui/services/{name}/deploy", post(actions::deploy))
        .route("/ui/deploys/{id}/approve", post(actions::approve_deploy))
        .route("/ui/deploys/{id}/cancel", post(actions::cancel_deploy))
        .route("/ui/runs/{id}/stream", get(stream::run))
        .route("/ui/deploys/{id}/stream", get(pages::deploys::stream))
        .route("/ui/services/stream", get(pages::services::index_stream))
        .route("/ui/services/{name}/stream", get(pages::services::stream))
        .route("/ui/runs/stream", get(stream::runs))
        .route("/ui/events/stream", get(stream::events))
        .route("/ui/assets/{file}", get(assets::serve))
}
