//! `ci::execute`: one job through a `JobIo`, as `ferry agent` runs it. The `JobIo`
//! here keeps blobs and log lines in memory; the source is a real `git archive`.

use crate::support::repo;
use ferry_engine::ci::{self, ExecOptions, Heartbeat, IoFuture, JobIo, JobIoError, JobSpec};
use ferry_types::JobResult;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct MemIo {
    source: PathBuf,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    logs: Mutex<Vec<(u32, String)>>,
    beats: AtomicU32,
    cancel_on_beat: AtomicBool,
    lose_on_beat: AtomicBool,
}

impl MemIo {
    fn log(&self) -> String {
        self.logs
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, l)| l.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl JobIo for MemIo {
    fn source<'a>(&'a self, scratch: &'a Path) -> IoFuture<'a, PathBuf> {
        Box::pin(async move {
            std::fs::copy(&self.source, scratch).map_err(|e| JobIoError::Other(e.to_string()))?;
            Ok(scratch.to_path_buf())
        })
    }

    fn fetch_artifact<'a>(&'a self, digest: &'a str, dest: &'a Path) -> IoFuture<'a, ()> {
        Box::pin(async move {
            let bytes = self.blobs.lock().expect("lock").get(digest).cloned();
            let bytes = bytes.ok_or_else(|| JobIoError::Other(format!("no blob {digest}")))?;
            std::fs::write(dest, bytes).map_err(|e| JobIoError::Other(e.to_string()))
        })
    }

    fn store_artifact<'a>(&'a self, path: &'a Path) -> IoFuture<'a, String> {
        Box::pin(async move {
            let bytes = std::fs::read(path).map_err(|e| JobIoError::Other(e.to_string()))?;
            let digest = ferry_store::Digest::of(&bytes).to_string();
            self.blobs
                .lock()
                .expect("lock")
                .insert(digest.clone(), bytes);
            Ok(digest)
        })
    }

    fn append_log<'a>(&'a self, step: u32, lines: Vec<String>) -> IoFuture<'a, ()> {
        Box::pin(async move {
            self.logs
                .lock()
                .expect("lock")
                .extend(lines.into_iter().map(|l| (step, l)));
            Ok(())
        })
    }

    fn heartbeat(&self) -> IoFuture<'_, Heartbeat> {
        Box::pin(async move {
            self.beats.fetch_add(1, Ordering::SeqCst);
            if self.lose_on_beat.load(Ordering::SeqCst) {
                return Err(JobIoError::LeaseLost);
            }
            Ok(Heartbeat {
                cancel_requested: self.cancel_on_beat.load(Ordering::SeqCst),
            })
        })
    }
}

const YML: &str = r#"
jobs:
  build:
    steps:
      - echo first step
      - mkdir -p out && cat input.txt > out/made.txt
    artifacts:
      paths: [out]
  test:
    needs: [build]
    steps:
      - cat out/made.txt
  slow:
    steps: [sleep 30]
  never:
    if: ferry.branch == 'nope'
    steps: [echo never]
  flaky:
    allow_failure: true
    steps: [exit 1]
"#;

struct Setup {
    _repo: crate::support::Repo,
    work: tempfile::TempDir,
    io: Arc<MemIo>,
}

fn setup() -> Setup {
    let r = repo(YML, &[("input.txt", "from the commit")]);
    let work = tempfile::tempdir().expect("tempdir");
    let tar = work.path().join("source.tar");
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(r.path())
        .args(["archive", "--format=tar", "-o"])
        .arg(&tar)
        .arg("HEAD")
        .output()
        .expect("git");
    assert!(out.status.success());
    let io = Arc::new(MemIo {
        source: tar,
        ..MemIo::default()
    });
    Setup { _repo: r, work, io }
}

fn spec(job: &str) -> JobSpec {
    JobSpec {
        run_id: "7".into(),
        job: job.into(),
        pipeline: YML.into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        branch: Some("main".into()),
        tag: None,
        event: "push".into(),
        needs: BTreeMap::new(),
        artifacts: BTreeMap::new(),
        secrets: BTreeMap::new(),
    }
}

fn opts(s: &Setup) -> ExecOptions {
    ExecOptions {
        grace: Duration::from_millis(200),
        heartbeat: Duration::from_millis(100),
        ..ExecOptions::new(s.work.path())
    }
}

#[tokio::test]
async fn execute_hands_artifacts_and_logs_through_the_io() {
    let s = setup();
    let built = ci::execute(
        &spec("build"),
        s.io.clone(),
        &opts(&s),
        None,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(built.result, JobResult::Success, "{:?}", built.reason);
    let digest = built.artifacts.expect("artifacts stored");
    assert!(digest.starts_with("sha256:"));
    assert!(
        s.io.logs
            .lock()
            .expect("lock")
            .contains(&(0, "first step".to_string()))
    );

    let mut t = spec("test");
    t.needs.insert("build".into(), JobResult::Success);
    t.artifacts.insert("build".into(), digest);
    let io = Arc::new(MemIo {
        source: s.io.source.clone(),
        ..MemIo::default()
    });
    io.blobs
        .lock()
        .expect("lock")
        .extend(s.io.blobs.lock().expect("lock").clone());
    let tested = ci::execute(&t, io.clone(), &opts(&s), None, CancellationToken::new()).await;
    assert_eq!(tested.result, JobResult::Success, "{:?}", tested.reason);
    assert!(io.log().contains("from the commit"), "{}", io.log());
    assert_eq!(tested.artifacts, None);
    // The job's directory is gone afterwards.
    assert_eq!(
        std::fs::read_dir(s.work.path().join("work"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[tokio::test]
async fn a_heartbeat_asking_to_cancel_stops_the_job() {
    let s = setup();
    s.io.cancel_on_beat.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let o = ci::execute(
        &spec("slow"),
        s.io.clone(),
        &opts(&s),
        None,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(o.result, JobResult::Cancelled);
    assert!(!o.lease_lost);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_lost_lease_stops_the_job_and_says_so() {
    let s = setup();
    s.io.lose_on_beat.store(true, Ordering::SeqCst);
    let o = ci::execute(
        &spec("slow"),
        s.io.clone(),
        &opts(&s),
        None,
        CancellationToken::new(),
    )
    .await;
    assert!(o.lease_lost);
    assert!(s.io.beats.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn false_if_skips_and_allowed_failures_are_reported_as_failures() {
    let s = setup();
    let o = ci::execute(
        &spec("never"),
        s.io.clone(),
        &opts(&s),
        None,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(o.result, JobResult::Skipped);
    // The queue turns a final failure of an `allow_failure` job into `allowed_failure`.
    let o = ci::execute(
        &spec("flaky"),
        s.io.clone(),
        &opts(&s),
        None,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(o.result, JobResult::Failure);
    let o = ci::execute(
        &spec("missing"),
        s.io.clone(),
        &opts(&s),
        None,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(o.result, JobResult::Failure);
    assert!(o.reason.unwrap_or_default().contains("no job `missing`"));
}
