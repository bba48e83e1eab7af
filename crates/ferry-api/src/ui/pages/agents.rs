//! `/agents`: remote executors, their labels and when they were last seen.

use crate::AppState;
use crate::ui::auth::Session;
use crate::ui::error::UiError;
use crate::ui::layout::{self, Nav, time};
use axum::extract::State;
use axum::response::Response;
use ferry_store::db::now_ms;
use maud::html;

/// An agent that polled or renewed a lease this recently counts as connected: its
/// long-poll returns at least this often.
const CONNECTED_WITHIN_MS: i64 = 60_000;

/// `GET /agents`.
pub(in crate::ui) async fn index(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, UiError> {
    let agents = state.core.store().list_agents().await?;
    let now = now_ms();
    let content = html! {
        div.heading { h1 { "Agents" } }
        @if agents.is_empty() {
            div.empty-state {
                p { "No remote agents have connected." }
                p.muted {
                    "Jobs run on the server's own executor. Start an agent elsewhere with "
                    code { "ferry agent --server URL --token TOKEN --labels linux,docker" } "."
                }
            }
        } @else {
            div.table-wrap {
                table {
                    thead {
                        tr {
                            th scope="col" { "State" }
                            th scope="col" { "Name" }
                            th scope="col" { "Id" }
                            th scope="col" { "Labels" }
                            th scope="col" { "Last seen" }
                            th scope="col" { "First seen" }
                        }
                    }
                    tbody {
                        @for agent in &agents {
                            tr {
                                td {
                                    @if now - agent.last_seen <= CONNECTED_WITHIN_MS {
                                        span.badge.s-ok { span.icon aria-hidden="true" { "●" } " connected" }
                                    } @else {
                                        span.badge.s-skip { span.icon aria-hidden="true" { "○" } " away" }
                                    }
                                }
                                td.strong { (agent.name) }
                                td { code { (agent.id) } }
                                td {
                                    @for label in &agent.labels { span.label { (label) } " " }
                                    @if agent.labels.is_empty() { span.muted { "none" } }
                                }
                                td { (time(agent.last_seen)) }
                                td { (time(agent.first_seen)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::respond(layout::page(
        "Agents",
        Nav::Agents,
        Some(&session),
        content,
    )))
}
