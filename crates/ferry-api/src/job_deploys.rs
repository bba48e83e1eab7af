//! `POST /api/v1/agents/jobs/{job_id}/deploy`: a job with `deploy: ENV` running on a
//! remote agent asks the server to release and deploy what it built.
//!
//! A deploy can take minutes (health checks, smoke steps, canary pauses), longer than
//! any HTTP timeout between an agent and its server should be. So the call is a
//! long-poll: the first call starts [`Core::job_deploy`] in a task of its own, and
//! every call waits up to `wait_ms` (at most [`MAX_WAIT`]) for it to end, answering
//! 200 with the outcome or 202 "still deploying"; the agent then sends the same
//! request again. Calls are keyed by the job's lease (job and attempt), so however
//! many times an agent asks, one attempt starts one deploy. A server restarted
//! meanwhile finds the attempt's deploy in the store and waits for that one instead of
//! deploying again.
//!
//! [`Core::job_deploy`]: ferry_engine::server::Core::job_deploy

use crate::AppState;
use crate::agents::{MAX_WAIT, held_job};
use crate::auth::{Auth, Developer};
use crate::error::{ApiError, Json, Path};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_engine::ci::JobDeploy;
use ferry_store::db::{DbError, DeployQuery, Job, Store};
use ferry_types::api::{self, ErrorBody};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{Mutex, watch};

/// How a job deploy ended, once it has.
type Ended = Option<Result<api::JobDeployAnswer, ApiError>>;

/// The job deploys this server is carrying out, by job id and attempt.
#[derive(Debug, Default)]
pub struct InFlight {
    deploys: Mutex<HashMap<(i64, i64), watch::Receiver<Ended>>>,
}

/// How long the outcome of an ended job deploy is kept for its agent.
const KEEP_ENDED: Duration = Duration::from_secs(120);

/// The deploy made for this attempt of `job`, if there is one.
async fn attempt_deploy(store: &Store, job: &Job) -> Result<Option<i64>, DbError> {
    let Some(started) = job.started_at else {
        return Ok(None);
    };
    let recent = store
        .deploys(&DeployQuery {
            run_id: Some(job.run_id),
            ..DeployQuery::default()
        })
        .await?;
    Ok(recent
        .into_iter()
        .find(|d| d.job.as_deref() == Some(job.name.as_str()) && d.created_at >= started)
        .map(|d| d.id))
}

/// Waits for deploy `id` and reads its progress lines.
async fn wait_existing(state: &AppState, id: i64) -> Result<api::JobDeployAnswer, ApiError> {
    let d = state.core.deployer().wait(id).await?;
    // The same lines as `Core::job_deploy` gives the job's log.
    let mut lines: Vec<String> = state
        .core
        .store()
        .deploy_steps(id)
        .await?
        .into_iter()
        .map(|s| format!("deploy {id}: {}: {}", s.phase, s.message))
        .collect();
    if let Some(reason) = &d.reason {
        lines.push(format!("deploy {id} {}: {reason}", d.state));
    }
    Ok(api::JobDeployAnswer::Finished {
        deploy_id: d.id,
        release: d.release_name(),
        succeeded: d.state == ferry_types::DeployState::Succeeded,
        lines,
    })
}

/// Starts the attempt's deploy (or the wait for it) unless it runs already; the
/// receiver of its end.
async fn start_or_join(
    state: &AppState,
    job: &Job,
    attempt: i64,
    request: JobDeploy,
) -> Result<watch::Receiver<Ended>, ApiError> {
    let mut deploys = state.job_deploys.deploys.lock().await;
    if let Some(rx) = deploys.get(&(job.id, attempt)) {
        return Ok(rx.clone());
    }
    let (tx, rx) = watch::channel(None);
    let existing = attempt_deploy(state.core.store(), job).await?;
    let task_state = state.clone();
    let key = (job.id, attempt);
    let (run_id, name) = (job.run_id, job.name.clone());
    tokio::spawn(async move {
        let ended = match existing {
            Some(id) => wait_existing(&task_state, id).await,
            None => task_state
                .core
                .job_deploy(run_id, &name, &request)
                .await
                .map(|o| api::JobDeployAnswer::Finished {
                    deploy_id: o.deploy_id,
                    release: o.release,
                    succeeded: o.succeeded,
                    lines: o.lines,
                })
                .map_err(ApiError::from),
        }
        .map_err(not_a_lost_lease);
        if let Err(e) = &ended {
            tracing::warn!(run_id, job = %name, error = %e.error, "A job's deploy could not be carried out.");
        }
        // Nobody listening (the agent went away) is fine: the deploy ran anyway.
        let _ = tx.send(Some(ended));
        // Forget it a while after it ended, whether or not the agent came back for the
        // outcome: asked again later, the server finds the ended deploy in the store.
        tokio::select! {
            () = tokio::time::sleep(KEEP_ENDED) => {}
            () = task_state.shutdown().cancelled() => {}
        }
        task_state.job_deploys.deploys.lock().await.remove(&key);
    });
    deploys.insert((job.id, attempt), rx.clone());
    Ok(rx)
}

/// An agent takes 409 to mean "your lease is lost, stop the job": a deploy that cannot
/// be carried out in the current state is answered 422 instead, so the job fails with
/// the reason.
fn not_a_lost_lease(e: ApiError) -> ApiError {
    if e.status == StatusCode::CONFLICT {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            ..e
        }
    } else {
        e
    }
}

/// `POST /api/v1/agents/jobs/{job_id}/deploy`
#[utoipa::path(post, path = "/api/v1/agents/jobs/{job_id}/deploy", tag = "agents",
    params(("job_id" = i64, Path, description = "Job id")), request_body = api::JobDeployRequest,
    responses((status = 200, description = "The deploy ended (`status: finished`)", body = api::JobDeployAnswer),
        (status = 202, description = "Still deploying (`status: deploying`): send the same request again", body = api::JobDeployAnswer),
        (status = 409, description = "The lease is lost: stop the job", body = ErrorBody),
        (status = 422, description = "The deploy could not start", body = ErrorBody)))]
pub async fn job_deploy(
    _auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(job_id): Path<i64>,
    Json(req): Json<api::JobDeployRequest>,
) -> Result<Response, ApiError> {
    if req.lease.job_id != job_id {
        return Err(ApiError::bad_request(format!(
            "the lease is for job {}, not job {job_id}",
            req.lease.job_id
        )));
    }
    if req.environment.trim().is_empty() {
        return Err(ApiError::bad_request("`environment` is empty")
            .hint("send the job's `deploy:` environment"));
    }
    let job = held_job(&state, &req.lease).await?;
    let request = JobDeploy {
        environment: req.environment,
        artifact: req.artifact.filter(|a| !a.is_empty()),
    };
    let mut rx = start_or_join(&state, &job, req.lease.attempt, request).await?;
    let wait = Duration::from_millis(req.wait_ms).min(MAX_WAIT);
    let ended = tokio::select! {
        r = tokio::time::timeout(wait, rx.wait_for(Option::is_some)) => match r {
            Ok(Ok(v)) => v.clone(),
            // The task ended without a word: it panicked.
            Ok(Err(_)) => Some(Err(ApiError::internal("the deploy task of the job stopped"))),
            Err(_) => None,
        },
        () = state.shutdown().cancelled() => None,
    };
    match ended {
        Some(answer) => {
            state
                .job_deploys
                .deploys
                .lock()
                .await
                .remove(&(job.id, req.lease.attempt));
            let answer = answer?;
            Ok((StatusCode::OK, axum::Json(answer)).into_response())
        }
        None => {
            let deploy_id = attempt_deploy(state.core.store(), &job).await?;
            Ok((
                StatusCode::ACCEPTED,
                axum::Json(api::JobDeployAnswer::Deploying { deploy_id }),
            )
                .into_response())
        }
    }
}
