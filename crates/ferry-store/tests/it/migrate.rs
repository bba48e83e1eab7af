use crate::both;
use crate::fixtures::project;

both! {
    async fn migrations_apply_twice_and_keep_data(db: TestDb) -> TestResult {
        project(&db.store, "web").await?;
        db.store.migrate().await?;
        db.store.migrate().await?;
        let reopened = db.reopen().await?;
        reopened.migrate().await?;
        let names: Vec<String> = reopened.list_projects().await?.into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["web"]);
        reopened.close().await;
        Ok(())
    }
}
