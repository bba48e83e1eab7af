//! A server under test: a project repository, a store (SQLite in a temporary
//! directory, or a fresh PostgreSQL database), a running core without a built-in
//! executor (so jobs stay queued until a test claims them as an agent), the router,
//! and an admin token.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use ferry_api::{ApiConfig, AppState};
use ferry_engine::server::{Core, CoreConfig, CoreTasks};
use ferry_store::db::{NewProject, Store};
use ferry_types::Role;
use serde_json::Value;
use sqlx::Connection as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// What a test body returns.
pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The webhook secret of project `app`.
pub const SECRET: &str = "s3cret";

/// A pipeline with one job that runs by hand, by API or on pushes to `main`.
pub const PIPELINE: &str = "on:
  push:
    branches: [main]
  manual: true
jobs:
  build:
    steps:
      - echo building
";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in the data directory.
    Sqlite,
    /// A fresh database through the admin URL `FERRY_TEST_DATABASE_URL`.
    Postgres,
}

/// A running server.
pub struct Server {
    pub repo: TempDir,
    /// The data directory, kept for the server's lifetime.
    _data: TempDir,
    pub store: Store,
    pub state: AppState,
    pub router: Router,
    /// A token with the admin role.
    pub admin: String,
    tasks: Option<CoreTasks>,
    shutdown: CancellationToken,
    pg: Option<(String, String)>,
}

/// Runs `git` in `dir`, failing the test if it fails.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn postgres_store()
-> Result<(Store, String, String), Box<dyn std::error::Error + Send + Sync>> {
    let admin = std::env::var("FERRY_TEST_DATABASE_URL").map_err(|_| {
        "FERRY_TEST_DATABASE_URL is not set: the PostgreSQL tests need an admin URL such as \
         postgres://postgres@127.0.0.1:54329/postgres (`cargo xtask test` sets it)"
    })?;
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes)?;
    let name = format!(
        "ferry_api_test_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), String::new()), |(b, q)| {
            (b, format!("?{q}"))
        });
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let url = format!("{}/{name}{query}", &base[..host_end]);
    Ok((Store::connect(&url).await?, admin, name))
}

impl Server {
    /// A server on SQLite.
    pub async fn start() -> Result<Server, Box<dyn std::error::Error + Send + Sync>> {
        Server::on(Db::Sqlite, ApiConfig::default()).await
    }

    /// A server on `db` with `config`.
    pub async fn on(
        db: Db,
        config: ApiConfig,
    ) -> Result<Server, Box<dyn std::error::Error + Send + Sync>> {
        let repo = tempfile::tempdir()?;
        let data = tempfile::tempdir()?;
        git(repo.path(), &["init", "-q", "-b", "main"])?;
        std::fs::write(repo.path().join("ferry.yml"), PIPELINE)?;
        git(repo.path(), &["add", "-A"])?;
        git(repo.path(), &["commit", "-q", "-m", "init"])?;
        let (store, pg) = match db {
            Db::Sqlite => (Store::open_data_dir(data.path()).await?, None),
            Db::Postgres => {
                let (store, admin, name) = postgres_store().await?;
                (store, Some((admin, name)))
            }
        };
        store
            .add_project(&NewProject {
                name: "app".into(),
                repo: repo.path().display().to_string(),
                default_branch: "main".into(),
                webhook_secret: Some(SECRET.into()),
            })
            .await?;
        let admin = store.create_token("admin", Role::Admin).await?.token;
        let shutdown = CancellationToken::new();
        let core_config = CoreConfig {
            data_dir: data.path().to_path_buf(),
            executor_id: "builtin-test".into(),
            builtin_jobs: 0,
            builtin_labels: vec![],
            lease: Duration::from_secs(15),
            poll_interval: None,
            grace: Duration::from_millis(300),
            docker_host: None,
            deploy: Default::default(),
        };
        let (core, tasks) = Core::start(store.clone(), core_config, shutdown.clone()).await?;
        let state = AppState::new(core, config).with_shutdown(shutdown.clone());
        let router = ferry_api::router(state.clone());
        Ok(Server {
            repo,
            _data: data,
            store,
            state,
            router,
            admin,
            tasks: Some(tasks),
            shutdown,
            pg,
        })
    }

    /// The head commit of the project's repository.
    pub fn head(&self) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        git(self.repo.path(), &["rev-parse", "HEAD"])
    }

    /// A new token with `role`.
    pub async fn token(
        &self,
        role: Role,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self
            .store
            .create_token(&format!("t-{role}"), role)
            .await?
            .token)
    }

    /// One request through the router; the answer's status and JSON body (`Null` when
    /// the body is empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), Box<dyn std::error::Error + Send + Sync>> {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&b)?))?,
            None => req.body(Body::empty())?,
        };
        let (status, bytes) = self.raw(req).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// One request through the router; the status and body bytes.
    pub async fn raw(
        &self,
        req: Request<Body>,
    ) -> Result<(StatusCode, Vec<u8>), Box<dyn std::error::Error + Send + Sync>> {
        let response = self.router.clone().oneshot(req).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        Ok((status, bytes.to_vec()))
    }

    /// Serves the router on 127.0.0.1; returns the base URL and what stops it.
    pub async fn listen(&self) -> Result<Listening, Box<dyn std::error::Error + Send + Sync>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let handle = tokio::spawn(ferry_api::serve(
            listener,
            None,
            self.state.clone(),
            stop.clone(),
        ));
        Ok(Listening { url, stop, handle })
    }

    /// A client of a listening server with `token`.
    pub fn client(
        &self,
        on: &Listening,
        token: &str,
    ) -> Result<ferry_client::Client, ferry_client::ClientError> {
        ferry_client::Client::new(&on.url, token)
    }

    /// Stops the core and drops a PostgreSQL test database.
    pub async fn stop(mut self) -> TestResult {
        self.shutdown.cancel();
        if let Some(tasks) = self.tasks.take() {
            tasks.join().await;
        }
        self.store.close().await;
        if let Some((admin, name)) = &self.pg {
            let mut conn = sqlx::PgConnection::connect(admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }
}

/// A server listening on 127.0.0.1.
pub struct Listening {
    pub url: String,
    pub stop: CancellationToken,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Waits until `check` gives `Some`, for up to 10 s.
pub async fn eventually<T, F, Fut>(
    what: &str,
    mut check: F,
) -> Result<T, Box<dyn std::error::Error + Send + Sync>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, Box<dyn std::error::Error + Send + Sync>>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Declares a test that runs once on SQLite (`…::sqlite`) and once on PostgreSQL
/// (`…::postgres`); the body gets a started [`Server`] and must stop it.
#[macro_export]
macro_rules! both {
    ($(#[$meta:meta])* async fn $name:ident($s:ident: Server) -> TestResult $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($s: $crate::support::Server) -> $crate::support::TestResult $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> $crate::support::TestResult {
                let server = $crate::support::Server::on($crate::support::Db::Sqlite, Default::default()).await?;
                body(server).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> $crate::support::TestResult {
                let server = $crate::support::Server::on($crate::support::Db::Postgres, Default::default()).await?;
                body(server).await
            }
        }
    };
}
