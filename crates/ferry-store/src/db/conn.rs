//! The one place that knows there are two backends.
//!
//! Every query in this module tree is written once as a [`Q`] — SQL text with `$1`,
//! `$2`, … placeholders (SQLite accepts them too) and a list of [`Arg`]s — and runs on
//! either a [`Pool`] or a [`Tx`], which match on the backend and bind the same values to
//! `sqlx::query`. Rows come back as [`Row`], read by column name. Where the dialects
//! differ, the caller picks the SQL text by [`Backend`].

use super::DbError;
use ferry_types::EventKind;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Postgres, Row as _, Sqlite, Transaction};
use std::borrow::Cow;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite, one file in the data directory.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A connection pool to one of the two backends.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One bound value. Every column is an integer, text or bytes, so three kinds suffice.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Vec<u8>),
}

/// A query: SQL text and the values for its placeholders, in order.
#[derive(Debug, Clone)]
pub(crate) struct Q {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

impl Q {
    pub(crate) fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Q {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    pub(crate) fn int(mut self, v: i64) -> Self {
        self.args.push(Arg::Int(Some(v)));
        self
    }

    pub(crate) fn opt_int(mut self, v: Option<i64>) -> Self {
        self.args.push(Arg::Int(v));
        self
    }

    pub(crate) fn text(mut self, v: impl Into<String>) -> Self {
        self.args.push(Arg::Text(Some(v.into())));
        self
    }

    pub(crate) fn opt_text(mut self, v: Option<impl Into<String>>) -> Self {
        self.args.push(Arg::Text(v.map(Into::into)));
        self
    }

    pub(crate) fn bytes(mut self, v: Vec<u8>) -> Self {
        self.args.push(Arg::Bytes(v));
        self
    }
}

/// Binds a [`Q`]'s arguments to a `sqlx::query` for whichever backend `$db` is.
macro_rules! bound {
    ($q:expr) => {{
        let mut query = sqlx::query(&$q.sql);
        for arg in $q.args {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::Bytes(v) => query.bind(v),
            };
        }
        query
    }};
}

/// A row from either backend, read by column name.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    fn get<T>(&self, col: &str) -> Result<T, DbError>
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>,
    {
        Ok(match self {
            Row::Sqlite(r) => r.try_get(col)?,
            Row::Postgres(r) => r.try_get(col)?,
        })
    }

    pub(crate) fn int(&self, col: &str) -> Result<i64, DbError> {
        self.get(col)
    }

    pub(crate) fn opt_int(&self, col: &str) -> Result<Option<i64>, DbError> {
        self.get(col)
    }

    pub(crate) fn text(&self, col: &str) -> Result<String, DbError> {
        self.get(col)
    }

    pub(crate) fn opt_text(&self, col: &str) -> Result<Option<String>, DbError> {
        self.get(col)
    }

    pub(crate) fn bytes(&self, col: &str) -> Result<Vec<u8>, DbError> {
        self.get(col)
    }

    /// A text column holding one of the ferry-types enums.
    pub(crate) fn parse<T>(&self, col: &str) -> Result<T, DbError>
    where
        T: std::str::FromStr<Err = ferry_types::UnknownName>,
    {
        let text = self.text(col)?;
        text.parse()
            .map_err(|e: ferry_types::UnknownName| DbError::Corrupt(e.to_string()))
    }

    /// A text column holding JSON.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T, DbError> {
        let text = self.text(col)?;
        serde_json::from_str(&text)
            .map_err(|e| DbError::Corrupt(format!("column `{col}` holds bad JSON: {e}")))
    }
}

/// The four ways of running a query, for [`Pool`] (on `&self`) and [`Tx`] (on
/// `&mut self`): `$subject` is matched with the two patterns, whose bindings give the
/// executor for each backend.
macro_rules! executor_methods {
    (($($recv:tt)*), $subject:expr, $sq:pat => $se:expr, $pq:pat => $pe:expr) => {
        /// Runs a statement; returns the number of rows it changed.
        pub(crate) async fn execute($($recv)*, q: Q) -> Result<u64, DbError> {
            Ok(match $subject {
                $sq => bound!(q).execute($se).await?.rows_affected(),
                $pq => bound!(q).execute($pe).await?.rows_affected(),
            })
        }

        /// Runs a query and returns every row.
        pub(crate) async fn fetch_all($($recv)*, q: Q) -> Result<Vec<Row>, DbError> {
            Ok(match $subject {
                $sq => bound!(q).fetch_all($se).await?.into_iter().map(Row::from).collect(),
                $pq => bound!(q).fetch_all($pe).await?.into_iter().map(Row::from).collect(),
            })
        }

        /// Runs a query and returns its first row, if any.
        pub(crate) async fn fetch_optional($($recv)*, q: Q) -> Result<Option<Row>, DbError> {
            Ok(match $subject {
                $sq => bound!(q).fetch_optional($se).await?.map(Row::from),
                $pq => bound!(q).fetch_optional($pe).await?.map(Row::from),
            })
        }

        /// Runs a query that must return a row.
        pub(crate) async fn fetch_one($($recv)*, q: Q) -> Result<Row, DbError> {
            Ok(match $subject {
                $sq => Row::from(bound!(q).fetch_one($se).await?),
                $pq => Row::from(bound!(q).fetch_one($pe).await?),
            })
        }
    };
}

impl Pool {
    executor_methods!((&self), self, Pool::Sqlite(p) => p, Pool::Postgres(p) => p);

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`, which takes the
    /// write lock up front: a deferred transaction that reads and then writes can fail
    /// with "database is locked" when another connection wrote in between, and the
    /// busy timeout does not help there.
    pub(crate) async fn begin(&self) -> Result<Tx, DbError> {
        let inner = match self {
            Pool::Sqlite(p) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => TxInner::Postgres(p.begin().await?),
        };
        Ok(Tx {
            inner,
            events: Vec::new(),
        })
    }
}

/// An event waiting in a transaction; written when the transaction commits.
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
    pub(crate) kind: EventKind,
    pub(crate) project: Option<String>,
    pub(crate) run_id: Option<i64>,
    pub(crate) job: Option<String>,
    pub(crate) data: serde_json::Value,
}

enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// An open write transaction, with the events it will append on commit.
///
/// Dropping it without [`Tx::commit`] rolls everything back, events included.
pub(crate) struct Tx {
    inner: TxInner,
    events: Vec<PendingEvent>,
}

impl Tx {
    executor_methods!((&mut self), &mut self.inner, TxInner::Sqlite(t) => &mut **t, TxInner::Postgres(t) => &mut **t);

    pub(crate) fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Queues an event to be appended when this transaction commits.
    pub(crate) fn event(&mut self, event: PendingEvent) {
        self.events.push(event);
    }

    /// Appends the queued events and commits. Returns the id of the last event
    /// appended, if any.
    ///
    /// Events are written last, just before the commit, and on PostgreSQL under a
    /// transaction-scoped advisory lock: ids then become visible in the order they were
    /// handed out, so a follower that has seen id N never misses a smaller id committed
    /// later. Holding the lock only at the very end keeps it short and means a holder
    /// never waits for a row lock (no deadlock with other writers).
    pub(crate) async fn commit(mut self, now: i64) -> Result<Option<i64>, DbError> {
        let mut last = None;
        if !self.events.is_empty() {
            if self.backend() == Backend::Postgres {
                self.execute(Q::new("SELECT pg_advisory_xact_lock($1)").int(EVENT_LOCK_KEY))
                    .await?;
            }
            for ev in std::mem::take(&mut self.events) {
                let q = Q::new(
                    "INSERT INTO events (at, kind, project, run_id, job, data) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .int(now)
                .text(ev.kind.as_str())
                .opt_text(ev.project)
                .opt_int(ev.run_id)
                .opt_text(ev.job)
                .text(ev.data.to_string());
                last = Some(self.fetch_one(q).await?.int("id")?);
            }
        }
        match self.inner {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        Ok(last)
    }
}

/// The advisory lock that orders event appends on PostgreSQL ("ferry-ev" in ASCII).
const EVENT_LOCK_KEY: i64 = 0x6665_7272_792d_6576;

impl From<SqliteRow> for Row {
    fn from(r: SqliteRow) -> Self {
        Row::Sqlite(r)
    }
}

impl From<PgRow> for Row {
    fn from(r: PgRow) -> Self {
        Row::Postgres(r)
    }
}
