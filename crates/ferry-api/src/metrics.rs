//! `/metrics`: Ferry's own metrics in the Prometheus text format (OpenMetrics).
//!
//! Counts come from the store at scrape time, so they are right across restarts and
//! with several servers on one database: runs and jobs by status, the queue depth and
//! the agents seen lately. Duration histograms are this process's observations: at
//! each scrape the event log is read from where the last scrape stopped, and every
//! run or job that finished since this process started is observed once.

use crate::AppState;
use crate::auth;
use crate::error::ApiError;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferry_store::db::{EventQuery, Store, now_ms};
use ferry_types::{EventKind, JobStatus, Role, RunStatus};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// An agent counts as connected if it claimed or renewed within this window (a
/// long-poll lasts up to 30 s).
const CONNECTED_WINDOW: Duration = Duration::from_secs(90);

/// Bucket bounds of the duration histograms, in seconds.
const BUCKETS: [f64; 14] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];

type Status = [(&'static str, &'static str); 1];

/// Builds the histograms of a family.
#[derive(Debug, Clone, Copy)]
struct Buckets;

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(BUCKETS)
    }
}

/// The registry and where the duration observations stopped.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<Status, Gauge>,
    jobs: Family<Status, Gauge>,
    run_duration: Family<Status, Histogram, Buckets>,
    job_duration: Family<Status, Histogram, Buckets>,
    queue_depth: Gauge,
    agents: Gauge,
    /// Unix ms this process started: earlier finishes are not observed.
    started_ms: i64,
    /// The id of the last event looked at.
    cursor: tokio::sync::Mutex<i64>,
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ferry");
        let runs = Family::<Status, Gauge>::default();
        let jobs = Family::<Status, Gauge>::default();
        let run_duration = Family::new_with_constructor(Buckets);
        let job_duration = Family::new_with_constructor(Buckets);
        let queue_depth = Gauge::default();
        let agents = Gauge::default();
        registry.register("runs", "Runs in the store, by status", runs.clone());
        registry.register("jobs", "Jobs in the store, by status", jobs.clone());
        registry.register(
            "run_duration_seconds",
            "Time from a run's first job starting to its end, by final status",
            run_duration.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Time from a job's last start to its end, by final status",
            job_duration.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs waiting in the queue for an executor",
            queue_depth.clone(),
        );
        registry.register(
            "agents_connected",
            "Remote agents that claimed work or renewed a lease in the last 90 seconds",
            agents.clone(),
        );
        Metrics {
            registry,
            runs,
            jobs,
            run_duration,
            job_duration,
            queue_depth,
            agents,
            started_ms: now_ms(),
            cursor: tokio::sync::Mutex::new(0),
        }
    }

    /// Brings every metric up to date and renders the exposition.
    pub async fn render(&self, store: &Store) -> Result<String, ferry_store::db::DbError> {
        let runs = store.count_runs_by_status().await?;
        for status in RunStatus::ALL {
            let n = runs
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            self.runs
                .get_or_create(&[("status", status.as_str())])
                .set(n);
        }
        let jobs = store.count_jobs_by_status().await?;
        for status in JobStatus::ALL {
            let n = jobs
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            self.jobs
                .get_or_create(&[("status", status.as_str())])
                .set(n);
        }
        self.queue_depth.set(store.queue_depth().await?);
        let window = i64::try_from(CONNECTED_WINDOW.as_millis()).unwrap_or(i64::MAX);
        self.agents
            .set(store.agents_seen_since(now_ms() - window).await?);
        self.observe_durations(store).await?;
        let mut out = String::new();
        encode(&mut out, &self.registry).map_err(|e| {
            ferry_store::db::DbError::Invalid(format!("encoding metrics failed: {e}"))
        })?;
        Ok(out)
    }

    /// Observes the runs and jobs that finished since the last scrape.
    async fn observe_durations(&self, store: &Store) -> Result<(), ferry_store::db::DbError> {
        const PAGE: i64 = 500;
        let mut cursor = self.cursor.lock().await;
        loop {
            let events = store
                .list_events(&EventQuery {
                    after_id: Some(*cursor),
                    since_ms: Some(self.started_ms),
                    limit: PAGE,
                    ..EventQuery::default()
                })
                .await?;
            for e in &events {
                match e.kind {
                    EventKind::RunFinished | EventKind::RunCancelled => {
                        let Some(run) = (match e.run_id {
                            Some(id) => store.get_run(id).await?,
                            None => None,
                        }) else {
                            continue;
                        };
                        if let (Some(start), Some(end)) = (run.started_at, run.finished_at) {
                            self.run_duration
                                .get_or_create(&[("status", run.status.as_str())])
                                .observe(seconds(end - start));
                        }
                    }
                    EventKind::JobFinished => {
                        let Some(job_id) = e.data.get("job_id").and_then(serde_json::Value::as_i64)
                        else {
                            continue;
                        };
                        let Some(job) = store.get_job(job_id).await? else {
                            continue;
                        };
                        if let (Some(start), Some(end)) = (job.started_at, job.finished_at) {
                            self.job_duration
                                .get_or_create(&[("status", job.status.as_str())])
                                .observe(seconds(end - start));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(last) = events.last() {
                *cursor = last.id;
            }
            if (events.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !state.config().metrics_public {
        auth::check(&state, &headers, Role::Viewer).await?;
    }
    let mut text = state.metrics.render(state.core.store()).await?;
    if let Some(proxy) = state.core.deployer().proxy() {
        text = with_proxy(text, &proxy.render_metrics());
    }
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// Ferry's exposition with the edge proxy's families appended before the one
/// `# EOF` line that ends an OpenMetrics exposition.
///
/// Ferry's own part is OpenMetrics (what `prometheus_client` writes, and what
/// Prometheus asks for first), where a counter family is named without its `_total`
/// sample suffix: a proxy family written the classic way (`# TYPE x_total counter`)
/// is renamed to match, or an OpenMetrics parser would reject the whole scrape.
fn with_proxy(ferry: String, proxy: &str) -> String {
    let mut text = match ferry.strip_suffix("# EOF\n") {
        Some(body) => body.to_owned(),
        None => ferry,
    };
    let counters: Vec<&str> = proxy
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .filter(|name| name.ends_with("_total"))
        .collect();
    for line in proxy.lines().filter(|l| l.trim() != "# EOF") {
        let meta = ["# TYPE ", "# HELP "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
        match meta {
            Some((prefix, rest))
                if counters
                    .iter()
                    .any(|c| rest.strip_prefix(c).is_some_and(|r| r.starts_with(' '))) =>
            {
                let (name, after) = rest.split_once(' ').unwrap_or((rest, ""));
                text.push_str(prefix);
                text.push_str(name.strip_suffix("_total").unwrap_or(name));
                text.push(' ');
                text.push_str(after);
            }
            _ => text.push_str(line),
        }
        text.push('\n');
    }
    text.push_str("# EOF\n");
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn proxy_families_go_before_the_one_eof_named_the_openmetrics_way() {
        let text = super::with_proxy(
            "# TYPE ferry_runs gauge\nferry_runs{status=\"queued\"} 0\n# EOF\n".to_owned(),
            "# HELP ferry_proxy_requests_total Requests answered.\n\
             # TYPE ferry_proxy_requests_total counter\n\
             ferry_proxy_requests_total{service=\"web\",release=\"v1\"} 3\n\
             # TYPE ferry_proxy_request_duration_seconds histogram\n\
             ferry_proxy_request_duration_seconds_count{service=\"web\",release=\"v1\"} 3\n",
        );
        assert_eq!(
            text,
            "# TYPE ferry_runs gauge\nferry_runs{status=\"queued\"} 0\n\
             # HELP ferry_proxy_requests Requests answered.\n\
             # TYPE ferry_proxy_requests counter\n\
             ferry_proxy_requests_total{service=\"web\",release=\"v1\"} 3\n\
             # TYPE ferry_proxy_request_duration_seconds histogram\n\
             ferry_proxy_request_duration_seconds_count{service=\"web\",release=\"v1\"} 3\n\
             # EOF\n"
        );
    }
}
