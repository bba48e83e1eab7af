//! Deploys asked for by pipeline jobs (`deploy: ENV`): the release is made from the
//! job's commit and artifacts, deployed, and waited for.

use super::{Core, CoreError};
use crate::ci::{JobDeploy, JobDeployOutcome};

impl Core {
    /// Releases what job `job` of run `run_id` built and deploys it to
    /// `request.environment`, waiting until the deploy ends. Called by the built-in
    /// executor and, through the API, by agents.
    pub async fn job_deploy(
        &self,
        run_id: i64,
        job: &str,
        request: &JobDeploy,
    ) -> Result<JobDeployOutcome, CoreError> {
        let _ = (run_id, job, request);
        Err(CoreError::Invalid(
            "deploys from jobs are not built yet".into(),
        ))
    }
}
