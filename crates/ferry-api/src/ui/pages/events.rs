//! `/events`: the event log, newest first, filtered by project, live.

use crate::AppState;
use crate::ui::auth::Session;
use crate::ui::error::UiError;
use crate::ui::layout::{self, Nav, badge, time};
use axum::extract::{Query, State};
use axum::response::Response;
use ferry_store::db::{Event, EventQuery};
use maud::{Markup, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

/// How many events the page shows.
const EVENTS_SHOWN: i64 = 200;

/// The query of `GET /events`.
#[derive(Debug, Deserialize)]
pub(in crate::ui) struct EventsQuery {
    project: Option<String>,
}

/// One row of the events table; the live stream sends the same markup.
pub(in crate::ui) fn event_row(event: &Event) -> Markup {
    let status = event.data.get("status").and_then(|s| s.as_str());
    html! {
        tr id={ "event-" (event.id) } data-event-id=(event.id) {
            td.num { (event.id) }
            td { (time(event.at)) }
            td { code.kind { (event.kind.as_str()) } }
            td {
                @if let Some(p) = &event.project {
                    a href={ "/projects/" (utf8_percent_encode(p, NON_ALPHANUMERIC)) } { (p) }
                }
            }
            td {
                @if let Some(r) = event.run_id { a href={ "/runs/" (r) } { "#" (r) } }
                @if let Some(j) = &event.job { " " span.job { (j) } }
            }
            td.details {
                @if let Some(s) = status { (badge(s)) " " }
                (details(&event.data))
            }
        }
    }
}

/// The event's data as `key=value` pairs (the status is shown as a badge already).
fn details(data: &serde_json::Value) -> String {
    let Some(map) = data.as_object() else {
        return data.to_string();
    };
    map.iter()
        .filter(|(k, v)| k.as_str() != "status" && !v.is_null())
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// `GET /events`.
pub(in crate::ui) async fn index(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<EventsQuery>,
) -> Result<Response, UiError> {
    let store = state.core.store();
    let project = q.project.filter(|p| !p.is_empty());
    let mut events = store
        .list_events(&EventQuery {
            project: project.clone(),
            limit: EVENTS_SHOWN,
            newest: true,
            ..EventQuery::default()
        })
        .await?;
    events.reverse();
    let after = events.first().map_or(0, |e| e.id);
    let projects = store.list_projects().await?;
    let mut stream = format!("/ui/events/stream?after={after}");
    if let Some(p) = &project {
        stream.push_str("&project=");
        stream.push_str(&utf8_percent_encode(p, NON_ALPHANUMERIC).to_string());
    }
    let content = html! {
        div.heading {
            h1 { "Events" }
            form.inline.filter method="get" action="/events" {
                label for="project" { "Project" }
                select #project name="project" data-autosubmit {
                    option value="" selected[project.is_none()] { "All projects" }
                    @for p in &projects {
                        option value=(p.name) selected[project.as_deref() == Some(p.name.as_str())] { (p.name) }
                    }
                }
                button type="submit" { "Filter" }
            }
        }
        div.table-wrap {
            table.events data-stream-events=(stream) {
                thead {
                    tr {
                        th scope="col" { "#" }
                        th scope="col" { "When" }
                        th scope="col" { "Kind" }
                        th scope="col" { "Project" }
                        th scope="col" { "Run / job" }
                        th scope="col" { "Details" }
                    }
                }
                tbody {
                    @for event in &events { (event_row(event)) }
                }
            }
            @if events.is_empty() { p.empty.muted { "No events yet." } }
        }
    };
    Ok(layout::respond(layout::page(
        "Events",
        Nav::Events,
        Some(&session),
        content,
    )))
}
