//! The OpenAPI document, generated from the handlers: each `/api/v1` handler carries
//! a `#[utoipa::path]` description and is registered here through
//! [`utoipa_axum::routes!`], so a route cannot exist without its description.

use crate::AppState;
use crate::auth::{Auth, Viewer};
use crate::{agents, blobs, deploys, events, job_deploys, logs, projects, runs, tokens};
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The document's frame: title, version, security, tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferry",
        description = "The REST API of Ferry, a self-hosted DevOps platform. Every route needs \
            `Authorization: Bearer <token>`; reading needs the `viewer` role, triggering, \
            cancelling, re-running and the agent routes `developer`, approving and managing \
            projects `operator`, tokens `admin`. Errors answer `{\"error\": ..., \"hint\": ...}`."
    ),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags(
        (name = "projects", description = "Registered repositories"),
        (name = "runs", description = "Pipeline runs and their jobs"),
        (name = "logs", description = "Job logs, paged or live"),
        (name = "events", description = "The event log, listed or live"),
        (name = "tokens", description = "API tokens (admin)"),
        (name = "agents", description = "What remote agents call"),
        (name = "blobs", description = "Artifacts and caches by digest"),
        (name = "deploys", description = "Services, releases and deploys"),
    )
)]
struct ApiDoc;

/// Adds the bearer-token security scheme.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every `/api/v1` route with its description.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::show, projects::remove))
        .routes(routes!(runs::list))
        .routes(routes!(runs::trigger))
        .routes(routes!(runs::show))
        .routes(routes!(runs::cancel))
        .routes(routes!(runs::approve))
        .routes(routes!(runs::rerun))
        .routes(routes!(logs::logs))
        .routes(routes!(events::events))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(agents::claim))
        .routes(routes!(agents::heartbeat))
        .routes(routes!(agents::append_log))
        .routes(routes!(agents::finish))
        .routes(routes!(agents::source))
        .routes(routes!(agents::list))
        .routes(routes!(blobs::get, blobs::put))
        .routes(routes!(deploys::list_services))
        .routes(routes!(deploys::show_service))
        .routes(routes!(deploys::releases))
        .routes(routes!(deploys::output))
        .routes(routes!(deploys::create_deploy))
        .routes(routes!(deploys::promote))
        .routes(routes!(deploys::rollback))
        .routes(routes!(deploys::list_deploys))
        .routes(routes!(deploys::show_deploy))
        .routes(routes!(deploys::approve))
        .routes(routes!(deploys::cancel))
        .routes(routes!(job_deploys::job_deploy))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY))
}

/// The largest JSON body (a batch of log lines); blob uploads stream without limit.
const MAX_JSON_BODY: usize = 32 * 1024 * 1024;

/// The document as JSON text (with the one route not generated: itself).
pub fn render(mut doc: utoipa::openapi::OpenApi) -> String {
    doc.paths.paths.insert(
        "/api/v1/openapi.json".to_owned(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This document"))
                .tag("meta")
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new().description("The OpenAPI document"),
                ),
        ),
    );
    doc.to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "Encoding the OpenAPI document failed.");
        "{}".to_owned()
    })
}

/// `GET /api/v1/openapi.json`.
pub fn router(doc: Arc<String>) -> Router<AppState> {
    Router::new().route(
        "/api/v1/openapi.json",
        get(move |_auth: Auth<Viewer>| {
            let doc = doc.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    doc.as_str().to_owned(),
                )
                    .into_response()
            }
        }),
    )
}
