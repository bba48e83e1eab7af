use crate::both;
use crate::fixtures::labels;
use ferry_store::db::{EventQuery, now_ms};
use ferry_types::EventKind;

both! {
    async fn agents_register_once_and_heartbeat(db: TestDb) -> TestResult {
        let store = &db.store;
        let before = now_ms();
        let a = store.agent_seen("a1", "builder-1", &labels(&["linux"])).await?;
        assert_eq!(a.labels, ["linux"]);
        let again = store.agent_seen("a1", "builder-1", &labels(&["linux", "docker"])).await?;
        assert_eq!(again.labels, ["linux", "docker"]);
        assert_eq!(again.first_seen, a.first_seen);
        store.agent_seen("a2", "builder-2", &[]).await?;
        assert_eq!(store.list_agents().await?.len(), 2);
        assert_eq!(store.agents_seen_since(before).await?, 2);
        assert_eq!(store.agents_seen_since(now_ms() + 60_000).await?, 0);
        assert!(store.get_agent("a3").await?.is_none());
        let registered = store.list_events(&EventQuery::default()).await?.iter().filter(|e| e.kind == EventKind::AgentRegistered).count();
        assert_eq!(registered, 2, "heartbeats append no events");
        Ok(())
    }
}
