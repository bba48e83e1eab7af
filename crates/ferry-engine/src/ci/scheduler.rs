//! The run: set-up, the DAG loop that starts ready jobs, and the summary.

use super::artifacts::Artifacts;
use super::cache::CacheDir;
use super::events::{self, EventTx};
use super::handoff::Handoff;
use super::job::{self, JobOutcome};
use super::util::{ms, new_run_id, now_ms, slug};
use super::workspace::{self, Commit};
use super::{EngineError, JobSummary, RunOptions, RunSummary};
use ferry_config::{JobInstance, Pipeline};
use ferry_types::{JobResult, RunEvent};
use indexmap::IndexMap;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What every job of a run shares.
pub(crate) struct RunCtx {
    pub opts: RunOptions,
    pub pipeline: Pipeline,
    pub run_id: String,
    pub run_dir: PathBuf,
    pub work_root: PathBuf,
    pub snapshot: PathBuf,
    pub commit: Commit,
    pub events: EventTx,
    pub cancel: CancellationToken,
    /// Instance id → file-name-safe, unique slug.
    pub slugs: HashMap<String, String>,
    pub artifacts: Arc<Handoff>,
    /// Whether failed attempts are retried here (`ferry run`); a server job is
    /// retried by the queue instead.
    pub in_process_retries: bool,
    pub cache: CacheDir,
    /// One approval question at a time.
    pub approvals: Mutex<()>,
    pub slots: Semaphore,
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The selected instances (in pipeline order) with everything they need.
fn select(instances: &[JobInstance], select: &[String]) -> Result<Vec<JobInstance>, EngineError> {
    if select.is_empty() {
        return Ok(instances.to_vec());
    }
    let mut wanted: HashSet<String> = HashSet::new();
    let mut stack: Vec<String> = Vec::new();
    for s in select {
        let matching: Vec<&JobInstance> = instances
            .iter()
            .filter(|i| &i.id == s || &i.job == s)
            .collect();
        if matching.is_empty() {
            let mut known: Vec<&str> = instances.iter().map(|i| i.job.as_str()).collect();
            known.dedup();
            return Err(EngineError::UnknownJob {
                id: s.clone(),
                known: known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        stack.extend(matching.iter().map(|i| i.id.clone()));
    }
    while let Some(id) = stack.pop() {
        if wanted.insert(id.clone())
            && let Some(inst) = instances.iter().find(|i| i.id == id)
        {
            stack.extend(inst.needs.iter().cloned());
        }
    }
    Ok(instances
        .iter()
        .filter(|i| wanted.contains(&i.id))
        .cloned()
        .collect())
}

fn unique_slugs(instances: &[JobInstance]) -> HashMap<String, String> {
    let mut used = HashSet::new();
    let mut out = HashMap::new();
    for inst in instances {
        let base = slug(&inst.id);
        let mut s = base.clone();
        let mut n = 2;
        while !used.insert(s.clone()) {
            s = format!("{base}-{n}");
            n += 1;
        }
        out.insert(inst.id.clone(), s);
    }
    out
}

/// Creates `<data_dir>/runs/<run_id>` with a fresh, unique id.
fn create_run_dir(data_dir: &std::path::Path) -> Result<(String, PathBuf), EngineError> {
    let runs = data_dir.join("runs");
    std::fs::create_dir_all(&runs).map_err(io_err(&runs))?;
    loop {
        let id = new_run_id();
        let dir = runs.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&dir)(e)),
        }
    }
}

/// The worst result among a needed job's instances, as `needs.<job>.result` shows it.
pub(crate) fn worst(a: JobResult, b: JobResult) -> JobResult {
    let rank = |r: JobResult| match r {
        JobResult::Success => 0,
        JobResult::Skipped => 1,
        JobResult::AllowedFailure => 2,
        JobResult::Cancelled => 3,
        JobResult::TimedOut => 4,
        JobResult::Failure => 5,
    };
    if rank(b) > rank(a) { b } else { a }
}

pub(crate) async fn run(
    pipeline: &Pipeline,
    opts: RunOptions,
    out: mpsc::Sender<RunEvent>,
    cancel: CancellationToken,
) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let all = pipeline.instances();
    let instances = select(&all, &opts.select)?;

    let (repo, path_env) = (opts.repo.clone(), opts.path_env.clone());
    let commit = blocking(move || workspace::read_commit(&repo, path_env.as_ref())).await??;
    let data_dir = opts.data_dir.clone();
    let (run_id, run_dir) = blocking(move || create_run_dir(&data_dir)).await??;
    let work_root = opts.data_dir.join("work").join(&run_id);
    let logs = run_dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(io_err(&logs))?;
    std::fs::create_dir_all(&work_root).map_err(io_err(&work_root))?;

    let snapshot = work_root.join(".source.tar");
    {
        let (repo, sha, dirty, path_env, dest) = (
            opts.repo.clone(),
            commit.sha.clone(),
            opts.dirty,
            opts.path_env.clone(),
            snapshot.clone(),
        );
        let res =
            blocking(move || workspace::snapshot(&repo, &sha, dirty, path_env.as_ref(), &dest))
                .await?;
        if let Err(e) = res {
            let _ = std::fs::remove_dir_all(&work_root);
            return Err(e);
        }
    }

    let jsonl = run_dir.join("events.jsonl");
    let (events, recorder) = events::start(&jsonl, out).map_err(io_err(&jsonl))?;
    events
        .send(RunEvent::RunStarted {
            run_id: run_id.clone(),
            sha: commit.sha.clone(),
            branch: commit.branch.clone(),
            pipeline: pipeline.name.clone(),
            at_ms: now_ms(),
        })
        .await;

    let cache_root = opts
        .cache_dir
        .clone()
        .unwrap_or_else(|| opts.data_dir.join("cache"));
    let ctx = Arc::new(RunCtx {
        slots: Semaphore::new(opts.parallelism.max(1)),
        artifacts: Arc::new(Handoff::Run(Artifacts::new(
            ferry_store::BlobStore::new(opts.data_dir.join("blobs")),
            run_dir.join("artifacts.json"),
        ))),
        in_process_retries: true,
        cache: CacheDir::new(cache_root),
        slugs: unique_slugs(&instances),
        opts,
        pipeline: pipeline.clone(),
        run_id: run_id.clone(),
        run_dir: run_dir.clone(),
        work_root: work_root.clone(),
        snapshot,
        commit: commit.clone(),
        events: events.clone(),
        cancel: cancel.clone(),
        approvals: Mutex::new(()),
    });

    let results = dag_loop(&ctx, &instances).await;

    let jobs: Vec<JobSummary> = instances
        .iter()
        .map(|i| {
            let o = results.get(&i.id).cloned().unwrap_or_else(|| {
                JobOutcome::not_run(JobResult::Cancelled, "the run ended before the job started")
            });
            JobSummary {
                id: i.id.clone(),
                result: o.result,
                duration: o.duration,
                reason: o.reason,
                attempts: o.attempts,
            }
        })
        .collect();
    let success = !jobs.iter().any(|j| j.result.fails_run());
    let duration = started.elapsed();
    events
        .send(RunEvent::RunFinished {
            run_id: run_id.clone(),
            success,
            duration_ms: ms(duration),
        })
        .await;

    if !ctx.opts.keep_workspaces {
        let root = work_root.clone();
        let _ = blocking(move || std::fs::remove_dir_all(root)).await;
    }
    drop(ctx);
    drop(events);
    let _ = recorder.await;

    let summary = RunSummary {
        run_id,
        run_dir: run_dir.clone(),
        sha: commit.sha,
        jobs,
        success,
        duration,
    };
    let path = run_dir.join("summary.json");
    match serde_json::to_vec_pretty(&summary) {
        Ok(bytes) => {
            if let Err(e) = std::fs::write(&path, bytes) {
                tracing::warn!(path = %path.display(), error = %e, "Writing the run summary failed.");
            }
        }
        Err(e) => tracing::warn!(error = %e, "Serializing the run summary failed."),
    }
    Ok(summary)
}

/// Starts every job whose needs are done, until all are done.
async fn dag_loop(ctx: &Arc<RunCtx>, instances: &[JobInstance]) -> HashMap<String, JobOutcome> {
    let mut results: HashMap<String, JobOutcome> = HashMap::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut tasks: JoinSet<(String, JobOutcome)> = JoinSet::new();
    let mut task_ids: HashMap<tokio::task::Id, String> = HashMap::new();
    loop {
        for inst in instances {
            if started.contains(&inst.id) || !inst.needs.iter().all(|n| results.contains_key(n)) {
                continue;
            }
            started.insert(inst.id.clone());
            if ctx.cancel.is_cancelled() {
                let o = JobOutcome::not_run(
                    JobResult::Cancelled,
                    "the run was cancelled before the job started",
                );
                job::finish_event(ctx, &inst.id, &o).await;
                results.insert(inst.id.clone(), o);
                continue;
            }
            let mut needs: IndexMap<String, JobResult> = IndexMap::new();
            let mut needs_ok = true;
            for n in &inst.needs {
                let r = results.get(n).map_or(JobResult::Skipped, |o| o.result);
                needs_ok &= r.lets_dependants_run();
                let job_id = instances
                    .iter()
                    .find(|i| &i.id == n)
                    .map_or(n.clone(), |i| i.job.clone());
                let entry = needs.entry(job_id).or_insert(JobResult::Success);
                *entry = worst(*entry, r);
            }
            let (c, i) = (ctx.clone(), inst.clone());
            let handle = tasks.spawn(async move {
                let o = job::run_instance(&c, &i, needs, needs_ok).await;
                (i.id.clone(), o)
            });
            task_ids.insert(handle.id(), inst.id.clone());
        }
        match tasks.join_next_with_id().await {
            Some(Ok((_, (id, o)))) => {
                results.insert(id, o);
            }
            Some(Err(e)) => {
                if let Some(id) = task_ids.get(&e.id()).cloned() {
                    let o = JobOutcome::not_run(
                        JobResult::Failure,
                        "internal error in the engine (the job's task ended unexpectedly)",
                    );
                    tracing::error!(job = %id, error = %e, "A job task failed.");
                    job::finish_event(ctx, &id, &o).await;
                    results.insert(id, o);
                }
            }
            None => {
                if started.len() == instances.len() {
                    return results;
                }
                // Needs outside the selection cannot happen (selection is closed), but
                // never spin: report what is left as skipped.
                for inst in instances.iter().filter(|i| !started.contains(&i.id)) {
                    let o =
                        JobOutcome::not_run(JobResult::Skipped, "its needs could not be satisfied");
                    job::finish_event(ctx, &inst.id, &o).await;
                    results.insert(inst.id.clone(), o);
                }
                return results;
            }
        }
    }
}

/// Runs blocking work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(format!("a background task failed: {e}")),
        })
}
