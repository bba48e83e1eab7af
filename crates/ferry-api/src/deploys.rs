//! Services, releases and deploys: list and show them, deploy, promote, roll back,
//! approve and cancel.
//!
//! Reads come straight from the store; every change goes through the deploy engine
//! ([`ferry_engine::deploy::Deployer`]), which queues the deploy and carries it out in
//! the background: the answer to a deploy request is the queued deploy (201), and
//! `GET /api/v1/deploys/{id}` shows its progress. Deploying needs the `developer` role
//! (an environment with `approval` then waits for an operator), rolling back and
//! approving need `operator`.

use crate::AppState;
use crate::auth::{Auth, Developer, Operator, Viewer};
use crate::error::{ApiError, Json, Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use ferry_config::model::{Strategy, Target};
use ferry_engine::deploy::DeployRequest;
use ferry_store::db::{self, DbError, DeployQuery, LiveEnv, Store};
use ferry_types::api::{self, ErrorBody};
use serde::Deserialize;
use std::collections::HashMap;
use utoipa::IntoParams;

/// The most releases or deploys one listing returns.
const MAX_LIST: i64 = 500;

/// What to say when a service is unknown: where services come from.
const NO_SERVICE_HINT: &str = "`ferry services` lists the services; a service and its first \
    release are made by a pipeline job with `deploy: ENV` in the project's `ferry.yml` \
    (then `ferry trigger PROJECT`)";

/// The service, or 404 with a hint.
async fn service(store: &Store, name: &str) -> Result<db::Service, ApiError> {
    match store.service(name).await {
        Ok(s) => Ok(s),
        Err(DbError::NotFound { .. }) => {
            Err(ApiError::not_found("service", name).hint(NO_SERVICE_HINT))
        }
        Err(e) => Err(e.into()),
    }
}

/// The deploy, or 404 with a hint.
async fn deploy(store: &Store, id: i64) -> Result<db::Deploy, ApiError> {
    match store.deploy(id).await {
        Ok(d) => Ok(d),
        Err(DbError::NotFound { .. }) => {
            Err(ApiError::not_found("deploy", id).hint("`ferry deploys` lists the newest deploys"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Release numbers by database id, looked up once each.
#[derive(Default)]
struct Numbers(HashMap<i64, Option<i64>>);

impl Numbers {
    async fn of(&mut self, store: &Store, id: i64) -> Result<Option<i64>, ApiError> {
        if let Some(n) = self.0.get(&id) {
            return Ok(*n);
        }
        let n = match store.release_by_id(id).await {
            Ok(r) => Some(r.number),
            // A pruned release: the deploy still shows, without its number.
            Err(DbError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        self.0.insert(id, n);
        Ok(n)
    }
}

/// A deploy, to the wire.
async fn deploy_info(
    store: &Store,
    numbers: &mut Numbers,
    d: db::Deploy,
) -> Result<api::DeployInfo, ApiError> {
    let previous_release = match d.previous_release_id {
        Some(id) => numbers.of(store, id).await?,
        None => None,
    };
    Ok(api::DeployInfo {
        id: d.id,
        release_name: d.release_name(),
        service: d.service,
        project: d.project,
        environment: d.environment,
        release: d.release_number,
        previous_release,
        kind: d.kind,
        state: d.state,
        phase: d.phase,
        reason: d.reason,
        requested_by: d.requested_by,
        approved_by: d.approved_by,
        run_id: d.run_id,
        job: d.job,
        created_at: d.created_at,
        started_at: d.started_at,
        finished_at: d.finished_at,
    })
}

/// A deploy with its progress lines.
pub(crate) async fn deploy_detail(
    store: &Store,
    d: db::Deploy,
) -> Result<api::DeployDetail, ApiError> {
    let steps = store.deploy_steps(d.id).await?;
    Ok(api::DeployDetail {
        deploy: deploy_info(store, &mut Numbers::default(), d).await?,
        steps: steps
            .into_iter()
            .map(|s| api::DeployStep {
                seq: s.seq,
                phase: s.phase,
                message: s.message,
                at: s.at,
            })
            .collect(),
    })
}

/// A release, to the wire.
fn release_info(r: db::Release, live: &[LiveEnv]) -> api::ReleaseInfo {
    let live_in = live
        .iter()
        .filter(|l| l.service == r.service && l.release_id == r.id)
        .map(|l| l.environment.clone())
        .collect();
    api::ReleaseInfo {
        name: r.name(),
        service: r.service,
        number: r.number,
        sha: r.sha,
        artifact: match r.artifact {
            db::ReleaseArtifact::Image { reference } => api::ReleaseArtifact::Image { reference },
            db::ReleaseArtifact::Tarball { digest } => api::ReleaseArtifact::Tarball { digest },
        },
        run_id: r.run_id,
        created_by: r.created_by,
        created_at: r.created_at,
        live_in,
    }
}

/// An environment as a release's `ferry.yml` declares it.
fn declared_environment(env: &ferry_config::model::Environment) -> api::EnvironmentInfo {
    api::EnvironmentInfo {
        name: env.name.clone(),
        declared: true,
        target: Some(
            match env.target {
                Target::Process => "process",
                Target::Docker => "docker",
                Target::Ssh => "ssh",
            }
            .to_owned(),
        ),
        strategy: Some(
            match env.strategy {
                Strategy::Rolling(_) => "rolling",
                Strategy::BlueGreen(_) => "blue-green",
                Strategy::Canary(_) => "canary",
                Strategy::Recreate => "recreate",
            }
            .to_owned(),
        ),
        approval: env.approval.is_some(),
        routes: env
            .routes
            .iter()
            .map(|r| format!("{}{}", r.host, r.path))
            .collect(),
        live: None,
        warm: None,
        last_deploy: None,
    }
}

/// A service with its environments: the ones its newest release declares, in
/// promotion order, then the others that have a live release.
pub(crate) async fn service_info(
    store: &Store,
    s: db::Service,
    live: &[LiveEnv],
) -> Result<api::ServiceInfo, ApiError> {
    let newest = store.releases(&s.name, 1).await?.into_iter().next();
    let mut envs: Vec<api::EnvironmentInfo> = newest
        .as_ref()
        .and_then(|r| ferry_config::parse(std::path::Path::new("ferry.yml"), &r.config).ok())
        .and_then(|p| p.deploy)
        .map(|d| d.environments.values().map(declared_environment).collect())
        .unwrap_or_default();
    for l in live.iter().filter(|l| l.service == s.name) {
        if !envs.iter().any(|e| e.name == l.environment) {
            envs.push(api::EnvironmentInfo {
                name: l.environment.clone(),
                declared: false,
                target: None,
                strategy: None,
                approval: false,
                routes: Vec::new(),
                live: None,
                warm: None,
                last_deploy: None,
            });
        }
    }
    let mut numbers = Numbers::default();
    for env in &mut envs {
        if let Some(l) = live
            .iter()
            .find(|l| l.service == s.name && l.environment == env.name)
        {
            let sha = match store.release_by_id(l.release_id).await {
                Ok(r) => r.sha,
                Err(DbError::NotFound { .. }) => String::new(),
                Err(e) => return Err(e.into()),
            };
            env.live = Some(api::LiveRelease {
                release: l.release_number,
                name: format!("v{}", l.release_number),
                sha,
                deploy_id: l.deploy_id,
                since: l.updated_at,
                instances: l.instances.as_array().map_or(0, Vec::len),
            });
            env.warm = l.previous.as_ref().map(|w| api::WarmRelease {
                release: w.release_number,
                name: format!("v{}", w.release_number),
                until: w.warm_until,
            });
        }
        let last = store
            .deploys(&DeployQuery {
                service: Some(s.name.clone()),
                environment: Some(env.name.clone()),
                limit: Some(1),
                ..DeployQuery::default()
            })
            .await?
            .into_iter()
            .next();
        env.last_deploy = match last {
            Some(d) => Some(deploy_info(store, &mut numbers, d).await?),
            None => None,
        };
    }
    Ok(api::ServiceInfo {
        name: s.name,
        project: s.project,
        created_at: s.created_at,
        newest_release: newest.map(|r| r.name()),
        environments: envs,
    })
}

/// `GET /api/v1/services`
#[utoipa::path(get, path = "/api/v1/services", tag = "deploys",
    responses((status = 200, description = "Every service, by name, with its environments", body = Vec<api::ServiceInfo>),
        (status = 401, body = ErrorBody)))]
pub async fn list_services(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<api::ServiceInfo>>, ApiError> {
    let store = state.core.store();
    let live = store.live_envs().await?;
    let mut out = Vec::new();
    for s in store.services().await? {
        out.push(service_info(store, s, &live).await?);
    }
    Ok(axum::Json(out))
}

/// `GET /api/v1/services/{name}`
#[utoipa::path(get, path = "/api/v1/services/{name}", tag = "deploys",
    params(("name" = String, Path, description = "The service's name")),
    responses((status = 200, description = "The service: each environment's live and warm release and last deploy", body = api::ServiceInfo),
        (status = 404, body = ErrorBody)))]
pub async fn show_service(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<api::ServiceInfo>, ApiError> {
    let store = state.core.store();
    let s = service(store, &name).await?;
    let live = store.live_envs().await?;
    service_info(store, s, &live).await.map(axum::Json)
}

/// `GET /api/v1/services/{name}/environments/{env}/output` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutputQuery {
    /// Lines per instance (default 100, at most 10,000).
    lines: Option<usize>,
}

/// `GET /api/v1/services/{name}/environments/{env}/output`
#[utoipa::path(get, path = "/api/v1/services/{name}/environments/{env}/output", tag = "deploys",
    params(("name" = String, Path, description = "The service's name"),
        ("env" = String, Path, description = "The environment"), OutputQuery),
    responses((status = 200, description = "The last lines of output of each live instance", body = [api::InstanceOutput]),
        (status = 404, body = ErrorBody), (status = 422, description = "Nothing is live there", body = ErrorBody)))]
pub async fn output(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
    Path((name, env)): Path<(String, String)>,
    Query(q): Query<OutputQuery>,
) -> Result<axum::Json<Vec<api::InstanceOutput>>, ApiError> {
    service(state.core.store(), &name).await?;
    let lines = q.lines.unwrap_or(100).min(10_000);
    let out = state
        .core
        .deployer()
        .instance_output(&name, &env, lines)
        .await?;
    Ok(axum::Json(out))
}

/// `GET /api/v1/services/{name}/releases` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReleasesQuery {
    /// At most this many (default 50, at most 500).
    limit: Option<i64>,
}

/// `GET /api/v1/services/{name}/releases`
#[utoipa::path(get, path = "/api/v1/services/{name}/releases", tag = "deploys",
    params(("name" = String, Path, description = "The service's name"), ReleasesQuery),
    responses((status = 200, description = "The newest releases first", body = Vec<api::ReleaseInfo>),
        (status = 404, body = ErrorBody)))]
pub async fn releases(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ReleasesQuery>,
) -> Result<axum::Json<Vec<api::ReleaseInfo>>, ApiError> {
    let store = state.core.store();
    service(store, &name).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIST);
    let live = store.live_envs().await?;
    let releases = store.releases(&name, limit).await?;
    Ok(axum::Json(
        releases
            .into_iter()
            .map(|r| release_info(r, &live))
            .collect(),
    ))
}

/// An environment name must be given.
fn environment(name: &str, field: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::bad_request(format!("`{field}` is empty"))
            .hint("name an environment of the service's `deploy.environments`"));
    }
    Ok(name.to_owned())
}

/// `POST /api/v1/services/{name}/deploys`
#[utoipa::path(post, path = "/api/v1/services/{name}/deploys", tag = "deploys",
    params(("name" = String, Path, description = "The service's name")),
    request_body = api::DeployRequest,
    responses((status = 201, description = "The deploy, queued (or waiting for approval when the environment has `approval`)", body = api::DeployInfo),
        (status = 400, body = ErrorBody),
        (status = 403, description = "Deploying needs the developer role", body = ErrorBody),
        (status = 404, description = "No such service or release", body = ErrorBody),
        (status = 422, description = "No such environment, or nothing to deploy", body = ErrorBody)))]
pub async fn create_deploy(
    auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(req): Json<api::DeployRequest>,
) -> Result<(StatusCode, axum::Json<api::DeployInfo>), ApiError> {
    let store = state.core.store();
    service(store, &name).await?;
    let environment = environment(&req.environment, "environment")?;
    match req.release {
        Some(n) => {
            if let Err(DbError::NotFound { .. }) = store.release(&name, n).await {
                return Err(ApiError::not_found("release", format!("v{n}"))
                    .hint(format!("`ferry releases {name}` lists the releases")));
            }
        }
        None => {
            if store.releases(&name, 1).await?.is_empty() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("service `{name}` has no release yet"),
                )
                .hint(
                    "a release is made by a pipeline job with `deploy: ENV` in the project's \
                     `ferry.yml`: run the pipeline (`ferry trigger PROJECT`)",
                ));
            }
        }
    }
    let d = state
        .core
        .deployer()
        .deploy(DeployRequest {
            service: name,
            environment,
            release: req.release,
            requested_by: auth.actor(),
            run_id: None,
            job: None,
        })
        .await?;
    let info = deploy_info(store, &mut Numbers::default(), d).await?;
    Ok((StatusCode::CREATED, axum::Json(info)))
}

/// `POST /api/v1/services/{name}/promote`
#[utoipa::path(post, path = "/api/v1/services/{name}/promote", tag = "deploys",
    params(("name" = String, Path, description = "The service's name")),
    request_body = api::PromoteRequest,
    responses((status = 201, description = "A deploy of the release live in `from` to `to`", body = api::DeployInfo),
        (status = 403, description = "Promoting needs the developer role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Nothing is live in `from`, or no such environment", body = ErrorBody)))]
pub async fn promote(
    auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(req): Json<api::PromoteRequest>,
) -> Result<(StatusCode, axum::Json<api::DeployInfo>), ApiError> {
    let store = state.core.store();
    service(store, &name).await?;
    let from = environment(&req.from, "from")?;
    let to = environment(&req.to, "to")?;
    if from == to {
        return Err(ApiError::bad_request(format!(
            "cannot promote `{name}` from `{from}` to itself"
        ))
        .hint("name the next environment with `to`; `ferry deploy` redeploys one"));
    }
    let d = state
        .core
        .deployer()
        .promote(&name, &from, &to, &auth.actor())
        .await?;
    let info = deploy_info(store, &mut Numbers::default(), d).await?;
    Ok((StatusCode::CREATED, axum::Json(info)))
}

/// `POST /api/v1/services/{name}/rollback`
#[utoipa::path(post, path = "/api/v1/services/{name}/rollback", tag = "deploys",
    params(("name" = String, Path, description = "The service's name")),
    request_body = api::RollbackRequest,
    responses((status = 201, description = "A deploy of an earlier release", body = api::DeployInfo),
        (status = 403, description = "Rolling back needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Nothing to roll back to", body = ErrorBody)))]
pub async fn rollback(
    auth: Auth<Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(req): Json<api::RollbackRequest>,
) -> Result<(StatusCode, axum::Json<api::DeployInfo>), ApiError> {
    let store = state.core.store();
    service(store, &name).await?;
    let env = environment(&req.environment, "environment")?;
    if let Some(n) = req.to
        && let Err(DbError::NotFound { .. }) = store.release(&name, n).await
    {
        return Err(ApiError::not_found("release", format!("v{n}"))
            .hint(format!("`ferry releases {name}` lists the releases")));
    }
    let d = state
        .core
        .deployer()
        .rollback(&name, &env, req.to, &auth.actor())
        .await?;
    let info = deploy_info(store, &mut Numbers::default(), d).await?;
    Ok((StatusCode::CREATED, axum::Json(info)))
}

/// `GET /api/v1/deploys` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeploysQuery {
    /// Only this service's deploys.
    service: Option<String>,
    /// Only deploys to this environment.
    environment: Option<String>,
    /// Only deploys that have not ended.
    #[serde(default)]
    active: bool,
    /// At most this many (default 50, at most 500).
    limit: Option<i64>,
}

/// `GET /api/v1/deploys`
#[utoipa::path(get, path = "/api/v1/deploys", tag = "deploys", params(DeploysQuery),
    responses((status = 200, description = "The newest deploys first", body = Vec<api::DeployInfo>),
        (status = 404, description = "No such service", body = ErrorBody)))]
pub async fn list_deploys(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
    Query(q): Query<DeploysQuery>,
) -> Result<axum::Json<Vec<api::DeployInfo>>, ApiError> {
    let store = state.core.store();
    let service_name = q.service.filter(|s| !s.is_empty());
    if let Some(s) = &service_name {
        service(store, s).await?;
    }
    let deploys = store
        .deploys(&DeployQuery {
            service: service_name,
            environment: q.environment.filter(|e| !e.is_empty()),
            active_only: q.active,
            limit: Some(q.limit.unwrap_or(50).clamp(1, MAX_LIST)),
            ..DeployQuery::default()
        })
        .await?;
    let mut numbers = Numbers::default();
    let mut out = Vec::with_capacity(deploys.len());
    for d in deploys {
        out.push(deploy_info(store, &mut numbers, d).await?);
    }
    Ok(axum::Json(out))
}

/// `GET /api/v1/deploys/{id}`
#[utoipa::path(get, path = "/api/v1/deploys/{id}", tag = "deploys",
    params(("id" = i64, Path, description = "Deploy id")),
    responses((status = 200, description = "The deploy and its progress lines", body = api::DeployDetail),
        (status = 404, body = ErrorBody)))]
pub async fn show_deploy(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<api::DeployDetail>, ApiError> {
    let store = state.core.store();
    let d = deploy(store, id).await?;
    deploy_detail(store, d).await.map(axum::Json)
}

/// `POST /api/v1/deploys/{id}/approve`
#[utoipa::path(post, path = "/api/v1/deploys/{id}/approve", tag = "deploys",
    params(("id" = i64, Path, description = "Deploy id")),
    responses((status = 200, description = "The deploy, queued", body = api::DeployDetail),
        (status = 403, description = "Approving needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The deploy is not waiting for approval", body = ErrorBody)))]
pub async fn approve(
    auth: Auth<Operator>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<api::DeployDetail>, ApiError> {
    let store = state.core.store();
    deploy(store, id).await?;
    let d = state.core.deployer().approve(id, &auth.actor()).await?;
    deploy_detail(store, d).await.map(axum::Json)
}

/// `POST /api/v1/deploys/{id}/cancel`
#[utoipa::path(post, path = "/api/v1/deploys/{id}/cancel", tag = "deploys",
    params(("id" = i64, Path, description = "Deploy id")),
    responses((status = 200, description = "The deploy after cancelling", body = api::DeployDetail),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The deploy has ended", body = ErrorBody)))]
pub async fn cancel(
    auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<api::DeployDetail>, ApiError> {
    let store = state.core.store();
    deploy(store, id).await?;
    let d = state.core.deployer().cancel(id, &auth.actor()).await?;
    deploy_detail(store, d).await.map(axum::Json)
}
