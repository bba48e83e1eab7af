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
