//! Container executor (needs the Docker engine: these tests fail when it is missing).

use crate::support::{busybox_image, docker_leftovers, repo, run, run_with};
use ferry_types::JobResult;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn service_yml(image: &str, step: &str) -> String {
    format!(
        r#"
jobs:
  web:
    image: {image}
    services:
      site:
        image: {image}
        command: ["sh", "-c", "mkdir -p /www && echo hello-from-service > /www/index.html && httpd -f -p 8080 -h /www"]
        ports: [8080]
    steps:
      - run: {step}
"#
    )
}

#[tokio::test]
async fn container_job_reaches_its_service_by_name_and_cleans_up() {
    let image = busybox_image();
    let r = repo(
        &service_yml(
            image,
            "\"wget -q -O - http://site:8080/ && test -f ferry.yml && test ! -e /bin/bash && echo in=$FERRY_JOB\"",
        ),
        &[],
    );
    let ran = run(&r).await;
    assert_eq!(
        ran.result("web"),
        JobResult::Success,
        "{} {}",
        ran.reason("web"),
        ran.logs("web")
    );
    let logs = ran.logs("web");
    assert!(
        logs.contains("hello-from-service") && logs.contains("in=web"),
        "{logs}"
    );
    assert!(logs.contains("Service `site` is ready."));
    assert_eq!(
        docker_leftovers(&ran.summary.run_id),
        (String::new(), String::new())
    );
}

#[tokio::test]
async fn container_job_failure_still_cleans_up() {
    let image = busybox_image();
    let r = repo(&service_yml(image, "\"echo failing; exit 4\""), &[]);
    let ran = run(&r).await;
    assert_eq!(ran.result("web"), JobResult::Failure);
    assert!(
        ran.reason("web").contains("exited with code 4"),
        "{}",
        ran.reason("web")
    );
    assert_eq!(
        docker_leftovers(&ran.summary.run_id),
        (String::new(), String::new())
    );
}

#[tokio::test]
async fn container_job_timeout_and_cancellation_kill_the_step_and_clean_up() {
    let image = busybox_image();
    let r = repo(
        &format!(
            "jobs:\n  slow:\n    image: {image}\n    timeout: 1s\n    steps: [{{ run: 'sleep 300' }}]\n"
        ),
        &[],
    );
    let ran = run(&r).await;
    assert_eq!(ran.result("slow"), JobResult::TimedOut);
    assert_eq!(
        docker_leftovers(&ran.summary.run_id),
        (String::new(), String::new())
    );

    let r = repo(
        &format!(
            "jobs:\n  slow:\n    image: {image}\n    steps: [{{ run: \"trap 'echo term' TERM; while true; do sleep 0.1 || true; done\" }}]\n"
        ),
        &[],
    );
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        c2.cancel();
    });
    let ran = run_with(&r, r.opts(), cancel).await;
    assert_eq!(ran.result("slow"), JobResult::Cancelled);
    assert_eq!(
        docker_leftovers(&ran.summary.run_id),
        (String::new(), String::new())
    );
}

#[tokio::test]
async fn container_image_missing_locally_says_ferry_does_not_pull() {
    busybox_image();
    let r = repo(
        "jobs:\n  j:\n    image: ferry-test/absent:0\n    steps: [{ run: 'true' }]\n",
        &[],
    );
    let ran = run(&r).await;
    assert_eq!(ran.result("j"), JobResult::Failure);
    let why = ran.reason("j");
    assert!(
        why.contains("`ferry-test/absent:0` is not in the local Docker engine")
            && why.contains("does not pull"),
        "{why}"
    );
    assert_eq!(
        docker_leftovers(&ran.summary.run_id),
        (String::new(), String::new())
    );
}

#[tokio::test]
async fn container_service_that_never_gets_ready_fails_naming_it() {
    let image = busybox_image();
    let r = repo(
        &format!(
            "jobs:\n  j:\n    image: {image}\n    services:\n      db:\n        image: {image}\n        command: [sh, -c, 'sleep 300']\n        ports: [5432]\n    steps: [{{ run: 'true' }}]\n"
        ),
        &[],
    );
    let mut o = r.opts();
    o.service_timeout = Duration::from_secs(2);
    let ran = run_with(&r, o, CancellationToken::new()).await;
    assert_eq!(ran.result("j"), JobResult::Failure);
    assert!(
        ran.reason("j")
            .contains("service `db` was not ready after 2s"),
        "{}",
        ran.reason("j")
    );
    assert_eq!(
        docker_leftovers(&ran.summary.run_id),
        (String::new(), String::new())
    );
}
