//! Crash recovery and the upkeep of live environments.
//!
//! At start ([`recover`]) and whenever a deploy's lease runs out ([`maintain`]), a
//! deploy cut short is taken over: if its switch was committed (the environment's live
//! row names it) it is finished — the old release's instances it recorded are stopped
//! — otherwise everything it started is stopped and it ends `rolled_back` with the
//! reason "the server stopped mid-deploy". Then every live environment is *settled*
//! ([`settle_env`]): instances that no longer run (process instances die with their
//! server) are started again and recorded, leftovers are swept, and the proxy's
//! routes are set from the live state. Warm releases whose time is up are stopped.

use super::release::{Plan, parse_deploy, target_for};
use super::routes::EnvRoute;
use super::run::{Progress, addrs, health_quietly, index_of, instances, now_ms, to_json};
use super::targets::{AnyTarget, Instance, Target};
use super::{DeployError, Inner};
use ferry_proxy::Release as ProxyRelease;
use ferry_store::db::{Deploy, LiveEnv};
use ferry_types::{DeployPhase, DeployState};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Keeps live instances running between deploys: an instance that died and was not
/// brought back by its supervisor (one adopted from a previous server has none) is
/// started again. Environments with a deploy under way are left to it.
pub(crate) async fn check_live(inner: &Arc<Inner>) {
    let lives = match inner.store.live_envs().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "Listing live environments failed.");
            return;
        }
    };
    for live in lives {
        let active = inner
            .store
            .deploys(&ferry_store::db::DeployQuery {
                service: Some(live.service.clone()),
                environment: Some(live.environment.clone()),
                active_only: true,
                limit: Some(10),
                ..Default::default()
            })
            .await;
        match active {
            Ok(list) if list.iter().all(|d| d.state != DeployState::Running) => {
                settle_env(inner, &live.service, &live.environment, false).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Listing deploys failed."),
        }
    }
}

/// The reason recorded for a deploy a crash interrupted before its switch.
pub(crate) const CRASH_REASON: &str = "the server stopped mid-deploy";

/// Runs once when the deployer starts.
pub(crate) async fn recover(inner: &Arc<Inner>) -> Result<(), DeployError> {
    let mut seen = BTreeSet::new();
    let mut stuck = inner.store.deploys_owned_by(&inner.owner).await?;
    stuck.extend(inner.store.expired_deploys(now_ms()).await?);
    for d in stuck {
        if seen.insert(d.id) {
            take_over(inner, d.id).await;
        }
    }
    for live in inner.store.live_envs().await? {
        settle_env(inner, &live.service, &live.environment, true).await;
    }
    expire_warm(inner).await;
    Ok(())
}

/// The loop's periodic upkeep: warm releases past their time, deploys of servers
/// that stopped renewing their lease.
pub(crate) async fn maintain(inner: &Arc<Inner>) {
    expire_warm(inner).await;
    let expired = match inner.store.expired_deploys(now_ms()).await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %e, "Listing deploys with an expired lease failed.");
            return;
        }
    };
    for d in expired {
        let ours = inner
            .controls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&d.id);
        if !ours {
            let (service, environment) = (d.service.clone(), d.environment.clone());
            if take_over(inner, d.id).await {
                settle_env(inner, &service, &environment, false).await;
            }
        }
    }
}

/// Takes over a deploy whose server stopped, and finishes or undoes it. Returns
/// whether it was taken over.
async fn take_over(inner: &Arc<Inner>, id: i64) -> bool {
    let d = match inner
        .store
        .take_over_deploy(id, &inner.owner, inner.config.lease)
        .await
    {
        Ok(Some(d)) => d,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(deploy = id, error = %e, "Taking over a deploy failed.");
            return false;
        }
    };
    if let Err(e) = settle_deploy(inner, &d).await {
        tracing::error!(deploy = id, error = %e, "Recovering a deploy failed; the next start tries again.");
    }
    true
}

async fn settle_deploy(inner: &Arc<Inner>, d: &Deploy) -> Result<(), DeployError> {
    let progress: Progress = serde_json::from_value(d.progress.clone()).unwrap_or_default();
    let live = inner.store.live_env(&d.service, &d.environment).await?;
    let target = target_of(inner, d.release_id, &d.environment).await;
    let keep = keep_list(live.as_ref());
    let owner = &inner.owner;
    if live.as_ref().is_some_and(|l| l.deploy_id == d.id) {
        inner
            .store
            .deploy_step(
                d.id,
                owner,
                DeployPhase::Drain,
                "The server stopped after the switch; stopping the old release.",
            )
            .await?;
        if let Some(t) = &target {
            for i in progress.retire.iter().filter(|i| !keep.contains(&i.name)) {
                let _ = t.stop(i, inner.config.grace).await;
            }
        }
        inner
            .store
            .finish_deploy(d.id, owner, DeployState::Succeeded, None)
            .await?;
        tracing::info!(
            deploy = d.id,
            "Finished a deploy the server stopped after its switch."
        );
    } else {
        inner
            .store
            .deploy_step(
                d.id,
                owner,
                DeployPhase::Rollback,
                "Rolling back: the server stopped mid-deploy.",
            )
            .await?;
        if let Some(t) = &target {
            for i in progress.started.iter().filter(|i| !keep.contains(&i.name)) {
                let _ = t.stop(i, inner.config.grace).await;
            }
            sweep(inner, t, &d.service, &d.environment, live.as_ref()).await;
        }
        inner
            .store
            .finish_deploy(d.id, owner, DeployState::RolledBack, Some(CRASH_REASON))
            .await?;
        tracing::warn!(deploy = d.id, service = %d.service, environment = %d.environment, "Rolled back a deploy the server stopped in the middle of.");
    }
    Ok(())
}

/// Names of the instances an environment keeps: live and warm.
fn keep_list(live: Option<&LiveEnv>) -> BTreeSet<String> {
    let mut keep = BTreeSet::new();
    if let Some(l) = live {
        keep.extend(instances(&l.instances).into_iter().map(|i| i.name));
        if let Some(w) = &l.previous {
            keep.extend(instances(&w.instances).into_iter().map(|i| i.name));
        }
    }
    keep
}

async fn sweep(
    inner: &Inner,
    target: &AnyTarget,
    service: &str,
    environment: &str,
    live: Option<&LiveEnv>,
) {
    let mut keep: Vec<Instance> = inner
        .retiring
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(l) = live {
        keep.extend(instances(&l.instances));
        if let Some(w) = &l.previous {
            keep.extend(instances(&w.instances));
        }
    }
    match target.sweep(service, environment, &keep).await {
        Ok(gone) if !gone.is_empty() => {
            tracing::info!(service, environment, stopped = ?gone, "Stopped leftover instances.");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(service, environment, error = %e, "Sweeping leftover instances failed.");
        }
    }
}

/// The target of `environment` in a release's config.
pub(crate) async fn target_of(
    inner: &Inner,
    release_id: i64,
    environment: &str,
) -> Option<AnyTarget> {
    let release = inner.store.release_by_id(release_id).await.ok()?;
    let service = parse_deploy(&release.config).ok()?;
    let env = service.environments.get(environment)?;
    Some(target_for(env, &inner.data_dir, &inner.config))
}

/// Makes the live state of an environment true: its instances run (dead ones are
/// started again and recorded), a dead warm release is forgotten, and the proxy
/// routes to the live instances. With `sweep_leftovers`, instances of the service
/// there that are neither live nor warm are stopped too — only where no other deploy
/// of the environment can be under way (at start, or inside the deploy itself), as
/// its new instances are not live yet.
pub(crate) async fn settle_env(
    inner: &Arc<Inner>,
    service: &str,
    environment: &str,
    sweep_leftovers: bool,
) {
    let live = match inner.store.live_env(service, environment).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            inner.routes.set(service, environment, None);
            return;
        }
        Err(e) => {
            tracing::warn!(service, environment, error = %e, "Reading the live release failed.");
            return;
        }
    };
    let release = match inner.store.release_by_id(live.release_id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(service, environment, error = %e, "The live release cannot be read; its routes are not restored.");
            return;
        }
    };
    let plan = match Plan::new(inner, release, environment).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(service, environment, error = %e, "The live release cannot be prepared; its instances are not checked.");
            return;
        }
    };
    let mut list = instances(&live.instances);
    let mut restarted = 0;
    for slot in list.iter_mut() {
        if plan.target.alive(slot).await {
            continue;
        }
        let index = index_of(slot).unwrap_or(0);
        match plan.target.start(&plan.spec(index, plan.host(index))).await {
            Ok(fresh) => {
                health_quietly(&plan, &fresh).await;
                *slot = fresh;
                restarted += 1;
            }
            Err(e) => {
                tracing::error!(service, environment, instance = %slot.name, error = %e, "Restarting a live instance failed.");
            }
        }
    }
    if restarted > 0 {
        tracing::info!(service, environment, restarted, release = %plan.release.name(), "Restarted live instances that were not running.");
        if let Err(e) = inner
            .store
            .replace_live_instances(service, environment, live.release_id, &to_json(&list))
            .await
        {
            tracing::warn!(service, environment, error = %e, "Recording restarted instances failed.");
        }
    }
    let mut current = live.clone();
    current.instances = to_json(&list);
    if let Some(w) = &live.previous {
        let warm = instances(&w.instances);
        let mut alive = !warm.is_empty();
        for i in &warm {
            alive &= plan.target.alive(i).await;
        }
        if !alive {
            for i in &warm {
                let _ = plan.target.stop(i, inner.config.grace).await;
            }
            let _ = inner
                .store
                .clear_warm(service, environment, w.release_id)
                .await;
            current.previous = None;
        }
    }
    if sweep_leftovers {
        sweep(inner, &plan.target, service, environment, Some(&current)).await;
    }
    let name = plan.release.name();
    let live_arc = match inner.routes.get(service, environment) {
        Some(e) if e.live.name() == name && e.live.instances() == addrs(&list).as_slice() => e.live,
        _ => ProxyRelease::new(name, addrs(&list)),
    };
    inner.routes.set(
        service,
        environment,
        Some(EnvRoute {
            routes: plan.routes(),
            live: live_arc,
            canary: None,
        }),
    );
}

/// Stops warm releases whose time is up.
async fn expire_warm(inner: &Arc<Inner>) {
    let lives = match inner.store.live_envs().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "Listing live environments failed.");
            return;
        }
    };
    let now = now_ms();
    for live in lives {
        let Some(w) = &live.previous else { continue };
        if w.warm_until > now {
            continue;
        }
        let target = target_of(inner, w.release_id, &live.environment).await;
        if let Some(t) = &target {
            for i in instances(&w.instances) {
                if let Err(e) = t.stop(&i, inner.config.grace).await {
                    tracing::warn!(instance = %i.name, error = %e, "Stopping a warm instance failed.");
                }
            }
        }
        match inner
            .store
            .clear_warm(&live.service, &live.environment, w.release_id)
            .await
        {
            Ok(()) => {
                tracing::info!(service = %live.service, environment = %live.environment, release = w.release_number, "Stopped the warm previous release.")
            }
            Err(e) => tracing::warn!(error = %e, "Forgetting a warm release failed."),
        }
    }
}

/// Stops every instance Ferry runs for this server (see `Deployer::stop_instances`).
pub(crate) async fn stop_everything(inner: &Arc<Inner>) -> Result<(), DeployError> {
    for live in inner.store.live_envs().await? {
        let Some(target) = target_of(inner, live.release_id, &live.environment).await else {
            continue;
        };
        let mut list = instances(&live.instances);
        if let Some(w) = &live.previous {
            list.extend(instances(&w.instances));
        }
        for i in &list {
            if let Err(e) = target.stop(i, inner.config.grace).await {
                tracing::warn!(instance = %i.name, error = %e, "Stopping an instance failed.");
            }
        }
    }
    stop_processes(inner).await;
    Ok(())
}

/// Stops every process of the `process` target, live, warm or draining.
pub(crate) async fn stop_processes(inner: &Arc<Inner>) {
    let root = inner.data_dir.join("instances");
    let process = super::targets::process::ProcessTarget::new(&root);
    for service in read_names(&root) {
        for environment in read_names(&root.join(&service)) {
            if let Err(e) = process.sweep(&service, &environment, &[]).await {
                tracing::warn!(service, environment, error = %e, "Stopping processes failed.");
            }
        }
    }
}

/// The names of the directories in `dir` (none when it cannot be read).
fn read_names(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
