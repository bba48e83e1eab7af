//! Deploys carried out by the real deploy engine, asked for over the API: by people
//! (deploy, promote, approve, cancel, roll back) and by an agent's job with `deploy:`.
//! The service is Python's HTTP server run by the `process` target.

use crate::deploys::error_of;
use crate::support::{Server, TestResult};
use axum::http::{Method, StatusCode};
use ferry_types::Role;
use serde_json::{Value, json};

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

/// A run whose one job, `ship`, deploys `web` to `environment`, claimed by an agent.
struct Shipping {
    on: crate::support::Listening,
    token: String,
    agent: ferry_client::Client,
    run: ferry_client::api::Run,
    job: ferry_client::api::Assignment,
}

/// Commits a pipeline whose job `ship` deploys to `environment`, triggers it and
/// claims the job as an agent would.
async fn shipping(
    s: &Server,
    environment: &str,
) -> Result<Shipping, Box<dyn std::error::Error + Send + Sync>> {
    let pipeline = live_yml("/").replace(
        "  build:\n    steps:\n      - echo building\n",
        &format!("  ship:\n    deploy: {environment}\n    steps:\n      - echo shipping\n"),
    );
    std::fs::write(s.repo.path().join("ferry.yml"), &pipeline)?;
    std::fs::write(s.repo.path().join("index.html"), "hello\n")?;
    crate::support::git(s.repo.path(), &["add", "-A"])?;
    crate::support::git(s.repo.path(), &["commit", "-q", "-m", "deploy web"])?;
    claimed(s).await
}

/// Triggers the project's pipeline and claims its first job as an agent would.
async fn claimed(s: &Server) -> Result<Shipping, Box<dyn std::error::Error + Send + Sync>> {
    let on = s.listen().await?;
    let token = s.token(Role::Developer).await?;
    let agent = s.client(&on, &token)?;
    let ferry_client::api::TriggerResponse::Started { run } = agent
        .trigger("app", &ferry_client::api::TriggerRequest::default())
        .await?
    else {
        return Err("the run was filtered".into());
    };
    let job = agent
        .claim(&ferry_client::api::ClaimRequest {
            agent_id: "agent-1".into(),
            name: "agent".into(),
            labels: vec![],
            wait_ms: 5_000,
        })
        .await?
        .ok_or("no job to claim")?;
    Ok(Shipping {
        on,
        token,
        agent,
        run,
        job,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_job_deploys_once_however_often_it_asks() -> TestResult {
    let s = Server::start().await?;
    let Shipping {
        on,
        agent,
        run,
        job: a,
        ..
    } = shipping(&s, "staging").await?;
    assert_eq!((a.run_id, a.job.as_str()), (run.id, "ship"));
    let mut request = ferry_client::api::JobDeployRequest {
        lease: a.lease.clone(),
        environment: "staging".into(),
        artifact: None,
        wait_ms: 0,
    };
    // Asked without waiting, the server answers that it is deploying…
    let first = agent.job_deploy(&request).await?;
    assert!(
        matches!(first, ferry_client::api::JobDeployAnswer::Deploying { .. }),
        "{first:?}"
    );
    // …and asked again (and again) it follows the same deploy to its end.
    request.wait_ms = 1_000;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let finished = loop {
        match agent.job_deploy(&request).await? {
            ferry_client::api::JobDeployAnswer::Deploying { .. } => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the deploy took over 60 s"
                );
            }
            finished => break finished,
        }
    };
    let ferry_client::api::JobDeployAnswer::Finished {
        deploy_id,
        release,
        succeeded,
        lines,
    } = finished
    else {
        return Err("not finished".into());
    };
    assert!(succeeded, "{lines:#?}");
    assert_eq!(release, "v1");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with(&format!("deploy {deploy_id}"))),
        "{lines:#?}"
    );
    // Asked once more after the outcome was handed out (as after a server restart),
    // the server finds the attempt's deploy in the store instead of deploying again.
    let again = agent.job_deploy(&request).await?;
    assert!(
        matches!(again, ferry_client::api::JobDeployAnswer::Finished { deploy_id: d, succeeded: true, .. } if d == deploy_id),
        "{again:?}"
    );
    let deploys = agent
        .deploys(&ferry_client::DeployFilter::default())
        .await?;
    assert_eq!(deploys.len(), 1, "one attempt, one deploy: {deploys:#?}");
    assert_eq!(deploys[0].id, deploy_id);
    assert_eq!(deploys[0].run_id, Some(run.id));
    assert_eq!(deploys[0].job.as_deref(), Some("ship"));
    let releases = agent.releases("web", None).await?;
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0].run_id, Some(run.id));
    assert_eq!(releases[0].live_in, ["staging"]);
    on.stop.cancel();
    stop_instances(&s).await?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_cancels_the_deploy_its_job_waits_for() -> TestResult {
    let s = Server::start().await?;
    // `production` needs approval: the job's deploy waits there until the run ends.
    let Shipping {
        on,
        token,
        agent,
        run,
        job: a,
    } = shipping(&s, "production").await?;
    assert_eq!((a.run_id, a.job.as_str()), (run.id, "ship"));
    let request = ferry_client::api::JobDeployRequest {
        lease: a.lease.clone(),
        environment: "production".into(),
        artifact: None,
        wait_ms: 200,
    };
    // Asked again until the deploy is queued (making the release comes first).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let deploy_id = loop {
        match agent.job_deploy(&request).await? {
            ferry_client::api::JobDeployAnswer::Deploying {
                deploy_id: Some(id),
            } => break id,
            ferry_client::api::JobDeployAnswer::Deploying { deploy_id: None } => {
                assert!(std::time::Instant::now() < deadline, "no deploy in 60 s");
            }
            other => return Err(format!("the deploy did not wait for approval: {other:?}").into()),
        }
    };
    let (status, body) = s
        .call(
            Method::GET,
            &format!("/api/v1/deploys/{deploy_id}"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deploy"]["state"], "waiting_approval", "{body}");

    let (status, body) = s
        .call(
            Method::POST,
            &format!("/api/v1/runs/{}/cancel", run.id),
            Some(&token),
            None,
        )
        .await?;
    assert!(status.is_success(), "{status} {body}");
    let detail = ended(&s, &token, deploy_id).await?;
    assert_eq!(detail["deploy"]["state"], "cancelled", "{detail}");
    assert!(
        s.store.live_envs().await?.is_empty(),
        "nothing went live: {:?}",
        s.store.live_envs().await?
    );
    on.stop.cancel();
    s.stop().await
}

#[tokio::test]
async fn an_agent_deploys_only_under_the_lease_it_holds() -> TestResult {
    let s = Server::start().await?;
    let Shipping {
        on,
        agent,
        run,
        job: a,
        ..
    } = claimed(&s).await?;
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
