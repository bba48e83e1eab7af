//! Requests, 5xx and latency per service and release: Prometheus text for `/metrics`
//! and windowed statistics for canary analysis.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Samples kept per release for [`Metrics::stats`]; older ones fall off.
const MAX_SAMPLES: usize = 50_000;
/// How far back [`Metrics::stats`] can look.
const MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// Statistics of one release over a time window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Requests answered in the window.
    pub requests: u64,
    /// Of those, answered with a 5xx status (including the proxy's own 502).
    pub errors: u64,
    /// `errors / requests`, 0 when there were no requests.
    pub error_rate: f64,
    /// The 95th percentile latency to the response head; zero without requests.
    pub p95: Duration,
}

#[derive(Debug, Default)]
struct Series {
    requests: u64,
    errors: u64,
    buckets: [u64; BUCKETS.len()],
    sum_seconds: f64,
    samples: VecDeque<(Instant, Duration, bool)>,
}

/// The metrics of every service and release, shared by the proxy's connections.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    series: Arc<Mutex<BTreeMap<(String, String), Series>>>,
}

impl Metrics {
    /// Records one answered request.
    pub fn record(&self, service: &str, release: &str, status: u16, latency: Duration) {
        let now = Instant::now();
        let error = status >= 500;
        let mut all = self
            .series
            .lock()
            .expect("metrics lock is never held across a panic");
        let s = all
            .entry((service.to_owned(), release.to_owned()))
            .or_default();
        s.requests += 1;
        s.errors += u64::from(error);
        let secs = latency.as_secs_f64();
        s.sum_seconds += secs;
        for (bound, count) in BUCKETS.iter().zip(s.buckets.iter_mut()) {
            if secs <= *bound {
                *count += 1;
            }
        }
        s.samples.push_back((now, latency, error));
        while s.samples.len() > MAX_SAMPLES
            || s.samples
                .front()
                .is_some_and(|(t, ..)| now.duration_since(*t) > MAX_AGE)
        {
            s.samples.pop_front();
        }
    }

    /// Requests, errors, error rate and p95 latency of `release` of `service` over the
    /// last `window` (at most 15 minutes and 50 000 requests are kept).
    pub fn stats(&self, service: &str, release: &str, window: Duration) -> Stats {
        let all = self
            .series
            .lock()
            .expect("metrics lock is never held across a panic");
        let Some(s) = all.get(&(service.to_owned(), release.to_owned())) else {
            return Stats {
                requests: 0,
                errors: 0,
                error_rate: 0.0,
                p95: Duration::ZERO,
            };
        };
        let since = Instant::now().checked_sub(window);
        let mut latencies = Vec::new();
        let mut errors = 0;
        for (t, latency, error) in s.samples.iter().rev() {
            if since.is_some_and(|since| *t < since) {
                break;
            }
            latencies.push(*latency);
            errors += u64::from(*error);
        }
        drop(all);
        let requests = latencies.len() as u64;
        latencies.sort_unstable();
        let p95 = if latencies.is_empty() {
            Duration::ZERO
        } else {
            latencies[(latencies.len() * 95).div_ceil(100) - 1]
        };
        let error_rate = if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        };
        Stats {
            requests,
            errors,
            error_rate,
            p95,
        }
    }

    /// Drops the series of a release that is gone for good (after its instances
    /// stopped and its numbers were used), so long-running servers keep bounded memory.
    pub fn forget(&self, service: &str, release: &str) {
        let mut all = self
            .series
            .lock()
            .expect("metrics lock is never held across a panic");
        all.remove(&(service.to_owned(), release.to_owned()));
    }

    /// Every series in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let all = self
            .series
            .lock()
            .expect("metrics lock is never held across a panic");
        let mut out = String::new();
        out.push_str(
            "# HELP ferry_proxy_requests_total Requests answered, by service and release.\n",
        );
        out.push_str("# TYPE ferry_proxy_requests_total counter\n");
        for ((service, release), s) in all.iter() {
            let l = labels(service, release);
            let _ = writeln!(out, "ferry_proxy_requests_total{{{l}}} {}", s.requests);
        }
        out.push_str("# HELP ferry_proxy_errors_total Requests answered with a 5xx status.\n");
        out.push_str("# TYPE ferry_proxy_errors_total counter\n");
        for ((service, release), s) in all.iter() {
            let l = labels(service, release);
            let _ = writeln!(out, "ferry_proxy_errors_total{{{l}}} {}", s.errors);
        }
        out.push_str("# HELP ferry_proxy_request_duration_seconds Time to the response head.\n");
        out.push_str("# TYPE ferry_proxy_request_duration_seconds histogram\n");
        for ((service, release), s) in all.iter() {
            let l = labels(service, release);
            for (bound, count) in BUCKETS.iter().zip(s.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "ferry_proxy_request_duration_seconds_bucket{{{l},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "ferry_proxy_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                s.requests
            );
            let _ = writeln!(
                out,
                "ferry_proxy_request_duration_seconds_sum{{{l}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "ferry_proxy_request_duration_seconds_count{{{l}}} {}",
                s.requests
            );
        }
        out
    }
}

fn labels(service: &str, release: &str) -> String {
    format!(
        "service=\"{}\",release=\"{}\"",
        escape(service),
        escape(release)
    )
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_errors_and_p95_in_window() {
        let m = Metrics::default();
        for i in 1..=100 {
            let status = if i <= 5 { 503 } else { 200 };
            m.record("web", "v2", status, Duration::from_millis(i));
        }
        let s = m.stats("web", "v2", Duration::from_secs(60));
        assert_eq!(s.requests, 100);
        assert_eq!(s.errors, 5);
        assert!((s.error_rate - 0.05).abs() < 1e-9);
        assert_eq!(s.p95, Duration::from_millis(95));
        assert_eq!(m.stats("web", "v1", Duration::from_secs(60)).requests, 0);
        m.forget("web", "v2");
        assert_eq!(m.stats("web", "v2", Duration::from_secs(60)).requests, 0);
        assert!(!m.render().contains("release=\"v2\""));
    }

    #[test]
    fn render_has_per_release_series() {
        let m = Metrics::default();
        m.record("web", "v1", 200, Duration::from_millis(3));
        m.record("web", "v2", 502, Duration::from_millis(30));
        let text = m.render();
        assert!(text.contains("ferry_proxy_requests_total{service=\"web\",release=\"v1\"} 1"));
        assert!(text.contains("ferry_proxy_errors_total{service=\"web\",release=\"v2\"} 1"));
        assert!(text.contains(
            "ferry_proxy_request_duration_seconds_bucket{service=\"web\",release=\"v1\",le=\"0.005\"} 1"
        ));
    }
}
