use crate::both;
use crate::fixtures::project;
use ferry_store::db::{DbError, EventQuery};
use ferry_types::EventKind;

both! {
    async fn repeated_webhook_delivery_is_detected(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "web").await?;
        project(store, "api").await?;
        let payload = r#"{"ref":"refs/heads/main","after":"abc"}"#;
        let first = store.record_delivery("web", "d-1", "push", payload).await?.ok_or("first delivery is new")?;
        assert!(store.record_delivery("web", "d-1", "push", payload).await?.is_none(), "repeat");
        assert!(store.record_delivery("api", "d-1", "push", payload).await?.is_some(), "ids are per project");
        assert!(matches!(store.record_delivery("nope", "d-2", "push", payload).await, Err(DbError::NotFound { .. })));

        // Accepted deliveries survive a restart until processed.
        let restarted = db.reopen().await?;
        let pending = restarted.pending_deliveries().await?;
        assert_eq!(pending.len(), 2);
        assert_eq!((pending[0].project.as_str(), pending[0].payload.as_str()), ("web", payload));
        assert!(restarted.mark_delivery_processed(first).await?);
        assert!(!restarted.mark_delivery_processed(first).await?);
        assert_eq!(restarted.pending_deliveries().await?.len(), 1);
        assert!(restarted.record_delivery("web", "d-1", "push", payload).await?.is_none(), "still a repeat after processing");
        let received = store.list_events(&EventQuery::default()).await?.iter().filter(|e| e.kind == EventKind::WebhookReceived).count();
        assert_eq!(received, 2);
        restarted.close().await;
        Ok(())
    }
}
