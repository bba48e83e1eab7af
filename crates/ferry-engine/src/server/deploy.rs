//! Deploys asked for by pipeline jobs (`deploy: ENV`): the release is made from the
//! job's commit and artifacts, deployed, and waited for.

use super::{Core, CoreError};
use crate::ci::{JobDeploy, JobDeployOutcome};
use crate::deploy::{DeployError, DeployRequest, ReleaseRequest};
use ferry_store::db::ReleaseArtifact;
use ferry_types::DeployState;

impl Core {
    /// Releases what job `job` of run `run_id` built and deploys it to
    /// `request.environment`, waiting until the deploy ends. Called by the built-in
    /// executor and, through the API, by agents.
    ///
    /// The release's tarball is the job's stored artifacts when it declared any, else
    /// the commit's source; a service with `image:` runs the image the steps built.
    /// The same commit and artifact reuse their release, so a re-run does not number a
    /// new one.
    pub async fn job_deploy(
        &self,
        run_id: i64,
        job: &str,
        request: &JobDeploy,
    ) -> Result<JobDeployOutcome, CoreError> {
        let run = self
            .store()
            .get_run(run_id)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                what: "run",
                key: run_id.to_string(),
            })?;
        let (artifact, source) = match &request.artifact {
            Some(digest) => (
                Some(ReleaseArtifact::Tarball {
                    digest: digest.clone(),
                }),
                None,
            ),
            None => (None, Some(self.source_archive(run_id).await?)),
        };
        let deployer = self.deployer();
        let release = deployer
            .create_release(ReleaseRequest {
                project: run.project.clone(),
                sha: run.sha.clone(),
                config: run.pipeline.clone(),
                artifact,
                source,
                branch: run.branch.clone(),
                tag: run.tag.clone(),
                run_id: Some(run_id),
                created_by: format!("run #{run_id}"),
            })
            .await
            .map_err(deploy_error)?;
        let deploy = deployer
            .deploy(DeployRequest {
                service: release.service.clone(),
                environment: request.environment.clone(),
                release: Some(release.number),
                requested_by: format!("run #{run_id}"),
                run_id: Some(run_id),
                job: Some(job.to_string()),
            })
            .await
            .map_err(deploy_error)?;
        let done = deployer.wait(deploy.id).await.map_err(deploy_error)?;
        let mut lines: Vec<String> = self
            .store()
            .deploy_steps(deploy.id)
            .await?
            .into_iter()
            .map(|s| format!("deploy {}: {}: {}", deploy.id, s.phase, s.message))
            .collect();
        if let Some(reason) = &done.reason {
            lines.push(format!("deploy {} {}: {reason}", deploy.id, done.state));
        }
        Ok(JobDeployOutcome {
            deploy_id: deploy.id,
            release: release.name(),
            succeeded: done.state == DeployState::Succeeded,
            lines,
        })
    }
}

fn deploy_error(e: DeployError) -> CoreError {
    match e {
        DeployError::NotFound { what, key } => CoreError::NotFound { what, key },
        DeployError::Store(e) => CoreError::Store(e),
        other => CoreError::Invalid(other.to_string()),
    }
}
