//! One job, run alone: what the server's built-in executor and `ferry agent` do with a
//! job they claimed. The job's condition, secrets, steps, artifacts and cache are the
//! same code as in [`super::run`]; what differs is behind [`JobIo`].

use super::cache::CacheDir;
use super::events;
use super::handoff::{Handoff, IoHandoff};
use super::io::{JobIo, JobIoError};
use super::job;
use super::scheduler::RunCtx;
use super::util::slug;
use super::workspace::Commit;
use super::{NonInteractive, RunOptions};
use ferry_types::{JobResult, RunEvent};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// What to run: one job instance of a run, pinned to a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The run's id, as `ferry.run_id` shows it.
    pub run_id: String,
    /// The job instance id, e.g. `test (os=linux)`.
    pub job: String,
    /// The run's `ferry.yml` text.
    pub pipeline: String,
    /// The commit.
    pub sha: String,
    /// The branch, if any.
    pub branch: Option<String>,
    /// The tag, if any.
    pub tag: Option<String>,
    /// `ferry.event`: `push`, `schedule`, `manual`, `api`.
    pub event: String,
    /// Results of the jobs it needs, by instance id.
    pub needs: BTreeMap<String, JobResult>,
    /// Artifact digests of the jobs it needs, by instance id.
    pub artifacts: BTreeMap<String, String>,
    /// Secret values the job references.
    pub secrets: BTreeMap<String, String>,
}

/// How [`execute`] runs jobs on this machine.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Where workspaces are created (one fresh directory per job, removed after).
    pub work_dir: PathBuf,
    /// Where caches live on this machine.
    pub cache_dir: PathBuf,
    /// Time between SIGTERM and SIGKILL on timeout and cancellation.
    pub grace: Duration,
    /// The Docker engine for jobs with `image:`; `None` = `DOCKER_HOST` or the default.
    pub docker_host: Option<String>,
    /// How long a service container may take to become ready.
    pub service_timeout: Duration,
    /// `PATH` for steps; `None` = inherited.
    pub path_env: Option<OsString>,
    /// How often [`JobIo::heartbeat`] is called (a third of the lease is a good value).
    pub heartbeat: Duration,
    /// Keep the job's directory after it ends.
    pub keep_workspace: bool,
}

impl ExecOptions {
    /// Defaults: workspaces and caches under `data_dir` (`work/`, `cache/`), 10 s grace,
    /// heartbeats every 5 s.
    pub fn new(data_dir: &Path) -> Self {
        ExecOptions {
            work_dir: data_dir.join("work"),
            cache_dir: data_dir.join("cache"),
            grace: Duration::from_secs(10),
            docker_host: None,
            service_timeout: Duration::from_secs(60),
            path_env: None,
            heartbeat: Duration::from_secs(5),
            keep_workspace: false,
        }
    }
}

/// How a job run by [`execute`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The result to report. A failure of a job with `allow_failure` is reported as
    /// `failure`: the queue retries it if attempts remain and records a final failure
    /// as allowed.
    pub result: JobResult,
    /// Why, for results other than success.
    pub reason: Option<String>,
    /// The digest of the artifacts it stored, if it has any.
    pub artifacts: Option<String>,
    /// The lease was lost while it ran: report nothing, the job is someone else's now.
    pub lease_lost: bool,
    /// Wall-clock time.
    pub duration: Duration,
}

impl ExecOutcome {
    fn failed(reason: String, started: Instant) -> Self {
        ExecOutcome {
            result: JobResult::Failure,
            reason: Some(reason),
            artifacts: None,
            lease_lost: false,
            duration: started.elapsed(),
        }
    }
}

/// Lines buffered before a log append.
const LOG_BATCH: usize = 500;
/// Longest time a log line waits before it is appended.
const LOG_FLUSH: Duration = Duration::from_millis(200);

/// Runs one job instance to its end and returns how it ended.
///
/// The job's `if` is evaluated first (with `spec.needs`): false → `skipped`. Approval
/// and retries are the caller's business (the server's queue), so neither happens
/// here. Events go to `events` when given (a dropped receiver is ignored); log lines go
/// to [`JobIo::append_log`] in batches. Cancelling `cancel`, or a heartbeat answering
/// `cancel_requested`, stops the steps (SIGTERM, then SIGKILL after the grace) and the
/// result is `cancelled`. Never panics on bad input: a broken pipeline text, an unknown
/// job or an unreadable source all end as `failure` with the reason.
pub async fn execute(
    spec: &JobSpec,
    io: Arc<dyn JobIo>,
    opts: &ExecOptions,
    events: Option<mpsc::Sender<RunEvent>>,
    cancel: CancellationToken,
) -> ExecOutcome {
    let started = Instant::now();
    let pipeline = match ferry_config::parse(Path::new("ferry.yml"), &spec.pipeline) {
        Ok(p) => p,
        Err(d) => {
            return ExecOutcome::failed(
                format!("the run's ferry.yml does not validate:\n{d}"),
                started,
            );
        }
    };
    let Some(inst) = pipeline.instances().into_iter().find(|i| i.id == spec.job) else {
        return ExecOutcome::failed(
            format!("the run's ferry.yml has no job `{}`", spec.job),
            started,
        );
    };
    let root = opts.work_dir.join(format!(
        "{}-{}-{}",
        slug(&spec.run_id),
        slug(&spec.job),
        super::util::short_hash(format!("{:?}{}", Instant::now(), std::process::id()).as_bytes())
    ));
    if let Err(e) = std::fs::create_dir_all(root.join("logs")) {
        return ExecOutcome::failed(format!("cannot create {}: {e}", root.display()), started);
    }
    let cancel = cancel.child_token();
    let lease_lost = Arc::new(AtomicBool::new(false));

    // Log lines to the JobIo, everything else to the caller.
    let (tx, rx) = mpsc::channel::<RunEvent>(256);
    let forwarder = tokio::spawn(forward(
        rx,
        io.clone(),
        events,
        cancel.clone(),
        lease_lost.clone(),
    ));
    let (event_tx, recorder) = match events::start(&root.join("events.jsonl"), tx) {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&root);
            return ExecOutcome::failed(format!("cannot write {}: {e}", root.display()), started);
        }
    };
    let heartbeat = tokio::spawn(beat(
        io.clone(),
        opts.heartbeat,
        cancel.clone(),
        lease_lost.clone(),
    ));

    let outcome = run_job(
        spec,
        &pipeline,
        &inst,
        io,
        opts,
        &root,
        event_tx,
        cancel.clone(),
        &lease_lost,
    )
    .await;

    heartbeat.abort();
    let _ = recorder.await;
    let _ = forwarder.await;
    if !opts.keep_workspace {
        let r = root.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(r)).await;
    }
    let (result, reason, artifacts) = match outcome {
        Ok(x) => x,
        Err(reason) => (JobResult::Failure, Some(reason), None),
    };
    ExecOutcome {
        result,
        reason,
        artifacts,
        lease_lost: lease_lost.load(Ordering::SeqCst),
        duration: started.elapsed(),
    }
}

type Finished = (JobResult, Option<String>, Option<String>);

#[allow(clippy::too_many_arguments)]
async fn run_job(
    spec: &JobSpec,
    pipeline: &ferry_config::Pipeline,
    inst: &ferry_config::JobInstance,
    io: Arc<dyn JobIo>,
    opts: &ExecOptions,
    root: &Path,
    event_tx: events::EventTx,
    cancel: CancellationToken,
    lease_lost: &AtomicBool,
) -> Result<Finished, String> {
    let snapshot = match io.source(&root.join("source.tar")).await {
        Ok(p) => p,
        Err(JobIoError::LeaseLost) => {
            lease_lost.store(true, Ordering::SeqCst);
            cancel.cancel();
            return Ok((
                JobResult::Cancelled,
                Some("the lease on the job was lost".into()),
                None,
            ));
        }
        Err(e) => return Err(format!("cannot get the source of commit {}: {e}", spec.sha)),
    };
    let mut run_opts = RunOptions::new(root, root);
    run_opts.cache_dir = Some(opts.cache_dir.clone());
    run_opts.parallelism = 1;
    run_opts.approve = vec![inst.id.clone()];
    run_opts.approver = Arc::new(NonInteractive);
    let secrets: HashMap<String, Vec<u8>> = spec
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    run_opts.secrets = Arc::new(secrets);
    run_opts.grace = opts.grace;
    run_opts.event = spec.event.clone();
    run_opts.docker_host = opts.docker_host.clone();
    run_opts.service_timeout = opts.service_timeout;
    run_opts.path_env = opts.path_env.clone();
    run_opts.keep_workspaces = opts.keep_workspace;

    let handoff = Arc::new(Handoff::Io(IoHandoff {
        io,
        needs: spec.artifacts.clone(),
        scratch: root.to_path_buf(),
        saved: Mutex::new(None),
    }));
    let job_slug = slug(&inst.id);
    let ctx = Arc::new(RunCtx {
        opts: run_opts,
        pipeline: pipeline.clone(),
        run_id: spec.run_id.clone(),
        run_dir: root.to_path_buf(),
        work_root: root.to_path_buf(),
        snapshot,
        commit: Commit {
            sha: spec.sha.clone(),
            branch: spec.branch.clone(),
            tag: spec.tag.clone(),
        },
        events: event_tx,
        cancel,
        slugs: HashMap::from([(inst.id.clone(), format!("ws-{job_slug}"))]),
        artifacts: handoff.clone(),
        in_process_retries: false,
        cache: CacheDir::new(opts.cache_dir.clone()),
        approvals: tokio::sync::Mutex::new(()),
        slots: Semaphore::new(1),
    });

    // `needs.<job>.result` is the worst result of the job's instances.
    let mut needs: IndexMap<String, JobResult> = IndexMap::new();
    let mut needs_ok = true;
    for need in &inst.needs {
        let r = spec.needs.get(need).copied().unwrap_or(JobResult::Skipped);
        needs_ok &= r.lets_dependants_run();
        let job_id = pipeline
            .instances()
            .into_iter()
            .find(|i| &i.id == need)
            .map_or(need.clone(), |i| i.job);
        let e = needs.entry(job_id).or_insert(JobResult::Success);
        *e = super::scheduler::worst(*e, r);
    }
    let o = job::run_instance(&ctx, inst, needs, needs_ok).await;
    let result = if o.result == JobResult::AllowedFailure {
        JobResult::Failure
    } else {
        o.result
    };
    let reason = o
        .reason
        .map(|r| r.trim_end_matches(" (allowed to fail)").to_string());
    let digest = handoff.saved();
    drop(ctx);
    Ok((result, reason, digest))
}

/// Renews the lease until aborted; cancels the job when the run is cancelled or the
/// lease is lost.
async fn beat(
    io: Arc<dyn JobIo>,
    every: Duration,
    cancel: CancellationToken,
    lost: Arc<AtomicBool>,
) {
    let every = every.max(Duration::from_millis(50));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match io.heartbeat().await {
            Ok(h) if h.cancel_requested => {
                cancel.cancel();
                return;
            }
            Ok(_) => {}
            Err(JobIoError::LeaseLost) => {
                lost.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "A heartbeat failed; trying again at the next one.")
            }
        }
    }
}

/// Batches `Log` events into [`JobIo::append_log`] calls and passes every event on.
async fn forward(
    mut rx: mpsc::Receiver<RunEvent>,
    io: Arc<dyn JobIo>,
    out: Option<mpsc::Sender<RunEvent>>,
    cancel: CancellationToken,
    lost: Arc<AtomicBool>,
) {
    let mut out = out;
    let mut batch: Vec<String> = Vec::new();
    let mut batch_step: u32 = 0;
    let mut tick = tokio::time::interval(LOG_FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let flush = |step: u32, lines: Vec<String>| {
        let (io, cancel, lost) = (io.clone(), cancel.clone(), lost.clone());
        async move {
            if lines.is_empty() {
                return;
            }
            match io.append_log(step, lines).await {
                Ok(()) => {}
                Err(JobIoError::LeaseLost) => {
                    lost.store(true, Ordering::SeqCst);
                    cancel.cancel();
                }
                Err(e) => tracing::warn!(error = %e, "Appending log lines failed; they are lost."),
            }
        }
    };
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = tick.tick() => {
                flush(batch_step, std::mem::take(&mut batch)).await;
                continue;
            }
        };
        let Some(ev) = ev else { break };
        let lines: Option<(u32, Vec<String>)> = match &ev {
            RunEvent::Log {
                step, stream, line, ..
            } => {
                let step = u32::try_from(*step).unwrap_or(u32::MAX);
                let text: Vec<String> = if stream == "ferry" {
                    line.split('\n').map(|l| format!("ferry: {l}")).collect()
                } else {
                    line.split('\n').map(str::to_string).collect()
                };
                Some((step, text))
            }
            RunEvent::StepFinished {
                step,
                result,
                exit_code,
                ..
            } if !matches!(result, JobResult::Success | JobResult::Skipped) => {
                let code = exit_code
                    .map(|c| format!(" (exit code {c})"))
                    .unwrap_or_default();
                let line = format!(
                    "ferry: step {} ({}) ended: {result}{code}",
                    step.index + 1,
                    step.name
                );
                Some((u32::try_from(step.index).unwrap_or(u32::MAX), vec![line]))
            }
            _ => None,
        };
        if let Some((step, text)) = lines {
            if step != batch_step && !batch.is_empty() {
                flush(batch_step, std::mem::take(&mut batch)).await;
            }
            batch_step = step;
            batch.extend(text);
            if batch.len() >= LOG_BATCH {
                flush(batch_step, std::mem::take(&mut batch)).await;
            }
        }
        if let Some(o) = &out
            && o.send(ev).await.is_err()
        {
            out = None;
        }
    }
    flush(batch_step, batch).await;
}
