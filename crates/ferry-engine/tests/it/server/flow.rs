//! From a trigger to a finished run on the built-in executor.

use super::support::*;
use ferry_engine::server::{CoreError, TriggerOutcome};
use ferry_types::{EventKind, JobStatus, RunStatus, Trigger};

const TWO_JOBS: &str = r#"
on:
  push:
    branches: [main]
  manual: true
jobs:
  build:
    steps:
      - echo building $FERRY_SHA
      - mkdir -p out && echo artifact-body > out/app.txt
    artifacts:
      paths: [out]
  test:
    needs: [build]
    steps:
      - cat out/app.txt
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_commit_runs_on_the_builtin_executor_with_logs_and_events_in_order() {
    push_runs_to_success(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pushed_commit_runs_on_the_builtin_executor_with_logs_and_events_in_order() {
    push_runs_to_success(Db::Postgres).await;
}

async fn push_runs_to_success(db: Db) {
    let env = Env::on(db, TWO_JOBS, &[]).await;
    let server = env.start(2).await;
    let run = started(
        server
            .core
            .trigger(push("refs/heads/main"))
            .await
            .expect("trigger"),
    );
    assert_eq!(run.sha, env.head());
    assert_eq!(run.branch.as_deref(), Some("main"));

    let run = finished(&env.store, run.id, 30).await;
    assert_eq!(
        run.status,
        RunStatus::Success,
        "jobs: {:?}",
        env.store.list_jobs(run.id).await
    );
    assert_eq!(
        job(&env.store, run.id, "build").await.status,
        JobStatus::Success
    );
    assert_eq!(
        job(&env.store, run.id, "test").await.status,
        JobStatus::Success
    );

    let build_log = log_text(&env.store, run.id, "build").await;
    assert!(
        build_log.contains(&format!("building {}", env.head())),
        "build log: {build_log}"
    );
    // The artifact of `build` reached `test`'s workspace.
    let test_log = log_text(&env.store, run.id, "test").await;
    assert!(test_log.contains("artifact-body"), "test log: {test_log}");

    let kinds: Vec<(EventKind, Option<String>)> = events(&env.store, run.id)
        .await
        .into_iter()
        .map(|e| (e.kind, e.job))
        .collect();
    let pos = |k: EventKind, job: Option<&str>| {
        kinds
            .iter()
            .position(|(kk, j)| *kk == k && j.as_deref() == job)
            .unwrap_or_else(|| panic!("no {k} for {job:?} in {kinds:?}"))
    };
    assert!(pos(EventKind::RunQueued, None) < pos(EventKind::RunStarted, None));
    assert!(pos(EventKind::RunStarted, None) <= pos(EventKind::JobStarted, Some("build")));
    assert!(pos(EventKind::JobStarted, Some("build")) < pos(EventKind::JobFinished, Some("build")));
    assert!(pos(EventKind::JobFinished, Some("build")) < pos(EventKind::JobStarted, Some("test")));
    assert!(pos(EventKind::JobFinished, Some("test")) < pos(EventKind::RunFinished, None));
    server.stop().await;
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_a_branch_outside_the_filters_starts_nothing() {
    let yml = r#"
on:
  push:
    branches: [main]
    paths: ["src/**"]
jobs:
  a:
    steps: [echo hi]
"#;
    let env = Env::new(yml, &[("src/lib.rs", "1")]).await;
    let server = env.start(0).await;
    git(env.path(), &["checkout", "-q", "-b", "feature"]);
    env.commit(yml, &[("src/lib.rs", "2")], "feature work");
    let o = server
        .core
        .trigger(push("refs/heads/feature"))
        .await
        .expect("trigger");
    assert!(
        matches!(&o, TriggerOutcome::Filtered(why) if why.contains("feature")),
        "{o:?}"
    );

    // On main, a commit that changes only docs is filtered by `paths`.
    git(env.path(), &["checkout", "-q", "main"]);
    env.commit(yml, &[("docs/readme.md", "x")], "docs");
    let o = server.core.trigger(push("main")).await.expect("trigger");
    assert!(matches!(o, TriggerOutcome::Filtered(_)), "{o:?}");
    // Given changed paths are used as they are.
    let mut req = push("main");
    req.changed_paths = Some(vec!["src/main.rs".into()]);
    started(server.core.trigger(req).await.expect("trigger"));
    assert_eq!(
        env.store
            .list_runs(Some("app"), 10)
            .await
            .expect("runs")
            .len(),
        1
    );
    // Every trigger left a `push.received` event saying what it led to.
    let evs = env
        .store
        .list_events(&ferry_store::db::EventQuery {
            project: Some("app".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("events");
    let outcomes: Vec<String> = evs
        .iter()
        .filter(|e| e.kind == EventKind::PushReceived)
        .map(|e| e.data["outcome"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(outcomes, ["filtered", "filtered", "started"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_ferry_yml_is_refused_with_its_diagnostics() {
    let env = Env::new("jobs:\n  a:\n    stepz: [echo]\n", &[]).await;
    let server = env.start(0).await;
    let err = server
        .core
        .trigger(push("main"))
        .await
        .expect_err("refused");
    match &err {
        CoreError::Pipeline(text) => assert!(
            text.contains("ferry.yml") && text.contains("stepz"),
            "{text}"
        ),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        env.store
            .list_runs(None, 10)
            .await
            .expect("runs")
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_in_progress_cancels_the_older_run_of_the_group() {
    let yml = r#"
jobs:
  deploy:
    concurrency:
      group: deploy-${{ ferry.branch }}
      cancel-in-progress: true
    steps: [sleep 30]
"#;
    let env = Env::new(yml, &[]).await;
    let server = env.start(2).await;
    let first = started(server.core.trigger(push("main")).await.expect("trigger"));
    until(20, "the first run to start", || async {
        (job(&env.store, first.id, "deploy").await.status == JobStatus::Running).then_some(())
    })
    .await;
    env.commit(yml, &[("x", "1")], "second");
    let second = started(server.core.trigger(push("main")).await.expect("trigger"));
    assert_eq!(second.concurrency_group.as_deref(), Some("deploy-main"));
    let first = finished(&env.store, first.id, 20).await;
    assert_eq!(first.status, RunStatus::Cancelled);
    // The cancelled run's running job was told to stop and reported it.
    until(20, "the old job to end cancelled", || async {
        (job(&env.store, first.id, "deploy").await.status == JobStatus::Cancelled).then_some(())
    })
    .await;
    assert!(
        !env.store
            .get_run(second.id)
            .await
            .expect("get")
            .expect("run")
            .status
            .is_finished()
    );
    server
        .core
        .cancel_run(second.id, "test")
        .await
        .expect("cancel");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cancel_in_progress_the_newer_run_waits_for_the_group() {
    let yml = r#"
jobs:
  deploy:
    concurrency: prod
    steps: [sleep 1]
"#;
    let env = Env::new(yml, &[]).await;
    let server = env.start(2).await;
    let first = started(server.core.trigger(push("main")).await.expect("trigger"));
    env.commit(yml, &[("x", "1")], "second");
    let second = started(server.core.trigger(push("main")).await.expect("trigger"));
    assert_eq!(
        job(&env.store, second.id, "deploy").await.status,
        JobStatus::WaitingApproval
    );
    let first = finished(&env.store, first.id, 30).await;
    let second = finished(&env.store, second.id, 30).await;
    assert_eq!(
        (first.status, second.status),
        (RunStatus::Success, RunStatus::Success)
    );
    let a = job(&env.store, first.id, "deploy").await;
    let b = job(&env.store, second.id, "deploy").await;
    assert!(
        b.started_at >= a.finished_at,
        "the second deploy started before the first ended"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_waits_until_a_person_approves() {
    let yml = r#"
on: [push, manual]
jobs:
  build:
    steps: [echo built]
  release:
    needs: [build]
    approval:
      message: ship it?
    steps: [echo released]
"#;
    let env = Env::new(yml, &[]).await;
    let server = env.start(1).await;
    let mut req = push("main");
    req.trigger = Trigger::Manual;
    let run = started(server.core.trigger(req).await.expect("trigger"));
    until(20, "build to finish", || async {
        (job(&env.store, run.id, "build").await.status == JobStatus::Success).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(
        job(&env.store, run.id, "release").await.status,
        JobStatus::WaitingApproval
    );
    assert!(
        !env.store
            .get_run(run.id)
            .await
            .expect("get")
            .expect("run")
            .status
            .is_finished()
    );

    let err = server
        .core
        .approve(run.id, "build", "ann")
        .await
        .expect_err("build needs no approval");
    assert!(matches!(err, CoreError::Invalid(_)), "{err:?}");
    server
        .core
        .approve(run.id, "release", "ann")
        .await
        .expect("approve");
    let run = finished(&env.store, run.id, 20).await;
    assert_eq!(run.status, RunStatus::Success);
    let granted = events(&env.store, run.id)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::ApprovalGranted)
        .expect("approval event");
    assert_eq!(granted.data["by"], "ann");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_only_rerun_reuses_the_artifacts_of_passed_jobs() {
    // `test` fails until the marker file exists; `build` counts its own runs.
    let yml = r#"
on: [push, manual]
jobs:
  build:
    steps:
      - echo run >> "$COUNT"; mkdir -p out; date +%s%N > out/stamp
    env:
      COUNT: __COUNT__
    artifacts:
      paths: [out]
  test:
    needs: [build]
    steps:
      - cat out/stamp
      - test -e __MARKER__
"#;
    let scratch = tempfile::tempdir().expect("tempdir");
    let count = scratch.path().join("count");
    let marker = scratch.path().join("marker");
    let yml = yml
        .replace("__COUNT__", &count.display().to_string())
        .replace("__MARKER__", &marker.display().to_string());
    let env = Env::new(&yml, &[]).await;
    let server = env.start(1).await;
    let run = started(server.core.trigger(push("main")).await.expect("trigger"));
    let run = finished(&env.store, run.id, 30).await;
    assert_eq!(run.status, RunStatus::Failure);
    let stamp_before = log_text(&env.store, run.id, "test").await;

    std::fs::write(&marker, "").expect("marker");
    let again = server.core.rerun(run.id, true, "ann").await.expect("rerun");
    assert_ne!(again.id, run.id);
    assert_eq!(again.sha, run.sha);
    let again = finished(&env.store, again.id, 30).await;
    assert_eq!(again.status, RunStatus::Success);
    let build = job(&env.store, again.id, "build").await;
    assert_eq!(build.status, JobStatus::Success);
    assert!(
        build
            .reason
            .unwrap_or_default()
            .contains(&format!("run {}", run.id))
    );
    // `build` ran once in all; `test` saw the same artifact as in the first run.
    assert_eq!(
        std::fs::read_to_string(&count)
            .expect("count")
            .lines()
            .count(),
        1
    );
    let stamp_after = log_text(&env.store, again.id, "test").await;
    let stamp = |log: &str| {
        log.lines()
            .find(|l| l.chars().all(|c| c.is_ascii_digit()) && !l.is_empty())
            .map(str::to_string)
    };
    assert!(stamp(&stamp_before).is_some(), "{stamp_before}");
    assert_eq!(stamp(&stamp_before), stamp(&stamp_after));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_gets_only_the_secrets_it_references_and_the_access_is_recorded() {
    let yml = r#"
jobs:
  uses:
    steps: ['test "$T" = s3cret && echo "token is $T"']
    env:
      T: ${{ secrets.TOKEN }}
  plain:
    steps: [echo plain]
"#;
    let env = Env::new(yml, &[]).await;
    let secrets = ferry_secrets::SecretStore::open(env.data.path()).expect("secret store");
    secrets.set("TOKEN", b"s3cret").expect("set");
    secrets.set("OTHER", b"nope").expect("set");
    let server = env.start(1).await;
    let run = started(server.core.trigger(push("main")).await.expect("trigger"));
    let run = finished(&env.store, run.id, 30).await;
    assert_eq!(run.status, RunStatus::Success);
    let log = log_text(&env.store, run.id, "uses").await;
    assert!(
        log.contains("token is") && !log.contains("s3cret"),
        "masked: {log}"
    );
    let accessed: Vec<(Option<String>, String)> = events(&env.store, run.id)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::SecretAccessed)
        .map(|e| {
            (
                e.job,
                e.data["secret"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(accessed, [(Some("uses".to_string()), "TOKEN".to_string())]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_if_reads_needs_decides_after_a_failed_need() {
    let yml = r#"
jobs:
  build:
    steps: [exit 3]
  notify:
    needs: [build]
    if: needs.build.result == 'failure'
    steps: ["echo build failed: notifying"]
  deploy:
    needs: [build]
    steps: [echo never]
  celebrate:
    needs: [build]
    if: needs.build.result == 'success'
    steps: [echo never]
"#;
    let env = Env::new(yml, &[]).await;
    let server = env.start(2).await;
    let run = started(server.core.trigger(push("main")).await.expect("trigger"));
    let run = finished(&env.store, run.id, 30).await;
    assert_eq!(run.status, RunStatus::Failure);
    assert_eq!(
        job(&env.store, run.id, "build").await.status,
        JobStatus::Failure
    );
    let notify = job(&env.store, run.id, "notify").await;
    assert_eq!(notify.status, JobStatus::Success, "{:?}", notify.reason);
    assert!(
        log_text(&env.store, run.id, "notify")
            .await
            .contains("notifying")
    );
    assert_eq!(
        job(&env.store, run.id, "deploy").await.status,
        JobStatus::Skipped
    );
    let celebrate = job(&env.store, run.id, "celebrate").await;
    assert_eq!(celebrate.status, JobStatus::Skipped);
    assert!(
        celebrate
            .reason
            .unwrap_or_default()
            .contains("`if` is false")
    );
    server.stop().await;
}
