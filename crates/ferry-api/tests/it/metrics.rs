//! `/metrics`, checked with a strict parser of the Prometheus text exposition format.

use crate::support::{Server, TestResult};
use axum::http::{Method, Request, StatusCode};
use ferry_api::ApiConfig;
use ferry_client::api::{ClaimRequest, FinishRequest, JobOutcome, TriggerRequest};
use ferry_types::JobResult;
use std::collections::{BTreeMap, HashMap};

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn valid_name(s: &str, colons: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value `{s}`")),
    }
}

/// Parses `{a="x",b="y"}` at the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected `{`")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without `=`")?;
        let name = &rest[..eq];
        if !valid_name(name, false) {
            return Err(format!("bad label name `{name}`"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("bad escape in label value".into()),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label `{name}` twice"));
        }
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses the exposition strictly: every sample belongs to a family declared by a
/// `# TYPE` line before it, names and labels are well formed, `# EOF` (if any) is last,
/// and histogram buckets are cumulative with `+Inf` equal to `_count`.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    let mut eof = false;
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: `{line}`", n + 1);
        if eof {
            return Err(at("text after `# EOF`".into()));
        }
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !valid_name(name, true) {
                        return Err(at("bad metric name".into()));
                    }
                    if ![
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "untyped",
                        "unknown",
                        "info",
                        "stateset",
                        "gaugehistogram",
                    ]
                    .contains(&kind)
                    {
                        return Err(at(format!("unknown type `{kind}`")));
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(at("family declared twice".into()));
                    }
                }
                (Some("HELP" | "UNIT"), Some(name), _) if valid_name(name, true) => {}
                (Some("HELP" | "UNIT" | "TYPE"), _, _) => return Err(at("malformed".into())),
                _ => {}
            }
            continue;
        }
        if line.trim().is_empty() {
            return Err(at("empty line".into()));
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name, true) {
            return Err(at("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.trim_start_matches(' ').split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<f64>().map_err(|_| at("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing text".into()));
        }
        let family = ["_bucket", "_sum", "_count", "_total", "_created", "_info"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(at("sample of an undeclared family".into()));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    check_histograms(&types, &samples)?;
    Ok(samples)
}

fn check_histograms(types: &HashMap<String, String>, samples: &[Sample]) -> Result<(), String> {
    for (family, _) in types.iter().filter(|(_, k)| *k == "histogram") {
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let le = parse_value(s.labels.get("le").ok_or("bucket without `le`")?)?;
            let mut rest = s.labels.clone();
            rest.remove("le");
            series
                .entry(format!("{rest:?}"))
                .or_default()
                .push((le, s.value));
        }
        for (key, buckets) in series {
            if !buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
            {
                return Err(format!("{family}{key}: buckets not cumulative"));
            }
            let inf = buckets
                .last()
                .filter(|b| b.0.is_infinite())
                .ok_or("no +Inf bucket")?
                .1;
            let count = samples
                .iter()
                .find(|s| {
                    s.name == format!("{family}_count")
                        && format!("{:?}", {
                            let mut l = s.labels.clone();
                            l.remove("le");
                            l
                        }) == key
                })
                .ok_or("histogram without `_count`")?;
            if count.value != inf {
                return Err(format!(
                    "{family}{key}: +Inf bucket {inf} != count {}",
                    count.value
                ));
            }
        }
    }
    Ok(())
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[test]
fn the_checker_refuses_malformed_expositions() {
    assert!(parse("# TYPE a gauge\na 1\n").is_ok());
    assert!(parse("a 1\n").is_err(), "undeclared family");
    assert!(
        parse("# TYPE a gauge\na{b=\"c} 1\n").is_err(),
        "unterminated label"
    );
    assert!(parse("# TYPE a gauge\na one\n").is_err(), "bad value");
    assert!(parse("# TYPE a gauge\n# EOF\na 1\n").is_err(), "after EOF");
}

#[tokio::test]
async fn exposes_runs_jobs_queue_agents_and_durations() -> TestResult {
    let s = Server::start().await?;
    let on = s.listen().await?;
    let c = s.client(&on, &s.admin)?;
    c.trigger("app", &TriggerRequest::default()).await?;
    c.trigger("app", &TriggerRequest::default()).await?;
    let claim = ClaimRequest {
        agent_id: "m1".into(),
        name: "m1".into(),
        labels: vec![],
        wait_ms: 2000,
    };
    let a = c.claim(&claim).await?.ok_or("no job")?;
    c.finish(&FinishRequest {
        lease: a.lease.clone(),
        outcome: JobOutcome {
            result: JobResult::Success,
            reason: None,
        },
        artifacts: None,
    })
    .await?;
    crate::support::eventually("the run to finish", || async {
        Ok(c.run(a.run_id).await?.run.finished_at.map(|_| ()))
    })
    .await?;

    let text = c.metrics().await?;
    let samples = parse(&text).map_err(|e| format!("{e}\n{text}"))?;
    assert_eq!(
        value(&samples, "ferry_runs", &[("status", "queued")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&samples, "ferry_runs", &[("status", "success")]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "ferry_jobs", &[("status", "success")]),
        Some(1.0)
    );
    assert_eq!(value(&samples, "ferry_queue_depth", &[]), Some(1.0));
    assert_eq!(value(&samples, "ferry_agents_connected", &[]), Some(1.0));
    assert_eq!(
        value(
            &samples,
            "ferry_job_duration_seconds_count",
            &[("status", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "ferry_run_duration_seconds_count",
            &[("status", "success")]
        ),
        Some(1.0)
    );
    // A second scrape observes nothing twice.
    let again = parse(&c.metrics().await?)?;
    assert_eq!(
        value(
            &again,
            "ferry_job_duration_seconds_count",
            &[("status", "success")]
        ),
        Some(1.0)
    );
    on.stop.cancel();
    on.handle.await??;
    s.stop().await
}

#[tokio::test]
async fn metrics_can_require_a_token() -> TestResult {
    let s = Server::on(
        crate::support::Db::Sqlite,
        ApiConfig {
            metrics_public: false,
        },
    )
    .await?;
    let (status, _) = s.call(Method::GET, "/metrics", None, None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let req = Request::builder()
        .uri("/metrics")
        .header("authorization", format!("Bearer {}", s.admin))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .body(axum::body::Body::empty())?;
    let response = tower::ServiceExt::oneshot(s.router.clone(), req).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    s.stop().await
}
