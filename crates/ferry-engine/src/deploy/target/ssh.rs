//! The `ssh` target (to be written).

use super::{Instance, InstanceSpec, Target, TargetError};
use std::time::Duration;

/// The `ssh` target.
#[derive(Debug, Clone, Default)]
pub struct SshTarget {}

impl Target for SshTarget {
    async fn start(&self, spec: &InstanceSpec) -> Result<Instance, TargetError> {
        Err(TargetError::Start(format!(
            "the ssh target is not built yet ({})",
            spec.service
        )))
    }

    async fn stop(&self, _instance: &Instance, _grace: Duration) -> Result<(), TargetError> {
        Err(TargetError::Stop("the ssh target is not built yet".into()))
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
