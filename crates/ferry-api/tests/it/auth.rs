//! Tokens and roles.

use crate::both;
use crate::support::{Server, TestResult};
use axum::http::{Method, StatusCode};
use ferry_types::Role;
use serde_json::json;

#[tokio::test]
async fn rejects_requests_without_a_token_or_with_a_bad_one() -> TestResult {
    let s = Server::start().await?;
    let (status, body) = s.call(Method::GET, "/api/v1/projects", None, None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "this request needs an API token");
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("Bearer")));
    let (status, body) = s
        .call(
            Method::GET,
            "/api/v1/runs",
            Some("ferry_not-a-real-token"),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "the API token is not valid or was revoked");
    s.stop().await
}

#[tokio::test]
async fn refuses_tokens_whose_role_is_too_weak() -> TestResult {
    let s = Server::start().await?;
    let viewer = s.token(Role::Viewer).await?;
    let developer = s.token(Role::Developer).await?;
    let (status, _) = s
        .call(Method::GET, "/api/v1/projects", Some(&viewer), None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s
        .call(
            Method::POST,
            "/api/v1/projects/app/runs",
            Some(&viewer),
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"],
        "token `t-viewer` has the role `viewer`; this needs `developer` or above"
    );
    let (status, _) = s
        .call(Method::GET, "/api/v1/tokens", Some(&developer), None)
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/runs/1/jobs/build/approve",
            Some(&developer),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "approving needs an operator");
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/agents/claim",
            Some(&viewer),
            Some(json!({"agent_id": "a", "name": "a"})),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    s.stop().await
}

both! {
    async fn a_revoked_token_is_refused(s: Server) -> TestResult {
        let (status, created) = s
            .call(Method::POST, "/api/v1/tokens", Some(&s.admin), Some(json!({"name": "ci", "role": "viewer"})))
            .await?;
        assert_eq!(status, StatusCode::CREATED);
        let token = created["token"].as_str().ok_or("no token in the answer")?.to_owned();
        let id = created["info"]["id"].as_i64().ok_or("no id")?;
        assert_eq!(created["info"]["role"], "viewer");
        let (status, _) = s.call(Method::GET, "/api/v1/projects", Some(&token), None).await?;
        assert_eq!(status, StatusCode::OK);

        let (status, _) = s.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&s.admin), None).await?;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = s.call(Method::GET, "/api/v1/projects", Some(&token), None).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = s.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&s.admin), None).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "revoking twice finds nothing to revoke");

        let (_, list) = s.call(Method::GET, "/api/v1/tokens", Some(&s.admin), None).await?;
        let ci = list
            .as_array()
            .and_then(|l| l.iter().find(|t| t["name"] == "ci"))
            .ok_or("token `ci` not listed")?;
        assert!(ci["revoked_at"].is_i64());
        assert!(ci.get("token").is_none(), "listings never show the token itself");
        s.stop().await
    }
}

#[tokio::test]
async fn health_readiness_and_metrics_answer_without_a_token() -> TestResult {
    let s = Server::start().await?;
    let (status, body) = s.call(Method::GET, "/healthz", None, None).await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = s.call(Method::GET, "/readyz", None, None).await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
    let (status, _) = s.call(Method::GET, "/metrics", None, None).await?;
    assert_eq!(status, StatusCode::OK);
    s.stop().await
}

#[tokio::test]
async fn client_reports_the_servers_error_hint_and_status() -> TestResult {
    let s = Server::start().await?;
    let on = s.listen().await?;
    let viewer = s.token(Role::Viewer).await?;
    let client = s.client(&on, &viewer)?;
    let err = client
        .create_token("x", Role::Admin)
        .await
        .err()
        .ok_or("a viewer created a token")?;
    assert_eq!(err.status(), Some(403));
    assert!(err.is_client_error());
    assert_eq!(err.hint(), Some("use a token with the `admin` role"));
    let anonymous = s.client(&on, "")?;
    assert_eq!(anonymous.health().await?.status, "ok");
    let err = anonymous
        .projects()
        .await
        .err()
        .ok_or("no token, yet an answer")?;
    assert_eq!(err.status(), Some(401));
    on.stop.cancel();
    on.handle.await??;
    s.stop().await
}
