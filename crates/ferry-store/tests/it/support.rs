//! Runs each test against a fresh SQLite file and a fresh PostgreSQL database.
//!
//! PostgreSQL comes from `FERRY_TEST_DATABASE_URL`, an admin URL such as
//! `postgres://postgres@127.0.0.1:54329/postgres`: every test creates its own database
//! with a random name through it and drops it afterwards, so tests run in parallel.
//! Without the variable the PostgreSQL half of every test fails and says how to get one.

use ferry_store::db::Store;
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;
use std::future::Future;
use std::path::PathBuf;

/// What a test body returns.
pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A store under test, with what is needed to reopen it as a restarted server would.
pub struct TestDb {
    /// The store.
    pub store: Store,
    /// What `Store::connect` takes to open the same database again.
    pub url: String,
    /// The SQLite file, when the backend is SQLite.
    pub sqlite_path: Option<PathBuf>,
}

impl TestDb {
    /// Opens the same database again, as a new process would.
    pub async fn reopen(&self) -> Result<Store, ferry_store::db::DbError> {
        Store::connect(&self.url).await
    }

    /// Every byte the database holds that could contain `needle`: the SQLite files,
    /// or on PostgreSQL the text of every row of `tables`.
    pub async fn contains(
        &self,
        needle: &str,
        tables: &[&str],
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        if let Some(path) = &self.sqlite_path {
            let mut found = false;
            for suffix in ["", "-wal", "-shm"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                if let Ok(bytes) = std::fs::read(&file) {
                    found |= bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
                }
            }
            return Ok(found);
        }
        let mut conn = PgConnection::connect(&self.url).await?;
        for table in tables {
            let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT t::text FROM {table} t"))
                .fetch_all(&mut conn)
                .await?;
            if rows.iter().any(|(text,)| text.contains(needle)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Runs `body` against a store on a new SQLite file in a temporary directory.
pub async fn run_sqlite<F, Fut>(body: F) -> TestResult
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = TestResult> + Send + 'static,
{
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(ferry_store::db::SQLITE_FILE);
    let store = Store::open_sqlite(&path).await?;
    let url = format!("sqlite://{}", path.display());
    let outcome = tokio::spawn(body(TestDb {
        store,
        url,
        sqlite_path: Some(path),
    }))
    .await;
    drop(dir);
    finish(outcome)
}

/// Runs `body` against a store on a new PostgreSQL database, dropped afterwards.
pub async fn run_postgres<F, Fut>(body: F) -> TestResult
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = TestResult> + Send + 'static,
{
    let Ok(admin_url) = std::env::var("FERRY_TEST_DATABASE_URL") else {
        return Err(
            "FERRY_TEST_DATABASE_URL is not set: these tests need PostgreSQL. \
                    Run `cargo xtask test`, which starts one and sets it."
                .into(),
        );
    };
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes)?;
    let name = format!("ferry_test_{}", hex::encode(bytes));
    let mut admin = PgConnection::connect(&admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let url = with_database(&admin_url, &name)?;
    let outcome = match Store::connect(&url).await {
        Ok(store) => {
            let outcome = tokio::spawn(body(TestDb {
                store: store.clone(),
                url,
                sqlite_path: None,
            }))
            .await;
            store.close().await;
            outcome
        }
        Err(e) => Ok(Err(e.into())),
    };
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    finish(outcome)
}

fn finish(outcome: Result<TestResult, tokio::task::JoinError>) -> TestResult {
    match outcome {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(e.into()),
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String, String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| format!("`{url}` is not a URL"))?;
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    Ok(format!("{}/{name}{query}", &base[..host_end]))
}

/// Declares a test that runs once on SQLite (`…::sqlite`) and once on PostgreSQL
/// (`…::postgres`).
#[macro_export]
macro_rules! both {
    ($(#[$meta:meta])* async fn $name:ident($db:ident: TestDb) -> TestResult $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($db: $crate::support::TestDb) -> $crate::support::TestResult $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> $crate::support::TestResult {
                $crate::support::run_sqlite(body).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> $crate::support::TestResult {
                $crate::support::run_postgres(body).await
            }
        }
    };
}
