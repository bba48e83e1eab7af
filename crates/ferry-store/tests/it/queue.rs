use crate::both;
use crate::fixtures::{job, labels, project, run};
use ferry_store::db::{DbError, EventQuery, JobOutcome, now_ms};
use ferry_types::{EventKind, JobResult, JobStatus};
use std::collections::BTreeSet;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);
/// Far enough ahead that every lease given out in a test has expired.
const LATER_MS: i64 = 10 * 60 * 1000;

fn failed(reason: &str) -> JobOutcome {
    JobOutcome {
        result: JobResult::Failure,
        reason: Some(reason.to_owned()),
    }
}

both! {
    async fn claim_gives_jobs_only_to_agents_with_all_their_labels(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        run(store, "web", vec![job("docker-build", &["linux", "docker"], &[])]).await?;
        assert!(store.claim_job("bare", &[], LEASE).await?.is_none());
        assert!(store.claim_job("linux-only", &labels(&["linux"]), LEASE).await?.is_none());
        let claimed = store.claim_job("full", &labels(&["arm64", "docker", "linux"]), LEASE).await?.ok_or("matching agent")?;
        assert_eq!(claimed.job.name, "docker-build");
        assert_eq!(claimed.job.runs_on, ["linux", "docker"]);
        assert_eq!(claimed.lease.agent_id, "full");

        run(store, "web", vec![job("anywhere", &[], &[])]).await?;
        let any = store.claim_job("bare", &[], LEASE).await?.ok_or("a job without labels runs anywhere")?;
        assert_eq!(any.job.name, "anywhere");
        Ok(())
    }
}

both! {
    async fn claim_takes_the_oldest_job_whose_needs_ended_well(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let mut lint = job("lint", &[], &[]);
        lint.allow_failure = true;
        let r = run(store, "web", vec![job("build", &[], &[]), lint, job("test", &[], &["build", "lint"])]).await?;
        let build = store.claim_job("a", &[], LEASE).await?.ok_or("build")?;
        let lint = store.claim_job("b", &[], LEASE).await?.ok_or("lint")?;
        assert_eq!((build.job.name.as_str(), lint.job.name.as_str()), ("build", "lint"));
        assert!(store.claim_job("c", &[], LEASE).await?.is_none(), "test waits for both");
        store.finish_job(&build.lease, &JobOutcome { result: JobResult::Success, reason: None }).await?;
        assert!(store.claim_job("c", &[], LEASE).await?.is_none(), "lint still runs");
        assert_eq!(store.finish_job(&lint.lease, &failed("warnings")).await?, JobStatus::AllowedFailure);
        let test = store.claim_job("c", &[], LEASE).await?.ok_or("an allowed failure lets dependants run")?;
        assert_eq!(test.job.name, "test");
        assert_eq!(test.run.id, r.id);
        Ok(())
    }
}

both! {
    async fn concurrent_claimers_never_get_the_same_job(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        const JOBS: usize = 40;
        let jobs = (0..JOBS).map(|i| job(&format!("job-{i:02}"), &[], &[])).collect();
        run(store, "web", jobs).await?;
        let mut tasks = Vec::new();
        for agent in 0..12 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(claimed) = store.claim_job(&format!("agent-{agent}"), &[], LEASE).await? {
                    mine.push(claimed.lease.job_id);
                }
                Ok::<_, DbError>(mine)
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await??);
        }
        let unique: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!(all.len(), JOBS, "every job claimed exactly once: {all:?}");
        assert_eq!(unique.len(), JOBS);
        assert_eq!(store.queue_depth().await?, 0);
        let started = store.list_events(&EventQuery { limit: 1000, ..EventQuery::default() }).await?
            .into_iter().filter(|e| e.kind == EventKind::JobStarted).count();
        assert_eq!(started, JOBS);
        Ok(())
    }
}

both! {
    async fn expired_leases_are_lost_and_requeued_up_to_the_retry_limit(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let mut flaky = job("flaky", &[], &[]);
        flaky.max_attempts = 2;
        let r = run(store, "web", vec![flaky]).await?;
        let first = store.claim_job("a", &[], LEASE).await?.ok_or("first attempt")?;
        assert!(store.expire_leases(now_ms()).await?.is_empty(), "a live lease is not expired");
        assert_eq!(store.queue_depth().await?, 0);

        let lost = store.expire_leases(now_ms() + LATER_MS).await?;
        assert_eq!(lost.len(), 1);
        assert!(lost[0].requeued);
        assert_eq!((lost[0].agent_id.as_str(), lost[0].attempt), ("a", 1));
        assert_eq!(store.queue_depth().await?, 1);

        let second = store.claim_job("b", &[], LEASE).await?.ok_or("second attempt")?;
        assert_eq!(second.job.attempt, 2);
        assert_eq!(second.job.id, first.job.id);
        let lost = store.expire_leases(now_ms() + LATER_MS).await?;
        assert_eq!(lost.len(), 1);
        assert!(!lost[0].requeued, "no attempts left");
        let job = store.get_job(first.job.id).await?.ok_or("job")?;
        assert_eq!(job.status, JobStatus::Lost);
        assert_eq!(job.reason.as_deref(), Some("lease expired"));
        assert!(store.claim_job("c", &[], LEASE).await?.is_none());

        let kinds: Vec<EventKind> = store.list_events(&EventQuery { run_id: Some(r.id), ..EventQuery::default() }).await?
            .iter().map(|e| e.kind).skip_while(|k| *k != EventKind::JobLost).collect();
        use EventKind::*;
        assert_eq!(kinds, [JobLost, JobRetried, JobStarted, JobLost, JobFinished]);
        Ok(())
    }
}

both! {
    async fn finishing_with_a_stale_lease_is_rejected(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let mut build = job("build", &[], &[]);
        build.max_attempts = 3;
        run(store, "web", vec![build]).await?;
        let old = store.claim_job("a", &[], LEASE).await?.ok_or("attempt 1")?;
        store.expire_leases(now_ms() + LATER_MS).await?;
        // The same agent comes back and takes the job again: the old attempt's lease is
        // still stale.
        let new = store.claim_job("a", &[], LEASE).await?.ok_or("attempt 2")?;
        assert_eq!(new.lease.attempt, 2);
        let late = store.finish_job(&old.lease, &JobOutcome { result: JobResult::Success, reason: None }).await;
        assert!(matches!(late, Err(DbError::LeaseLost { attempt: 1, .. })), "{late:?}");
        assert!(matches!(store.renew_lease(&old.lease, LEASE).await, Err(DbError::LeaseLost { .. })));
        let mut stranger = new.lease.clone();
        stranger.agent_id = "b".into();
        assert!(matches!(store.finish_job(&stranger, &failed("?")).await, Err(DbError::LeaseLost { .. })));

        let renewed = store.renew_lease(&new.lease, Duration::from_secs(120)).await?;
        assert!(renewed.lease_expires_at > new.lease_expires_at);
        assert_eq!(store.finish_job(&new.lease, &failed("exit 1")).await?, JobStatus::Queued, "attempt 3 remains");
        assert!(matches!(store.finish_job(&new.lease, &failed("twice")).await, Err(DbError::LeaseLost { .. })));
        let last = store.claim_job("b", &[], LEASE).await?.ok_or("attempt 3")?;
        assert_eq!(store.finish_job(&last.lease, &failed("exit 1")).await?, JobStatus::Failure);
        Ok(())
    }
}

both! {
    async fn restart_interrupts_only_the_servers_own_jobs(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let mut retried = job("retried", &["local"], &[]);
        retried.max_attempts = 2;
        run(store, "web", vec![retried, job("once", &["local"], &[]), job("remote", &["remote"], &[])]).await?;
        let local = labels(&["local"]);
        let a = store.claim_job("server", &local, LEASE).await?.ok_or("retried")?;
        let b = store.claim_job("server", &local, LEASE).await?.ok_or("once")?;
        let c = store.claim_job("agent-1", &labels(&["remote"]), LEASE).await?.ok_or("remote")?;

        // kill -9: the server's process is gone; a new one opens the same database.
        let restarted = db.reopen().await?;
        let mut taken = restarted.interrupt_local_jobs("server").await?;
        taken.sort_by_key(|t| t.job_id);
        assert_eq!(taken.iter().map(|t| (t.job.as_str(), t.requeued)).collect::<Vec<_>>(), [("retried", true), ("once", false)]);
        assert_eq!(restarted.get_job(a.job.id).await?.ok_or("a")?.status, JobStatus::Queued);
        assert_eq!(restarted.get_job(b.job.id).await?.ok_or("b")?.status, JobStatus::Interrupted);
        assert_eq!(restarted.get_job(c.job.id).await?.ok_or("c")?.status, JobStatus::Running, "remote agents keep their jobs");
        // The agent reports to the restarted server, and that is accepted.
        restarted.finish_job(&c.lease, &JobOutcome { result: JobResult::Success, reason: None }).await?;
        let again = restarted.claim_job("server", &local, LEASE).await?.ok_or("requeued job")?;
        assert_eq!((again.job.id, again.job.attempt), (a.job.id, 2));
        let kinds: Vec<EventKind> = restarted.list_events(&EventQuery { limit: 1000, ..EventQuery::default() }).await?.iter().map(|e| e.kind).collect();
        assert_eq!(kinds.iter().filter(|k| **k == EventKind::JobInterrupted).count(), 2);
        restarted.close().await;
        Ok(())
    }
}

both! {
    async fn claimers_in_two_processes_never_get_the_same_job(db: TestDb) -> TestResult {
        project(&db.store, "web").await?;
        const JOBS: usize = 30;
        run(&db.store, "web", (0..JOBS).map(|i| job(&format!("job-{i:02}"), &[], &[])).collect()).await?;
        // A second pool on the same database stands for a second server process.
        let other = db.reopen().await?;
        let mut notified = db.store.event_notifications();
        let mut tasks = Vec::new();
        for agent in 0..8 {
            let store = if agent % 2 == 0 { db.store.clone() } else { other.clone() };
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(claimed) = store.claim_job(&format!("agent-{agent}"), &[], LEASE).await? {
                    mine.push(claimed.lease.job_id);
                }
                Ok::<_, DbError>(mine)
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await??);
        }
        let unique: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!((all.len(), unique.len()), (JOBS, JOBS), "{all:?}");
        assert!(notified.try_recv().is_ok(), "claims in this process woke its waiters");
        other.close().await;
        Ok(())
    }
}
