//! `/runs`: the newest runs of every project.

use super::{RUNS_SHOWN, runs_table};
use crate::AppState;
use crate::ui::auth::Session;
use crate::ui::error::UiError;
use crate::ui::layout::{self, Nav};
use axum::extract::State;
use axum::response::Response;
use maud::html;

/// `GET /runs`.
pub(in crate::ui) async fn index(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, UiError> {
    let runs = state.core.store().list_runs(None, RUNS_SHOWN).await?;
    let content = html! {
        div.heading { h1 { "Runs" } }
        (runs_table(&runs, true, "/ui/runs/stream"))
    };
    Ok(layout::respond(layout::page(
        "Runs",
        Nav::Runs,
        Some(&session),
        content,
    )))
}
