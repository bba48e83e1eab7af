//! Host executor: DAG, parallelism, conditions, retries, approvals, timeouts,
//! cancellation, secrets, env.

use crate::support::{pid_alive, repo, run, run_with};
use ferry_engine::ci::{ApprovalDecision, Approver};
use ferry_types::{JobResult, RunEvent};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn started(job: &str) -> impl Fn(&RunEvent) -> bool + '_ {
    move |e| matches!(e, RunEvent::JobStarted { job: j, .. } if j == job)
}

fn finished(job: &str) -> impl Fn(&RunEvent) -> bool + '_ {
    move |e| matches!(e, RunEvent::JobFinished { job: j, .. } if j == job)
}

#[tokio::test]
async fn runs_jobs_in_dag_order_and_independent_jobs_in_parallel() {
    let r = repo(
        r#"
jobs:
  a:
    steps: [{ run: "echo a" }]
  b:
    needs: [a]
    steps: [{ run: "sleep 0.6" }]
  c:
    needs: [a]
    steps: [{ run: "sleep 0.6" }]
  d:
    needs: [b, c]
    steps: [{ run: "echo d" }]
"#,
        &[],
    );
    let t = Instant::now();
    let ran = run(&r).await;
    assert!(ran.summary.success, "{:?}", ran.summary.jobs);
    for j in ["a", "b", "c", "d"] {
        assert_eq!(ran.result(j), JobResult::Success);
    }
    assert!(ran.pos(finished("a")) < ran.pos(started("b")));
    assert!(ran.pos(finished("a")) < ran.pos(started("c")));
    assert!(ran.pos(finished("b")) < ran.pos(started("d")));
    assert!(ran.pos(finished("c")) < ran.pos(started("d")));
    // b and c overlapped: both started before either finished.
    assert!(ran.pos(started("c")) < ran.pos(finished("b")));
    assert!(ran.pos(started("b")) < ran.pos(finished("c")));
    assert!(
        t.elapsed() < Duration::from_millis(1150),
        "b and c ran in parallel: {:?}",
        t.elapsed()
    );
    assert!(matches!(
        ran.events.first(),
        Some(RunEvent::RunStarted { .. })
    ));
    assert!(matches!(
        ran.events.last(),
        Some(RunEvent::RunFinished { success: true, .. })
    ));
    // events.jsonl and summary.json hold the same story.
    let jsonl = std::fs::read_to_string(ran.summary.run_dir.join("events.jsonl")).unwrap();
    let not_log = ran
        .events
        .iter()
        .filter(|e| !matches!(e, RunEvent::Log { .. }))
        .count();
    assert_eq!(jsonl.lines().count(), not_log, "every event but Log lines");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ran.summary.run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["success"], true);
    assert_eq!(summary["jobs"].as_array().unwrap().len(), 4);
    // Workspaces are gone after the run.
    assert!(!r.data().join("work").join(&ran.summary.run_id).exists());
}

#[tokio::test]
async fn parallelism_one_runs_one_job_at_a_time() {
    let r = repo(
        "jobs:\n  b:\n    steps: [{ run: 'sleep 0.3' }]\n  c:\n    steps: [{ run: 'sleep 0.3' }]\n",
        &[],
    );
    let mut o = r.opts();
    o.parallelism = 1;
    let ran = run_with(&r, o, CancellationToken::new()).await;
    assert!(ran.summary.success);
    let (first, second) = if ran.pos(started("b")) < ran.pos(started("c")) {
        ("b", "c")
    } else {
        ("c", "b")
    };
    assert!(ran.pos(finished(first)) < ran.pos(started(second)));
}

#[tokio::test]
async fn failed_need_skips_dependants_unless_their_if_asks_for_it() {
    let r = repo(
        r#"
jobs:
  build:
    steps: [{ run: "exit 3" }]
  test:
    needs: [build]
    steps: [{ run: "echo never" }]
  report:
    needs: [build]
    if: needs.build.result == 'failure'
    steps: [{ run: "echo reporting" }]
"#,
        &[],
    );
    let ran = run(&r).await;
    assert!(!ran.summary.success);
    assert_eq!(ran.result("build"), JobResult::Failure);
    assert!(
        ran.reason("build").contains("exited with code 3"),
        "{}",
        ran.reason("build")
    );
    assert_eq!(ran.result("test"), JobResult::Skipped);
    assert!(
        ran.reason("test").contains("`build`"),
        "{}",
        ran.reason("test")
    );
    assert_eq!(ran.result("report"), JobResult::Success);
    assert!(ran.logs("report").contains("reporting"));
}

#[tokio::test]
async fn retry_runs_a_failed_job_again() {
    let counter = tempfile::tempdir().unwrap();
    let file = counter.path().join("n");
    let r = repo(
        &format!(
            r#"
jobs:
  flaky:
    retry: 2
    steps:
      - run: |
          echo x >> {f}
          test "$(wc -l < {f})" -ge 2
"#,
            f = file.display()
        ),
        &[],
    );
    let ran = run(&r).await;
    assert_eq!(ran.result("flaky"), JobResult::Success);
    assert_eq!(ran.job("flaky").attempts, 2);
    assert!(
        ran.events
            .iter()
            .any(|e| matches!(e, RunEvent::JobRetrying { job, next_attempt: 2 } if job == "flaky"))
    );
    assert!(!ran.events.iter().any(|e| matches!(
        e,
        RunEvent::JobRetrying {
            next_attempt: 3,
            ..
        }
    )));
}

#[tokio::test]
async fn allow_failure_lets_dependants_run() {
    let r = repo(
        r#"
jobs:
  lint:
    allow_failure: true
    steps: [{ run: "exit 1" }]
  build:
    needs: [lint]
    steps:
      - run: "exit 2"
        allow_failure: true
      - run: "echo after-step"
"#,
        &[],
    );
    let ran = run(&r).await;
    assert!(ran.summary.success, "{:?}", ran.summary.jobs);
    assert_eq!(ran.result("lint"), JobResult::AllowedFailure);
    assert_eq!(ran.result("build"), JobResult::Success);
    assert!(ran.logs("build").contains("after-step"));
    assert!(ran.events.iter().any(|e| matches!(e, RunEvent::StepFinished { step, result: JobResult::AllowedFailure, exit_code: Some(2), .. } if step.job == "build")));
}

#[tokio::test]
async fn false_if_skips_jobs_and_steps() {
    let r = repo(
        r#"
jobs:
  deploy:
    if: branch == 'production'
    steps: [{ run: "echo deploying" }]
  build:
    steps:
      - run: "echo skipped-step"
        if: branch == 'nope'
      - run: "echo on-$FERRY_BRANCH"
"#,
        &[],
    );
    let ran = run(&r).await;
    assert!(ran.summary.success);
    assert_eq!(ran.result("deploy"), JobResult::Skipped);
    assert!(!ran.logs("deploy").contains("deploying"));
    let logs = ran.logs("build");
    assert!(!logs.contains("skipped-step"));
    assert!(logs.contains("on-main"), "{logs}");
}

#[tokio::test]
async fn matrix_instances_run_independently() {
    let r = repo(
        r#"
jobs:
  test:
    matrix:
      n: [1, 2, 3]
    steps: [{ run: "echo n=${{ matrix.n }}; test ${{ matrix.n }} != 2" }]
"#,
        &[],
    );
    let ran = run(&r).await;
    assert_eq!(ran.summary.jobs.len(), 3, "{:?}", ran.summary.jobs);
    let ids: Vec<&str> = ran.summary.jobs.iter().map(|j| j.id.as_str()).collect();
    let failed: Vec<&str> = ran
        .summary
        .jobs
        .iter()
        .filter(|j| j.result == JobResult::Failure)
        .map(|j| j.id.as_str())
        .collect();
    assert_eq!(failed.len(), 1, "{ids:?}");
    assert!(failed[0].contains('2'));
    for j in &ran.summary.jobs {
        if j.result == JobResult::Success {
            assert!(ran.logs(&j.id).contains("n="));
        }
    }
}

struct Refuse;
impl Approver for Refuse {
    fn approve<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> Pin<Box<dyn Future<Output = ApprovalDecision> + Send + 'a>> {
        Box::pin(async { ApprovalDecision::Refused("alice said no".into()) })
    }
}

#[tokio::test]
async fn approval_gates_a_job() {
    let yml = r#"
jobs:
  deploy:
    approval:
      message: "ship it?"
    steps: [{ run: "echo shipped" }]
"#;
    let r = repo(yml, &[]);
    // Non-interactive: fails with how to approve.
    let ran = run(&r).await;
    assert_eq!(ran.result("deploy"), JobResult::Failure);
    assert_eq!(
        ran.reason("deploy"),
        "job `deploy` needs approval: run with `--approve deploy`"
    );
    assert!(
        ran.events.iter().any(
            |e| matches!(e, RunEvent::ApprovalRequired { message, .. } if message == "ship it?")
        )
    );
    // Pre-approved.
    let mut o = r.opts();
    o.approve = vec!["deploy".into()];
    let ran = run_with(&r, o, CancellationToken::new()).await;
    assert_eq!(ran.result("deploy"), JobResult::Success);
    assert!(ran.logs("deploy").contains("shipped"));
    // Refused by a person.
    let mut o = r.opts();
    o.approver = Arc::new(Refuse);
    let ran = run_with(&r, o, CancellationToken::new()).await;
    assert_eq!(ran.result("deploy"), JobResult::Failure);
    assert!(ran.reason("deploy").contains("alice said no"));
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let pids = tempfile::tempdir().unwrap();
    let pidfile = pids.path().join("bg");
    let r = repo(
        &format!(
            r#"
jobs:
  slow:
    timeout: 1s
    steps:
      - run: |
          sleep 300 &
          echo $! > {p}
          sleep 300
"#,
            p = pidfile.display()
        ),
        &[],
    );
    let t = Instant::now();
    let ran = run(&r).await;
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(ran.result("slow"), JobResult::TimedOut);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!pid_alive(pid), "the background sleep {pid} was killed");
}

#[tokio::test]
async fn cancellation_sends_term_then_kill_and_reports_cancelled() {
    let r = repo(
        r#"
jobs:
  stubborn:
    steps:
      - run: |
          trap 'echo got-term' TERM
          echo started
          while true; do sleep 0.1 || true; done
  later:
    needs: [stubborn]
    steps: [{ run: "echo never" }]
"#,
        &[],
    );
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        c2.cancel();
    });
    let mut o = r.opts();
    o.grace = Duration::from_millis(700);
    let t = Instant::now();
    let ran = run_with(&r, o, cancel).await;
    let took = t.elapsed();
    assert_eq!(ran.result("stubborn"), JobResult::Cancelled);
    assert_eq!(ran.result("later"), JobResult::Cancelled);
    assert!(!ran.summary.success);
    let logs = ran.logs("stubborn");
    assert!(logs.contains("got-term"), "SIGTERM first: {logs}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(6),
        "then SIGKILL after the grace: {took:?}"
    );
}

#[tokio::test]
async fn secrets_are_masked_and_only_given_to_jobs_that_use_them() {
    let r = repo(
        r#"
jobs:
  uses:
    env:
      TOKEN: ${{ secrets.API_TOKEN }}
    steps:
      - run: |
          echo "token is $TOKEN"
          echo "$TOKEN" >&2
  other:
    steps:
      - run: env
"#,
        &[],
    );
    let mut o = r.opts();
    o.secrets = Arc::new(HashMap::from([(
        "API_TOKEN".to_string(),
        b"hunter2-s3cr3t".to_vec(),
    )]));
    let ran = run_with(&r, o, CancellationToken::new()).await;
    assert!(ran.summary.success, "{:?}", ran.summary.jobs);
    let all = serde_json::to_string(&ran.events).unwrap();
    assert!(!all.contains("hunter2-s3cr3t"));
    assert!(
        ran.logs("uses").contains("token is ***"),
        "{}",
        ran.logs("uses")
    );
    let log =
        std::fs::read_to_string(ran.log_dir("uses").join("01-echo-token-is-token.log")).unwrap();
    assert!(
        log.contains("token is ***") && !log.contains("hunter2"),
        "{log}"
    );
    let jsonl = std::fs::read_to_string(ran.summary.run_dir.join("events.jsonl")).unwrap();
    assert!(!jsonl.contains("hunter2"));
    // The other job's environment does not hold it.
    let env_log = std::fs::read_dir(ran.log_dir("other"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let env = std::fs::read_to_string(env_log).unwrap();
    assert!(env.contains("FERRY_JOB=other") && !env.contains("TOKEN"));
}

#[tokio::test]
async fn missing_secret_fails_the_job_naming_it() {
    let r = repo(
        "jobs:\n  j:\n    steps: [{ run: 'echo ${{ secrets.NOPE }}' }]\n",
        &[],
    );
    let ran = run(&r).await;
    assert_eq!(ran.result("j"), JobResult::Failure);
    let why = ran.reason("j");
    assert!(
        why.contains("`NOPE`") && why.contains("ferry secret set NOPE"),
        "{why}"
    );
}

#[tokio::test]
async fn env_layers_and_ferry_variables_reach_steps() {
    let r = repo(
        r#"
env:
  LEVEL: pipeline
  GREETING: hello
jobs:
  j:
    env:
      LEVEL: job
      FROM_JOB: ${{ env.GREETING }}-job
    steps:
      - env: { LEVEL: step }
        run: |
          echo "level=$LEVEL from=$FROM_JOB ci=$CI ferry=$FERRY"
          echo "sha=$FERRY_SHA run=$FERRY_RUN_ID job=$FERRY_JOB"
          test "$FERRY_WORKSPACE" = "$PWD"
          test -f ferry.yml
          echo "short=${{ ferry.short_sha }}"
"#,
        &[],
    );
    let ran = run(&r).await;
    assert!(
        ran.summary.success,
        "{:?} {}",
        ran.summary.jobs,
        ran.logs("j")
    );
    let logs = ran.logs("j");
    assert!(
        logs.contains("level=step from=hello-job ci=true ferry=1"),
        "{logs}"
    );
    assert!(logs.contains(&format!(
        "sha={} run={} job=j",
        ran.summary.sha, ran.summary.run_id
    )));
    assert!(logs.contains(&format!("short={}", &ran.summary.sha[..8])));
}

#[tokio::test]
async fn dirty_runs_include_uncommitted_changes_and_clean_runs_do_not() {
    let r = repo(
        "jobs:\n  j:\n    steps: [{ run: 'cat tracked.txt; test -f new.txt && echo has-new || echo no-new; test -f ignored.txt && echo has-ignored || true' }]\n",
        &[
            ("tracked.txt", "committed\n"),
            (".gitignore", "ignored.txt\n"),
        ],
    );
    std::fs::write(r.path().join("tracked.txt"), "modified\n").unwrap();
    std::fs::write(r.path().join("new.txt"), "x").unwrap();
    std::fs::write(r.path().join("ignored.txt"), "x").unwrap();
    let clean = run(&r).await;
    let logs = clean.logs("j");
    assert!(
        logs.contains("committed") && logs.contains("no-new"),
        "{logs}"
    );
    let mut o = r.opts();
    o.dirty = true;
    let dirty = run_with(&r, o, CancellationToken::new()).await;
    let logs = dirty.logs("j");
    assert!(
        logs.contains("modified") && logs.contains("has-new") && !logs.contains("has-ignored"),
        "{logs}"
    );
    // The user's tree is untouched.
    assert_eq!(
        std::fs::read_to_string(r.path().join("tracked.txt")).unwrap(),
        "modified\n"
    );
}

#[tokio::test]
async fn select_runs_a_job_with_what_it_needs() {
    let r = repo(
        "jobs:\n  a:\n    steps: [{ run: 'true' }]\n  b:\n    needs: [a]\n    steps: [{ run: 'true' }]\n  c:\n    steps: [{ run: 'true' }]\n",
        &[],
    );
    let mut o = r.opts();
    o.select = vec!["b".into()];
    let ran = run_with(&r, o, CancellationToken::new()).await;
    let ids: Vec<&str> = ran.summary.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    let mut o = r.opts();
    o.select = vec!["nope".into()];
    let err = ferry_engine::ci::run(
        &r.pipeline(),
        o,
        tokio::sync::mpsc::channel(8).0,
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no job `nope`"), "{err}");
}
