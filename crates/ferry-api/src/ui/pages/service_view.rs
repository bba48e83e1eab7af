//! What the services pages show of a service, read from the store: its releases, its
//! environments in promotion order with the live and warm release of each, what a
//! rollback goes back to, and its deploys.

use crate::ui::error::UiError;
use ferry_store::db::{DbError, Deploy, DeployQuery, LiveEnv, Release, Service, Store};

/// Releases a service page lists (the store keeps at least 10 per service).
const RELEASES_SHOWN: i64 = 50;
/// Deploys a service page lists.
const DEPLOYS_SHOWN: i64 = 50;

/// One environment of a service, as the pages show it.
pub(in crate::ui) struct EnvView {
    /// Its name.
    pub name: String,
    /// Whether the newest release's config gates deploys to it by approval.
    pub approval: bool,
    /// The strategy the newest release's config gives it, e.g. `blue-green`.
    pub strategy: Option<&'static str>,
    /// Its live state, None before its first deploy.
    pub live: Option<LiveEnv>,
    /// The live release.
    pub live_release: Option<Release>,
    /// The deploy that made it live.
    pub live_deploy: Option<Deploy>,
    /// What a rollback goes back to: the warm release, else the one live before.
    pub rollback_to: Option<Release>,
    /// The newest deploy to it.
    pub last: Option<Deploy>,
}

/// A service with what its pages show.
pub(in crate::ui) struct ServiceView {
    /// The service.
    pub service: Service,
    /// Its releases, newest first.
    pub releases: Vec<Release>,
    /// Its environments, in promotion order.
    pub envs: Vec<EnvView>,
    /// Its deploys, newest first.
    pub deploys: Vec<Deploy>,
}

impl ServiceView {
    /// The environment named `name`.
    pub fn env(&self, name: &str) -> Option<&EnvView> {
        self.envs.iter().find(|e| e.name == name)
    }

    /// The environments release `id` is live or warm in, as (environment, warm).
    pub fn live_in(&self, id: i64) -> Vec<(&str, bool)> {
        let mut out = Vec::new();
        for env in &self.envs {
            let Some(live) = &env.live else { continue };
            if live.release_id == id {
                out.push((env.name.as_str(), false));
            } else if live.previous.as_ref().is_some_and(|w| w.release_id == id) {
                out.push((env.name.as_str(), true));
            }
        }
        out
    }
}

/// Release `id`: from `known` when listed there, else from the store; None when it
/// was pruned.
async fn find_release(
    store: &Store,
    known: &[Release],
    id: i64,
) -> Result<Option<Release>, DbError> {
    if let Some(r) = known.iter().find(|r| r.id == id) {
        return Ok(Some(r.clone()));
    }
    match store.release_by_id(id).await {
        Ok(r) => Ok(Some(r)),
        Err(DbError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The strategy's name as `ferry.yml` writes it.
fn strategy_name(s: &ferry_config::Strategy) -> &'static str {
    match s {
        ferry_config::Strategy::Rolling(_) => "rolling",
        ferry_config::Strategy::BlueGreen(_) => "blue-green",
        ferry_config::Strategy::Canary(_) => "canary",
        ferry_config::Strategy::Recreate => "recreate",
    }
}

/// The environments of the newest release's `deploy:` section, in promotion order,
/// with (approval, strategy); empty when it does not parse.
fn declared_envs(release: Option<&Release>) -> Vec<(String, bool, &'static str)> {
    let Some(release) = release else {
        return Vec::new();
    };
    let Ok(pipeline) = ferry_config::parse(std::path::Path::new("ferry.yml"), &release.config)
    else {
        return Vec::new();
    };
    pipeline
        .deploy
        .map(|d| {
            d.environments
                .values()
                .map(|e| {
                    (
                        e.name.clone(),
                        e.approval.is_some(),
                        strategy_name(&e.strategy),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads what the pages show of `service`; `live_all` is [`Store::live_envs`].
pub(in crate::ui) async fn load(
    store: &Store,
    service: Service,
    live_all: &[LiveEnv],
) -> Result<ServiceView, DbError> {
    let releases = store.releases(&service.name, RELEASES_SHOWN).await?;
    let deploys = store
        .deploys(&DeployQuery {
            service: Some(service.name.clone()),
            limit: Some(DEPLOYS_SHOWN),
            ..Default::default()
        })
        .await?;
    let live: Vec<&LiveEnv> = live_all
        .iter()
        .filter(|l| l.service == service.name)
        .collect();

    let mut names: Vec<(String, bool, Option<&'static str>)> = declared_envs(releases.first())
        .into_iter()
        .map(|(n, a, s)| (n, a, Some(s)))
        .collect();
    // Environments no longer declared still show while something runs or ran there.
    let mut extra: Vec<String> = live
        .iter()
        .map(|l| l.environment.clone())
        .chain(deploys.iter().map(|d| d.environment.clone()))
        .filter(|e| !names.iter().any(|(n, _, _)| n == e))
        .collect();
    extra.sort();
    extra.dedup();
    names.extend(extra.into_iter().map(|e| (e, false, None)));

    let mut envs = Vec::with_capacity(names.len());
    for (name, approval, strategy) in names {
        let live = live
            .iter()
            .find(|l| l.environment == name)
            .map(|l| (*l).clone());
        let last = deploys.iter().find(|d| d.environment == name).cloned();
        let (mut live_release, mut live_deploy, mut rollback_to) = (None, None, None);
        if let Some(l) = &live {
            live_release = find_release(store, &releases, l.release_id).await?;
            live_deploy = match deploys.iter().find(|d| d.id == l.deploy_id) {
                Some(d) => Some(d.clone()),
                None => match store.deploy(l.deploy_id).await {
                    Ok(d) => Some(d),
                    Err(DbError::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                },
            };
            let previous = l
                .previous
                .as_ref()
                .map(|w| w.release_id)
                .or_else(|| live_deploy.as_ref().and_then(|d| d.previous_release_id))
                .filter(|id| *id != l.release_id);
            if let Some(id) = previous {
                rollback_to = find_release(store, &releases, id).await?;
            }
        }
        envs.push(EnvView {
            name,
            approval,
            strategy,
            live,
            live_release,
            live_deploy,
            rollback_to,
            last,
        });
    }
    Ok(ServiceView {
        service,
        releases,
        envs,
        deploys,
    })
}

/// Reads one service, or a page saying it does not exist.
pub(in crate::ui) async fn service_view(store: &Store, name: &str) -> Result<ServiceView, UiError> {
    let service = match store.service(name).await {
        Ok(s) => s,
        Err(DbError::NotFound { .. }) => {
            return Err(UiError::NotFound(format!(
                "service `{name}` not found: see /services for the services Ferry knows"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let live = store.live_envs().await?;
    Ok(load(store, service, &live).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::db::ReleaseArtifact;

    #[test]
    fn environments_come_in_promotion_order_from_the_release_config() {
        let config = r#"name: shop
jobs:
  build:
    steps:
      - run: echo build
deploy:
  name: shop
  command: ./shop
  port: 8080
  environments:
    staging:
      strategy: blue-green
    production:
      strategy: rolling
      approval: true
"#;
        let release = Release {
            id: 1,
            project: "shop".into(),
            service: "shop".into(),
            number: 1,
            sha: "a".repeat(40),
            artifact: ReleaseArtifact::Image {
                reference: "shop:1".into(),
            },
            config: config.into(),
            env: Default::default(),
            run_id: None,
            created_by: "ferry".into(),
            created_at: 0,
        };
        assert_eq!(
            declared_envs(Some(&release)),
            vec![
                ("staging".to_owned(), false, "blue-green"),
                ("production".to_owned(), true, "rolling"),
            ]
        );
        assert!(declared_envs(None).is_empty());
    }
}
