//! The `docker` target (to be written).

use super::{Instance, InstanceSpec, Target, TargetError};
use std::time::Duration;

/// The `docker` target.
#[derive(Debug, Clone, Default)]
pub struct DockerTarget {}

impl Target for DockerTarget {
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance, TargetError> {
        Err(TargetError::Start(format!(
            "the docker target is not built yet ({})",
            spec.service
        )))
    }

    async fn stop(&self, _instance: &Instance, _grace: Duration) -> Result<(), TargetError> {
        Err(TargetError::Stop(
            "the docker target is not built yet".into(),
        ))
    }

    async fn alive(&self, _instance: &Instance) -> bool {
        false
    }

    async fn sweep(
        &self,
        _service: &str,
        _environment: &str,
        _keep: &[Instance],
    ) -> Result<Vec<String>, TargetError> {
        Ok(Vec::new())
    }
}
