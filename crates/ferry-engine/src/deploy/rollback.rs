//! Undoing a deploy stopped before its switch.

use super::recover;
use super::routes::EnvRoute;
use super::run::{Run, addrs, instances};
use super::switch::drain;
use super::targets::{Instance, Target};
use ferry_proxy::Release as ProxyRelease;
use ferry_types::DeployPhase;
use std::sync::Arc;

impl Run<'_> {
    /// Undoes a deploy stopped before its switch: routes back to the live release,
    /// stops (after draining) everything this deploy started, sweeps leftovers and
    /// makes sure every live instance runs again.
    pub(crate) async fn roll_back(&mut self, reason: &str) {
        let first_line = reason.lines().next().unwrap_or(reason);
        self.step_after_switch(
            DeployPhase::Rollback,
            &format!(
                "Rolling back: {}",
                if first_line.ends_with('.') {
                    first_line.to_owned()
                } else {
                    format!("{first_line}.")
                }
            ),
        )
        .await;
        let service = self.d.service.clone();
        let environment = self.d.environment.clone();
        let live = match self.inner.store.live_env(&service, &environment).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(deploy = self.d.id, error = %e, "Reading the live release failed during a rollback.");
                None
            }
        };
        let target = self.target.clone();
        // Routes first: no new request may reach what is about to stop.
        let before = self.inner.routes.get(&service, &environment);
        let mut draining: Vec<Arc<ProxyRelease>> = Vec::new();
        if let Some(e) = &before {
            draining.push(e.live.clone());
            draining.extend(e.canary.clone().map(|(c, _)| c));
        }
        match (&live, &before) {
            (Some(l), Some(e)) => {
                let old = instances(&l.instances);
                let mut alive = Vec::new();
                for i in &old {
                    if self.alive(i).await {
                        alive.push(i.clone());
                    }
                }
                let name = format!("v{}", l.release_number);
                let arc = if e.live.name() == name && e.live.instances() == addrs(&alive).as_slice()
                {
                    e.live.clone()
                } else {
                    ProxyRelease::new(name, addrs(&alive))
                };
                draining.retain(|r| !Arc::ptr_eq(r, &arc));
                self.inner.routes.set(
                    &service,
                    &environment,
                    Some(EnvRoute {
                        routes: e.routes.clone(),
                        live: arc,
                        canary: None,
                    }),
                );
            }
            (None, _) => self.inner.routes.set(&service, &environment, None),
            (Some(_), None) => {}
        }
        drain(&draining, self.inner.config.drain_timeout).await;
        if let Some(target) = &target {
            for i in &self.progress.started {
                if let Err(e) = target.stop(i, self.inner.config.grace).await {
                    tracing::error!(deploy = self.d.id, instance = %i.name, error = %e, "Stopping a new instance during a rollback failed.");
                }
            }
        }
        let stopped = self.progress.started.len();
        recover::settle_env(self.inner, &service, &environment, true).await;
        self.step_after_switch(
            DeployPhase::Rollback,
            &match &live {
                Some(l) => format!(
                    "Stopped {stopped} new instance{}; v{} still serves `{environment}`.",
                    if stopped == 1 { "" } else { "s" },
                    l.release_number
                ),
                None => format!(
                    "Stopped {stopped} new instance{}; `{environment}` has no live release.",
                    if stopped == 1 { "" } else { "s" }
                ),
            },
        )
        .await;
    }

    async fn alive(&self, instance: &Instance) -> bool {
        match self.old_target.as_ref().or(self.target.as_ref()) {
            Some(t) => t.alive(instance).await,
            None => true,
        }
    }
}
