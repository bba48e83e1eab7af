//! Services, releases and deploys over the REST API: who may do what, what is not
//! found, and what the store holds, listed the way clients see it.

use crate::both;
use crate::support::{Server, TestResult};
use axum::http::{Method, StatusCode};
use ferry_store::db::{NewRelease, ReleaseArtifact};
use ferry_types::Role;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A `ferry.yml` declaring service `web` with a `staging` and a `production`
/// environment, the latter behind an approval.
const DEPLOY_YML: &str = "on: [manual]
jobs:
  build:
    steps:
      - echo building
deploy:
  name: web
  command: ./serve
  port: 8080
  environments:
    staging:
      routes:
        - host: staging.web.test
      strategy: blue-green
    production:
      routes:
        - { host: web.test, path: /app }
      approval:
        message: Ship it?
";

/// Release `sha` of service `web`, made through the store.
async fn release(s: &Server, sha: &str) -> Result<i64, Box<dyn std::error::Error + Send + Sync>> {
    let r = s
        .store
        .create_release(&NewRelease {
            project: "app".into(),
            service: "web".into(),
            sha: sha.into(),
            artifact: ReleaseArtifact::Tarball {
                digest: format!("sha256:{}", sha.repeat(64 / sha.len())),
            },
            config: DEPLOY_YML.into(),
            env: BTreeMap::new(),
            run_id: None,
            created_by: "token:ci".into(),
        })
        .await?;
    Ok(r.number)
}

pub fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"].as_str().unwrap_or_default(),
        body["hint"].as_str().unwrap_or_default(),
    )
}

both! {
    async fn releases_made_in_the_store_are_listed_newest_first(s: Server) -> TestResult {
        let viewer = s.token(Role::Viewer).await?;
        let (status, body) = s.call(Method::GET, "/api/v1/services", Some(&viewer), None).await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!([]), "no service before the first release");

        assert_eq!(release(&s, "aa").await?, 1);
        assert_eq!(release(&s, "bb").await?, 2);
        // The same commit and artifact is the same release, not a third.
        assert_eq!(release(&s, "bb").await?, 2);

        let (status, body) =
            s.call(Method::GET, "/api/v1/services/web/releases", Some(&viewer), None).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        let names: Vec<&str> = body
            .as_array()
            .ok_or("a list")?
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(names, ["v2", "v1"]);
        assert_eq!(body[0]["sha"], "bb");
        assert_eq!(body[0]["number"], 2);
        assert_eq!(body[0]["created_by"], "token:ci");
        assert_eq!(body[0]["artifact"]["kind"], "tarball");
        assert_eq!(body[0]["artifact"]["digest"], format!("sha256:{}", "b".repeat(64)));
        assert_eq!(body[0]["live_in"], json!([]), "nothing deployed yet");

        let (_, body) = s
            .call(Method::GET, "/api/v1/services/web/releases?limit=1", Some(&viewer), None)
            .await?;
        assert_eq!(body.as_array().map(Vec::len), Some(1));

        // The service shows the environments its newest release declares, in order.
        let (status, web) = s.call(Method::GET, "/api/v1/services/web", Some(&viewer), None).await?;
        assert_eq!(status, StatusCode::OK, "{web}");
        assert_eq!(web["project"], "app");
        assert_eq!(web["newest_release"], "v2");
        let envs = web["environments"].as_array().ok_or("environments")?;
        let names: Vec<&str> = envs.iter().filter_map(|e| e["name"].as_str()).collect();
        assert_eq!(names, ["staging", "production"]);
        assert_eq!(envs[0]["strategy"], "blue-green");
        assert_eq!(envs[0]["target"], "process");
        assert_eq!(envs[0]["approval"], false);
        assert_eq!(envs[0]["routes"], json!(["staging.web.test/"]));
        assert_eq!(envs[1]["approval"], true);
        assert_eq!(envs[1]["routes"], json!(["web.test/app"]));
        assert_eq!(envs[1]["live"], Value::Null);
        assert_eq!(envs[1]["last_deploy"], Value::Null);

        let (_, all) = s.call(Method::GET, "/api/v1/services", Some(&viewer), None).await?;
        assert_eq!(all.as_array().map(Vec::len), Some(1));
        assert_eq!(all[0], web, "the listing shows what the service's page shows");

        let (status, body) = s.call(Method::GET, "/api/v1/deploys?service=web", Some(&viewer), None).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!([]));
        s.stop().await
    }
}

both! {
    async fn unknown_services_releases_and_deploys_answer_404_with_a_hint(s: Server) -> TestResult {
        let dev = s.token(Role::Developer).await?;
        for uri in ["/api/v1/services/ghost", "/api/v1/services/ghost/releases", "/api/v1/deploys?service=ghost"] {
            let (status, body) = s.call(Method::GET, uri, Some(&dev), None).await?;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
            let (error, hint) = error_of(&body);
            assert_eq!(error, "service `ghost` not found", "{uri}");
            assert!(hint.contains("`deploy: ENV`"), "{uri}: the hint says where services come from: {hint}");
        }
        let (status, body) = s
            .call(Method::POST, "/api/v1/services/ghost/deploys", Some(&dev), Some(json!({"environment": "staging"})))
            .await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        for (method, uri) in [
            (Method::GET, "/api/v1/deploys/999"),
            (Method::POST, "/api/v1/deploys/999/cancel"),
        ] {
            let (status, body) = s.call(method, uri, Some(&dev), None).await?;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
            assert_eq!(error_of(&body).0, "deploy `999` not found");
            assert!(error_of(&body).1.contains("ferry deploys"));
        }

        release(&s, "aa").await?;
        let (status, body) = s
            .call(Method::POST, "/api/v1/services/web/deploys", Some(&dev), Some(json!({"environment": "staging", "release": 7})))
            .await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(error_of(&body).0, "release `v7` not found");
        assert!(error_of(&body).1.contains("ferry releases web"));
        let (status, body) = s
            .call(Method::POST, "/api/v1/services/web/deploys", Some(&dev), Some(json!({"environment": " "})))
            .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(error_of(&body).0.contains("`environment` is empty"));
        s.stop().await
    }
}

both! {
    async fn a_service_without_a_release_says_how_to_make_one(s: Server) -> TestResult {
        s.store.register_service("app", "web").await?;
        let dev = s.token(Role::Developer).await?;
        let (status, body) = s
            .call(Method::POST, "/api/v1/services/web/deploys", Some(&dev), Some(json!({"environment": "staging"})))
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (error, hint) = error_of(&body);
        assert_eq!(error, "service `web` has no release yet");
        assert!(hint.contains("`deploy: ENV`") && hint.contains("ferry trigger"), "{hint}");
        let (_, body) = s.call(Method::GET, "/api/v1/services/web", Some(&dev), None).await?;
        assert_eq!(body["newest_release"], Value::Null);
        assert_eq!(body["environments"], json!([]));
        s.stop().await
    }
}

#[tokio::test]
async fn roles_are_enforced_on_every_deploy_route() -> TestResult {
    let s = Server::start().await?;
    release(&s, "aa").await?;
    let viewer = s.token(Role::Viewer).await?;
    let dev = s.token(Role::Developer).await?;
    let deploy = json!({"environment": "staging"});
    let cases: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (
            Method::POST,
            "/api/v1/services/web/deploys",
            Some(deploy.clone()),
            &viewer,
        ),
        (
            Method::POST,
            "/api/v1/services/web/promote",
            Some(json!({"from": "staging", "to": "production"})),
            &viewer,
        ),
        (
            Method::POST,
            "/api/v1/services/web/rollback",
            Some(deploy.clone()),
            &dev,
        ),
        (Method::POST, "/api/v1/deploys/1/approve", None, &dev),
        (Method::POST, "/api/v1/deploys/1/cancel", None, &viewer),
    ];
    for (method, uri, body, token) in cases {
        let (status, answer) = s
            .call(method.clone(), uri, Some(token), body.clone())
            .await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {answer}");
        let (status, _) = s.call(method.clone(), uri, None, body).await?;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri} without a token"
        );
    }
    for uri in [
        "/api/v1/services",
        "/api/v1/services/web",
        "/api/v1/services/web/releases",
        "/api/v1/deploys",
    ] {
        let (status, body) = s.call(Method::GET, uri, Some(&viewer), None).await?;
        assert_eq!(status, StatusCode::OK, "a viewer reads {uri}: {body}");
        let (status, _) = s.call(Method::GET, uri, None, None).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} without a token");
    }
    // Promoting an environment to itself is refused before the engine sees it.
    let (status, body) = s
        .call(
            Method::POST,
            "/api/v1/services/web/promote",
            Some(&dev),
            Some(json!({"from": "staging", "to": "staging"})),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    s.stop().await
}

#[tokio::test]
async fn the_openapi_document_describes_the_deploy_bodies() -> TestResult {
    // The routes themselves are pinned in `openapi::ROUTES`.
    let s = Server::start().await?;
    let (status, doc) = s
        .call(Method::GET, "/api/v1/openapi.json", Some(&s.admin), None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    for schema in [
        "ServiceInfo",
        "EnvironmentInfo",
        "ReleaseInfo",
        "DeployInfo",
        "DeployDetail",
        "DeployRequest",
        "PromoteRequest",
        "RollbackRequest",
        "JobDeployRequest",
        "JobDeployAnswer",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "no schema {schema}"
        );
    }
    assert_eq!(
        doc["paths"]["/api/v1/services/{name}/rollback"]["post"]["tags"],
        serde_json::json!(["deploys"])
    );
    s.stop().await
}
