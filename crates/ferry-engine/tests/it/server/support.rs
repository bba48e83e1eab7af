//! A project repository, a data directory with a store, and a running core.

use ferry_engine::server::{
    Clock, Core, CoreConfig, CoreOptions, CoreTasks, TriggerOutcome, TriggerRequest,
};
use ferry_store::db::{Event, EventQuery, Job, NewProject, Run, Store};
use ferry_types::Trigger;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub use crate::support::git;

/// A project repository (a plain working repository) and a server data directory.
pub struct Env {
    pub repo: TempDir,
    pub data: TempDir,
    pub store: Store,
    /// The PostgreSQL database to drop at the end: (admin URL, name).
    pg: Option<(String, String)>,
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    /// A SQLite file in the data directory.
    Sqlite,
    /// A fresh database on the server `FERRY_TEST_DATABASE_URL` names (an admin URL);
    /// without it the test fails and says so.
    Postgres,
}

/// A new PostgreSQL database: (its URL, its name, the admin URL).
async fn postgres_db() -> (String, String, String) {
    use sqlx::Connection as _;
    let admin = std::env::var("FERRY_TEST_DATABASE_URL").expect(
        "FERRY_TEST_DATABASE_URL is not set: the PostgreSQL tests need an admin URL such as \
         postgres://postgres@127.0.0.1:54329/postgres",
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "ferry_engine_test_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), String::new()), |(b, q)| {
            (b, format!("?{q}"))
        });
    let slash = base
        .rfind('/')
        .filter(|i| *i > base.find("://").map_or(0, |s| s + 2))
        .unwrap_or(base.len());
    let url = format!("{}/{name}{query}", &base[..slash]);
    (url, name, admin)
}

/// A fake clock for the cron loop; every other wait is real.
#[derive(Debug, Default)]
pub struct FakeClock(pub AtomicI64);

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl FakeClock {
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

/// A running core and what stops it.
pub struct Running {
    pub core: Core,
    pub tasks: CoreTasks,
    pub shutdown: CancellationToken,
}

impl Running {
    /// Stops it as `ferry serve` does on SIGTERM.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.join().await;
    }

    /// Stops it as a crash would.
    pub async fn crash(self) {
        self.tasks.abort().await;
    }
}

impl Env {
    /// A repository holding `ferry.yml` (and `files`), one commit on `main`, registered
    /// as project `app`.
    pub async fn new(yml: &str, files: &[(&str, &str)]) -> Env {
        Env::on(Db::Sqlite, yml, files).await
    }

    /// [`Env::new`] on the given database.
    pub async fn on(db: Db, yml: &str, files: &[(&str, &str)]) -> Env {
        let repo = tempfile::tempdir().expect("tempdir");
        let data = tempfile::tempdir().expect("tempdir");
        git(repo.path(), &["init", "-q", "-b", "main"]);
        let (store, pg) = match db {
            Db::Sqlite => (
                Store::open_data_dir(data.path())
                    .await
                    .expect("store opens"),
                None,
            ),
            Db::Postgres => {
                let (url, name, admin) = postgres_db().await;
                (
                    Store::connect(&url).await.expect("store opens"),
                    Some((admin, name)),
                )
            }
        };
        let env = Env {
            store,
            repo,
            data,
            pg,
        };
        env.commit(yml, files, "init");
        env.store
            .add_project(&NewProject {
                name: "app".into(),
                repo: env.repo.path().display().to_string(),
                default_branch: "main".into(),
                webhook_secret: None,
            })
            .await
            .expect("project added");
        env
    }

    /// Commits `ferry.yml` and `files` on the current branch; returns the commit.
    pub fn commit(&self, yml: &str, files: &[(&str, &str)], msg: &str) -> String {
        let dir = self.repo.path();
        std::fs::write(dir.join("ferry.yml"), yml).expect("write");
        for (name, content) in files {
            let p = dir.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(p, content).expect("write");
        }
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "--allow-empty", "-m", msg]);
        self.head()
    }

    /// Closes the store and drops a PostgreSQL test database.
    pub async fn close(self) {
        use sqlx::Connection as _;
        self.store.close().await;
        if let Some((admin, name)) = &self.pg {
            let mut conn = sqlx::PgConnection::connect(admin)
                .await
                .expect("PostgreSQL reachable");
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }

    pub fn head(&self) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(self.repo.path())
            .args(["rev-parse", "HEAD"])
            .output()
            .expect("git");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn config(&self, builtin_jobs: usize) -> CoreConfig {
        CoreConfig {
            data_dir: self.data.path().to_path_buf(),
            executor_id: "builtin-test".into(),
            builtin_jobs,
            builtin_labels: vec![],
            lease: Duration::from_secs(15),
            poll_interval: None,
            grace: Duration::from_millis(300),
            docker_host: None,
            deploy: Default::default(),
        }
    }

    pub fn options(&self) -> CoreOptions {
        CoreOptions {
            drain: Duration::from_secs(5),
            sweep: Duration::from_millis(300),
            lease_check: Duration::from_millis(300),
            cron_tick: Duration::from_millis(50),
            heartbeat: Duration::from_millis(300),
            ..CoreOptions::default()
        }
    }

    pub async fn start(&self, builtin_jobs: usize) -> Running {
        self.start_with(self.config(builtin_jobs), self.options())
            .await
    }

    pub async fn start_with(&self, config: CoreConfig, options: CoreOptions) -> Running {
        let shutdown = CancellationToken::new();
        let (core, tasks) = Core::start_with(self.store.clone(), config, options, shutdown.clone())
            .await
            .expect("core starts");
        Running {
            core,
            tasks,
            shutdown,
        }
    }

    pub fn path(&self) -> &Path {
        self.repo.path()
    }
}

/// A push of `git_ref` at its current commit.
pub fn push(git_ref: &str) -> TriggerRequest {
    TriggerRequest {
        project: "app".into(),
        git_ref: Some(git_ref.into()),
        sha: None,
        trigger: Trigger::Push,
        changed_paths: None,
        delivery_id: None,
    }
}

pub fn started(o: TriggerOutcome) -> Run {
    match o {
        TriggerOutcome::Started(r) => r,
        TriggerOutcome::Filtered(why) => panic!("the trigger was filtered: {why}"),
    }
}

/// Waits until `f` returns Some, or panics after `secs` seconds naming `what`.
pub async fn until<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the run to end.
pub async fn finished(store: &Store, run_id: i64, secs: u64) -> Run {
    until(secs, &format!("run {run_id} to end"), || async {
        let r = store
            .get_run(run_id)
            .await
            .expect("get_run")
            .expect("run exists");
        r.status.is_finished().then_some(r)
    })
    .await
}

pub async fn job(store: &Store, run_id: i64, name: &str) -> Job {
    store
        .list_jobs(run_id)
        .await
        .expect("list_jobs")
        .into_iter()
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no job {name} in run {run_id}"))
}

pub async fn events(store: &Store, run_id: i64) -> Vec<Event> {
    store
        .list_events(&EventQuery {
            run_id: Some(run_id),
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .expect("events")
}

pub async fn log_text(store: &Store, run_id: i64, job: &str) -> String {
    let lines = store
        .read_log(run_id, job, 0, 100_000)
        .await
        .expect("read_log");
    lines
        .into_iter()
        .map(|l| l.text)
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn clock() -> Arc<FakeClock> {
    Arc::new(FakeClock::default())
}
