use crate::both;
use crate::fixtures::project;
use crate::support::TestResult;

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

#[tokio::test]
async fn data_dir_is_created_with_the_database_inside() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("nested/data");
    let store = ferry_store::db::Store::open_data_dir(&data_dir).await?;
    project(&store, "web").await?;
    assert!(data_dir.join(ferry_store::db::SQLITE_FILE).is_file());
    assert_eq!(store.backend(), ferry_store::db::Backend::Sqlite);
    store.close().await;
    Ok(())
}
