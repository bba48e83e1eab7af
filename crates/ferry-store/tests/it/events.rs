use crate::both;
use crate::fixtures::project;
use ferry_store::db::{EventQuery, NewEvent};
use ferry_types::EventKind;
use std::time::Duration;

fn push(project: &str, sha: &str) -> NewEvent {
    NewEvent {
        kind: EventKind::PushReceived,
        project: Some(project.to_owned()),
        run_id: None,
        job: None,
        data: serde_json::json!({ "sha": sha }),
    }
}

both! {
    async fn events_are_listed_in_order_and_filtered(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        project(store, "api").await?;
        let first = store.append_event(push("web", "a1")).await?;
        let second = store.append_event(push("api", "b1")).await?;
        let third = store.append_event(push("web", "a2")).await?;
        assert!(first < second && second < third, "ids grow: {first} {second} {third}");

        let all = store.list_events(&EventQuery::default()).await?;
        let kinds: Vec<EventKind> = all.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::ProjectAdded, EventKind::ProjectAdded, EventKind::PushReceived, EventKind::PushReceived, EventKind::PushReceived]);
        assert_eq!(all[2].data["sha"], "a1");

        let web = store.list_events(&EventQuery { project: Some("web".into()), ..EventQuery::default() }).await?;
        assert_eq!(web.len(), 3);
        assert!(web.iter().all(|e| e.project.as_deref() == Some("web")));

        let after = store.list_events(&EventQuery { after_id: Some(second), ..EventQuery::default() }).await?;
        assert_eq!(after.iter().map(|e| e.id).collect::<Vec<_>>(), [third]);

        let since = store.list_events(&EventQuery { since_ms: Some(all[2].at), ..EventQuery::default() }).await?;
        assert!(since.iter().all(|e| e.at >= all[2].at));
        assert!(since.iter().any(|e| e.id == third));
        let future = store.list_events(&EventQuery { since_ms: Some(all[4].at + 60_000), ..EventQuery::default() }).await?;
        assert!(future.is_empty());

        let newest = store.list_events(&EventQuery { limit: 2, newest: true, ..EventQuery::default() }).await?;
        assert_eq!(newest.iter().map(|e| e.id).collect::<Vec<_>>(), [second, third]);
        assert_eq!(store.last_event_id().await?, third);
        Ok(())
    }
}

both! {
    async fn follow_receives_events_appended_after_subscribing(db: TestDb) -> TestResult {
        let store = db.store.clone();
        project(&store, "web").await?;
        project(&store, "api").await?;
        let mut follower = store.follow(store.last_event_id().await?, Some("web".into()));
        let writer = store.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            writer.append_event(push("api", "other project")).await?;
            writer.append_event(push("web", "c3")).await
        });
        let event = tokio::time::timeout(Duration::from_secs(5), follower.next()).await??;
        assert_eq!(event.kind, EventKind::PushReceived);
        assert_eq!(event.data["sha"], "c3");
        assert_eq!(follower.position(), event.id);
        assert_eq!(task.await??, event.id);
        Ok(())
    }
}

both! {
    async fn follow_catches_up_from_an_old_position(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        for i in 0..3 {
            store.append_event(push("web", &format!("s{i}"))).await?;
        }
        let mut follower = store.follow(0, None);
        let mut kinds = Vec::new();
        for _ in 0..4 {
            kinds.push(tokio::time::timeout(Duration::from_secs(5), follower.next()).await??.kind);
        }
        assert_eq!(kinds[0], EventKind::ProjectAdded);
        assert!(kinds[1..].iter().all(|k| *k == EventKind::PushReceived));
        Ok(())
    }
}
