//! The phases before the switch (pre-migration hooks, `migrate` steps) and the warm
//! release after it.

use super::support::{Lab, running, yml};
use ferry_engine::deploy::{HookContext, HookFuture, PreMigrateHook};
use ferry_types::DeployState;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BLUE_GREEN: &str = "        blue-green:\n          keep_old_for: 0s";

/// A hook that records the releases it saw, and fails for release `v{fail_on}`.
#[derive(Debug)]
struct Backup {
    seen: Mutex<Vec<String>>,
    fail_on: i64,
}

impl PreMigrateHook for Backup {
    fn name(&self) -> &str {
        "backup"
    }

    fn run<'a>(&'a self, cx: &'a HookContext) -> HookFuture<'a> {
        Box::pin(async move {
            self.seen
                .lock()
                .unwrap()
                .push(format!("{} {}", cx.release.name(), cx.env["RELEASE"]));
            if cx.release.number == self.fail_on {
                Err("the database is not reachable".to_string())
            } else {
                Ok(format!("Backed up before {}.", cx.release.name()))
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_steps_run_after_the_hooks_and_a_failure_changes_nothing() {
    let lab = Lab::new().await;
    let hook = Arc::new(Backup {
        seen: Mutex::new(Vec::new()),
        fail_on: 3,
    });
    lab.deployer.add_pre_migrate_hook(hook.clone());
    // The release directory is <data>/releases/web/v<n>: the log lands in <data>.
    let migrate = "  migrate:\n    - echo \"migrated $RELEASE\" >> ../../../migrations.log\n";
    let v1 = lab.release(&yml("one", "ok", BLUE_GREEN, migrate)).await;
    let d = lab.deploy(v1.number).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    let steps = lab.steps(d.id).await;
    let order: Vec<&str> = [
        "[pre_migrate] Running pre-migration hook `backup`.",
        "[pre_migrate] Backed up before v1.",
        "[migrate] migrate step `echo \"migrated $RELEASE\" >> ../../../migrations.log` passed.",
        "[start] Starting 1 instance of v1 on `process`.",
    ]
    .into_iter()
    .collect();
    let positions: Vec<usize> = order
        .iter()
        .map(|line| {
            steps
                .find(line)
                .unwrap_or_else(|| panic!("no {line:?} in\n{steps}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{steps}");
    let log = lab.data.path().join("migrations.log");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "migrated one\n");

    let failing = migrate.replace("echo", "exit 3; echo");
    let v2 = lab.release(&yml("two", "ok", BLUE_GREEN, &failing)).await;
    let d = lab.deploy(v2.number).await;
    assert_eq!(d.state, DeployState::RolledBack);
    assert_eq!(
        d.reason.as_deref(),
        Some(
            "migrate step `exit 3; echo \"migrated $RELEASE\" >> ../../../migrations.log` failed with exit code 3"
        )
    );
    assert!(
        !lab.steps(d.id).await.contains("[start]"),
        "nothing started"
    );

    let v3 = lab.release(&yml("three", "ok", BLUE_GREEN, migrate)).await;
    let d = lab.deploy(v3.number).await;
    assert_eq!(d.state, DeployState::RolledBack);
    assert_eq!(
        d.reason.as_deref(),
        Some("pre-migration hook `backup` failed: the database is not reachable")
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "migrated one\n",
        "no migration ran after the failed hook"
    );
    assert_eq!(*hook.seen.lock().unwrap(), ["v1 one", "v2 two", "v3 three"]);
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=one".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_release_stops_when_its_time_is_up() {
    let lab = Lab::new().await;
    let warm = "        blue-green:\n          keep_old_for: 1s";
    let v1 = lab.release(&yml("one", "ok", warm, "")).await;
    assert_eq!(lab.deploy(v1.number).await.state, DeployState::Succeeded);
    let v2 = lab.release(&yml("two", "ok", warm, "")).await;
    let d = lab.deploy(v2.number).await;
    assert_eq!(d.state, DeployState::Succeeded);
    assert!(
        lab.steps(d.id)
            .await
            .contains("[drain] Keeping v1 warm for 1s for an instant rollback.")
    );
    let pid = lab.instance_dir("web-prod-v1-0").join("pid");
    assert!(running(&pid));
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(&pid) {
        assert!(Instant::now() < deadline, "v1 still runs 10 s later");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let live = lab.store.live_env("web", "prod").await.unwrap().unwrap();
        if live.previous.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the warm release is still recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lab.get("/").await.unwrap(), (200, "release=two".into()));
}
