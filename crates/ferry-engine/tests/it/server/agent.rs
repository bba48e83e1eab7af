//! An agent beside the built-in executor, through the core's public surface as the
//! HTTP API uses it: claim by labels, assignment, source archive, blobs, heartbeats,
//! complete_job.

use super::support::*;
use ferry_engine::ci::{self, ExecOptions, Heartbeat, IoFuture, JobIo, JobIoError};
use ferry_engine::server::Core;
use ferry_store::db::{DbError, JobOutcome, Lease};
use ferry_types::{JobStatus, RunStatus};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the API does for an agent, called directly.
struct DirectIo {
    core: Core,
    lease: Lease,
    run_id: i64,
    job: String,
}

fn other(e: impl std::fmt::Display) -> JobIoError {
    JobIoError::Other(e.to_string())
}

impl JobIo for DirectIo {
    fn source<'a>(&'a self, scratch: &'a Path) -> IoFuture<'a, PathBuf> {
        Box::pin(async move {
            let tar = self.core.source_archive(self.run_id).await.map_err(other)?;
            std::fs::copy(tar, scratch).map_err(other)?;
            Ok(scratch.to_path_buf())
        })
    }

    fn fetch_artifact<'a>(&'a self, digest: &'a str, dest: &'a Path) -> IoFuture<'a, ()> {
        Box::pin(async move {
            let d: ferry_store::Digest = digest.parse().map_err(other)?;
            let mut src = self.core.blobs().open(&d).map_err(other)?;
            let mut out = std::fs::File::create(dest).map_err(other)?;
            std::io::copy(&mut src, &mut out).map(|_| ()).map_err(other)
        })
    }

    fn store_artifact<'a>(&'a self, path: &'a Path) -> IoFuture<'a, String> {
        Box::pin(async move {
            self.core
                .blobs()
                .put_file(path)
                .map(|d| d.to_string())
                .map_err(other)
        })
    }

    fn append_log<'a>(&'a self, step: u32, lines: Vec<String>) -> IoFuture<'a, ()> {
        Box::pin(async move {
            self.core
                .store()
                .append_log(self.run_id, &self.job, step, lines)
                .await
                .map(|_| ())
                .map_err(other)
        })
    }

    fn heartbeat(&self) -> IoFuture<'_, Heartbeat> {
        Box::pin(async move {
            match self
                .core
                .store()
                .renew_lease(&self.lease, Duration::from_secs(15))
                .await
            {
                Ok(r) => Ok(Heartbeat {
                    cancel_requested: r.cancel_requested,
                }),
                Err(DbError::LeaseLost { .. }) => Err(JobIoError::LeaseLost),
                Err(e) => Err(other(e)),
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_job_goes_to_the_agent_with_the_label_and_gets_the_builtin_jobs_artifacts() {
    let yml = r#"
jobs:
  build:
    steps: ["mkdir -p out && echo weights > out/model.bin"]
    artifacts:
      paths: [out]
  train:
    needs: [build]
    runs-on: [gpu]
    steps: ["cat out/model.bin", "mkdir -p res && echo trained > res/r.txt"]
    artifacts:
      paths: [res]
  report:
    needs: [train]
    steps: ["cat res/r.txt"]
"#;
    let env = Env::new(yml, &[]).await;
    let server = env.start(1).await;
    let run = started(server.core.trigger(push("main")).await.expect("trigger"));
    // The built-in executor (no labels) never takes `train`.
    let claimed = until(20, "train to be claimable by the agent", || async {
        env.store
            .claim_job(
                "agent-gpu",
                &["gpu".to_string(), "linux".to_string()],
                Duration::from_secs(15),
            )
            .await
            .expect("claim")
    })
    .await;
    assert_eq!(claimed.job.name, "train");
    let a = server.core.assignment(claimed).await.expect("assignment");
    assert!(a.artifacts.contains_key("build"), "{:?}", a.artifacts);
    let io = Arc::new(DirectIo {
        core: server.core.clone(),
        lease: a.lease.clone(),
        run_id: a.run_id,
        job: a.job.clone(),
    });
    let agent_dir = tempfile::tempdir().expect("tempdir");
    let opts = ExecOptions {
        heartbeat: Duration::from_millis(200),
        ..ExecOptions::new(agent_dir.path())
    };
    let o = ci::execute(&(&a).into(), io, &opts, None, CancellationToken::new()).await;
    assert_eq!(o.result, ferry_types::JobResult::Success, "{:?}", o.reason);
    server
        .core
        .complete_job(
            &a.lease,
            JobOutcome {
                result: o.result,
                reason: o.reason,
            },
            o.artifacts,
        )
        .await
        .expect("complete");
    // A second report of the same lease is refused.
    let again = server
        .core
        .complete_job(
            &a.lease,
            JobOutcome {
                result: ferry_types::JobResult::Success,
                reason: None,
            },
            None,
        )
        .await;
    assert!(again.is_err());

    let run = finished(&env.store, run.id, 30).await;
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(
        job(&env.store, run.id, "train").await.status,
        JobStatus::Success
    );
    assert!(
        log_text(&env.store, run.id, "train")
            .await
            .contains("weights")
    );
    assert!(
        log_text(&env.store, run.id, "report")
            .await
            .contains("trained")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_work_returns_when_a_run_is_queued() {
    let env = Env::new("jobs:\n  a:\n    steps: [echo]\n", &[]).await;
    let server = env.start(0).await;
    let core = server.core.clone();
    let waiting = tokio::spawn(async move {
        let t = std::time::Instant::now();
        core.wait_for_work(Duration::from_secs(20)).await;
        t.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    started(server.core.trigger(push("main")).await.expect("trigger"));
    let waited = waiting.await.expect("waiter");
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    server.stop().await;
}
