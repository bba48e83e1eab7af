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

fn error_of(body: &Value) -> (&str, &str) {
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
async fn an_agent_deploys_only_under_the_lease_it_holds() -> TestResult {
    let s = Server::start().await?;
    let on = s.listen().await?;
    let token = s.token(Role::Developer).await?;
    let agent = s.client(&on, &token)?;
    let ferry_client::api::TriggerResponse::Started { run } = agent
        .trigger("app", &ferry_client::api::TriggerRequest::default())
        .await?
    else {
        return Err("the run was filtered".into());
    };
    let a = agent
        .claim(&ferry_client::api::ClaimRequest {
            agent_id: "agent-1".into(),
            name: "agent".into(),
            labels: vec![],
            wait_ms: 5_000,
        })
        .await?
        .ok_or("no job to claim")?;
    assert_eq!(a.run_id, run.id);
    let request = |lease: ferry_client::api::Lease| ferry_client::api::JobDeployRequest {
        lease,
        environment: "staging".into(),
        artifact: None,
        wait_ms: 2_000,
    };
    let stale = ferry_client::api::Lease {
        attempt: a.lease.attempt + 1,
        ..a.lease.clone()
    };
    let err = agent
        .job_deploy(&request(stale))
        .await
        .err()
        .ok_or("a deploy under a lease never held was accepted")?;
    assert_eq!(err.status(), Some(409), "{err}");
    // The run's `ferry.yml` has no `deploy:` section: the server says why, and not with
    // a 409, which would tell the agent its lease is lost.
    let err = agent
        .job_deploy(&request(a.lease.clone()))
        .await
        .err()
        .ok_or("a deploy of a pipeline without `deploy:` went through")?;
    assert_ne!(err.status(), Some(409), "{err}");
    assert!(
        err.status().is_some_and(|s| (400..500).contains(&s)),
        "{err}"
    );
    on.stop.cancel();
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

/// Service `web` run by Python's HTTP server from the release's directory, checked at
/// `health`: a path that answers 200 (`/`) or 404 (`/missing`, a release that never
/// gets healthy). `production` needs approval.
fn live_yml(health: &str) -> String {
    format!(
        "on: [manual]
jobs:
  build:
    steps:
      - echo building
deploy:
  name: web
  command: exec python3 -m http.server $PORT --bind 127.0.0.1
  healthcheck:
    path: {health}
    interval: 50ms
    timeout: 2s
    retries: 20
  environments:
    staging:
      strategy:
        blue-green:
          keep_old_for: 0s
    production:
      approval: true
      strategy:
        blue-green:
          keep_old_for: 0s
"
    )
}

/// Makes a release through the deploy engine: a tarball of one `index.html`.
async fn engine_release(
    s: &Server,
    sha: &str,
    yml: &str,
) -> Result<i64, Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("index.html"), format!("release {sha}\n"))?;
    let tar = dir.path().join("release.tar");
    let status = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(dir.path())
        .arg("index.html")
        .status()?;
    assert!(status.success(), "tar failed");
    let r = s
        .state
        .core
        .deployer()
        .create_release(ferry_engine::deploy::ReleaseRequest {
            project: "app".into(),
            sha: sha.repeat(40 / sha.len()),
            config: yml.to_owned(),
            artifact: None,
            source: Some(tar),
            branch: Some("main".into()),
            tag: None,
            run_id: None,
            created_by: "token:ci".into(),
        })
        .await?;
    Ok(r.number)
}

/// Polls `GET /api/v1/deploys/{id}` until the deploy has ended (60 s at most).
async fn ended(
    s: &Server,
    token: &str,
    id: i64,
) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, detail) = s
            .call(
                Method::GET,
                &format!("/api/v1/deploys/{id}"),
                Some(token),
                None,
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{detail}");
        let state = detail["deploy"]["state"].as_str().unwrap_or_default();
        if !["queued", "waiting_approval", "running"].contains(&state) {
            return Ok(detail);
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("deploy {id} still {state} after 60 s: {detail}").into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Stops the processes the deploys left running (a server stopping leaves its
/// instances up, for the next start to take over).
async fn stop_instances(s: &Server) -> TestResult {
    for live in s.store.live_envs().await? {
        for instance in live.instances.as_array().into_iter().flatten() {
            let Some(name) = instance["name"].as_str() else {
                continue;
            };
            let dir = s
                .state
                .core
                .deployer()
                .instance_dir(&live.service, &live.environment, name);
            if let Ok(text) = std::fs::read_to_string(dir.join("pid"))
                && let Some(pid) = text.split_whitespace().next()
            {
                let _ = std::process::Command::new("kill").arg(pid).status();
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_requested_over_the_api_go_live_or_roll_back() -> TestResult {
    let s = Server::start().await?;
    let dev = s.token(Role::Developer).await?;
    let operator = s.token(Role::Operator).await?;
    assert_eq!(engine_release(&s, "a1", &live_yml("/")).await?, 1);

    // v1 goes live in staging.
    let (status, queued) = s
        .call(
            Method::POST,
            "/api/v1/services/web/deploys",
            Some(&dev),
            Some(json!({"environment": "staging"})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{queued}");
    assert_eq!(queued["release_name"], "v1");
    assert_eq!(queued["kind"], "deploy");
    assert_eq!(queued["requested_by"], "token:t-developer");
    let id = queued["id"].as_i64().ok_or("deploy id")?;
    let detail = ended(&s, &dev, id).await?;
    assert_eq!(detail["deploy"]["state"], "succeeded", "{detail:#}");
    assert_eq!(detail["deploy"]["phase"], "done");
    let steps = detail["steps"].as_array().ok_or("steps")?;
    assert!(steps.len() >= 3, "progress lines were recorded: {detail:#}");
    assert!(
        steps
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64())
    );
    let (_, web) = s
        .call(Method::GET, "/api/v1/services/web", Some(&dev), None)
        .await?;
    let staging = &web["environments"][0];
    assert_eq!(staging["name"], "staging");
    assert_eq!(staging["live"]["name"], "v1", "{web:#}");
    assert_eq!(staging["live"]["deploy_id"], id);
    assert_eq!(staging["live"]["instances"], 1);
    assert_eq!(staging["last_deploy"]["id"], id);

    // v2 never gets healthy: rolled back, v1 still live.
    assert_eq!(engine_release(&s, "b2", &live_yml("/missing")).await?, 2);
    let (status, queued) = s
        .call(
            Method::POST,
            "/api/v1/services/web/deploys",
            Some(&dev),
            Some(json!({"environment": "staging", "release": 2})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{queued}");
    let bad = queued["id"].as_i64().ok_or("deploy id")?;
    let detail = ended(&s, &dev, bad).await?;
    assert_eq!(detail["deploy"]["state"], "rolled_back", "{detail:#}");
    assert_eq!(detail["deploy"]["previous_release"], 1);
    let reason = detail["deploy"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("not healthy") && reason.contains("404"),
        "{reason}"
    );
    let (_, web) = s
        .call(Method::GET, "/api/v1/services/web", Some(&dev), None)
        .await?;
    assert_eq!(web["environments"][0]["live"]["name"], "v1");
    assert_eq!(
        web["environments"][0]["last_deploy"]["state"],
        "rolled_back"
    );
    let (_, releases) = s
        .call(
            Method::GET,
            "/api/v1/services/web/releases",
            Some(&dev),
            None,
        )
        .await?;
    assert_eq!(releases[1]["live_in"], json!(["staging"]), "{releases:#}");
    assert_eq!(releases[0]["live_in"], json!([]));

    // Nothing before v1 in staging: a rollback has nowhere to go.
    let (status, body) = s
        .call(
            Method::POST,
            "/api/v1/services/web/rollback",
            Some(&operator),
            Some(json!({"environment": "staging"})),
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        error_of(&body).0.contains("nothing to roll back to"),
        "{body}"
    );

    // Promoting v1 to production waits for an operator.
    let (status, queued) = s
        .call(
            Method::POST,
            "/api/v1/services/web/promote",
            Some(&dev),
            Some(json!({"from": "staging", "to": "production"})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{queued}");
    assert_eq!(queued["state"], "waiting_approval");
    assert_eq!(queued["kind"], "promote");
    assert_eq!(queued["release_name"], "v1");
    let promo = queued["id"].as_i64().ok_or("deploy id")?;
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/deploys/{promo}/approve"),
            Some(&dev),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "a developer cannot approve");
    let (status, approved) = s
        .call(
            Method::POST,
            &format!("/api/v1/deploys/{promo}/approve"),
            Some(&operator),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["deploy"]["approved_by"], "token:t-operator");
    let (status, again) = s
        .call(
            Method::POST,
            &format!("/api/v1/deploys/{promo}/approve"),
            Some(&operator),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT, "approving twice: {again}");
    let detail = ended(&s, &dev, promo).await?;
    assert_eq!(detail["deploy"]["state"], "succeeded", "{detail:#}");

    // A deploy waiting for approval can be cancelled; an ended one cannot.
    let (_, queued) = s
        .call(
            Method::POST,
            "/api/v1/services/web/deploys",
            Some(&dev),
            Some(json!({"environment": "production", "release": 2})),
        )
        .await?;
    assert_eq!(queued["state"], "waiting_approval");
    let waiting = queued["id"].as_i64().ok_or("deploy id")?;
    let (status, cancelled) = s
        .call(
            Method::POST,
            &format!("/api/v1/deploys/{waiting}/cancel"),
            Some(&dev),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["deploy"]["state"], "cancelled");
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/deploys/{id}/cancel"),
            Some(&dev),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT, "cancelling a finished deploy");

    let (_, listed) = s
        .call(
            Method::GET,
            "/api/v1/deploys?service=web&environment=staging",
            Some(&dev),
            None,
        )
        .await?;
    let ids: Vec<i64> = listed
        .as_array()
        .ok_or("a list")?
        .iter()
        .filter_map(|d| d["id"].as_i64())
        .collect();
    assert_eq!(ids, [bad, id], "staging's deploys, newest first");
    stop_instances(&s).await?;
    s.stop().await
}
