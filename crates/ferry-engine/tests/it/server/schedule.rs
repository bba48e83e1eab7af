//! Cron runs (with a fake clock) and the poller.

use super::support::*;
use ferry_types::Trigger;
use std::time::Duration;

const CRON: &str = r#"
on:
  schedule:
    - cron: "0 3 * * *"
jobs:
  nightly:
    steps: [echo nightly]
"#;

/// 2026-01-01T00:00:00Z.
const JAN_1: i64 = 1_767_225_600_000;
const HOUR: i64 = 3_600_000;

async fn schedule_runs(env: &Env) -> usize {
    env.store
        .list_runs(Some("app"), 100)
        .await
        .expect("runs")
        .iter()
        .filter(|r| r.trigger == Trigger::Schedule)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_fires_once_per_occurrence_and_not_again_after_a_restart() {
    let env = Env::new(CRON, &[]).await;
    let clock = clock();
    clock.set(JAN_1);
    let options = || ferry_engine::server::CoreOptions {
        clock: clock.clone(),
        ..env.options()
    };
    let server = env.start_with(env.config(0), options()).await;
    // The schedule is first seen at midnight (its state file records that).
    let state = env.data.path().join("cron").join("app.json");
    until(20, "the schedule to be seen", || async {
        state.exists().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(schedule_runs(&env).await, 0, "nothing is due at midnight");

    clock.set(JAN_1 + 3 * HOUR + 1000);
    until(20, "the 03:00 run", || async {
        (schedule_runs(&env).await == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(schedule_runs(&env).await, 1, "one run per occurrence");

    // A restart at the same time fires nothing again.
    server.crash().await;
    let server = env.start_with(env.config(0), options()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        schedule_runs(&env).await,
        1,
        "no double fire after a restart"
    );

    // Two days later: the missed occurrences fire once.
    clock.set(JAN_1 + 51 * HOUR);
    until(20, "the catch-up run", || async {
        (schedule_runs(&env).await == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(schedule_runs(&env).await, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_picks_up_a_new_commit_with_its_changed_paths() {
    let yml = r#"
on:
  push:
    paths: ["src/**"]
jobs:
  a:
    steps: [echo polled]
"#;
    let env = Env::new(yml, &[("src/a.rs", "1")]).await;
    let mut config = env.config(0);
    config.poll_interval = Some(Duration::from_millis(200));
    let server = env.start_with(config, env.options()).await;
    // The first poll clones the mirror and starts nothing.
    let mirror = env.data.path().join("repos").join("app.git").join("HEAD");
    until(20, "the first poll", || async {
        mirror.exists().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        env.store
            .list_runs(Some("app"), 10)
            .await
            .expect("runs")
            .is_empty()
    );

    env.commit(yml, &[("docs/x.md", "1")], "docs only");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        env.store
            .list_runs(Some("app"), 10)
            .await
            .expect("runs")
            .is_empty(),
        "paths filter applies"
    );

    let sha = env.commit(yml, &[("src/a.rs", "2")], "code");
    let run = until(20, "a polled run", || async {
        env.store
            .list_runs(Some("app"), 10)
            .await
            .expect("runs")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(
        (run.sha.as_str(), run.trigger, run.branch.as_deref()),
        (sha.as_str(), Trigger::Push, Some("main"))
    );
    server.stop().await;
}
