//! The event log: listing and following.

use crate::support::{Server, TestResult};
use axum::http::{Method, StatusCode};
use ferry_client::EventFilter;
use ferry_client::api::TriggerRequest;
use ferry_types::EventKind;
use futures_util::StreamExt;
use std::time::Duration;

#[tokio::test]
async fn lists_events_by_project_newest_last() -> TestResult {
    let s = Server::start().await?;
    let (status, list) = s
        .call(
            Method::GET,
            "/api/v1/events?project=app",
            Some(&s.admin),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> = list
        .as_array()
        .ok_or("not a list")?
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["project.added"]);
    let (_, all) = s
        .call(Method::GET, "/api/v1/events?limit=1", Some(&s.admin), None)
        .await?;
    assert_eq!(
        all[0]["kind"], "token.created",
        "the newest event without `since`"
    );
    let (_, first) = s
        .call(
            Method::GET,
            "/api/v1/events?after=0&limit=1",
            Some(&s.admin),
            None,
        )
        .await?;
    assert_eq!(first[0]["kind"], "project.added", "the oldest with `after`");
    let (status, _) = s
        .call(
            Method::GET,
            "/api/v1/events?limit=lots",
            Some(&s.admin),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    s.stop().await
}

#[tokio::test]
async fn following_events_sees_a_new_run() -> TestResult {
    let s = Server::start().await?;
    let on = s.listen().await?;
    let c = s.client(&on, &s.admin)?;
    let mut stream = c
        .follow_events(&EventFilter {
            project: Some("app".into()),
            ..EventFilter::default()
        })
        .await?;
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await?
        .ok_or("stream ended")??;
    assert_eq!(
        first.kind,
        EventKind::ProjectAdded,
        "the backlog comes first"
    );
    c.trigger("app", &TriggerRequest::default()).await?;
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await?
            .ok_or("stream ended")??;
        assert_eq!(e.project.as_deref(), Some("app"));
        if e.kind == EventKind::RunQueued {
            break;
        }
    }
    on.stop.cancel();
    // The events that came meanwhile, then the end.
    while let Some(e) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await? {
        assert!(e?.id > first.id);
    }
    on.handle.await??;
    s.stop().await
}
