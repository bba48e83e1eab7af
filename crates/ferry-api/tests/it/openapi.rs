//! The generated OpenAPI document.

use crate::support::{Server, TestResult};
use axum::http::{Method, StatusCode};

/// Every `/api/v1` route and its methods, as the CLI and the UI were promised.
const ROUTES: &[(&str, &[&str])] = &[
    ("/api/v1/openapi.json", &["get"]),
    ("/api/v1/projects", &["get", "post"]),
    ("/api/v1/projects/{name}", &["get", "delete"]),
    ("/api/v1/projects/{name}/runs", &["post"]),
    ("/api/v1/runs", &["get"]),
    ("/api/v1/runs/{id}", &["get"]),
    ("/api/v1/runs/{id}/cancel", &["post"]),
    ("/api/v1/runs/{id}/jobs/{job}/approve", &["post"]),
    ("/api/v1/runs/{id}/rerun", &["post"]),
    ("/api/v1/runs/{id}/logs", &["get"]),
    ("/api/v1/runs/{id}/source.tar", &["get"]),
    ("/api/v1/events", &["get"]),
    ("/api/v1/tokens", &["get", "post"]),
    ("/api/v1/tokens/{id}", &["delete"]),
    ("/api/v1/agents", &["get"]),
    ("/api/v1/agents/claim", &["post"]),
    ("/api/v1/agents/jobs/{job_id}/heartbeat", &["post"]),
    ("/api/v1/agents/jobs/{job_id}/logs", &["post"]),
    ("/api/v1/agents/jobs/{job_id}/finish", &["post"]),
    ("/api/v1/blobs/{digest}", &["get", "put"]),
    ("/api/v1/services", &["get"]),
    ("/api/v1/services/{name}", &["get"]),
    ("/api/v1/services/{name}/releases", &["get"]),
    (
        "/api/v1/services/{name}/environments/{env}/output",
        &["get"],
    ),
    ("/api/v1/services/{name}/deploys", &["post"]),
    ("/api/v1/services/{name}/promote", &["post"]),
    ("/api/v1/services/{name}/rollback", &["post"]),
    ("/api/v1/deploys", &["get"]),
    ("/api/v1/deploys/{id}", &["get"]),
    ("/api/v1/deploys/{id}/approve", &["post"]),
    ("/api/v1/deploys/{id}/cancel", &["post"]),
    ("/api/v1/agents/jobs/{job_id}/deploy", &["post"]),
];

#[tokio::test]
async fn the_document_lists_every_api_route() -> TestResult {
    let s = Server::start().await?;
    let (status, _) = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, doc) = s
        .call(Method::GET, "/api/v1/openapi.json", Some(&s.admin), None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    assert_eq!(doc["info"]["title"], "Ferry");
    let paths = doc["paths"].as_object().ok_or("no paths")?;
    for (path, methods) in ROUTES {
        let item = paths
            .get(*path)
            .ok_or_else(|| format!("`{path}` is missing"))?;
        for m in *methods {
            assert!(item.get(*m).is_some(), "`{m} {path}` is missing");
        }
    }
    let documented: Vec<&String> = paths
        .keys()
        .filter(|p| !ROUTES.iter().any(|(r, _)| r == p))
        .collect();
    assert!(
        documented.is_empty(),
        "undocumented in this test: {documented:?}"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["RunDetail"].is_object());
    s.stop().await
}
