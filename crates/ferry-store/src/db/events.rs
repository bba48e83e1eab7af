//! The event log: append, list with filters, and follow live.
//!
//! Following wakes on an in-process broadcast sent after each commit that appended
//! events, so a follower in the server sees a new event without polling. Writers in
//! other processes (a second server on the same PostgreSQL, a CLI on the same SQLite
//! file) send no broadcast; for them a follower also looks every
//! [`CROSS_PROCESS_POLL`]. LISTEN/NOTIFY could replace that poll on PostgreSQL later.

use super::conn::{Q, Row};
use super::{DbError, Store};
use ferry_types::EventKind;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often a follower looks for events written by other processes.
pub const CROSS_PROCESS_POLL: Duration = Duration::from_secs(1);

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log; grows with every event, never reused.
    pub id: i64,
    /// When it was appended, unix milliseconds.
    pub at: i64,
    /// What happened.
    pub kind: EventKind,
    /// The project it concerns, if any.
    pub project: Option<String>,
    /// The run it concerns, if any.
    pub run_id: Option<i64>,
    /// The job instance it concerns, if any.
    pub job: Option<String>,
    /// Details, by kind.
    pub data: serde_json::Value,
}

/// An event to append with [`Store::append_event`], for things that happen outside the
/// store (a push arrived, a webhook was rejected, a secret was handed out).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// The project it concerns, if any.
    pub project: Option<String>,
    /// The run it concerns, if any.
    pub run_id: Option<i64>,
    /// The job instance it concerns, if any.
    pub job: Option<String>,
    /// Details, by kind. Never put a secret here.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event of `kind` with no subject and empty data.
    pub fn new(kind: EventKind) -> NewEvent {
        NewEvent {
            kind,
            project: None,
            run_id: None,
            job: None,
            data: serde_json::Value::Object(Default::default()),
        }
    }
}

/// Which events to list. The default lists the first 100 events of the whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events of this project.
    pub project: Option<String>,
    /// Only events of this run.
    pub run_id: Option<i64>,
    /// Only events with an id greater than this.
    pub after_id: Option<i64>,
    /// Only events appended at or after this time (unix ms).
    pub since_ms: Option<i64>,
    /// At most this many events.
    pub limit: i64,
    /// The newest `limit` events (still returned oldest first) instead of the oldest.
    pub newest: bool,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery {
            project: None,
            run_id: None,
            after_id: None,
            since_ms: None,
            limit: 100,
            newest: false,
        }
    }
}

fn event_from_row(row: &Row) -> Result<Event, DbError> {
    Ok(Event {
        id: row.int("id")?,
        at: row.int("at")?,
        kind: row.parse("kind")?,
        project: row.opt_text("project")?,
        run_id: row.opt_int("run_id")?,
        job: row.opt_text("job")?,
        data: row.json("data")?,
    })
}

impl Store {
    /// Appends one event and returns its id.
    pub async fn append_event(&self, event: NewEvent) -> Result<i64, DbError> {
        let mut tx = self.pool.begin().await?;
        tx.event(super::conn::PendingEvent {
            kind: event.kind,
            project: event.project,
            run_id: event.run_id,
            job: event.job,
            data: event.data,
        });
        let id = self.commit_returning_event(tx).await?;
        id.ok_or_else(|| DbError::Corrupt("appending an event returned no id".into()))
    }

    /// Lists events, oldest first.
    pub async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>, DbError> {
        let mut sql =
            String::from("SELECT id, at, kind, project, run_id, job, data FROM events WHERE 1 = 1");
        let mut args = Vec::new();
        let mut n = 0;
        let mut param = |sql: &mut String, cond: &str| {
            n += 1;
            sql.push_str(&cond.replace('?', &format!("${n}")));
        };
        if let Some(p) = &query.project {
            param(&mut sql, " AND project = ?");
            args.push(Bind::Text(p.clone()));
        }
        if let Some(r) = query.run_id {
            param(&mut sql, " AND run_id = ?");
            args.push(Bind::Int(r));
        }
        if let Some(a) = query.after_id {
            param(&mut sql, " AND id > ?");
            args.push(Bind::Int(a));
        }
        if let Some(s) = query.since_ms {
            param(&mut sql, " AND at >= ?");
            args.push(Bind::Int(s));
        }
        sql.push_str(if query.newest {
            " ORDER BY id DESC"
        } else {
            " ORDER BY id"
        });
        param(&mut sql, " LIMIT ?");
        args.push(Bind::Int(query.limit.max(0)));

        let mut q = Q::new(sql);
        for arg in args {
            q = match arg {
                Bind::Text(t) => q.text(t),
                Bind::Int(i) => q.int(i),
            };
        }
        let rows = self.pool.fetch_all(q).await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if query.newest {
            events.reverse();
        }
        Ok(events)
    }

    /// The id of the newest event, or 0 for an empty log: follow from here to see only
    /// what happens next.
    pub async fn last_event_id(&self) -> Result<i64, DbError> {
        let row = self
            .pool
            .fetch_one(Q::new("SELECT COALESCE(MAX(id), 0) AS id FROM events"))
            .await?;
        row.int("id")
    }

    /// A wake-up after each commit in this process that appended events, carrying the
    /// newest event id — for waiters that re-check something cheap themselves (an
    /// agent's long-poll retrying [`Store::claim_job`] when jobs are queued). A lagged
    /// receiver has only missed wake-ups, never events.
    pub fn event_notifications(&self) -> broadcast::Receiver<i64> {
        self.notify.subscribe()
    }

    /// Follows the log: the returned follower yields every event with an id greater
    /// than `after_id` (of `project`, if given), then waits for new ones.
    ///
    /// It subscribes before its first read, so an event appended at any moment after
    /// this call is seen.
    pub fn follow(&self, after_id: i64, project: Option<String>) -> EventFollower {
        EventFollower {
            store: self.clone(),
            wake: self.notify.subscribe(),
            after_id,
            position: after_id,
            project,
            buffer: VecDeque::new(),
        }
    }
}

enum Bind {
    Text(String),
    Int(i64),
}

/// A live cursor over the event log; see [`Store::follow`].
#[derive(Debug)]
pub struct EventFollower {
    store: Store,
    wake: broadcast::Receiver<i64>,
    after_id: i64,
    position: i64,
    project: Option<String>,
    buffer: VecDeque<Event>,
}

impl EventFollower {
    /// The next event, waiting until there is one.
    pub async fn next(&mut self) -> Result<Event, DbError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.position = event.id;
                return Ok(event);
            }
            let query = EventQuery {
                project: self.project.clone(),
                after_id: Some(self.after_id),
                limit: 500,
                ..EventQuery::default()
            };
            let events = self.store.list_events(&query).await?;
            if let Some(last) = events.last() {
                self.after_id = last.id;
                self.buffer.extend(events);
                continue;
            }
            tokio::select! {
                // A lagged or closed channel only means "look again".
                _ = self.wake.recv() => {}
                _ = tokio::time::sleep(CROSS_PROCESS_POLL) => {}
            }
        }
    }

    /// The id of the last event handed out (or the starting point).
    pub fn position(&self) -> i64 {
        self.position
    }
}
