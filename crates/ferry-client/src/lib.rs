//! A typed client of Ferry's HTTP API, used by the CLI, agents and tests.
//!
//! [`Client`] has one method per route of `/api/v1` (plus `/healthz`, `/readyz` and
//! `/metrics`); requests and answers are the wire types of [`ferry_types::api`]. Live
//! streams ([`Client::follow_logs`], [`Client::follow_events`]) are server-sent events
//! parsed by the small parser in [`sse`]. Every failure is a [`ClientError`] that
//! carries the server's `error` and `hint` and the HTTP status, so a CLI can print the
//! hint and map 4xx answers to its "bad input" exit code.
//!
//! The client speaks plain HTTP (the server listens on 127.0.0.1 by default) and pulls
//! in no database code, so the agent binary that uses it stays small.
#![deny(missing_docs)]

mod deploys;
mod error;
mod files;
pub mod sse;
mod streams;

pub use deploys::DeployFilter;
pub use error::ClientError;
/// The wire types the methods take and return.
pub use ferry_types::api;
pub use streams::{EventStream, Followed, LogStream, LogStreamItem};

use ferry_types::Role;
use ferry_types::api::{
    Agent, Assignment, ClaimRequest, CreatedToken, Event, FinishRequest, Health, Heartbeat, Job,
    Lease, LogAppend, LogAppended, LogPage, NewProject, NewToken, Project, Renewal, RerunRequest,
    Run, RunDetail, TokenInfo, TriggerRequest, TriggerResponse,
};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long an ordinary call may take before it fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest long-poll the server holds a claim for.
pub const MAX_CLAIM_WAIT: Duration = Duration::from_secs(30);

/// Which events to list or follow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventFilter {
    /// Only this project's events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Only this run's events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    /// Only events at or after this time, unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Only events with an id greater than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// At most this many (the server's default is 100). Without `since` or `after`, the
    /// newest ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// A page of a job's log to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogQuery {
    /// The job instance; may be left out when the run has one job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The first line number (from 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// At most this many lines (the server's default is 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// A handle to one Ferry server; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`) sending
    /// `token` as its bearer token; an empty token sends none (for `/healthz`).
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<Client, ClientError> {
        Client::with_ca(base_url, token, None)
    }

    /// As [`Client::new`]; an `https` server's certificate is checked against the
    /// system's trusted CAs and, with `ca_file`, the PEM certificates in it too (a
    /// private CA, or a self-signed server certificate).
    pub fn with_ca(
        base_url: &str,
        token: impl Into<String>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Client, ClientError> {
        let base = base_url.trim_end_matches('/').to_owned();
        if reqwest::Url::parse(&base).is_err() {
            return Err(ClientError::BadUrl(base_url.to_owned()));
        }
        // Ferry's one TLS implementation is rustls on ring; installing it a second
        // time (another client) is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        if let Some(path) = ca_file {
            let bad = |reason: String| ClientError::CaCert {
                path: path.to_owned(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(format!("not PEM certificates ({e})")))?;
            if certs.is_empty() {
                return Err(bad("it holds no `BEGIN CERTIFICATE` section".to_owned()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|source| ClientError::Connect {
            url: base.clone(),
            source,
        })?;
        let token = token.into();
        Ok(Client {
            http,
            base,
            token: (!token.is_empty()).then_some(token),
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    // -- plumbing -----------------------------------------------------------------

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends a request and returns the response when its status is a success.
    async fn send(&self, rb: RequestBuilder, path: &str) -> Result<reqwest::Response, ClientError> {
        let url = self.url(path);
        let response = rb.send().await.map_err(|source| ClientError::Connect {
            url: url.clone(),
            source,
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|source| ClientError::Connect { url, source })?;
        Err(ClientError::from_answer(status, &body))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        rb: RequestBuilder,
        path: &str,
    ) -> Result<T, ClientError> {
        let response = self.send(rb.timeout(CALL_TIMEOUT), path).await?;
        decode(response, &self.url(path)).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(self.request(Method::GET, path), path).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.json(self.request(Method::POST, path).json(body), path)
            .await
    }

    async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send(
            self.request(Method::DELETE, path).timeout(CALL_TIMEOUT),
            path,
        )
        .await
        .map(drop)
    }

    // -- health -------------------------------------------------------------------

    /// `GET /healthz`: the process is up.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get("/healthz").await
    }

    /// `GET /readyz`: the server can reach its store.
    pub async fn ready(&self) -> Result<Health, ClientError> {
        self.get("/readyz").await
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let path = "/metrics";
        let response = self
            .send(self.request(Method::GET, path).timeout(CALL_TIMEOUT), path)
            .await?;
        response.text().await.map_err(|e| ClientError::Decode {
            url: self.url(path),
            message: e.to_string(),
        })
    }

    /// `GET /api/v1/openapi.json`: the API's OpenAPI document.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/api/v1/openapi.json").await
    }

    // -- projects -----------------------------------------------------------------

    /// `GET /api/v1/projects`.
    pub async fn projects(&self) -> Result<Vec<Project>, ClientError> {
        self.get("/api/v1/projects").await
    }

    /// `POST /api/v1/projects`: registers a project.
    pub async fn add_project(&self, project: &NewProject) -> Result<Project, ClientError> {
        self.post("/api/v1/projects", project).await
    }

    /// `GET /api/v1/projects/{name}`.
    pub async fn project(&self, name: &str) -> Result<Project, ClientError> {
        self.get(&format!("/api/v1/projects/{}", seg(name))).await
    }

    /// `DELETE /api/v1/projects/{name}`: removes a project with its runs.
    pub async fn remove_project(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/projects/{}", seg(name)))
            .await
    }

    // -- runs ---------------------------------------------------------------------

    /// `GET /api/v1/runs?project=&limit=`: the newest runs first.
    pub async fn runs(
        &self,
        project: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<Run>, ClientError> {
        #[derive(Serialize)]
        struct Q<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            project: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            limit: Option<i64>,
        }
        let path = "/api/v1/runs";
        self.json(
            self.request(Method::GET, path).query(&Q { project, limit }),
            path,
        )
        .await
    }

    /// `POST /api/v1/projects/{name}/runs`: starts a run (or says which `on` filter
    /// excludes it).
    pub async fn trigger(
        &self,
        project: &str,
        request: &TriggerRequest,
    ) -> Result<TriggerResponse, ClientError> {
        self.post(&format!("/api/v1/projects/{}/runs", seg(project)), request)
            .await
    }

    /// `GET /api/v1/runs/{id}`: the run, its jobs and its pipeline.
    pub async fn run(&self, id: i64) -> Result<RunDetail, ClientError> {
        self.get(&format!("/api/v1/runs/{id}")).await
    }

    /// `POST /api/v1/runs/{id}/cancel`; answers the run as it is afterwards.
    pub async fn cancel(&self, id: i64) -> Result<RunDetail, ClientError> {
        self.post(&format!("/api/v1/runs/{id}/cancel"), &serde_json::json!({}))
            .await
    }

    /// `POST /api/v1/runs/{id}/jobs/{job}/approve`; answers the approved job.
    pub async fn approve(&self, id: i64, job: &str) -> Result<Job, ClientError> {
        self.post(
            &format!("/api/v1/runs/{id}/jobs/{}/approve", seg(job)),
            &serde_json::json!({}),
        )
        .await
    }

    /// `POST /api/v1/runs/{id}/rerun`: a new run of the same commit.
    pub async fn rerun(&self, id: i64, failed_only: bool) -> Result<Run, ClientError> {
        self.post(
            &format!("/api/v1/runs/{id}/rerun"),
            &RerunRequest { failed_only },
        )
        .await
    }

    // -- logs ---------------------------------------------------------------------

    /// `GET /api/v1/runs/{id}/logs?job=&from=&limit=`: one page of a job's log.
    pub async fn logs(&self, run: i64, query: &LogQuery) -> Result<LogPage, ClientError> {
        let path = format!("/api/v1/runs/{run}/logs");
        self.json(self.request(Method::GET, &path).query(query), &path)
            .await
    }

    /// `GET /api/v1/runs/{id}/logs?follow=true`: the log from line `from` on, then live
    /// lines until the job (or, without `job`, every job of the run) ends.
    pub async fn follow_logs(
        &self,
        run: i64,
        job: Option<&str>,
        from: i64,
    ) -> Result<LogStream, ClientError> {
        let path = format!("/api/v1/runs/{run}/logs");
        let mut query: Vec<(&str, String)> =
            vec![("follow", "true".into()), ("from", from.to_string())];
        if let Some(job) = job {
            query.push(("job", job.to_owned()));
        }
        let response = self
            .send(self.request(Method::GET, &path).query(&query), &path)
            .await?;
        Ok(LogStream::new(response, self.url(&path)))
    }

    // -- events -------------------------------------------------------------------

    /// `GET /api/v1/events`: events, oldest first.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, ClientError> {
        let path = "/api/v1/events";
        self.json(self.request(Method::GET, path).query(filter), path)
            .await
    }

    /// `GET /api/v1/events?follow=true`: the events the filter selects, then new ones
    /// as they are appended, until the stream is dropped or the server stops.
    pub async fn follow_events(&self, filter: &EventFilter) -> Result<EventStream, ClientError> {
        let path = "/api/v1/events";
        let response = self
            .send(
                self.request(Method::GET, path)
                    .query(filter)
                    .query(&[("follow", "true")]),
                path,
            )
            .await?;
        Ok(EventStream::new(response, self.url(path)))
    }

    // -- tokens -------------------------------------------------------------------

    /// `GET /api/v1/tokens` (admin): every token, revoked ones included.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        self.get("/api/v1/tokens").await
    }

    /// `POST /api/v1/tokens` (admin): a new token, shown only in this answer.
    pub async fn create_token(&self, name: &str, role: Role) -> Result<CreatedToken, ClientError> {
        self.post(
            "/api/v1/tokens",
            &NewToken {
                name: name.to_owned(),
                role,
            },
        )
        .await
    }

    /// `DELETE /api/v1/tokens/{id}` (admin): revokes a token.
    pub async fn revoke_token(&self, id: i64) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/tokens/{id}")).await
    }

    // -- agents -------------------------------------------------------------------

    /// `GET /api/v1/agents`: agents the server has seen, with when.
    pub async fn agents(&self) -> Result<Vec<Agent>, ClientError> {
        self.get("/api/v1/agents").await
    }

    /// `POST /api/v1/agents/claim`: a job for this agent, waiting up to
    /// `request.wait_ms` (at most [`MAX_CLAIM_WAIT`]) for one; `None` when nothing came.
    pub async fn claim(&self, request: &ClaimRequest) -> Result<Option<Assignment>, ClientError> {
        let path = "/api/v1/agents/claim";
        let wait = Duration::from_millis(request.wait_ms).min(MAX_CLAIM_WAIT);
        let response = self
            .send(
                self.request(Method::POST, path)
                    .json(request)
                    .timeout(wait + CALL_TIMEOUT),
                path,
            )
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        decode(response, &self.url(path)).await.map(Some)
    }

    /// `POST /api/v1/agents/jobs/{job_id}/heartbeat`: renews the lease. A 409 answer
    /// means the lease is lost: stop working on the job.
    pub async fn heartbeat(&self, lease: &Lease) -> Result<Renewal, ClientError> {
        self.post(
            &format!("/api/v1/agents/jobs/{}/heartbeat", lease.job_id),
            &Heartbeat {
                lease: lease.clone(),
            },
        )
        .await
    }

    /// `POST /api/v1/agents/jobs/{job_id}/logs`: appends lines of one step.
    pub async fn append_log(&self, append: &LogAppend) -> Result<LogAppended, ClientError> {
        self.post(
            &format!("/api/v1/agents/jobs/{}/logs", append.lease.job_id),
            append,
        )
        .await
    }

    /// `POST /api/v1/agents/jobs/{job_id}/finish`: reports how the attempt ended.
    pub async fn finish(&self, finish: &FinishRequest) -> Result<(), ClientError> {
        let path = format!("/api/v1/agents/jobs/{}/finish", finish.lease.job_id);
        self.send(
            self.request(Method::POST, &path)
                .json(finish)
                .timeout(CALL_TIMEOUT),
            &path,
        )
        .await
        .map(drop)
    }
}

/// Reads a JSON answer.
async fn decode<T: DeserializeOwned>(
    response: reqwest::Response,
    url: &str,
) -> Result<T, ClientError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|source| ClientError::Connect {
            url: url.to_owned(),
            source,
        })?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
        url: url.to_owned(),
        message: e.to_string(),
    })
}

/// A path segment with the characters that would change the path escaped.
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
