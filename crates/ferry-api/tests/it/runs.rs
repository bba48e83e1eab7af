//! Runs: trigger, list, show, cancel, re-run, approve.

use crate::support::{Server, TestResult, git};
use axum::http::{Method, StatusCode};
use ferry_client::api::{TriggerRequest, TriggerResponse};
use ferry_types::{Role, RunStatus};
use serde_json::json;

#[tokio::test]
async fn a_triggered_run_is_listed_shown_cancelled_and_rerun() -> TestResult {
    let s = Server::start().await?;
    let developer = s.token(Role::Developer).await?;
    let (status, started) = s
        .call(
            Method::POST,
            "/api/v1/projects/app/runs",
            Some(&developer),
            Some(json!({"ref": "main"})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(started["outcome"], "started");
    let id = started["run"]["id"].as_i64().ok_or("no run id")?;
    assert_eq!(started["run"]["sha"], s.head()?);
    assert_eq!(started["run"]["trigger"], "api");
    assert_eq!(started["run"]["status"], "queued");

    let (_, list) = s
        .call(
            Method::GET,
            "/api/v1/runs?project=app&limit=5",
            Some(&developer),
            None,
        )
        .await?;
    assert_eq!(list[0]["id"], id);
    let (status, _) = s
        .call(
            Method::GET,
            "/api/v1/runs?project=nope",
            Some(&developer),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, shown) = s
        .call(
            Method::GET,
            &format!("/api/v1/runs/{id}"),
            Some(&developer),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["jobs"][0]["name"], "build");
    assert_eq!(shown["jobs"][0]["status"], "queued");
    assert!(
        shown["pipeline"]
            .as_str()
            .is_some_and(|p| p.contains("echo building"))
    );

    let (status, cancelled) = s
        .call(
            Method::POST,
            &format!("/api/v1/runs/{id}/cancel"),
            Some(&developer),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["run"]["status"], "cancelled");

    let (status, rerun) = s
        .call(
            Method::POST,
            &format!("/api/v1/runs/{id}/rerun"),
            Some(&developer),
            Some(json!({"failed_only": false})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{rerun}");
    assert_ne!(rerun["id"], id);
    assert_eq!(rerun["sha"], started["run"]["sha"]);

    let (status, err) = s
        .call(Method::GET, "/api/v1/runs/999999", Some(&developer), None)
        .await?;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("run `999999` not found"))
    );
    s.stop().await
}

#[tokio::test]
async fn a_trigger_the_pipeline_filters_out_says_why() -> TestResult {
    let s = Server::start().await?;
    std::fs::write(
        s.repo.path().join("ferry.yml"),
        "on:\n  push: {}\njobs:\n  build:\n    steps:\n      - echo hi\n",
    )?;
    git(s.repo.path(), &["commit", "-q", "-am", "push only"])?;
    let on = s.listen().await?;
    let c = s.client(&on, &s.admin)?;
    match c.trigger("app", &TriggerRequest::default()).await? {
        TriggerResponse::Filtered { reason } => {
            assert!(reason.contains("manual: true"), "{reason}")
        }
        TriggerResponse::Started { run } => return Err(format!("run {} started", run.id).into()),
    }
    let err = c
        .trigger("ghost", &TriggerRequest::default())
        .await
        .err()
        .ok_or("unknown project triggered")?;
    assert_eq!(err.status(), Some(404));
    on.stop.cancel();
    on.handle.await??;
    s.stop().await
}

#[tokio::test]
async fn client_triggers_shows_and_cancels_runs() -> TestResult {
    let s = Server::start().await?;
    let on = s.listen().await?;
    let c = s.client(&on, &s.admin)?;
    let TriggerResponse::Started { run } = c.trigger("app", &TriggerRequest::default()).await?
    else {
        return Err("the run was filtered".into());
    };
    assert_eq!(c.runs(Some("app"), Some(10)).await?[0].id, run.id);
    let detail = c.run(run.id).await?;
    assert_eq!(detail.jobs.len(), 1);
    assert_eq!(c.cancel(run.id).await?.run.status, RunStatus::Cancelled);
    on.stop.cancel();
    on.handle.await??;
    s.stop().await
}

#[tokio::test]
async fn approving_a_job_that_waits_for_nothing_is_a_conflict() -> TestResult {
    let s = Server::start().await?;
    let operator = s.token(Role::Operator).await?;
    let (_, started) = s
        .call(
            Method::POST,
            "/api/v1/projects/app/runs",
            Some(&operator),
            None,
        )
        .await?;
    let id = started["run"]["id"].as_i64().ok_or("no run id")?;
    let (status, err) = s
        .call(
            Method::POST,
            &format!("/api/v1/runs/{id}/jobs/build/approve"),
            Some(&operator),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    s.stop().await
}

#[tokio::test]
async fn an_operator_approves_a_job_waiting_for_approval() -> TestResult {
    let s = Server::start().await?;
    std::fs::write(
        s.repo.path().join("ferry.yml"),
        "on:\n  manual: true\njobs:\n  deploy:\n    approval: true\n    steps:\n      - echo deploying\n",
    )?;
    git(s.repo.path(), &["commit", "-q", "-am", "gate"])?;
    let operator = s.token(Role::Operator).await?;
    let (_, started) = s
        .call(
            Method::POST,
            "/api/v1/projects/app/runs",
            Some(&operator),
            None,
        )
        .await?;
    let id = started["run"]["id"].as_i64().ok_or("no run id")?;
    let (_, shown) = s
        .call(
            Method::GET,
            &format!("/api/v1/runs/{id}"),
            Some(&operator),
            None,
        )
        .await?;
    assert_eq!(shown["jobs"][0]["status"], "waiting_approval");
    let (status, job) = s
        .call(
            Method::POST,
            &format!("/api/v1/runs/{id}/jobs/deploy/approve"),
            Some(&operator),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["status"], "queued");
    s.stop().await
}
