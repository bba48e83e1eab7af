//! `ferry agent`: runs jobs for a server. `--jobs N` workers each long-poll
//! `POST /api/v1/agents/claim`, run what they get with the engine's single-job
//! [`ferry_engine::ci::execute`] over [`io::HttpIo`], and report the result.
//!
//! The agent outlives server restarts: claims back off while the server is down, and a
//! job that ends meanwhile keeps trying to report until the server answers. It opens
//! no database and starts no server machinery — one current-thread runtime, the HTTP
//! client and the job's child processes — so it stays small when idle.

mod io;

use crate::cli::{AgentArgs, Global};
use crate::exit::{Failure, bad_input};
use anyhow::Context;
use ferry_client::Client;
use ferry_client::api::{Assignment, ClaimRequest, FinishRequest, JobOutcome};
use ferry_engine::ci::{ExecOptions, JobSpec, execute};
use io::{HttpIo, retrying, transient};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// How long one claim may wait on the server for work.
const CLAIM_WAIT: Duration = Duration::from_secs(25);
/// The longest pause between attempts to reach a server that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Runs `ferry agent` until SIGTERM or Ctrl-C.
pub fn agent(global: &Global, args: AgentArgs) -> Result<(), Failure> {
    crate::logging::init(&args.log_level)?;
    if args.jobs == 0 {
        return Err(bad_input("--jobs must be at least 1"));
    }
    let token = super::remote::resolve_token(args.token.clone(), global.data_dir.clone())?
        .ok_or_else(|| {
            bad_input(
                "the agent needs a token: pass --token or set FERRY_TOKEN (`ferry token create --name agent-1 --role developer` makes one)",
            )
        })?;
    let client = Client::with_ca(&args.server, token, args.ca_cert.as_deref())
        .map_err(super::remote::client_setup_error)?;
    let data_dir = crate::paths::data_dir(global.data_dir.clone())?;
    let name = args
        .name
        .clone()
        .or_else(super::hostname)
        .unwrap_or_else(|| "agent".to_string());
    let agent_id = agent_id(&name, &data_dir);
    let mut exec = ExecOptions::new(&data_dir.join("agent"));
    exec.grace = args.grace;
    let labels: Vec<String> = args
        .labels
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let claim = ClaimRequest {
        agent_id: agent_id.clone(),
        name: name.clone(),
        labels: labels.clone(),
        wait_ms: u64::try_from(CLAIM_WAIT.as_millis()).unwrap_or(25_000),
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        std::fs::create_dir_all(&exec.work_dir)
            .with_context(|| format!("cannot create {}", exec.work_dir.display()))?;
        tracing::info!(
            agent = %agent_id,
            server = %args.server,
            labels = %labels.join(","),
            jobs = args.jobs,
            "Agent started; waiting for jobs."
        );
        // `stop`: claim no more. `kill`: also cancel running jobs.
        let stop = CancellationToken::new();
        let kill = CancellationToken::new();
        let fatal = Arc::new(tokio::sync::Mutex::new(None::<Failure>));
        let mut workers = tokio::task::JoinSet::new();
        for slot in 0..args.jobs {
            let w = Worker {
                slot,
                client: client.clone(),
                claim: claim.clone(),
                exec: exec.clone(),
                stop: stop.clone(),
                kill: kill.clone(),
                fatal: fatal.clone(),
            };
            workers.spawn(w.run());
        }
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            () = stop.cancelled() => {}
        }
        if fatal.lock().await.is_none() {
            eprintln!(
                "Stopping: no new jobs; running jobs finish and report (again to cancel them)."
            );
        }
        stop.cancel();
        let kill2 = kill.clone();
        let second = tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            eprintln!("Cancelling running jobs.");
            kill2.cancel();
        });
        while workers.join_next().await.is_some() {}
        second.abort();
        match fatal.lock().await.take() {
            Some(f) => Err(f),
            None => Ok(()),
        }
    })
}

/// One slot: claims and runs one job at a time.
struct Worker {
    slot: usize,
    client: Client,
    claim: ClaimRequest,
    exec: ExecOptions,
    stop: CancellationToken,
    kill: CancellationToken,
    fatal: Arc<tokio::sync::Mutex<Option<Failure>>>,
}

impl Worker {
    async fn run(self) {
        let mut backoff = Duration::from_millis(500);
        let mut down_since: Option<std::time::Instant> = None;
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let claimed = tokio::select! {
                () = self.stop.cancelled() => return,
                res = self.client.claim(&self.claim) => res,
            };
            match claimed {
                Ok(None) => {
                    if down_since.take().is_some() {
                        tracing::info!("The server answers again.");
                    }
                    backoff = Duration::from_millis(500);
                }
                Ok(Some(assignment)) => {
                    if down_since.take().is_some() {
                        tracing::info!("The server answers again.");
                    }
                    backoff = Duration::from_millis(500);
                    self.run_job(assignment).await;
                }
                Err(e) if transient(&e) => {
                    if down_since.is_none() {
                        down_since = Some(std::time::Instant::now());
                        if self.slot == 0 {
                            tracing::warn!(error = %e, "Cannot reach the server; retrying until it answers.");
                        }
                    }
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    // A refused token or a bad request will not get better by retrying.
                    let failure = super::remote::failure(e);
                    let mut fatal = self.fatal.lock().await;
                    if fatal.is_none() {
                        *fatal = Some(failure);
                    }
                    self.stop.cancel();
                    return;
                }
            }
        }
    }

    async fn run_job(&self, a: Assignment) {
        tracing::info!(run = a.run_id, job = %a.job, project = %a.project, attempt = a.lease.attempt, "Job started.");
        let spec = JobSpec {
            run_id: a.run_id.to_string(),
            job: a.job.clone(),
            pipeline: a.pipeline.clone(),
            sha: a.sha.clone(),
            branch: a.branch.clone(),
            tag: a.tag.clone(),
            // Servers before `event` was sent leave it empty.
            event: if a.event.is_empty() {
                "push".to_string()
            } else {
                a.event.clone()
            },
            needs: a.needs.clone(),
            artifacts: a.artifacts.clone(),
            secrets: a.secrets.clone(),
        };
        let io = Arc::new(HttpIo::new(self.client.clone(), a.lease.clone(), a.run_id));
        let outcome = execute(&spec, io, &self.exec, None, self.kill.child_token()).await;
        if outcome.lease_lost {
            tracing::warn!(run = a.run_id, job = %a.job, "The job's lease was lost (the server gave it to another executor); nothing reported.");
            return;
        }
        let finish = FinishRequest {
            lease: a.lease.clone(),
            outcome: JobOutcome {
                result: outcome.result,
                reason: outcome.reason.clone(),
            },
            artifacts: outcome.artifacts.clone(),
        };
        // The result is kept until the server takes it: it may be restarting.
        loop {
            match retrying("the job's result", || self.client.finish(&finish)).await {
                Ok(()) => {
                    tracing::info!(run = a.run_id, job = %a.job, result = %outcome.result, "Job finished.");
                    return;
                }
                Err(e) if transient(&e) => {
                    if self.kill.is_cancelled() {
                        tracing::warn!(run = a.run_id, job = %a.job, "Gave up reporting the job's result.");
                        return;
                    }
                    tracing::warn!(run = a.run_id, job = %a.job, error = %e, "Cannot report the job's result yet; still trying.");
                }
                Err(e) if e.status() == Some(409) => {
                    tracing::warn!(run = a.run_id, job = %a.job, "The server no longer holds the job for this agent; result dropped.");
                    return;
                }
                Err(e) => {
                    tracing::error!(run = a.run_id, job = %a.job, error = %e, "The server refused the job's result.");
                    return;
                }
            }
        }
    }
}

/// A stable id: the name and a short hash of the data directory, so two agents on one
/// host with their own directories are two agents, and a restarted one is the same.
fn agent_id(name: &str, data_dir: &std::path::Path) -> String {
    let dir: PathBuf = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    // FNV-1a: stable across builds, unlike std's default hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in dir.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{name}-{:08x}", h & 0xffff_ffff)
}
