//! A server that stops mid-deploy: the next start rolls the deploy back.

use super::support::{Lab, running, yml};
use ferry_types::{DeployPhase, DeployState};
use std::time::{Duration, Instant};

const BLUE_GREEN: &str = "        blue-green:\n          keep_old_for: 0s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_cut_short_by_a_crash_is_rolled_back_on_restart() {
    let lab = Lab::new().await;
    let v1 = lab.release(&yml("one", "ok", BLUE_GREEN, "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    // v2 never becomes healthy within the crash window: the deploy sits in `health`.
    let slow = yml("two", "unhealthy", BLUE_GREEN, "").replace("retries: 60", "retries: 100");
    let v2 = lab.release(&slow).await;
    let d = lab
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
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = lab.store.deploy(d.id).await.unwrap();
        if now.phase == DeployPhase::Health {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deploy never reached `health`"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v2_pid = lab.instance_dir("web-prod-v2-0").join("pid");
    assert!(running(&v2_pid), "v2's instance runs before the crash");

    let (data, store) = lab.crash().await;
    let mut lab = Lab::on(data, store).await;
    lab.start().await;

    let d = lab.store.deploy(d.id).await.unwrap();
    assert_eq!(d.state, DeployState::RolledBack);
    assert_eq!(d.reason.as_deref(), Some("the server stopped mid-deploy"));
    assert!(!running(&v2_pid), "nothing of v2 is left running");
    // The restarted server's proxy routes to v1 at once.
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
    let steps = lab.steps(d.id).await;
    assert!(
        steps.contains("[rollback] Rolling back: the server stopped mid-deploy."),
        "{steps}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_starts_live_instances_that_died_and_routes_to_them() {
    let lab = Lab::new().await;
    let v1 = lab.release(&yml("one", "ok", BLUE_GREEN, "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    let (data, store) = lab.crash().await;
    // The instance dies while no server runs (as it would with its server).
    let dir = data.path().join("instances/web/prod/web-prod-v1-0");
    std::fs::write(dir.join("owner"), "stopped").unwrap();
    let pid: i32 = std::fs::read_to_string(dir.join("pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let before = store.live_env("web", "prod").await.unwrap().unwrap();

    let mut lab = Lab::on(data, store).await;
    lab.start().await;
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
    let after = lab.store.live_env("web", "prod").await.unwrap().unwrap();
    assert_eq!(after.release_number, 1);
    assert_ne!(
        after.instances, before.instances,
        "the new instance is recorded"
    );

    // Taking the server out of service stops its instances, and keeps the live state.
    lab.deployer.stop_instances().await.unwrap();
    assert!(!running(&lab.instance_dir("web-prod-v1-0").join("pid")));
    assert_eq!(
        lab.store
            .live_env("web", "prod")
            .await
            .unwrap()
            .unwrap()
            .instances,
        after.instances
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_cut_short_after_its_switch_is_finished_on_restart() {
    use ferry_engine::deploy::targets::process::ProcessTarget;
    use ferry_engine::deploy::targets::{Artifact, InstanceSpec, Target};
    use ferry_store::db::{NewDeploy, Switch};
    use ferry_types::DeployKind;

    let lab = Lab::new().await;
    let v1 = lab.release(&yml("one", "ok", BLUE_GREEN, "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    let v2 = lab.release(&yml("two", "ok", BLUE_GREEN, "")).await;
    let (data, store) = lab.crash().await;

    // What the crashed server had done: claimed the deploy, started v2, recorded v1 to
    // stop, and switched — then it died before stopping v1 and finishing.
    let queued = store
        .create_deploy(&NewDeploy {
            service: "web".into(),
            environment: "prod".into(),
            release_id: v2.id,
            kind: DeployKind::Deploy,
            requested_by: "test".into(),
            run_id: None,
            job: None,
            needs_approval: false,
        })
        .await
        .unwrap();
    let lease = Duration::from_secs(30);
    let d = store
        .claim_deploy("test-server", lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.id, queued.id);
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("app.py"), super::support::APP).unwrap();
    let target = ProcessTarget::new(data.path().join("instances"));
    let v2_instance = target
        .start(&InstanceSpec {
            service: "web".into(),
            environment: "prod".into(),
            release: "v2".into(),
            index: 0,
            artifact: Artifact::Tarball {
                file: app.path().join("none.tar"),
                dir: app.path().to_path_buf(),
                digest: "sha256:00".into(),
            },
            command: Some("exec python3 app.py".into()),
            port: None,
            env: [("RELEASE".to_string(), "two".to_string())].into(),
            host: None,
            health_path: "/healthz".into(),
        })
        .await
        .unwrap();
    let live = store.live_env("web", "prod").await.unwrap().unwrap();
    let v1_instances = live.instances.clone();
    let progress = serde_json::json!({ "started": [v2_instance], "retire": v1_instances });
    store
        .save_deploy_progress(d.id, "test-server", &progress)
        .await
        .unwrap();
    store
        .switch_live(
            d.id,
            "test-server",
            &Switch {
                instances: serde_json::json!([v2_instance]),
                keep_previous: None,
            },
        )
        .await
        .unwrap();

    let mut lab = Lab::on(data, store).await;
    lab.start().await;
    let d = lab.store.deploy(d.id).await.unwrap();
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert!(
        !running(&lab.instance_dir("web-prod-v1-0").join("pid")),
        "v1 was stopped"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // v2 may still be starting.
        match lab.get("/").await {
            Ok((200, body)) => {
                assert_eq!(body, "release=two");
                break;
            }
            other => assert!(Instant::now() < deadline, "v2 never answered: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
