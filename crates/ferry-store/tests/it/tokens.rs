use crate::both;
use ferry_store::db::EventQuery;
use ferry_types::{EventKind, Role};

both! {
    async fn tokens_verify_until_revoked_and_are_stored_hashed(db: TestDb) -> TestResult {
        let store = &db.store;
        let admin = store.create_token("admin", Role::Admin).await?;
        let ci = store.create_token("ci", Role::Developer).await?;
        assert!(admin.token.starts_with("ferry_"));
        assert_eq!(admin.token.len(), "ferry_".len() + 43, "32 bytes in unpadded base64url");
        assert_ne!(admin.token, ci.token);

        let seen = store.verify_token(&admin.token).await?.ok_or("valid token")?;
        assert_eq!((seen.name.as_str(), seen.role), ("admin", Role::Admin));
        assert!(store.verify_token("ferry_not-a-token").await?.is_none());
        assert!(store.verify_token("").await?.is_none());

        assert!(!db.contains(&admin.token, &["tokens", "events"]).await?, "the token itself is never stored");
        let secret_part = &admin.token["ferry_".len()..];
        assert!(!db.contains(secret_part, &["tokens", "events"]).await?);

        assert!(store.revoke_token(ci.info.id).await?);
        assert!(!store.revoke_token(ci.info.id).await?);
        assert!(store.verify_token(&ci.token).await?.is_none(), "a revoked token stops working");
        assert!(store.verify_token(&admin.token).await?.is_some());
        let listed = store.list_tokens().await?;
        assert_eq!(listed.len(), 2);
        assert!(listed[1].revoked_at.is_some());

        let kinds: Vec<EventKind> = store.list_events(&EventQuery::default()).await?.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::TokenCreated, EventKind::TokenCreated, EventKind::TokenRevoked]);
        Ok(())
    }
}
