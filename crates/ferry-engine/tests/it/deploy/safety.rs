//! Failed checks roll back; deploys serialize; rollbacks and old releases.

use super::support::{Client, Lab, running, yml};
use ferry_types::{DeployKind, DeployState};
use std::time::{Duration, Instant};

const BLUE_GREEN: &str = "        blue-green:\n          keep_old_for: 0s";
const SMOKE: &str = "  smoke:\n    - python3 -c 'import os, urllib.request; urllib.request.urlopen(os.environ[\"FERRY_URL\"] + \"/smoke\")'\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_health_check_rolls_back_and_the_old_release_keeps_serving() {
    let lab = Lab::new().await;
    let v1 = lab.release(&yml("one", "ok", BLUE_GREEN, "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    let bad = yml("two", "unhealthy", BLUE_GREEN, "").replace("retries: 60", "retries: 30");
    let v2 = lab.release(&bad).await;
    let d = lab.deploy(v2.number).await;
    assert_eq!(d.state, DeployState::RolledBack);
    let reason = d.reason.unwrap_or_default();
    assert_eq!(
        reason,
        "instance `web-prod-v2-0` of v2 is not healthy: failed 30 health checks in a row; \
         the last: `GET /healthz` answered 503"
    );
    assert!(!running(&lab.instance_dir("web-prod-v2-0").join("pid")));
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
    let live = lab.store.live_env("web", "prod").await.unwrap().unwrap();
    assert_eq!(live.release_number, 1);
    let steps = lab.steps(d.id).await;
    assert!(
        steps.contains("[rollback] Stopped 1 new instance; v1 still serves `prod`."),
        "{steps}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_smoke_step_rolls_back_before_any_traffic_moves() {
    let lab = Lab::new().await;
    let v1 = lab.release(&yml("one", "ok", BLUE_GREEN, SMOKE)).await;
    let d = lab.deploy(v1.number).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    let v2 = lab
        .release(&yml("two", "badsmoke", BLUE_GREEN, SMOKE))
        .await;
    let d = lab.deploy(v2.number).await;
    assert_eq!(d.state, DeployState::RolledBack);
    let reason = d.reason.unwrap_or_default();
    assert!(
        reason.starts_with("smoke step `python3 -c 'import os, urllib.request;")
            && reason.contains("failed with exit code 1")
            && reason.contains("HTTP Error 500"),
        "{reason}"
    );
    assert!(!running(&lab.instance_dir("web-prod-v2-0").join("pid")));
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_answering_5xx_aborts_and_rolls_back() {
    let lab = Lab::new().await;
    let canary = "        canary:\n          steps:\n            - { weight: 50, pause: 5s }\n          analysis:\n            max_error_rate: 5%\n            min_requests: 20";
    let v1 = lab.release(&yml("one", "ok", canary, "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    let v2 = lab.release(&yml("two", "5xx", canary, "")).await;
    let queued = lab
        .deployer
        .deploy(ferry_engine::deploy::DeployRequest {
            service: "web".into(),
            environment: "prod".into(),
            release: Some(v2.number),
            requested_by: "test".into(),
            run_id: None,
            job: None,
        })
        .await
        .unwrap();
    // Traffic while the canary runs.
    let addr = lab.proxy_addr;
    let load = tokio::spawn(async move {
        let mut client = Client::connect(addr).await.unwrap();
        loop {
            match client.get("/").await {
                Ok((200, body)) => assert_eq!(body, "release=one"),
                Ok((500, body)) => assert_eq!(body, "release=two"),
                other => panic!("unexpected answer {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let d = lab.wait(queued.id).await;
    if load.is_finished() {
        panic!("the load failed: {:?}", load.await);
    }
    load.abort();
    assert_eq!(d.state, DeployState::RolledBack);
    let reason = d.reason.unwrap_or_default();
    assert!(
        reason.starts_with(
            "canary analysis failed at 50%: error rate 100.0% is above the limit of 5.0% ("
        ),
        "{reason}"
    );
    assert!(!running(&lab.instance_dir("web-prod-v2-0").join("pid")));
    for _ in 0..10 {
        assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_of_one_environment_run_one_at_a_time() {
    let lab = Lab::new().await;
    let v1 = lab.release(&yml("one", "ok", BLUE_GREEN, "")).await;
    let v2 = lab.release(&yml("two", "ok", BLUE_GREEN, "")).await;
    let v3 = lab.release(&yml("three", "ok", BLUE_GREEN, "")).await;
    let mut ids = Vec::new();
    for r in [&v1, &v2, &v3] {
        let d = lab
            .deployer
            .deploy(ferry_engine::deploy::DeployRequest {
                service: "web".into(),
                environment: "prod".into(),
                release: Some(r.number),
                requested_by: "test".into(),
                run_id: None,
                job: None,
            })
            .await
            .unwrap();
        ids.push(d.id);
    }
    let mut done = Vec::new();
    for id in ids {
        done.push(lab.wait(id).await);
    }
    for d in &done {
        assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    }
    for pair in done.windows(2) {
        assert!(
            pair[1].started_at >= pair[0].finished_at,
            "deploy {} started before {} ended",
            pair[1].id,
            pair[0].id
        );
    }
    assert_eq!(done[1].previous_release_id, Some(v1.id));
    assert_eq!(done[2].previous_release_id, Some(v2.id));
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=three".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_a_warm_release_switches_back_at_once() {
    let lab = Lab::new().await;
    let warm = "        blue-green:\n          keep_old_for: 10m";
    let v1 = lab.release(&yml("one", "ok", warm, "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    let v2 = lab.release(&yml("two", "ok", warm, "")).await;
    assert_eq!(lab.deploy(v2.number).await.state, DeployState::Succeeded);
    let live = lab.store.live_env("web", "prod").await.unwrap().unwrap();
    assert_eq!(live.previous.as_ref().map(|w| w.release_number), Some(1));
    assert!(
        running(&lab.instance_dir("web-prod-v1-0").join("pid")),
        "v1 is kept warm"
    );
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=two".into()));

    let started = Instant::now();
    let d = lab
        .deployer
        .rollback("web", "prod", None, "test")
        .await
        .unwrap();
    assert_eq!(d.kind, DeployKind::Rollback);
    let d = lab.wait(d.id).await;
    let took = started.elapsed();
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    eprintln!("rollback to the warm release took {took:?}");
    assert!(took < Duration::from_secs(3), "the rollback took {took:?}");
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
    let steps = lab.steps(d.id).await;
    assert!(
        steps.contains("[shift] Release v1 is still warm: switching traffic back to it at once."),
        "{steps}"
    );
    assert!(!steps.contains("[start]"), "nothing was started: {steps}");
    // v2 is now the warm one.
    let live = lab.store.live_env("web", "prod").await.unwrap().unwrap();
    assert_eq!(live.release_number, 1);
    assert_eq!(live.previous.as_ref().map(|w| w.release_number), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_ten_releases_and_the_oldest_kept_can_be_deployed_again() {
    let lab = Lab::new().await;
    let mut releases = Vec::new();
    for i in 1..=12 {
        releases.push(
            lab.release(&yml(&format!("r{i}"), "ok", BLUE_GREEN, ""))
                .await,
        );
    }
    let kept = lab.store.releases("web", 100).await.unwrap();
    let numbers: Vec<i64> = kept.iter().map(|r| r.number).collect();
    assert_eq!(numbers, (3..=12).rev().collect::<Vec<_>>());
    let d = lab.deploy(12).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    let d = lab
        .deployer
        .rollback("web", "prod", Some(3), "test")
        .await
        .unwrap();
    let d = lab.wait(d.id).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=r3".into()));
    let err = lab
        .deployer
        .rollback("web", "prod", Some(1), "test")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "release `web v1` not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_with_approval_waits_for_a_person() {
    let lab = Lab::new().await;
    let yml = yml("one", "ok", BLUE_GREEN, "")
        .replace("      routes:\n", "      approval: true\n      routes:\n");
    let v1 = lab.release(&yml).await;
    let d = lab
        .deployer
        .deploy(ferry_engine::deploy::DeployRequest {
            service: "web".into(),
            environment: "prod".into(),
            release: Some(v1.number),
            requested_by: "test".into(),
            run_id: None,
            job: None,
        })
        .await
        .unwrap();
    assert_eq!(d.state, DeployState::WaitingApproval);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        lab.store.deploy(d.id).await.unwrap().state,
        DeployState::WaitingApproval
    );
    lab.deployer.approve(d.id, "alice").await.unwrap();
    let d = lab.wait(d.id).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert_eq!(d.approved_by.as_deref(), Some("alice"));
}

async fn queue(lab: &Lab, number: i64) -> ferry_store::db::Deploy {
    lab.deployer
        .deploy(ferry_engine::deploy::DeployRequest {
            service: "web".into(),
            environment: "prod".into(),
            release: Some(number),
            requested_by: "test".into(),
            run_id: None,
            job: None,
        })
        .await
        .unwrap()
}

async fn wait_for_step(lab: &Lab, id: i64, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab.steps(id).await.contains(text) {
        assert!(
            Instant::now() < deadline,
            "deploy {id} never recorded {text:?}:\n{}",
            lab.steps(id).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_without_auto_promote_waits_for_a_person_and_can_be_cancelled() {
    let lab = Lab::new().await;
    let manual = "        blue-green:\n          auto_promote: false\n          keep_old_for: 0s";
    let v1 = lab.release(&yml("one", "ok", manual, "")).await;
    let d = queue(&lab, v1.number).await;
    wait_for_step(&lab, d.id, "Waiting for a person to promote v1").await;
    assert_eq!(
        lab.store.deploy(d.id).await.unwrap().state,
        DeployState::Running
    );
    assert_eq!(
        lab.get("/").await.unwrap().0,
        404,
        "no traffic before the promotion"
    );
    lab.deployer.approve(d.id, "alice").await.unwrap();
    let d = lab.wait(d.id).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert!(lab.steps(d.id).await.contains("[shift] Promoted by alice."));
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));

    let v2 = lab.release(&yml("two", "ok", manual, "")).await;
    let d = queue(&lab, v2.number).await;
    wait_for_step(&lab, d.id, "Waiting for a person to promote v2").await;
    lab.deployer.cancel(d.id, "bob").await.unwrap();
    let d = lab.wait(d.id).await;
    assert_eq!(d.state, DeployState::Cancelled);
    assert_eq!(d.reason.as_deref(), Some("cancelled by bob"));
    assert!(!running(&lab.instance_dir("web-prod-v2-0").join("pid")));
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_deploys_the_release_live_in_the_previous_environment() {
    let lab = Lab::new().await;
    let two_envs = yml("one", "ok", BLUE_GREEN, "").replace(
        "  environments:\n",
        "  environments:\n    staging:\n      routes:\n        - host: staging.web.test\n",
    );
    let v1 = lab.release(&two_envs).await;
    let v2 = lab
        .release(&two_envs.replace("RELEASE: \"one\"", "RELEASE: \"two\""))
        .await;
    let staged = lab
        .deployer
        .deploy(ferry_engine::deploy::DeployRequest {
            service: "web".into(),
            environment: "staging".into(),
            release: Some(v1.number),
            requested_by: "test".into(),
            run_id: None,
            job: None,
        })
        .await
        .unwrap();
    assert_eq!(lab.wait(staged.id).await.state, DeployState::Succeeded);
    let d = lab
        .deployer
        .promote("web", "staging", "prod", "test")
        .await
        .unwrap();
    assert_eq!(d.kind, DeployKind::Promote);
    assert_eq!(
        d.release_id,
        v1.id,
        "the release live in staging, not the newest ({})",
        v2.name()
    );
    let d = lab.wait(d.id).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
    let err = lab
        .deployer
        .promote("web", "prod", "prod", "test")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot promote `web` from `prod` to itself: name the next environment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rolling_deploy_starts_the_old_instances_it_had_stopped() {
    let lab = Lab::new().await;
    // No surge: each batch first takes an old instance out and stops it.
    let rolling = "        rolling:\n          instances: 3\n          max_surge: 0\n          max_unavailable: 1";
    let v1 = lab.release(&yml("one", "ok", rolling, "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    let before = lab.store.live_env("web", "prod").await.unwrap().unwrap();
    let bad = yml("two", "unhealthy", rolling, "").replace("retries: 60", "retries: 10");
    let v2 = lab.release(&bad).await;
    let d = lab.deploy(v2.number).await;
    assert_eq!(d.state, DeployState::RolledBack);
    assert!(
        d.reason.as_deref().unwrap_or("").contains("is not healthy"),
        "{:?}",
        d.reason
    );
    let after = lab.store.live_env("web", "prod").await.unwrap().unwrap();
    assert_eq!(after.release_number, 1);
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&after.instances),
        ["web-prod-v1-0", "web-prod-v1-1", "web-prod-v1-2"]
    );
    assert_ne!(
        after.instances, before.instances,
        "the stopped instance was started again (on a new port)"
    );
    for i in 0..3 {
        assert!(running(
            &lab.instance_dir(&format!("web-prod-v1-{i}")).join("pid")
        ));
    }
    assert!(!running(&lab.instance_dir("web-prod-v2-0").join("pid")));
    for _ in 0..6 {
        assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_rollbacks_and_failures_on_postgresql() {
    let (lab, db) = Lab::postgres().await;
    let warm = "        blue-green:\n          keep_old_for: 10m";
    let v1 = lab.release(&yml("one", "ok", warm, "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    let v2 = lab.release(&yml("two", "ok", warm, "")).await;
    assert_eq!(lab.deploy(v2.number).await.state, DeployState::Succeeded);
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=two".into()));
    let d = lab
        .deployer
        .rollback("web", "prod", None, "test")
        .await
        .unwrap();
    let d = lab.wait(d.id).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
    let bad = yml("three", "unhealthy", warm, "").replace("retries: 60", "retries: 10");
    let v3 = lab.release(&bad).await;
    let d = lab.deploy(v3.number).await;
    assert_eq!(d.state, DeployState::RolledBack);
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
    lab.drop_database(&db).await;
}
