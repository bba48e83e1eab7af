//! Releases as the engine uses them: the config snapshot compiled, the env rendered
//! and its secrets resolved, the artifact made runnable (a tarball unpacked once under
//! `<data_dir>/releases/<service>/v<n>/`), and the target picked — a [`Plan`].

use super::targets::{AnyTarget, Artifact, InstanceSpec, docker, process, ssh};
use super::{DeployConfig, Inner};
use ferry_config::model::{self, Environment};
use ferry_config::{EvalContext, RunFacts};
use ferry_store::BlobStore;
use ferry_store::db::{Release, ReleaseArtifact};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Marks a release directory as completely unpacked.
const UNPACKED: &str = ".ferry-unpacked";

/// Compiles a release's `ferry.yml` and returns its `deploy:` section.
pub(crate) fn parse_deploy(config: &str) -> Result<model::Deploy, String> {
    let pipeline = ferry_config::parse(Path::new("ferry.yml"), config)
        .map_err(|d| format!("the release's ferry.yml does not compile:\n{d}"))?;
    pipeline
        .deploy
        .ok_or_else(|| "ferry.yml has no `deploy:` section: add one to describe the service".into())
}

/// The `${{ ferry.* }}` facts of a release.
pub(crate) fn context(
    sha: &str,
    branch: Option<&str>,
    tag: Option<&str>,
    run_id: Option<i64>,
    service: &str,
) -> EvalContext {
    EvalContext {
        facts: RunFacts {
            sha: sha.to_owned(),
            short_sha: sha.chars().take(8).collect(),
            branch: branch.map(str::to_owned),
            tag: tag.map(str::to_owned),
            run_id: run_id.map(|r| r.to_string()).unwrap_or_default(),
            event: "deploy".into(),
            pipeline: service.to_owned(),
            job: String::new(),
            workspace: String::new(),
        },
        ..EvalContext::default()
    }
}

/// Renders `env` with `ctx`, except values referencing secrets: those stay templates
/// and are resolved at each deploy (a release never stores a secret).
pub(crate) fn snapshot_env<'a>(
    env: impl IntoIterator<Item = (&'a String, &'a String)>,
    ctx: &EvalContext,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in env {
        let value = if ferry_config::referenced_secrets(v).is_empty() {
            ferry_config::interpolate(v, ctx).map_err(|e| format!("`env.{k}`: {e}"))?
        } else {
            v.clone()
        };
        out.insert(k.clone(), value);
    }
    Ok(out)
}

/// The env of a deploy: the release's snapshot, the environment's `env` over it, with
/// every secret read from the secret store. A missing secret is an error naming it.
pub(crate) async fn resolve_env(
    data_dir: &Path,
    release: &Release,
    environment: &Environment,
) -> Result<BTreeMap<String, String>, String> {
    let mut ctx = context(&release.sha, None, None, release.run_id, &release.service);
    let mut env = release.env.clone();
    env.extend(snapshot_env(&environment.env, &ctx)?);
    let wanted: Vec<String> = env
        .values()
        .flat_map(|v| ferry_config::referenced_secrets(v))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if wanted.is_empty() {
        return Ok(env);
    }
    let dir = data_dir.to_path_buf();
    let names = wanted.clone();
    let values = tokio::task::spawn_blocking(move || {
        ferry_secrets::SecretStore::open(&dir).and_then(|s| s.get_many(names))
    })
    .await
    .map_err(|e| format!("reading secrets failed: {e}"))?
    .map_err(|e| format!("cannot read the secret store: {e}"))?;
    for name in &wanted {
        let Some(value) = values.get(name) else {
            return Err(format!(
                "secret `{name}` is not set: set it with `ferry secret set {name}`, then deploy again"
            ));
        };
        ctx.secrets
            .insert(name.clone(), String::from_utf8_lossy(value).into_owned());
    }
    for (k, v) in env.iter_mut() {
        if !ferry_config::referenced_secrets(v).is_empty() {
            *v = ferry_config::interpolate(v, &ctx).map_err(|e| format!("`env.{k}`: {e}"))?;
        }
    }
    Ok(env)
}

/// Where a release of `service` is unpacked (and where its steps run).
pub(crate) fn release_dir(data_dir: &Path, service: &str, number: i64) -> PathBuf {
    data_dir
        .join("releases")
        .join(service)
        .join(format!("v{number}"))
}

/// Makes the release runnable here: an image as it is; a tarball unpacked once.
pub(crate) async fn artifact(
    blobs: &BlobStore,
    data_dir: &Path,
    release: &Release,
) -> Result<Artifact, String> {
    let dir = release_dir(data_dir, &release.service, release.number);
    match &release.artifact {
        ReleaseArtifact::Image { reference } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Ok(Artifact::Image(reference.clone()))
        }
        ReleaseArtifact::Tarball { digest } => {
            let parsed: ferry_store::Digest = digest.parse().map_err(|e| format!("{e}"))?;
            let file = blobs.path_of(&parsed);
            if !dir.join(UNPACKED).exists() {
                let (file, dir) = (file.clone(), dir.clone());
                let name = release.name();
                tokio::task::spawn_blocking(move || unpack(&file, &dir))
                    .await
                    .map_err(|e| format!("unpacking release {name} failed: {e}"))?
                    .map_err(|e| format!("unpacking release {name} failed: {e}"))?;
            }
            Ok(Artifact::Tarball {
                file,
                dir,
                digest: digest.clone(),
            })
        }
    }
}

/// Unpacks `file` into `dir` through a temporary directory, so a crash never leaves a
/// half-unpacked release that looks complete.
fn unpack(file: &Path, dir: &Path) -> Result<(), String> {
    let parent = dir
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", dir.display()))?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(parent)
        .map_err(|e| format!("cannot create a directory in {}: {e}", parent.display()))?;
    let f = std::fs::File::open(file).map_err(|e| {
        format!(
            "the release's tarball {} cannot be read: {e} (was the blob store pruned?)",
            file.display()
        )
    })?;
    tar::Archive::new(f)
        .unpack(tmp.path())
        .map_err(|e| format!("{} is not a readable tar file: {e}", file.display()))?;
    std::fs::write(tmp.path().join(UNPACKED), b"")
        .map_err(|e| format!("cannot write to {}: {e}", tmp.path().display()))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, dir)
        .map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), dir.display()))
}

/// The target for an environment (a new handle: targets connect on first use).
pub(crate) fn target_for(env: &Environment, data_dir: &Path, config: &DeployConfig) -> AnyTarget {
    match env.target {
        model::Target::Process => {
            AnyTarget::Process(process::ProcessTarget::new(data_dir.join("instances")))
        }
        model::Target::Docker => {
            AnyTarget::Docker(docker::DockerTarget::new(docker::DockerOptions {
                docker_host: config.docker_host.clone(),
                hosts: env.hosts.clone(),
                ssh: config.ssh.clone(),
                ..docker::DockerOptions::default()
            }))
        }
        model::Target::Ssh => {
            AnyTarget::Ssh(ssh::SshTarget::new(env.hosts.clone(), config.ssh.clone()))
        }
    }
}

/// Everything a deploy of one release to one environment needs.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The release.
    pub release: Release,
    /// Its `deploy:` section.
    pub service: model::Deploy,
    /// The environment deployed to.
    pub environment: Environment,
    /// Where its instances run.
    pub target: AnyTarget,
    /// The env, secrets resolved.
    pub env: BTreeMap<String, String>,
    /// The runnable artifact.
    pub artifact: Artifact,
    /// Where steps run: the unpacked release (an empty directory for an image).
    pub dir: PathBuf,
    /// For rendering step templates.
    pub ctx: EvalContext,
}

impl Plan {
    /// Prepares release `release` for environment `environment`.
    pub(crate) async fn new(
        inner: &Inner,
        release: Release,
        environment: &str,
    ) -> Result<Plan, String> {
        let service = parse_deploy(&release.config)?;
        if service.name != release.service {
            return Err(format!(
                "release {} declares service `{}`, not `{}`",
                release.name(),
                service.name,
                release.service
            ));
        }
        let Some(env) = service.environments.get(environment).cloned() else {
            let known: Vec<&str> = service.environments.keys().map(String::as_str).collect();
            return Err(format!(
                "release {} of `{}` has no environment `{environment}` (it has: {})",
                release.name(),
                release.service,
                known.join(", ")
            ));
        };
        let vars = resolve_env(&inner.data_dir, &release, &env).await?;
        let artifact = artifact(&inner.blobs, &inner.data_dir, &release).await?;
        let dir = release_dir(&inner.data_dir, &release.service, release.number);
        let target = target_for(&env, &inner.data_dir, &inner.config);
        let mut ctx = context(&release.sha, None, None, release.run_id, &release.service);
        ctx.env = vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(Plan {
            release,
            service,
            environment: env,
            target,
            env: vars,
            artifact,
            dir,
            ctx,
        })
    }

    /// The spec of instance `index`.
    pub(crate) fn spec(&self, index: u32, host: Option<model::Host>) -> InstanceSpec {
        let command = match &self.service.run {
            model::Run::Command(c) => {
                Some(ferry_config::interpolate(c, &self.ctx).unwrap_or_else(|_| c.clone()))
            }
            model::Run::Image(_) => None,
        };
        // Each target sets `PORT` itself: the port it chose, or `port` in a container.
        let env = self.env.clone();
        InstanceSpec {
            service: self.release.service.clone(),
            environment: self.environment.name.clone(),
            release: self.release.name(),
            index,
            artifact: self.artifact.clone(),
            command,
            port: self.service.port,
            env,
            host,
            health_path: self
                .service
                .healthcheck
                .as_ref()
                .map_or_else(|| "/".to_owned(), |h| h.path.clone()),
        }
    }

    /// The host for instance `index`: the environment's hosts in turn, None for local.
    pub(crate) fn host(&self, index: u32) -> Option<model::Host> {
        let hosts = &self.environment.hosts;
        (!hosts.is_empty()).then(|| hosts[index as usize % hosts.len()].clone())
    }

    /// The proxy routes of the environment, `(host, path)`.
    pub(crate) fn routes(&self) -> Vec<(String, String)> {
        routes_of(&self.environment)
    }

    /// The health check (the default when the service has none).
    pub(crate) fn healthcheck(&self) -> model::Healthcheck {
        self.service.healthcheck.clone().unwrap_or_default()
    }
}

/// The `(host, path)` routes of an environment.
pub(crate) fn routes_of(environment: &Environment) -> Vec<(String, String)> {
    environment
        .routes
        .iter()
        .map(|r| (r.host.clone(), r.path.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_renders_facts_but_keeps_secret_templates() {
        let ctx = context("0123456789abcdef", Some("main"), None, Some(7), "shop");
        let env = indexmap::IndexMap::from([
            ("SHA".to_string(), "${{ ferry.short_sha }}".to_string()),
            ("DB".to_string(), "${{ secrets.DB_URL }}".to_string()),
        ]);
        let out = snapshot_env(&env, &ctx).unwrap();
        assert_eq!(out["SHA"], "01234567");
        assert_eq!(out["DB"], "${{ secrets.DB_URL }}");
    }
}
