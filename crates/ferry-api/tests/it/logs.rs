//! Logs: pages and the live stream.

use crate::support::{Server, TestResult};
use axum::http::{Method, StatusCode};
use ferry_client::api::{
    ClaimRequest, FinishRequest, JobOutcome, LogAppend, TriggerRequest, TriggerResponse,
};
use ferry_client::{Client, LogQuery, LogStreamItem};
use ferry_types::{JobResult, RunStatus};
use futures_util::StreamExt;
use std::time::Duration;

async fn running_job(
    c: &Client,
) -> Result<ferry_client::api::Assignment, Box<dyn std::error::Error + Send + Sync>> {
    let TriggerResponse::Started { .. } = c.trigger("app", &TriggerRequest::default()).await?
    else {
        return Err("the run was filtered".into());
    };
    let claim = ClaimRequest {
        agent_id: "a".into(),
        name: "a".into(),
        labels: vec![],
        wait_ms: 5000,
    };
    Ok(c.claim(&claim).await?.ok_or("no job to claim")?)
}

fn lines(a: &ferry_client::api::Assignment, step: u32, texts: &[&str]) -> LogAppend {
    LogAppend {
        lease: a.lease.clone(),
        step,
        lines: texts.iter().map(|t| (*t).to_owned()).collect(),
    }
}

#[tokio::test]
async fn pages_through_a_log_and_counts_back_from_the_end() -> TestResult {
    let s = Server::start().await?;
    let on = s.listen().await?;
    let c = s.client(&on, &s.admin)?;
    let a = running_job(&c).await?;
    let many: Vec<String> = (0..5000).map(|i| format!("line {i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    c.append_log(&lines(&a, 0, &refs)).await?;

    let page = c
        .logs(
            a.run_id,
            &LogQuery {
                job: Some("build".into()),
                from: Some(1000),
                limit: Some(10),
            },
        )
        .await?;
    assert_eq!(page.lines.len(), 10);
    assert_eq!(page.lines[0].text, "line 1000");
    assert_eq!((page.next, page.total, page.finished), (1010, 5000, false));
    let tail = c
        .logs(
            a.run_id,
            &LogQuery {
                job: None,
                from: Some(-2),
                limit: None,
            },
        )
        .await?;
    let texts: Vec<&str> = tail.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["line 4998", "line 4999"]);

    let (status, err) = s
        .call(
            Method::GET,
            &format!("/api/v1/runs/{}/logs?job=nope", a.run_id),
            Some(&s.admin),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["hint"], format!("run {} has `build`", a.run_id));
    on.stop.cancel();
    on.handle.await??;
    s.stop().await
}

#[tokio::test]
async fn follows_a_log_live_until_the_job_ends() -> TestResult {
    let s = Server::start().await?;
    let on = s.listen().await?;
    let c = s.client(&on, &s.admin)?;
    let a = running_job(&c).await?;
    c.append_log(&lines(&a, 0, &["first", "second"])).await?;

    let mut stream = c.follow_logs(a.run_id, Some("build"), 0).await?;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await? {
            Some(Ok(LogStreamItem::Lines(chunk))) => {
                seen.extend(chunk.lines.into_iter().map(|l| l.text))
            }
            other => return Err(format!("expected the backlog, got {other:?}").into()),
        }
    }
    c.append_log(&lines(&a, 1, &["live"])).await?;
    c.finish(&FinishRequest {
        lease: a.lease.clone(),
        outcome: JobOutcome {
            result: JobResult::Success,
            reason: None,
        },
        artifacts: None,
    })
    .await?;
    let mut end = None;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await? {
        match item? {
            LogStreamItem::Lines(chunk) => seen.extend(chunk.lines.into_iter().map(|l| l.text)),
            LogStreamItem::End(e) => end = Some(e),
        }
    }
    assert_eq!(seen, ["first", "second", "live"]);
    let end = end.ok_or("the stream ended without its `end` event")?;
    assert!(end.complete);
    assert!(
        matches!(end.status, RunStatus::Running | RunStatus::Success),
        "{:?}",
        end.status
    );
    on.stop.cancel();
    on.handle.await??;
    s.stop().await
}

#[tokio::test]
async fn a_followed_log_ends_when_the_server_stops() -> TestResult {
    let s = Server::start().await?;
    let on = s.listen().await?;
    let c = s.client(&on, &s.admin)?;
    let a = running_job(&c).await?;
    let mut stream = c.follow_logs(a.run_id, None, 0).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    on.stop.cancel();
    let item = tokio::time::timeout(Duration::from_secs(5), stream.next()).await?;
    match item {
        Some(Ok(LogStreamItem::End(end))) => assert!(!end.complete),
        other => return Err(format!("expected an incomplete end, got {other:?}").into()),
    }
    tokio::time::timeout(Duration::from_secs(5), on.handle).await???;
    s.stop().await
}
