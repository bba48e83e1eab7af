//! Restart safety: crashes, drains and executors that go away.

use super::support::*;
use ferry_types::{EventKind, JobStatus, RunStatus};
use std::time::Duration;

fn long_job(retry: u32, marker: &std::path::Path) -> String {
    format!(
        r#"
jobs:
  long:
    retry: {retry}
    steps:
      - if [ -e {m} ]; then echo second attempt; else touch {m}; sleep 30; fi
"#,
        m = marker.display()
    )
}

async fn crash_mid_job(db: Db, retry: u32) -> (Env, i64, Running) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let marker = scratch.path().join("started");
    let env = Env::on(db, &long_job(retry, &marker), &[]).await;
    let server = env.start(1).await;
    let run = started(server.core.trigger(push("main")).await.expect("trigger"));
    until(20, "the job to start", || async {
        marker.exists().then_some(())
    })
    .await;
    server.crash().await;
    assert_eq!(
        job(&env.store, run.id, "long").await.status,
        JobStatus::Running
    );
    let again = env.start(1).await;
    // Keep the marker directory alive for the second attempt.
    std::mem::forget(scratch);
    (env, run.id, again)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_job_cut_short_by_a_crash_is_interrupted_and_retried() {
    interrupted_and_retried(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_builtin_job_cut_short_by_a_crash_is_interrupted_and_retried() {
    interrupted_and_retried(Db::Postgres).await;
}

async fn interrupted_and_retried(db: Db) {
    let (env, run_id, server) = crash_mid_job(db, 1).await;
    let run = finished(&env.store, run_id, 30).await;
    assert_eq!(run.status, RunStatus::Success);
    let j = job(&env.store, run_id, "long").await;
    assert_eq!(j.attempt, 2);
    let kinds: Vec<EventKind> = events(&env.store, run_id)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    let interrupted = kinds
        .iter()
        .position(|k| *k == EventKind::JobInterrupted)
        .expect("job.interrupted");
    assert_eq!(
        kinds.get(interrupted + 1),
        Some(&EventKind::JobRetried),
        "{kinds:?}"
    );
    assert!(
        log_text(&env.store, run_id, "long")
            .await
            .contains("second attempt")
    );
    server.stop().await;
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_job_cut_short_without_retry_ends_interrupted() {
    let (env, run_id, server) = crash_mid_job(Db::Sqlite, 0).await;
    let run = finished(&env.store, run_id, 30).await;
    assert_eq!(run.status, RunStatus::Failure);
    let j = job(&env.store, run_id, "long").await;
    assert_eq!(j.status, JobStatus::Interrupted);
    assert_eq!(j.reason.as_deref(), Some("server restarted"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_job_stays_queued_across_a_restart() {
    let yml = "jobs:\n  a:\n    steps: [echo ran]\n";
    let env = Env::new(yml, &[]).await;
    let server = env.start(0).await;
    let run = started(server.core.trigger(push("main")).await.expect("trigger"));
    server.crash().await;
    let server = env.start(0).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(job(&env.store, run.id, "a").await.status, JobStatus::Queued);
    server.stop().await;
    let server = env.start(1).await;
    assert_eq!(
        finished(&env.store, run.id, 30).await.status,
        RunStatus::Success
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_that_stops_heartbeating_loses_its_job_which_is_retried() {
    let yml = "jobs:\n  a:\n    retry: 1\n    steps: [echo ran]\n";
    let env = Env::new(yml, &[]).await;
    let server = env.start(0).await;
    let run = started(server.core.trigger(push("main")).await.expect("trigger"));
    // An agent claims the job with a short lease and is never heard of again.
    let claimed = env
        .store
        .claim_job("agent-gone", &[], Duration::from_millis(500))
        .await
        .expect("claim")
        .expect("a job");
    let a = server.core.assignment(claimed).await.expect("assignment");
    assert_eq!((a.job.as_str(), a.sha.as_str()), ("a", run.sha.as_str()));
    until(10, "the lease to expire", || async {
        (job(&env.store, run.id, "a").await.status == JobStatus::Queued).then_some(())
    })
    .await;
    let kinds: Vec<EventKind> = events(&env.store, run.id)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&EventKind::JobLost), "{kinds:?}");
    server.stop().await;
    // The built-in executor picks up the retry.
    let server = env.start(1).await;
    assert_eq!(
        finished(&env.store, run.id, 30).await.status,
        RunStatus::Success
    );
    assert_eq!(job(&env.store, run.id, "a").await.attempt, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drain_lets_a_running_job_finish_and_report() {
    let yml = "jobs:\n  a:\n    steps: [sleep 1, echo done]\n";
    let env = Env::new(yml, &[]).await;
    let server = env.start(1).await;
    let run = started(server.core.trigger(push("main")).await.expect("trigger"));
    until(20, "the job to start", || async {
        (job(&env.store, run.id, "a").await.status == JobStatus::Running).then_some(())
    })
    .await;
    server.stop().await;
    assert_eq!(
        job(&env.store, run.id, "a").await.status,
        JobStatus::Success
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivery_accepted_before_a_crash_starts_its_run_at_the_next_start() {
    let yml = "on:\n  push:\n    paths: [\"src/**\"]\njobs:\n  a:\n    steps: [echo ran]\n";
    let env = Env::new(yml, &[("src/a.rs", "1")]).await;
    let sha = env.head();
    let payload = serde_json::json!({
        "ref": "refs/heads/main",
        "after": sha,
        "commits": [{ "id": sha, "added": ["src/a.rs"], "modified": [], "removed": [] }],
    });
    let id = env
        .store
        .record_delivery("app", "delivery-1", "push", &payload.to_string())
        .await
        .expect("record")
        .expect("new delivery");
    // The server died before acting on it; the next start does.
    let server = env.start(1).await;
    let runs = env.store.list_runs(Some("app"), 10).await.expect("runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].sha, sha);
    assert!(
        env.store
            .pending_deliveries()
            .await
            .expect("pending")
            .iter()
            .all(|d| d.id != id)
    );
    assert_eq!(
        finished(&env.store, runs[0].id, 30).await.status,
        RunStatus::Success
    );
    server.stop().await;
}
