//! What remote agents call, through the client against a real server.

use crate::both;
use crate::support::{Server, TestResult};
use ferry_client::api::{
    ClaimRequest, FinishRequest, JobOutcome, Lease, LogAppend, TriggerRequest, TriggerResponse,
};
use ferry_types::{JobResult, JobStatus, Role, RunStatus};
use std::time::{Duration, Instant};

fn claim(wait_ms: u64) -> ClaimRequest {
    ClaimRequest {
        agent_id: "agent-1".into(),
        name: "first agent".into(),
        labels: vec!["linux".into()],
        wait_ms,
    }
}

both! {
    async fn an_agent_claims_runs_and_finishes_a_job(s: Server) -> TestResult {
        let on = s.listen().await?;
        let token = s.token(Role::Developer).await?;
        let agent = s.client(&on, &token)?;

        let before = Instant::now();
        assert!(agent.claim(&claim(300)).await?.is_none(), "nothing is queued yet");
        assert!(before.elapsed() >= Duration::from_millis(250), "the claim waited");

        // A long-poll that is waiting when the run is queued gets the job.
        let waiting = tokio::spawn({
            let agent = agent.clone();
            async move { agent.claim(&claim(20_000)).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let TriggerResponse::Started { run } = agent.trigger("app", &TriggerRequest::default()).await? else {
            return Err("the run was filtered".into());
        };
        let a = waiting.await??.ok_or("the waiting claim got nothing")?;
        assert_eq!((a.run_id, a.job.as_str(), a.sha.as_str()), (run.id, "build", run.sha.as_str()));
        assert!(a.pipeline.contains("echo building"));

        let renewal = agent.heartbeat(&a.lease).await?;
        assert!(!renewal.cancel_requested);
        assert!(renewal.lease_expires_at >= a.lease_expires_at);
        let stale = Lease { attempt: a.lease.attempt + 1, ..a.lease.clone() };
        let err = agent.heartbeat(&stale).await.err().ok_or("a lease never held was renewed")?;
        assert_eq!(err.status(), Some(409));

        let appended = agent
            .append_log(&LogAppend { lease: a.lease.clone(), step: 0, lines: vec!["building".into(), "done".into()] })
            .await?;
        assert_eq!(appended.total, 2);

        let dir = tempfile::tempdir()?;
        let tar_path = dir.path().join("source.tar");
        let size = agent.download_source(run.id, &tar_path).await?;
        assert!(size > 0);
        let listing = std::process::Command::new("tar").arg("-tf").arg(&tar_path).output()?;
        assert!(String::from_utf8_lossy(&listing.stdout).lines().any(|l| l.trim_start_matches("./") == "ferry.yml"));

        let stored = agent.put_blob_bytes(b"artifact bytes".to_vec()).await?;
        agent
            .finish(&FinishRequest {
                lease: a.lease.clone(),
                outcome: JobOutcome { result: JobResult::Success, reason: None },
                artifacts: Some(stored.digest.clone()),
            })
            .await?;
        let detail = agent.run(run.id).await?;
        assert_eq!(detail.jobs[0].status, JobStatus::Success);
        crate::support::eventually("the run to succeed", || async {
            Ok((agent.run(run.id).await?.run.status == RunStatus::Success).then_some(()))
        })
        .await?;
        let err = agent.heartbeat(&a.lease).await.err().ok_or("a finished job's lease was renewed")?;
        assert_eq!(err.status(), Some(409));
        assert!(err.hint().is_some_and(|h| h.contains("stop working on this job")));

        let agents = agent.agents().await?;
        assert_eq!(agents.len(), 1);
        assert_eq!((agents[0].id.as_str(), agents[0].labels.clone()), ("agent-1", vec!["linux".to_owned()]));
        on.stop.cancel();
        on.handle.await??;
        s.stop().await
    }
}

#[tokio::test]
async fn blobs_round_trip_and_a_wrong_digest_is_refused() -> TestResult {
    let s = Server::start().await?;
    let on = s.listen().await?;
    let c = s.client(&on, &s.admin)?;
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("a.bin");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &content)?;
    let stored = c.put_blob(&src).await?;
    assert_eq!(stored.size, content.len() as u64);
    let dest = dir.path().join("b.bin");
    assert_eq!(
        c.get_blob(&stored.digest, &dest).await?,
        content.len() as u64
    );
    assert_eq!(std::fs::read(&dest)?, content);

    let wrong = format!("sha256:{}", "ab".repeat(32));
    let req = axum::http::Request::builder()
        .method("PUT")
        .uri(format!("/api/v1/blobs/{wrong}"))
        .header("authorization", format!("Bearer {}", s.admin))
        .body(axum::body::Body::from("something else"))?;
    let (status, body) = s.raw(req).await?;
    assert_eq!(
        status,
        axum::http::StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let err = c
        .get_blob(&wrong, &dir.path().join("c.bin"))
        .await
        .err()
        .ok_or("a blob never stored was served")?;
    assert_eq!(err.status(), Some(404));
    assert!(!dir.path().join("c.bin").exists());
    on.stop.cancel();
    on.handle.await??;
    s.stop().await
}

#[tokio::test]
async fn shutdown_ends_a_waiting_claim() -> TestResult {
    let s = Server::start().await?;
    let on = s.listen().await?;
    let agent = s.client(&on, &s.admin)?;
    let waiting = tokio::spawn(async move { agent.claim(&claim(25_000)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = Instant::now();
    on.stop.cancel();
    assert!(waiting.await??.is_none());
    on.handle.await??;
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "the server drained promptly"
    );
    s.stop().await
}
