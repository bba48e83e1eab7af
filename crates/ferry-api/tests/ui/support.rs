//! A real server for the UI tests: the whole application on 127.0.0.1 over a `Core`
//! on SQLite in a temporary directory, started the way `ferry serve` starts it; a
//! small HTTP client; and temporary git repositories to build.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use ferry_api::{ApiConfig, AppState};
use ferry_engine::server::{Core, CoreConfig, CoreTasks, TriggerOutcome, TriggerRequest};
use ferry_store::db::{NewProject, Project, Run, Store};
use ferry_types::{Role, Trigger};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the tests return.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A pipeline whose `build` job prints a few lines over about three seconds, then
/// `test` (after `build`) and `lint` pass quickly.
pub const PIPELINE: &str = r#"name: ui-demo
on:
  push:
    branches: [main]
  manual: true
jobs:
  build:
    steps:
      - name: Compile
        run: |
          echo "compiling the widget"
          sleep 1
          echo "warning: nothing to compile"
      - name: Package
        run: |
          for i in 1 2; do echo "packing part $i"; sleep 1; done
          echo "package ready"
  lint:
    steps:
      - name: Lint
        run: echo "lint clean"
  test:
    needs: [build, lint]
    steps:
      - name: Unit tests
        run: echo "all 42 tests passed"
"#;

/// A running server and what it runs on.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The core behind it.
    pub core: Core,
    /// An admin token.
    pub admin: String,
    shutdown: CancellationToken,
    tasks: Option<CoreTasks>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    dir: TempDir,
}

impl Server {
    /// Starts a server; `builtin_jobs` 0 leaves every job queued.
    pub async fn start(builtin_jobs: usize) -> TestResult<Server> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");
        let store = Store::open_data_dir(&data_dir).await?;
        let shutdown = CancellationToken::new();
        let config = CoreConfig {
            data_dir,
            executor_id: "ui-test-executor".into(),
            builtin_jobs,
            builtin_labels: Vec::new(),
            lease: Duration::from_secs(30),
            poll_interval: None,
            grace: Duration::from_secs(2),
            docker_host: None,
            deploy: Default::default(),
        };
        let (core, tasks) = Core::start(store, config, shutdown.clone()).await?;
        let admin = core
            .store()
            .create_token("ui-admin", Role::Admin)
            .await?
            .token;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = AppState::new(core.clone(), ApiConfig::default());
        let http = tokio::spawn(ferry_api::serve(listener, None, state, shutdown.clone()));
        Ok(Server {
            base,
            core,
            admin,
            shutdown,
            tasks: Some(tasks),
            http: Some(http),
            dir,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.core.store()
    }

    /// A new token with `role`.
    pub async fn token(&self, name: &str, role: Role) -> TestResult<String> {
        Ok(self.store().create_token(name, role).await?.token)
    }

    /// Registers project `name` on a fresh git repository holding `pipeline`.
    pub async fn project(&self, name: &str, pipeline: &str) -> TestResult<Project> {
        let repo = git_repo(&self.dir.path().join(format!("repo-{name}")), pipeline)?;
        Ok(self
            .store()
            .add_project(&NewProject {
                name: name.into(),
                repo: repo.display().to_string(),
                default_branch: "main".into(),
                webhook_secret: None,
            })
            .await?)
    }

    /// A manual run of `project`'s default branch.
    pub async fn trigger(&self, project: &str) -> TestResult<Run> {
        let outcome = self
            .core
            .trigger(TriggerRequest {
                project: project.into(),
                git_ref: None,
                sha: None,
                trigger: Trigger::Manual,
                changed_paths: None,
                delivery_id: None,
            })
            .await?;
        match outcome {
            TriggerOutcome::Started(run) => Ok(run),
            TriggerOutcome::Filtered(why) => Err(format!("the run was filtered: {why}").into()),
        }
    }

    /// Stops the server and the core's loops, and waits for both.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(http) = self.http.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), http).await;
        }
        if let Some(tasks) = self.tasks.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), tasks.join()).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Makes a git repository at `dir` with one commit on `main` holding `ferry.yml`.
pub fn git_repo(dir: &Path, pipeline: &str) -> TestResult<PathBuf> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ferry.yml"), pipeline)?;
    std::fs::write(dir.join("README.md"), "A project for the UI tests.\n")?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "."][..],
        &["commit", "-q", "-m", "First commit"][..],
    ] {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "Ferry Test")
            .env("GIT_AUTHOR_EMAIL", "test@ferry.invalid")
            .env("GIT_COMMITTER_NAME", "Ferry Test")
            .env("GIT_COMMITTER_EMAIL", "test@ferry.invalid")
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "git {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
    }
    Ok(dir.to_path_buf())
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// A header as text ("" when absent).
    pub fn header(&self, name: header::HeaderName) -> String {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A plain HTTP client that sends the session cookie of a token.
pub struct Http {
    client: Client<HttpConnector, Body>,
    base: String,
}

impl Http {
    /// A client for the server at `base`.
    pub fn new(base: &str) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.to_owned(),
        }
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        form: Option<&str>,
    ) -> TestResult<axum::http::Response<Body>> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(t) = token {
            request = request.header(header::COOKIE, format!("ferry_session={t}"));
        }
        let body = match form {
            Some(f) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(f.to_owned())
            }
            None => Body::empty(),
        };
        let response = self.client.request(request.body(body)?).await?;
        Ok(response.map(Body::new))
    }

    /// `GET path`, read whole.
    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResult<Reply> {
        read(self.send("GET", path, token, None).await?).await
    }

    /// `POST path` with a urlencoded form, read whole.
    pub async fn post(&self, path: &str, token: Option<&str>, form: &str) -> TestResult<Reply> {
        read(self.send("POST", path, token, Some(form)).await?).await
    }
}

async fn read(response: axum::http::Response<Body>) -> TestResult<Reply> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await?;
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// The value of the first `name="csrf"` hidden input of a page.
pub fn csrf_of(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let rest = &page[at..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// Waits until `check` holds, polling every 100 ms, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = TestResult<bool>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
