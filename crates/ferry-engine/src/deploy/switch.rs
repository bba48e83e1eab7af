//! The switch — the one commit point of a deploy — and what follows it: the old
//! release drains and stops in the background, or stays warm; and the instant
//! rollback to a warm release.

use super::Inner;
use super::release::Plan;
use super::routes::service_name;
use super::run::{Run, Stop, addrs, instances, now_ms, to_json};
use super::steps;
use super::targets::{AnyTarget, Instance, Target};
use ferry_config::model::Strategy;
use ferry_proxy::Release as ProxyRelease;
use ferry_store::db::{LiveEnv, Switch};
use ferry_types::DeployPhase;
use std::sync::Arc;
use std::time::Duration;

impl Run<'_> {
    /// The commit point: makes `new` the live instances (keeping `old` warm until
    /// `warm_until` if given), then routes every new request to `live`. The old
    /// release's instances to stop are recorded first, so a crash right after the
    /// switch still stops them.
    pub(crate) async fn commit(
        &mut self,
        plan: &Plan,
        new: &[Instance],
        live: Arc<ProxyRelease>,
        old: Vec<Instance>,
        warm_until: Option<i64>,
    ) -> Result<(), Stop> {
        self.checkpoint()?;
        let before = self.inner.routes.get(&self.d.service, &self.d.environment);
        if warm_until.is_none() {
            self.progress.retire = old.clone();
        }
        self.save().await?;
        let keep_previous = warm_until.map(|t| (to_json(&old), t));
        self.inner
            .store
            .switch_live(
                self.d.id,
                &self.inner.owner,
                &Switch {
                    instances: to_json(new),
                    keep_previous,
                },
            )
            .await?;
        self.route(plan, live.clone(), None);
        // After the switch nothing rolls back: the old release drains and stops.
        let mut draining: Vec<Arc<ProxyRelease>> = Vec::new();
        if let Some(e) = before {
            draining.push(e.live);
            draining.extend(e.canary.map(|(c, _)| c));
        }
        draining.retain(|r| !Arc::ptr_eq(r, &live));
        let old_name = old.first().map(|i| i.release.clone());
        match (warm_until, old_name) {
            (_, None) => {}
            (Some(t), Some(name)) => {
                let secs = ((t - now_ms()).max(0) + 999) / 1000;
                self.step_after_switch(
                    DeployPhase::Drain,
                    &format!("Keeping {name} warm for {secs}s for an instant rollback."),
                )
                .await;
            }
            (None, Some(name)) => {
                self.step_after_switch(
                    DeployPhase::Drain,
                    &format!(
                        "Stopping {name} once its requests in flight have finished (at most {}).",
                        steps::humanize(self.inner.config.drain_timeout)
                    ),
                )
                .await;
                retire(
                    self.inner.clone(),
                    self.old_target(plan),
                    &self.d.service,
                    &self.d.environment,
                    draining,
                    old,
                );
                return Ok(());
            }
        }
        // Nothing to stop (or the old release stays warm): tidy up at once.
        tokio::spawn(after_switch(plan.target.clone()));
        Ok(())
    }

    /// A progress line after the switch: failing to record it must not fail a deploy
    /// that is live.
    pub(crate) async fn step_after_switch(&self, phase: DeployPhase, message: &str) {
        if let Err(e) = self
            .inner
            .store
            .deploy_step(self.d.id, &self.inner.owner, phase, message)
            .await
        {
            tracing::warn!(deploy = self.d.id, error = %e, "Recording a deploy step failed.");
        }
    }

    /// Rolling back to the warm release: nothing starts, traffic moves at once.
    pub(crate) async fn switch_to_warm(
        &mut self,
        plan: &Plan,
        live: &LiveEnv,
        warm: Vec<Instance>,
    ) -> Result<(), Stop> {
        self.step(
            DeployPhase::Shift,
            &format!(
                "Release {} is still warm: switching traffic back to it at once.",
                plan.release.name()
            ),
        )
        .await?;
        let current = instances(&live.instances);
        let warm_until = match &plan.environment.strategy {
            Strategy::BlueGreen(bg) if !bg.keep_old_for.is_zero() => {
                Some(now_ms() + bg.keep_old_for.as_millis() as i64)
            }
            _ => None,
        };
        let arc = ProxyRelease::new(plan.release.name(), addrs(&warm));
        self.commit(plan, &warm, arc, current, warm_until).await
    }
}

/// Waits until every release in `list` that the proxy retired has no request in
/// flight, at most `timeout`.
pub(crate) async fn drain(list: &[Arc<ProxyRelease>], timeout: Duration) {
    let waits = list.iter().filter(|r| r.is_retired()).map(|r| r.drained());
    let _ = tokio::time::timeout(timeout, futures_util::future::join_all(waits)).await;
}

/// Lets the target clear away what no instance uses any more (old releases on
/// hosts); a failure is only logged, the deploy being live already.
async fn after_switch(target: AnyTarget) {
    if let Err(e) = target.after_switch().await {
        tracing::warn!(error = %e, "Clearing away what no instance uses failed; the next deploy tries again.");
    }
}

/// Drains and then stops the old release's instances in the background, so the next
/// deploy does not wait for a long request (a stream, a WebSocket) on the old one.
/// A crash meanwhile leaves them to the sweep at the next start.
pub(crate) fn retire(
    inner: Arc<Inner>,
    target: AnyTarget,
    service: &str,
    environment: &str,
    draining: Vec<Arc<ProxyRelease>>,
    old: Vec<Instance>,
) {
    let (service, environment) = (service.to_owned(), environment.to_owned());
    inner
        .retiring
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(old.iter().cloned());
    tokio::spawn(async move {
        drain(&draining, inner.config.drain_timeout).await;
        for i in &old {
            if let Err(e) = target.stop(i, inner.config.grace).await {
                tracing::error!(instance = %i.name, error = %e, "Stopping an old instance failed; stop it by hand.");
            }
        }
        after_switch(target).await;
        inner
            .retiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|r| !old.contains(r));
        if let (Some(proxy), Some(first)) = (&inner.config.proxy, old.first()) {
            let live = inner.routes.get(&service, &environment);
            let still_routed = live.is_some_and(|e| {
                e.live.name() == first.release
                    || e.canary.is_some_and(|(c, _)| c.name() == first.release)
            });
            if !still_routed {
                proxy
                    .metrics()
                    .forget(&service_name(&service, &environment), &first.release);
            }
        }
    });
}
