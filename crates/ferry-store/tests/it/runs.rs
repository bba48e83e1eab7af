use crate::both;
use crate::fixtures::{job, labels, project, run};
use ferry_store::db::{DbError, EventQuery, JobOutcome};
use ferry_types::{EventKind, JobResult, JobStatus, RunStatus};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

fn ok() -> JobOutcome {
    JobOutcome {
        result: JobResult::Success,
        reason: None,
    }
}

both! {
    async fn run_and_jobs_go_through_their_lifecycle_with_events(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let created = run(store, "web", vec![job("build", &[], &[]), job("test", &[], &["build"])]).await?;
        assert_eq!(created.status, RunStatus::Queued);
        assert_eq!(created.project, "web");
        assert!(created.pipeline.contains("make"));
        let jobs = store.list_jobs(created.id).await?;
        assert_eq!(jobs.iter().map(|j| (j.name.as_str(), j.status)).collect::<Vec<_>>(),
                   [("build", JobStatus::Queued), ("test", JobStatus::Queued)]);
        assert_eq!(jobs[1].needs, ["build"]);

        let build = store.claim_job("agent-1", &[], LEASE).await?.ok_or("build should be claimable")?;
        assert_eq!(build.job.name, "build");
        assert_eq!(build.job.attempt, 1);
        assert_eq!(build.run.status, RunStatus::Running);
        assert_eq!(build.run.sha, created.sha);
        assert!(store.claim_job("agent-2", &[], LEASE).await?.is_none(), "test needs build");
        assert_eq!(store.finish_job(&build.lease, &ok()).await?, JobStatus::Success);

        let test = store.claim_job("agent-2", &[], LEASE).await?.ok_or("test should be claimable")?;
        assert_eq!(test.job.name, "test");
        store.finish_job(&test.lease, &ok()).await?;
        assert!(store.set_run_status(created.id, RunStatus::Success).await?);
        assert!(!store.set_run_status(created.id, RunStatus::Failure).await?, "a finished run stays finished");

        let run = store.get_run(created.id).await?.ok_or("run")?;
        assert_eq!(run.status, RunStatus::Success);
        assert!(run.started_at.is_some() && run.finished_at.is_some());
        let jobs = store.list_jobs(created.id).await?;
        assert!(jobs.iter().all(|j| j.status == JobStatus::Success && j.finished_at.is_some() && j.agent_id.is_none()));

        let events = store.list_events(&EventQuery { run_id: Some(created.id), ..EventQuery::default() }).await?;
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        use EventKind::*;
        assert_eq!(kinds, [RunQueued, JobQueued, JobQueued, RunStarted, JobStarted, JobFinished, JobStarted, JobFinished, RunFinished]);
        assert_eq!(events[4].data["agent"], "agent-1");
        assert_eq!(events[5].data["status"], "success");
        assert_eq!(store.list_runs(Some("web"), 10).await?.len(), 1);
        assert!(store.list_runs(Some("other"), 10).await?.is_empty());
        Ok(())
    }
}

both! {
    async fn create_run_refuses_unknown_needs_and_projects(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let err = run(store, "web", vec![job("test", &[], &["biuld"])]).await;
        assert!(matches!(&err, Err(DbError::Invalid(m)) if m.contains("biuld")), "{err:?}");
        let err = run(store, "nope", vec![job("test", &[], &[])]).await;
        assert!(matches!(err, Err(DbError::NotFound { what: "project", .. })), "{err:?}");
        assert!(store.list_runs(None, 10).await?.is_empty(), "nothing half-created");
        Ok(())
    }
}

both! {
    async fn projects_are_unique_and_removal_keeps_the_event_log(db: TestDb) -> TestResult {
        let store = &db.store;
        let web = project(store, "web").await?;
        assert_eq!(web.default_branch, "main");
        assert_eq!(store.get_project("web").await?.ok_or("web")?.webhook_secret.as_deref(), Some("hook-secret"));
        assert!(matches!(project(store, "web").await, Err(DbError::Conflict { .. })));
        let r = run(store, "web", vec![job("build", &[], &[])]).await?;
        assert!(store.remove_project("web").await?);
        assert!(!store.remove_project("web").await?);
        assert!(store.get_project("web").await?.is_none());
        assert!(store.get_run(r.id).await?.is_none(), "runs go with their project");
        let events = store.list_events(&EventQuery { project: Some("web".into()), ..EventQuery::default() }).await?;
        assert_eq!(events.first().map(|e| e.kind), Some(EventKind::ProjectAdded));
        assert_eq!(events.last().map(|e| e.kind), Some(EventKind::ProjectRemoved));
        Ok(())
    }
}

both! {
    async fn job_waiting_for_approval_runs_only_after_approval(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let mut deploy = job("deploy", &[], &[]);
        deploy.needs_approval = true;
        let r = run(store, "web", vec![deploy]).await?;
        assert_eq!(store.list_jobs(r.id).await?[0].status, JobStatus::WaitingApproval);
        assert!(store.claim_job("a", &[], LEASE).await?.is_none());
        assert!(store.approve_job(r.id, "deploy", "alice").await?);
        assert!(!store.approve_job(r.id, "deploy", "alice").await?, "approving twice does nothing");
        let claimed = store.claim_job("a", &[], LEASE).await?.ok_or("approved job is claimable")?;
        assert_eq!(claimed.job.name, "deploy");
        let events = store.list_events(&EventQuery { run_id: Some(r.id), ..EventQuery::default() }).await?;
        let approval = events.iter().find(|e| e.kind == EventKind::ApprovalGranted).ok_or("approval event")?;
        assert_eq!(approval.data["by"], "alice");
        assert_eq!(approval.job.as_deref(), Some("deploy"));
        Ok(())
    }
}

both! {
    async fn cancelling_a_run_cancels_waiting_jobs_and_tells_running_ones(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let r = run(store, "web", vec![job("build", &["linux"], &[]), job("lint", &["mac"], &[]), job("test", &[], &["build"])]).await?;
        assert_eq!(store.active_runs_in_group("web", "deploy").await?.len(), 1);
        let claimed = store.claim_job("a", &labels(&["linux"]), LEASE).await?.ok_or("build")?;
        assert!(!store.renew_lease(&claimed.lease, LEASE).await?.cancel_requested);
        assert!(store.set_run_status(r.id, RunStatus::Cancelled).await?);
        assert!(store.active_runs_in_group("web", "deploy").await?.is_empty());
        let renewal = store.renew_lease(&claimed.lease, LEASE).await?;
        assert!(renewal.cancel_requested);
        let status = store.finish_job(&claimed.lease, &JobOutcome { result: JobResult::Cancelled, reason: Some("run cancelled".into()) }).await?;
        assert_eq!(status, JobStatus::Cancelled);
        let statuses: Vec<JobStatus> = store.list_jobs(r.id).await?.iter().map(|j| j.status).collect();
        assert_eq!(statuses, [JobStatus::Cancelled; 3]);
        assert!(store.claim_job("b", &labels(&["mac"]), LEASE).await?.is_none());
        let kinds: Vec<EventKind> = store.list_events(&EventQuery { run_id: Some(r.id), ..EventQuery::default() }).await?.iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&EventKind::RunCancelled));
        Ok(())
    }
}

both! {
    async fn skipped_jobs_end_without_running(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let r = run(store, "web", vec![job("build", &[], &[]), job("deploy", &[], &["build"])]).await?;
        let build = store.claim_job("a", &[], LEASE).await?.ok_or("build")?;
        store.finish_job(&build.lease, &JobOutcome { result: JobResult::Failure, reason: Some("exit 2".into()) }).await?;
        assert!(store.claim_job("a", &[], LEASE).await?.is_none(), "deploy needs a build that failed");
        let deploy = store.list_jobs(r.id).await?.into_iter().find(|j| j.name == "deploy").ok_or("deploy")?;
        assert!(store.end_waiting_job(deploy.id, JobStatus::Skipped, Some("needs `build`, which failed")).await?);
        assert!(!store.end_waiting_job(deploy.id, JobStatus::Skipped, None).await?);
        assert!(store.end_waiting_job(deploy.id, JobStatus::Queued, None).await.is_err());
        let jobs = store.list_jobs(r.id).await?;
        assert_eq!(jobs[0].status, JobStatus::Failure);
        assert_eq!(jobs[0].reason.as_deref(), Some("exit 2"));
        assert_eq!(jobs[1].status, JobStatus::Skipped);
        Ok(())
    }
}

both! {
    async fn rerun_of_failed_jobs_keeps_the_jobs_that_passed(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        let mut flaky = job("test", &[], &["build"]);
        flaky.max_attempts = 2;
        let r = run(store, "web", vec![job("build", &[], &[]), flaky, job("deploy", &[], &["test"])]).await?;
        assert!(matches!(store.rerun(r.id, true).await, Err(DbError::Invalid(_))), "a queued run cannot be re-run");
        assert!(matches!(store.rerun(r.id + 1000, true).await, Err(DbError::NotFound { .. })));

        let build = store.claim_job("a", &[], LEASE).await?.ok_or("build")?;
        store.finish_job(&build.lease, &ok()).await?;
        for _ in 0..2 {
            let test = store.claim_job("a", &[], LEASE).await?.ok_or("test")?;
            store.finish_job(&test.lease, &JobOutcome { result: JobResult::Failure, reason: Some("flaky".into()) }).await?;
        }
        let deploy = store.list_jobs(r.id).await?.into_iter().find(|j| j.name == "deploy").ok_or("deploy")?;
        store.end_waiting_job(deploy.id, JobStatus::Skipped, Some("needs `test`")).await?;
        store.set_run_status(r.id, RunStatus::Failure).await?;
        let before = store.count_jobs_by_status().await?;
        assert!(before.contains(&(JobStatus::Failure, 1)) && before.contains(&(JobStatus::Success, 1)), "{before:?}");
        assert_eq!(store.count_runs_by_status().await?, [(RunStatus::Failure, 1)]);

        assert_eq!(store.rerun(r.id, true).await?, ["test", "deploy"]);
        let run_now = store.get_run(r.id).await?.ok_or("run")?;
        assert_eq!((run_now.status, run_now.finished_at), (RunStatus::Queued, None));
        let jobs = store.list_jobs(r.id).await?;
        assert_eq!(jobs.iter().map(|j| j.status).collect::<Vec<_>>(), [JobStatus::Success, JobStatus::Queued, JobStatus::Queued]);
        assert_eq!((jobs[1].attempt, jobs[1].max_attempts), (2, 4), "a fresh retry budget");
        let test = store.claim_job("b", &[], LEASE).await?.ok_or("test runs again on build's result")?;
        assert_eq!((test.job.name.as_str(), test.job.attempt, test.run.status), ("test", 3, RunStatus::Running));
        let queued = store.list_events(&EventQuery { run_id: Some(r.id), newest: true, limit: 5, ..EventQuery::default() }).await?;
        let rerun_event = queued.iter().find(|e| e.kind == EventKind::RunQueued).ok_or("run.queued for the re-run")?;
        assert_eq!(rerun_event.data["jobs"], serde_json::json!(["test", "deploy"]));
        Ok(())
    }
}
