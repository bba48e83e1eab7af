//! The server's database: projects, runs, jobs and their queue, the event log, logs,
//! tokens, webhook deliveries and agents.
//!
//! [`Store`] is the handle (cheap to clone) over embedded SQLite ([`Store::open_sqlite`],
//! WAL mode, one file in the data directory) or PostgreSQL ([`Store::connect`] with a
//! `postgres://` URL). Both run one logical schema, kept in `migrations/sqlite` and
//! `migrations/postgres` and applied on open; every query is written once against
//! both (see `conn.rs`, the only file that knows there are two backends).
//!
//! Two rules hold everywhere:
//! - **Every state change appends its event in the same transaction.** A transaction
//!   queues events and writes them just before it commits, so the event log can never
//!   disagree with the tables, and reconcilers can follow the log ([`Store::follow`]).
//! - **Work is handed out under leases.** [`Store::claim_job`] takes the oldest runnable
//!   job atomically (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on
//!   SQLite), the holder renews its lease, and [`Store::expire_leases`] requeues the
//!   work of executors that went away. Nothing assumes one process owns the state.
//!
//! Times are unix milliseconds. Start reading at [`Store::create_run`] and
//! [`Store::claim_job`].

mod agents;
mod blob_refs;
mod conn;
mod control;
mod deploys;
mod events;
mod hooks;
mod logs;
mod migrate;
mod projects;
mod queue;
mod runs;
mod tokens;

pub use agents::Agent;
pub use conn::Backend;
pub use deploys::{
    Deploy, DeployQuery, DeployStep, LiveEnv, NewDeploy, NewRelease, Release, ReleaseArtifact,
    Service, Switch, WarmRelease,
};
pub use events::{CROSS_PROCESS_POLL, Event, EventFollower, EventQuery, NewEvent};
pub use hooks::Delivery;
pub use logs::{CHUNK_BYTES, LogFollower, LogLine};
pub use projects::{NewProject, Project};
pub use queue::{ClaimedJob, JobOutcome, Lease, LeaseEvent, Renewal};
pub use runs::{Job, NewJob, NewRun, Run};
pub use tokens::{CreatedToken, TOKEN_PREFIX, TokenInfo};

use conn::{PendingEvent, Pool};
use sqlx::Connection as _;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// The file name of the embedded database inside the data directory.
pub const SQLITE_FILE: &str = "ferry.db";

/// What went wrong in the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database refused or failed a query, or could not be reached.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The named thing does not exist.
    #[error("{what} `{key}` not found")]
    NotFound {
        /// What kind of thing, e.g. `project`.
        what: &'static str,
        /// Its name or id.
        key: String,
    },
    /// The named thing exists already.
    #[error("{what} `{key}` already exists")]
    Conflict {
        /// What kind of thing, e.g. `project`.
        what: &'static str,
        /// Its name or id.
        key: String,
    },
    /// The caller no longer holds the job's lease: it expired and the job went to
    /// someone else, or the job ended. The caller should stop working on it.
    #[error("lease on job {job_id} (attempt {attempt}) is no longer held by agent `{agent_id}`")]
    LeaseLost {
        /// The job.
        job_id: i64,
        /// The agent that thought it held the lease.
        agent_id: String,
        /// The attempt the agent was working on.
        attempt: i64,
    },
    /// The caller no longer holds the deploy's lease: the deploy ended, or its lease
    /// expired and another server took it over. The caller should stop working on it.
    #[error(
        "deploy {deploy_id} is no longer held by `{owner}`: it ended or another server took it over"
    )]
    DeployLeaseLost {
        /// The deploy.
        deploy_id: i64,
        /// The server process that thought it held the lease.
        owner: String,
    },
    /// The request does not make sense, e.g. a job that needs a job not in its run.
    #[error("{0}")]
    Invalid(String),
    /// The database holds something this version cannot read.
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
    /// Compressing or decompressing log lines failed.
    #[error("log chunk encoding failed: {0}")]
    Codec(#[from] std::io::Error),
}

/// A handle to Ferry's database; clones share one pool and one event notifier.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// Carries the id of the newest event after each commit that appended events, so
    /// followers in this process wake without polling.
    notify: broadcast::Sender<i64>,
    /// Carries the run id after each log append, for live log followers.
    log_notify: broadcast::Sender<i64>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    ///
    /// WAL mode lets readers run beside the one writer; `synchronous = NORMAL` in WAL
    /// mode loses nothing when the process is killed (only on power loss can the last
    /// commits vanish); `foreign_keys` is on; writers wait up to 10 s for the lock.
    ///
    /// A connection that comes back to the pool still in a transaction is closed, which
    /// rolls the transaction back (both backends). That happens when a future is
    /// dropped while its `BEGIN` runs — a task cancelled, a client gone mid-request:
    /// no `Transaction` exists yet to roll back, and the connection, reused, would hold
    /// SQLite's write lock (every other writer then fails with "database is locked")
    /// or run later statements inside a transaction nobody commits.
    pub async fn open_sqlite(path: &Path) -> Result<Store, DbError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .after_release(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
            .connect_with(options)
            .await?;
        Store::from_pool(Pool::Sqlite(pool)).await
    }

    /// Opens (creating the directory and the file if needed) the embedded database
    /// [`SQLITE_FILE`] inside the data directory `data_dir`.
    pub async fn open_data_dir(data_dir: &Path) -> Result<Store, DbError> {
        tokio::fs::create_dir_all(data_dir).await?;
        Store::open_sqlite(&data_dir.join(SQLITE_FILE)).await
    }

    /// Opens the database a URL names: `postgres://…` (or `postgresql://…`) for
    /// PostgreSQL, `sqlite://PATH` or a plain path for SQLite.
    pub async fn connect(url: &str) -> Result<Store, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(30))
                .after_release(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
                .connect(url)
                .await?;
            Store::from_pool(Pool::Postgres(pool)).await
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Store::open_sqlite(Path::new(path)).await
        }
    }

    async fn from_pool(pool: Pool) -> Result<Store, DbError> {
        migrate::run(&pool).await?;
        let (notify, _) = broadcast::channel(256);
        let (log_notify, _) = broadcast::channel(1024);
        Ok(Store {
            pool,
            notify,
            log_notify,
        })
    }

    /// Brings the schema up to date. [`Store::open_sqlite`] and [`Store::connect`]
    /// already do this; running it again changes nothing.
    pub async fn migrate(&self) -> Result<(), DbError> {
        migrate::run(&self.pool).await
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    /// Commits `tx` and wakes followers if it appended events.
    async fn commit(&self, tx: conn::Tx) -> Result<(), DbError> {
        self.commit_returning_event(tx).await.map(|_| ())
    }

    /// Like [`Store::commit`], returning the id of the last event appended.
    async fn commit_returning_event(&self, tx: conn::Tx) -> Result<Option<i64>, DbError> {
        let last = tx.commit(now_ms()).await?;
        if let Some(id) = last {
            // No receiver is fine: nobody follows right now.
            let _ = self.notify.send(id);
        }
        Ok(last)
    }
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A duration in milliseconds, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Builds a pending event with JSON data.
fn event(
    kind: ferry_types::EventKind,
    project: Option<&str>,
    run_id: Option<i64>,
    job: Option<&str>,
    data: serde_json::Value,
) -> PendingEvent {
    PendingEvent {
        kind,
        project: project.map(str::to_owned),
        run_id,
        job: job.map(str::to_owned),
        data,
    }
}

/// Whether an error is a unique-constraint violation (a duplicate key).
fn is_unique_violation(err: &DbError) -> bool {
    match err {
        DbError::Sqlx(sqlx::Error::Database(e)) => e.is_unique_violation(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_types::Role;

    #[tokio::test]
    async fn a_connection_given_back_inside_a_transaction_is_closed_and_its_lock_freed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        let Pool::Sqlite(pool) = &store.pool else {
            unreachable!("open_data_dir opens SQLite")
        };
        // As when a future is dropped while its BEGIN runs: the connection goes back to
        // the pool inside a transaction holding the write lock, with no `Transaction`
        // left to roll it back.
        let mut conn = pool.acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("CREATE TABLE held (x INTEGER)")
            .execute(&mut *tx)
            .await
            .unwrap();
        std::mem::forget(tx);
        drop(conn);
        // Another writer gets the lock (rather than "database is locked" after the
        // busy timeout), and the abandoned transaction's change is gone.
        store
            .create_token("after", Role::Admin)
            .await
            .expect("a write after the abandoned transaction");
        let held: Option<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE name = 'held'")
                .fetch_optional(pool)
                .await
                .unwrap();
        assert_eq!(held, None, "the abandoned transaction was rolled back");
    }
}
