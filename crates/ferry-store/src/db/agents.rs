//! Agents: remote executors, as last seen. Their heartbeat is [`Store::agent_seen`];
//! [`Store::agents_seen_since`] gives the "connected agents" metric.

use super::conn::{Q, Row};
use super::{DbError, Store, event, now_ms};
use ferry_types::EventKind;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// An agent as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// Stable id the agent presents.
    pub id: String,
    /// Display name (host name, usually).
    pub name: String,
    /// Its labels, matched against jobs' `runs-on`.
    pub labels: Vec<String>,
    /// When it first connected, unix ms.
    pub first_seen: i64,
    /// When it last polled or renewed a lease, unix ms.
    pub last_seen: i64,
}

const COLUMNS: &str = "id, name, labels, first_seen, last_seen";

fn agent_from_row(row: &Row) -> Result<Agent, DbError> {
    Ok(Agent {
        id: row.text("id")?,
        name: row.text("name")?,
        labels: row.json("labels")?,
        first_seen: row.int("first_seen")?,
        last_seen: row.int("last_seen")?,
    })
}

impl Store {
    /// Records that an agent is alive, with its current name and labels. The first
    /// time appends `agent.registered`; later calls are heartbeats and append nothing.
    pub async fn agent_seen(
        &self,
        id: &str,
        name: &str,
        labels: &[String],
    ) -> Result<Agent, DbError> {
        let now = now_ms();
        let labels_json =
            serde_json::to_string(labels).map_err(|e| DbError::Invalid(e.to_string()))?;
        let updated = self
            .pool
            .fetch_optional(
                Q::new(format!("UPDATE agents SET name = $1, labels = $2, last_seen = $3 WHERE id = $4 RETURNING {COLUMNS}"))
                    .text(name)
                    .text(&labels_json)
                    .int(now)
                    .text(id),
            )
            .await?;
        if let Some(row) = updated {
            return agent_from_row(&row);
        }
        let mut tx = self.pool.begin().await?;
        let row = tx
            .fetch_optional(
                Q::new(format!(
                    "INSERT INTO agents (id, name, labels, first_seen, last_seen) VALUES ($1, $2, $3, $4, $4) \
                     ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
                ))
                .text(id)
                .text(name)
                .text(&labels_json)
                .int(now),
            )
            .await?;
        let Some(row) = row else {
            // Registered by a concurrent call a moment ago.
            drop(tx);
            return self.get_agent(id).await?.ok_or_else(|| DbError::NotFound {
                what: "agent",
                key: id.to_owned(),
            });
        };
        let agent = agent_from_row(&row)?;
        tx.event(event(
            EventKind::AgentRegistered,
            None,
            None,
            None,
            json!({ "agent": id, "name": name, "labels": labels }),
        ));
        self.commit(tx).await?;
        Ok(agent)
    }

    /// The agent with this id, if it ever connected.
    pub async fn get_agent(&self, id: &str) -> Result<Option<Agent>, DbError> {
        let row = self
            .pool
            .fetch_optional(Q::new(format!("SELECT {COLUMNS} FROM agents WHERE id = $1")).text(id))
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    /// Every agent, most recently seen first.
    pub async fn list_agents(&self) -> Result<Vec<Agent>, DbError> {
        let rows = self
            .pool
            .fetch_all(Q::new(format!(
                "SELECT {COLUMNS} FROM agents ORDER BY last_seen DESC, id"
            )))
            .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// How many agents were seen at or after `since` (unix ms).
    pub async fn agents_seen_since(&self, since: i64) -> Result<i64, DbError> {
        self.pool
            .fetch_one(Q::new("SELECT COUNT(*) AS n FROM agents WHERE last_seen >= $1").int(since))
            .await?
            .int("n")
    }
}
