//! The deploy routes: services, releases, deploys, and the agents' job deploy.

use crate::{CALL_TIMEOUT, Client, ClientError, MAX_CLAIM_WAIT, decode, seg};
use ferry_types::api::{
    DeployDetail, DeployInfo, DeployRequest, InstanceOutput, JobDeployAnswer, JobDeployRequest,
    PromoteRequest, ReleaseInfo, RollbackRequest, ServiceInfo,
};
use reqwest::Method;
use serde::Serialize;
use std::time::Duration;

/// Which deploys to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeployFilter {
    /// Only this service's deploys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Only deploys to this environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Only deploys that have not ended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub active: bool,
    /// At most this many (the server's default is 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

impl Client {
    /// `GET /api/v1/services`: every service with its environments.
    pub async fn services(&self) -> Result<Vec<ServiceInfo>, ClientError> {
        self.get("/api/v1/services").await
    }

    /// `GET /api/v1/services/{name}`: each environment's live and warm release and
    /// last deploy.
    pub async fn service(&self, name: &str) -> Result<ServiceInfo, ClientError> {
        self.get(&format!("/api/v1/services/{}", seg(name))).await
    }

    /// `GET /api/v1/services/{name}/environments/{env}/output?lines=`: the last lines
    /// of output of each live instance.
    pub async fn instance_output(
        &self,
        service: &str,
        environment: &str,
        lines: Option<usize>,
    ) -> Result<Vec<InstanceOutput>, ClientError> {
        let path = format!(
            "/api/v1/services/{}/environments/{}/output",
            seg(service),
            seg(environment)
        );
        let query: Vec<(&str, String)> = lines
            .map(|l| ("lines", l.to_string()))
            .into_iter()
            .collect();
        self.json(self.request(Method::GET, &path).query(&query), &path)
            .await
    }

    /// `GET /api/v1/services/{name}/releases?limit=`: the newest releases first.
    pub async fn releases(
        &self,
        service: &str,
        limit: Option<i64>,
    ) -> Result<Vec<ReleaseInfo>, ClientError> {
        let path = format!("/api/v1/services/{}/releases", seg(service));
        let query: Vec<(&str, String)> = limit
            .map(|l| ("limit", l.to_string()))
            .into_iter()
            .collect();
        self.json(self.request(Method::GET, &path).query(&query), &path)
            .await
    }

    /// `POST /api/v1/services/{name}/deploys`: queues a deploy of a release (the
    /// newest when `request.release` is None) to an environment.
    pub async fn deploy(
        &self,
        service: &str,
        request: &DeployRequest,
    ) -> Result<DeployInfo, ClientError> {
        self.post(
            &format!("/api/v1/services/{}/deploys", seg(service)),
            request,
        )
        .await
    }

    /// `POST /api/v1/services/{name}/promote`: deploys the release live in
    /// `request.from` to `request.to`.
    pub async fn promote(
        &self,
        service: &str,
        request: &PromoteRequest,
    ) -> Result<DeployInfo, ClientError> {
        self.post(
            &format!("/api/v1/services/{}/promote", seg(service)),
            request,
        )
        .await
    }

    /// `POST /api/v1/services/{name}/rollback` (operator): deploys an earlier release.
    pub async fn rollback(
        &self,
        service: &str,
        request: &RollbackRequest,
    ) -> Result<DeployInfo, ClientError> {
        self.post(
            &format!("/api/v1/services/{}/rollback", seg(service)),
            request,
        )
        .await
    }

    /// `GET /api/v1/deploys`: the newest deploys first.
    pub async fn deploys(&self, filter: &DeployFilter) -> Result<Vec<DeployInfo>, ClientError> {
        let path = "/api/v1/deploys";
        self.json(self.request(Method::GET, path).query(filter), path)
            .await
    }

    /// `GET /api/v1/deploys/{id}`: a deploy with its progress lines.
    pub async fn deploy_detail(&self, id: i64) -> Result<DeployDetail, ClientError> {
        self.get(&format!("/api/v1/deploys/{id}")).await
    }

    /// `POST /api/v1/deploys/{id}/approve` (operator).
    pub async fn approve_deploy(&self, id: i64) -> Result<DeployDetail, ClientError> {
        self.post(
            &format!("/api/v1/deploys/{id}/approve"),
            &serde_json::json!({}),
        )
        .await
    }

    /// `POST /api/v1/deploys/{id}/cancel`.
    pub async fn cancel_deploy(&self, id: i64) -> Result<DeployDetail, ClientError> {
        self.post(
            &format!("/api/v1/deploys/{id}/cancel"),
            &serde_json::json!({}),
        )
        .await
    }

    /// `POST /api/v1/agents/jobs/{job_id}/deploy`: asks the server to release and
    /// deploy what the job built, waiting up to `request.wait_ms` (at most
    /// [`MAX_CLAIM_WAIT`]); [`JobDeployAnswer::Deploying`] means "send it again".
    pub async fn job_deploy(
        &self,
        request: &JobDeployRequest,
    ) -> Result<JobDeployAnswer, ClientError> {
        let path = format!("/api/v1/agents/jobs/{}/deploy", request.lease.job_id);
        let wait = Duration::from_millis(request.wait_ms).min(MAX_CLAIM_WAIT);
        let response = self
            .send(
                self.request(Method::POST, &path)
                    .json(request)
                    .timeout(wait + CALL_TIMEOUT),
                &path,
            )
            .await?;
        decode(response, &self.url(&path)).await
    }
}
