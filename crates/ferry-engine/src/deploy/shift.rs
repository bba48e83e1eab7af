//! The strategies: how a deploy moves traffic from the live release to the new one.
//!
//! Every strategy routes only to instances that passed their health check, and takes
//! an old instance out of the proxy's table (and lets its requests finish) before
//! stopping it, so no request meets a stopped instance. Each ends in
//! [`Run::commit`], the switch.

use super::release::Plan;
use super::routes::service_name;
use super::run::{Run, Stop, addrs, now_ms};
use super::steps::humanize;
use super::switch::drain;
use super::targets::{Instance, Target};
use ferry_config::model::{Analysis, BlueGreen, Canary, Rolling};
use ferry_proxy::Release as ProxyRelease;
use ferry_store::db::LiveEnv;
use ferry_types::DeployPhase;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a canary's figures are checked during a pause.
const ANALYSIS_EVERY: Duration = Duration::from_millis(250);

/// Instances to run for strategies without an `instances` setting: as many as now.
fn count(old: &[Instance]) -> usize {
    old.len().max(1)
}

impl Run<'_> {
    /// Starts the new release, checks it, and switches to it: the first deploy of an
    /// environment, whatever its strategy.
    async fn first(
        &mut self,
        plan: &Plan,
        n: usize,
        verify: &[ferry_config::model::Step],
    ) -> Result<(), Stop> {
        let new = self.start(plan, n).await?;
        self.health(plan, &new).await?;
        self.smoke(plan, &new[0], verify).await?;
        self.step(
            DeployPhase::Shift,
            &format!(
                "Routing `{}` to {}.",
                self.d.environment,
                plan.release.name()
            ),
        )
        .await?;
        let arc = ProxyRelease::new(plan.release.name(), addrs(&new));
        self.commit(plan, &new, arc, Vec::new(), None).await
    }

    /// `blue-green`: the whole new release beside the old, then one switch.
    pub(crate) async fn blue_green(
        &mut self,
        plan: &Plan,
        live: Option<&LiveEnv>,
        old: Vec<Instance>,
        bg: &BlueGreen,
    ) -> Result<(), Stop> {
        if live.is_none() && bg.auto_promote {
            return self.first(plan, 1, &bg.verify).await;
        }
        let new = self.start(plan, count(&old)).await?;
        self.health(plan, &new).await?;
        self.smoke(plan, &new[0], &bg.verify).await?;
        if !bg.auto_promote {
            self.wait_promotion(plan).await?;
        }
        self.step(
            DeployPhase::Shift,
            &format!("Switching all traffic to {}.", plan.release.name()),
        )
        .await?;
        let warm_until = (!bg.keep_old_for.is_zero() && !old.is_empty())
            .then(|| now_ms() + bg.keep_old_for.as_millis() as i64);
        let arc = ProxyRelease::new(plan.release.name(), addrs(&new));
        self.commit(plan, &new, arc, old, warm_until).await
    }

    /// `recreate`: stop the old release, then start the new one (downtime).
    pub(crate) async fn recreate(
        &mut self,
        plan: &Plan,
        live: Option<&LiveEnv>,
        old: Vec<Instance>,
    ) -> Result<(), Stop> {
        let n = count(&old);
        if let Some(l) = live {
            self.step(
                DeployPhase::Drain,
                &format!(
                    "Stopping v{} first: `recreate` has downtime.",
                    l.release_number
                ),
            )
            .await?;
            let target = self.old_target(plan);
            for i in &old {
                target
                    .stop(i, self.inner.config.grace)
                    .await
                    .map_err(|e| Stop::Abort(format!("stopping `{}` failed: {e}", i.name)))?;
            }
        }
        self.first(plan, n, &[]).await
    }

    /// `canary`: the new release beside the old, taking a rising share of requests,
    /// its error rate and latency checked during each pause; then all traffic.
    pub(crate) async fn canary(
        &mut self,
        plan: &Plan,
        live: Option<&LiveEnv>,
        old: Vec<Instance>,
        canary: &Canary,
    ) -> Result<(), Stop> {
        let Some(live) = live else {
            return self.first(plan, 1, &[]).await;
        };
        let new = self.start(plan, count(&old)).await?;
        self.health(plan, &new).await?;
        self.smoke(plan, &new[0], &[]).await?;
        let new_arc = ProxyRelease::new(plan.release.name(), addrs(&new));
        let old_arc = self.proxy_release(&format!("v{}", live.release_number), &old);
        let since = Instant::now();
        for step in &canary.steps {
            self.checkpoint()?;
            self.route(plan, old_arc.clone(), Some((new_arc.clone(), step.weight)));
            self.step(
                DeployPhase::Shift,
                &format!(
                    "Sending {}% of requests to {} for {}.",
                    step.weight,
                    plan.release.name(),
                    humanize(step.pause)
                ),
            )
            .await?;
            self.analyse(plan, since, step.weight, step.pause, &canary.analysis)
                .await?;
        }
        self.step(
            DeployPhase::Shift,
            &format!("Sending all requests to {}.", plan.release.name()),
        )
        .await?;
        self.commit(plan, &new, new_arc, old, None).await
    }

    /// Watches the canary for `pause`; aborts when its figures break the limits.
    async fn analyse(
        &self,
        plan: &Plan,
        since: Instant,
        weight: u8,
        pause: Duration,
        analysis: &Analysis,
    ) -> Result<(), Stop> {
        let Some(proxy) = self.inner.config.proxy.clone() else {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.ctl.cancel.cancelled() => {}
            }
            return self.checkpoint();
        };
        let service = service_name(&self.d.service, &self.d.environment);
        let release = plan.release.name();
        let end = Instant::now() + pause;
        loop {
            let stats = proxy.stats(&service, &release, since.elapsed() + Duration::from_secs(1));
            let figures = format!(
                "{} requests, error rate {:.1}%, p95 {} ms",
                stats.requests,
                stats.error_rate * 100.0,
                stats.p95.as_millis()
            );
            if stats.requests >= analysis.min_requests {
                if stats.error_rate > analysis.max_error_rate {
                    return Err(Stop::Abort(format!(
                        "canary analysis failed at {weight}%: error rate {:.1}% is above the \
                         limit of {:.1}% ({figures})",
                        stats.error_rate * 100.0,
                        analysis.max_error_rate * 100.0
                    )));
                }
                if let Some(max) = analysis.max_p95_latency
                    && stats.p95 > max
                {
                    return Err(Stop::Abort(format!(
                        "canary analysis failed at {weight}%: p95 latency {} ms is above the \
                         limit of {} ms ({figures})",
                        stats.p95.as_millis(),
                        max.as_millis()
                    )));
                }
            }
            let now = Instant::now();
            if now >= end {
                let verdict = if stats.requests >= analysis.min_requests {
                    "within the limits"
                } else {
                    "too few requests to judge"
                };
                return self
                    .step(
                        DeployPhase::Shift,
                        &format!("Canary at {weight}%: {figures}; {verdict}."),
                    )
                    .await;
            }
            tokio::select! {
                _ = tokio::time::sleep(ANALYSIS_EVERY.min(end - now)) => {}
                _ = self.ctl.cancel.cancelled() => return self.checkpoint(),
            }
        }
    }

    /// `rolling`: new instances a batch at a time, each batch healthy before it gets
    /// traffic, old ones taken out of the proxy and stopped as the new ones come.
    /// The proxy sees the old instances still in service as the live release and the
    /// new ones as a second release with a weight in proportion to their number.
    pub(crate) async fn rolling(
        &mut self,
        plan: &Plan,
        live: Option<&LiveEnv>,
        old: Vec<Instance>,
        r: &Rolling,
    ) -> Result<(), Stop> {
        let n = r.instances.max(1) as usize;
        let (surge, unavailable) = (r.max_surge as usize, r.max_unavailable as usize);
        let Some(live) = live else {
            return self.first(plan, n, &[]).await;
        };
        let old_name = format!("v{}", live.release_number);
        let mut remaining = old;
        let mut old_arc = self.proxy_release(&old_name, &remaining);
        let mut new: Vec<Instance> = Vec::new();
        let mut new_arc: Option<Arc<ProxyRelease>> = None;
        let mut retired_old: Vec<Instance> = Vec::new();
        while new.len() < n {
            self.checkpoint()?;
            let batch = (n - new.len()).min((surge + unavailable).max(1));
            let excess = (remaining.len() + new.len() + batch).saturating_sub(n + surge);
            if excess > 0 {
                self.take_out(
                    plan,
                    &old_name,
                    &mut remaining,
                    excess,
                    &mut old_arc,
                    &new_arc,
                    &mut retired_old,
                )
                .await?;
            }
            let started = self.start(plan, batch).await?;
            self.health(plan, &started).await?;
            if new.is_empty() {
                self.smoke(plan, &started[0], &[]).await?;
            }
            new.extend(started);
            new_arc = Some(ProxyRelease::new(plan.release.name(), addrs(&new)));
            let extra = (remaining.len() + new.len()).saturating_sub(n);
            self.take_out(
                plan,
                &old_name,
                &mut remaining,
                extra,
                &mut old_arc,
                &new_arc,
                &mut retired_old,
            )
            .await?;
            self.step(
                DeployPhase::Shift,
                &format!(
                    "{} of {n} instances run {}.",
                    new.len(),
                    plan.release.name()
                ),
            )
            .await?;
        }
        let arc = new_arc.unwrap_or_else(|| ProxyRelease::new(plan.release.name(), addrs(&new)));
        // Instances stopped during the roll are gone; the rest stop after the switch.
        self.commit(plan, &new, arc, remaining, None).await
    }

    /// Takes `k` old instances out of the proxy, waits for their requests to finish
    /// and stops them. The live release's record keeps them until the switch, so a
    /// rollback (or the next start after a crash) starts them again.
    #[allow(clippy::too_many_arguments)]
    async fn take_out(
        &mut self,
        plan: &Plan,
        old_name: &str,
        remaining: &mut Vec<Instance>,
        k: usize,
        old_arc: &mut Arc<ProxyRelease>,
        new_arc: &Option<Arc<ProxyRelease>>,
        retired: &mut Vec<Instance>,
    ) -> Result<(), Stop> {
        let k = k.min(remaining.len());
        let removed = remaining.split_off(remaining.len() - k);
        let before_old = old_arc.clone();
        let before = self.inner.routes.get(&self.d.service, &self.d.environment);
        if k > 0 {
            *old_arc = ProxyRelease::new(old_name, addrs(remaining));
        }
        match new_arc {
            Some(n) if remaining.is_empty() => self.route(plan, n.clone(), None),
            Some(n) => {
                let total = n.instances().len() + remaining.len();
                let weight = ((n.instances().len() * 100 + total / 2) / total) as u8;
                self.route(plan, old_arc.clone(), Some((n.clone(), weight)));
            }
            None => self.route(plan, old_arc.clone(), None),
        }
        if removed.is_empty() {
            return Ok(());
        }
        let mut draining = vec![before_old];
        if let Some(e) = before {
            draining.push(e.live);
            draining.extend(e.canary.map(|(c, _)| c));
        }
        drain(&draining, self.inner.config.drain_timeout).await;
        let target = self.old_target(plan);
        for i in &removed {
            target.stop(i, self.inner.config.grace).await.map_err(|e| {
                Stop::Abort(format!("stopping old instance `{}` failed: {e}", i.name))
            })?;
        }
        retired.extend(removed);
        Ok(())
    }
}
