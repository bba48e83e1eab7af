//! The deploy loop and one deploy's phases.
//!
//! [`run_loop`] claims queued deploys (the store serializes those of one service and
//! environment) and runs each in its own task under a renewed lease. A deploy goes
//! prepare → pre_migrate → migrate → start → health → smoke → shift, recording each
//! step. [`Store::switch_live`](ferry_store::db::Store::switch_live) is the one commit
//! point: a failure before it stops everything the deploy started, restores the
//! proxy's routes to the live release and ends `rolled_back`; after it the deploy
//! succeeds, and the old release drains and stops in the background (or stays warm).
//! The strategies themselves are in `shift`.

use super::health;
use super::recover;
use super::release::Plan;
use super::routes::EnvRoute;
use super::steps;
use super::targets::{AnyTarget, Instance, Target};
use super::{Control, HookContext, Inner};
use ferry_config::model::{Step, Strategy};
use ferry_proxy::Release as ProxyRelease;
use ferry_store::db::{DbError, Deploy};
use ferry_types::{DeployPhase, DeployState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the loop looks for queued deploys without being woken.
const POLL: Duration = Duration::from_millis(250);
/// How often the loop stops expired warm releases and takes over deploys of dead servers.
const MAINTENANCE: Duration = Duration::from_secs(1);
/// How often the loop checks that live instances run.
const LIVENESS: Duration = Duration::from_secs(10);

/// What a deploy recorded to be resumed or undone after a crash (`deploys.progress`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// Instances of the new release this deploy started.
    #[serde(default)]
    pub started: Vec<Instance>,
    /// Instances of the old release to stop once the switch is committed.
    #[serde(default)]
    pub retire: Vec<Instance>,
}

/// Why a deploy stopped before its switch.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Nothing was changed; the deploy could not run (`failed`).
    Fail(String),
    /// A check failed: undo what was started (`rolled_back`).
    Abort(String),
}

impl From<DbError> for Stop {
    fn from(e: DbError) -> Stop {
        Stop::Abort(format!("the store failed: {e}"))
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Instances from their stored JSON (entries that do not parse are skipped).
pub(crate) fn instances(value: &serde_json::Value) -> Vec<Instance> {
    serde_json::from_value::<Vec<serde_json::Value>>(value.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

pub(crate) fn to_json(instances: &[Instance]) -> serde_json::Value {
    serde_json::to_value(instances).unwrap_or(serde_json::Value::Array(Vec::new()))
}

pub(crate) fn addrs(instances: &[Instance]) -> Vec<SocketAddr> {
    instances.iter().map(|i| i.addr).collect()
}

/// The index an instance was started with (the last `-` part of its name).
pub(crate) fn index_of(instance: &Instance) -> Option<u32> {
    instance.name.rsplit('-').next()?.parse().ok()
}

/// Claims and runs deploys until `shutdown`.
pub(crate) async fn run_loop(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut last_maintenance = Instant::now();
    let mut last_liveness = Instant::now();
    loop {
        loop {
            match inner
                .store
                .claim_deploy(&inner.owner, inner.config.lease)
                .await
            {
                Ok(Some(d)) => {
                    tokio::spawn(run_one(inner.clone(), d, shutdown.clone()));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "Claiming a deploy failed; trying again shortly.");
                    break;
                }
            }
        }
        if last_maintenance.elapsed() >= MAINTENANCE {
            last_maintenance = Instant::now();
            recover::maintain(&inner).await;
        }
        if last_liveness.elapsed() >= LIVENESS {
            last_liveness = Instant::now();
            recover::check_live(&inner).await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Runs one claimed deploy under its lease. On `shutdown` it stops where it is, like a
/// crash: the next start of the server recovers it.
pub(crate) async fn run_one(inner: Arc<Inner>, d: Deploy, shutdown: CancellationToken) {
    let id = d.id;
    let ctl = Arc::new(Control::default());
    inner
        .controls
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, ctl.clone());
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = renew(&inner, id) => {
            tracing::warn!(deploy = id, "Lost the lease on a deploy; another server carries it on.");
        }
        _ = carry_out(&inner, d, &ctl) => {}
    }
    inner
        .controls
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    inner.wake.notify_one();
}

/// Renews the lease until that fails.
async fn renew(inner: &Inner, id: i64) {
    let every = (inner.config.lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = inner
            .store
            .renew_deploy(id, &inner.owner, inner.config.lease)
            .await
        {
            tracing::warn!(deploy = id, error = %e, "Renewing a deploy's lease failed.");
            return;
        }
    }
}

async fn carry_out(inner: &Arc<Inner>, d: Deploy, ctl: &Arc<Control>) {
    let id = d.id;
    let mut run = Run {
        inner,
        d,
        ctl: ctl.clone(),
        progress: Progress::default(),
        target: None,
        old_target: None,
    };
    let outcome = run.execute().await;
    let (state, reason) = match outcome {
        Ok(()) => (DeployState::Succeeded, None),
        Err(Stop::Fail(reason)) => (DeployState::Failed, Some(reason)),
        Err(Stop::Abort(reason)) => {
            let cancelled = ctl.cancel.is_cancelled();
            run.roll_back(&reason).await;
            let state = if cancelled {
                DeployState::Cancelled
            } else {
                DeployState::RolledBack
            };
            (state, Some(reason))
        }
    };
    match &reason {
        Some(r) => {
            tracing::warn!(deploy = id, service = %run.d.service, environment = %run.d.environment, state = %state, reason = %r, "Deploy did not go live.")
        }
        None => {
            tracing::info!(deploy = id, service = %run.d.service, environment = %run.d.environment, release = %run.d.release_name(), "Deploy succeeded.")
        }
    }
    if let Err(e) = inner
        .store
        .finish_deploy(id, &inner.owner, state, reason.as_deref())
        .await
    {
        tracing::error!(deploy = id, error = %e, "Recording the end of a deploy failed; the next start of the server will settle it.");
    }
}

/// One deploy being carried out.
pub(crate) struct Run<'a> {
    pub inner: &'a Arc<Inner>,
    pub d: Deploy,
    pub ctl: Arc<Control>,
    pub progress: Progress,
    /// The environment's target, once the release is prepared.
    pub target: Option<AnyTarget>,
    /// The target of the live release's instances (the environment's `target` in the
    /// live release's config, which may differ from the new release's).
    pub old_target: Option<AnyTarget>,
}

impl Run<'_> {
    /// Records a progress line.
    pub(crate) async fn step(&self, phase: DeployPhase, message: &str) -> Result<(), Stop> {
        tracing::debug!(deploy = self.d.id, phase = %phase, "{message}");
        self.inner
            .store
            .deploy_step(self.d.id, &self.inner.owner, phase, message)
            .await?;
        Ok(())
    }

    pub(crate) async fn save(&self) -> Result<(), Stop> {
        let value =
            serde_json::to_value(&self.progress).expect("instances and strings serialize to JSON");
        self.inner
            .store
            .save_deploy_progress(self.d.id, &self.inner.owner, &value)
            .await?;
        Ok(())
    }

    /// The target running the live release's instances.
    pub(crate) fn old_target(&self, plan: &Plan) -> AnyTarget {
        self.old_target
            .clone()
            .unwrap_or_else(|| plan.target.clone())
    }

    /// Stops here when a person cancelled the deploy.
    pub(crate) fn checkpoint(&self) -> Result<(), Stop> {
        if self.ctl.cancel.is_cancelled() {
            return Err(Stop::Abort(self.cancel_reason()));
        }
        Ok(())
    }

    fn cancel_reason(&self) -> String {
        let by = self
            .ctl
            .cancelled_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "someone".into());
        format!("cancelled by {by}")
    }

    fn cancelled(&self) -> &CancellationToken {
        &self.ctl.cancel
    }

    async fn execute(&mut self) -> Result<(), Stop> {
        let store = &self.inner.store;
        let release = store
            .release_by_id(self.d.release_id)
            .await
            .map_err(|e| Stop::Fail(format!("release {}: {e}", self.d.release_name())))?;
        self.step(
            DeployPhase::Prepare,
            &format!(
                "Preparing release {} (commit {}) for `{}`.",
                release.name(),
                release.sha.chars().take(8).collect::<String>(),
                self.d.environment
            ),
        )
        .await?;
        let plan = Plan::new(self.inner, release, &self.d.environment)
            .await
            .map_err(Stop::Fail)?;
        self.target = Some(plan.target.clone());
        let live = store
            .live_env(&self.d.service, &self.d.environment)
            .await
            .map_err(|e| Stop::Fail(format!("reading the live release failed: {e}")))?;
        if let Some(l) = &live {
            self.old_target =
                recover::target_of(self.inner, l.release_id, &self.d.environment).await;
        }

        if let Some(l) = &live
            && let Some(warm) = &l.previous
            && warm.release_id == plan.release.id
        {
            let warm_instances = instances(&warm.instances);
            let mut all_alive = !warm_instances.is_empty();
            for i in &warm_instances {
                all_alive &= plan.target.alive(i).await;
            }
            if all_alive {
                return self.switch_to_warm(&plan, l, warm_instances).await;
            }
        }
        self.checkpoint()?;

        let hooks: Vec<_> = self
            .inner
            .hooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if hooks.is_empty() {
            self.step(DeployPhase::PreMigrate, "No pre-migration hooks.")
                .await?;
        } else {
            let cx = HookContext {
                deploy: self.d.clone(),
                release: plan.release.clone(),
                env: plan.env.clone(),
                dir: plan.dir.clone(),
            };
            for hook in hooks {
                self.step(
                    DeployPhase::PreMigrate,
                    &format!("Running pre-migration hook `{}`.", hook.name()),
                )
                .await?;
                match hook.run(&cx).await {
                    Ok(message) => self.step(DeployPhase::PreMigrate, &message).await?,
                    Err(e) => {
                        return Err(Stop::Abort(format!(
                            "pre-migration hook `{}` failed: {e}",
                            hook.name()
                        )));
                    }
                }
            }
        }
        self.run_steps(
            DeployPhase::Migrate,
            "migrate",
            &plan,
            &plan.service.migrate,
            None,
        )
        .await?;
        self.checkpoint()?;

        let old = live
            .as_ref()
            .map(|l| instances(&l.instances))
            .unwrap_or_default();
        match plan.environment.strategy.clone() {
            Strategy::Rolling(r) => self.rolling(&plan, live.as_ref(), old, &r).await,
            Strategy::BlueGreen(bg) => self.blue_green(&plan, live.as_ref(), old, &bg).await,
            Strategy::Canary(c) => self.canary(&plan, live.as_ref(), old, &c).await,
            Strategy::Recreate => self.recreate(&plan, live.as_ref(), old).await,
        }
    }

    /// Runs a list of steps; the first failure aborts.
    pub(crate) async fn run_steps(
        &self,
        phase: DeployPhase,
        kind: &str,
        plan: &Plan,
        list: &[Step],
        url: Option<String>,
    ) -> Result<(), Stop> {
        let mut env = plan.env.clone();
        if let Some(url) = url {
            env.insert("FERRY_URL".into(), url);
        }
        for step in list {
            self.checkpoint()?;
            let r = steps::run(kind, step, &plan.dir, &env, &plan.ctx, self.cancelled()).await;
            let line = if r.message.contains('\n') {
                r.message.clone()
            } else {
                format!("{}.", r.message.trim_end_matches('.'))
            };
            self.step(phase, &line).await?;
            if !r.ok {
                if self.ctl.cancel.is_cancelled() {
                    return Err(Stop::Abort(self.cancel_reason()));
                }
                return Err(Stop::Abort(r.message));
            }
        }
        Ok(())
    }

    /// Indexes for `count` new instances that no live or warm instance of the same
    /// release uses (a redeploy of the live release must not replace its instances).
    async fn free_indexes(&self, plan: &Plan, count: usize) -> Result<Vec<u32>, Stop> {
        let live = self
            .inner
            .store
            .live_env(&self.d.service, &self.d.environment)
            .await?;
        let mut used = BTreeSet::new();
        if let Some(l) = live {
            let name = plan.release.name();
            let mut all = instances(&l.instances);
            if let Some(w) = &l.previous {
                all.extend(instances(&w.instances));
            }
            used.extend(
                all.iter()
                    .filter(|i| i.release == name)
                    .filter_map(index_of),
            );
        }
        used.extend(self.progress.started.iter().filter_map(index_of));
        Ok((0u32..).filter(|i| !used.contains(i)).take(count).collect())
    }

    /// Starts `count` new instances, recording each before the next.
    pub(crate) async fn start(&mut self, plan: &Plan, count: usize) -> Result<Vec<Instance>, Stop> {
        self.checkpoint()?;
        self.step(
            DeployPhase::Start,
            &format!(
                "Starting {count} instance{} of {} on `{}`.",
                if count == 1 { "" } else { "s" },
                plan.release.name(),
                plan.environment.target.as_str()
            ),
        )
        .await?;
        let mut out = Vec::new();
        for index in self.free_indexes(plan, count).await? {
            let spec = plan.spec(index, plan.host(index));
            let instance = plan.target.start(&spec).await.map_err(|e| {
                Stop::Abort(format!(
                    "starting instance {index} of {} failed: {e}",
                    plan.release.name()
                ))
            })?;
            self.progress.started.push(instance.clone());
            self.save().await?;
            out.push(instance);
        }
        Ok(out)
    }

    /// Waits until every instance passes its health check.
    pub(crate) async fn health(&self, plan: &Plan, list: &[Instance]) -> Result<(), Stop> {
        self.checkpoint()?;
        let check = plan.healthcheck();
        self.step(
            DeployPhase::Health,
            &format!(
                "Checking `GET {}` on {} new instance{} every {}.",
                check.path,
                list.len(),
                if list.len() == 1 { "" } else { "s" },
                steps::humanize(check.interval)
            ),
        )
        .await?;
        let results = futures_util::future::join_all(
            list.iter()
                .map(|i| health::wait_healthy(i.addr, &check, self.cancelled())),
        )
        .await;
        for (instance, r) in list.iter().zip(results) {
            if let Err(why) = r {
                self.checkpoint()?;
                return Err(Stop::Abort(format!(
                    "instance `{}` of {} is not healthy: {why}",
                    instance.name,
                    plan.release.name()
                )));
            }
        }
        self.step(
            DeployPhase::Health,
            &format!("{} is healthy.", plan.release.name()),
        )
        .await
    }

    /// Runs the `smoke` steps, then `extra` (blue-green `verify`), against `instance`.
    pub(crate) async fn smoke(
        &self,
        plan: &Plan,
        instance: &Instance,
        extra: &[Step],
    ) -> Result<(), Stop> {
        let url = format!("http://{}", instance.addr);
        self.run_steps(
            DeployPhase::Smoke,
            "smoke",
            plan,
            &plan.service.smoke,
            Some(url.clone()),
        )
        .await?;
        self.run_steps(DeployPhase::Smoke, "verify", plan, extra, Some(url))
            .await
    }

    /// Publishes the proxy entry of the environment.
    pub(crate) fn route(
        &self,
        plan: &Plan,
        live: Arc<ProxyRelease>,
        canary: Option<(Arc<ProxyRelease>, u8)>,
    ) {
        self.inner.routes.set(
            &self.d.service,
            &self.d.environment,
            Some(EnvRoute {
                routes: plan.routes(),
                live,
                canary,
            }),
        );
    }

    /// The proxy's current release for the environment if it serves `instances`,
    /// else a new one: the same `Arc` keeps its in-flight count across tables.
    pub(crate) fn proxy_release(&self, name: &str, list: &[Instance]) -> Arc<ProxyRelease> {
        if let Some(e) = self.inner.routes.get(&self.d.service, &self.d.environment)
            && e.live.name() == name
            && e.live.instances() == addrs(list).as_slice()
        {
            return e.live;
        }
        ProxyRelease::new(name, addrs(list))
    }

    /// Waits for a person to promote a blue-green release (`auto_promote: false`).
    pub(crate) async fn wait_promotion(&self, plan: &Plan) -> Result<(), Stop> {
        self.step(
            DeployPhase::Smoke,
            &format!(
                "Waiting for a person to promote {}: `ferry deploys approve {}`.",
                plan.release.name(),
                self.d.id
            ),
        )
        .await?;
        self.ctl.waiting_promotion.store(true, Ordering::SeqCst);
        tokio::select! {
            _ = self.ctl.promoted.notified() => {}
            _ = self.ctl.cancel.cancelled() => {}
        }
        self.ctl.waiting_promotion.store(false, Ordering::SeqCst);
        self.checkpoint()?;
        let by = self
            .ctl
            .promoted_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        self.step(DeployPhase::Shift, &format!("Promoted by {by}."))
            .await
    }
}

/// Waits for a restarted instance's health check; a failure is only logged (the
/// instance is the live release's, there is nothing to fall back to).
pub(crate) async fn health_quietly(plan: &Plan, instance: &Instance) {
    let check = plan.healthcheck();
    if let Err(why) = health::wait_healthy(instance.addr, &check, &CancellationToken::new()).await {
        tracing::warn!(instance = %instance.name, reason = %why, "A restarted live instance is not healthy.");
    }
}
