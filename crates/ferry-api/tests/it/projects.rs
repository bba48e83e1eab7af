//! Projects: add, list, show, remove.

use crate::support::{Server, TestResult, git};
use axum::http::{Method, StatusCode};
use ferry_types::Role;
use serde_json::json;

#[tokio::test]
async fn adds_lists_shows_and_removes_a_project() -> TestResult {
    let s = Server::start().await?;
    let repo = s.repo.path().display().to_string();
    let body = json!({"name": "web", "repo": repo, "branch": "trunk", "webhook_secret": "x"});
    let (status, created) = s
        .call(
            Method::POST,
            "/api/v1/projects",
            Some(&s.admin),
            Some(body.clone()),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["default_branch"], "trunk");
    assert_eq!(created["has_webhook_secret"], true);
    assert!(
        created.get("webhook_secret").is_none(),
        "the secret is never sent back"
    );

    let (status, err) = s
        .call(Method::POST, "/api/v1/projects", Some(&s.admin), Some(body))
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["error"], "project `web` already exists");

    let (_, list) = s
        .call(Method::GET, "/api/v1/projects", Some(&s.admin), None)
        .await?;
    let names: Vec<&str> = list
        .as_array()
        .ok_or("not a list")?
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["app", "web"]);

    let (status, shown) = s
        .call(Method::GET, "/api/v1/projects/web", Some(&s.admin), None)
        .await?;
    assert_eq!(
        (status, shown["repo"].as_str()),
        (StatusCode::OK, Some(repo.as_str()))
    );

    let (status, _) = s
        .call(Method::DELETE, "/api/v1/projects/web", Some(&s.admin), None)
        .await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, err) = s
        .call(Method::GET, "/api/v1/projects/web", Some(&s.admin), None)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"], "project `web` not found");
    assert_eq!(err["hint"], "`ferry project list` shows the projects");
    let (status, _) = s
        .call(Method::DELETE, "/api/v1/projects/web", Some(&s.admin), None)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.stop().await
}

#[tokio::test]
async fn refuses_bad_project_input() -> TestResult {
    let s = Server::start().await?;
    let (status, err) = s
        .call(
            Method::POST,
            "/api/v1/projects",
            Some(&s.admin),
            Some(json!({"name": "a b", "repo": "/x"})),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "`a b` is not a valid project name");
    let (status, err) = s
        .call(
            Method::POST,
            "/api/v1/projects",
            Some(&s.admin),
            Some(json!({"name": "ok"})),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing field `repo`")),
        "{err}"
    );
    let developer = s.token(Role::Developer).await?;
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/projects",
            Some(&developer),
            Some(json!({"name": "d", "repo": "/x"})),
        )
        .await?;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "adding projects needs an operator"
    );
    s.stop().await
}

#[tokio::test]
async fn client_manages_projects_over_http() -> TestResult {
    let s = Server::start().await?;
    let on = s.listen().await?;
    let c = s.client(&on, &s.admin)?;
    let repo = s.repo.path().display().to_string();
    let added = c
        .add_project(&ferry_client::api::NewProject {
            name: "svc".into(),
            repo: repo.clone(),
            branch: None,
            webhook_secret: None,
        })
        .await?;
    assert_eq!(
        (added.default_branch.as_str(), added.has_webhook_secret),
        ("main", false)
    );
    assert_eq!(c.project("svc").await?.repo, repo);
    assert_eq!(c.projects().await?.len(), 2);
    c.remove_project("svc").await?;
    let err = c
        .project("svc")
        .await
        .err()
        .ok_or("removed project still shown")?;
    assert!(err.is_not_found());
    assert_eq!(err.to_string(), "project `svc` not found");
    // The repository stays untouched by removing the project.
    assert!(!git(s.repo.path(), &["rev-parse", "HEAD"])?.is_empty());
    on.stop.cancel();
    on.handle.await??;
    s.stop().await
}
