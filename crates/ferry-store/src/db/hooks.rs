//! Webhook deliveries, recorded before they are answered.
//!
//! The API verifies a delivery's signature, then calls [`Store::record_delivery`]
//! before it responds: the payload is then durable, so a crash right after the answer
//! loses nothing — on start-up the server handles [`Store::pending_deliveries`]. A
//! delivery id seen before for the same project is refused, so a repeated delivery
//! starts nothing new.

use super::conn::{Q, Row};
use super::{DbError, Store, event, is_unique_violation, now_ms};
use ferry_types::EventKind;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A stored webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Row id.
    pub id: i64,
    /// The project's name.
    pub project: String,
    /// The sender's delivery id (`X-GitHub-Delivery`, …).
    pub delivery_id: String,
    /// The sender's event name, e.g. `push`.
    pub kind: String,
    /// The request body as received.
    pub payload: String,
    /// Unix ms.
    pub received_at: i64,
    /// When it was acted upon, unix ms.
    pub processed_at: Option<i64>,
}

const COLUMNS: &str =
    "w.id, p.name AS project, w.delivery_id, w.kind, w.payload, w.received_at, w.processed_at";

fn delivery_from_row(row: &Row) -> Result<Delivery, DbError> {
    Ok(Delivery {
        id: row.int("id")?,
        project: row.text("project")?,
        delivery_id: row.text("delivery_id")?,
        kind: row.text("kind")?,
        payload: row.text("payload")?,
        received_at: row.int("received_at")?,
        processed_at: row.opt_int("processed_at")?,
    })
}

impl Store {
    /// Stores an accepted delivery with its payload and appends `webhook.received`.
    /// Returns `None` when this project already has a delivery with this id (a
    /// repeat, to be ignored), otherwise the stored delivery's row id.
    pub async fn record_delivery(
        &self,
        project: &str,
        delivery_id: &str,
        kind: &str,
        payload: &str,
    ) -> Result<Option<i64>, DbError> {
        let mut tx = self.pool.begin().await?;
        let project_id = tx
            .fetch_optional(Q::new("SELECT id FROM projects WHERE name = $1").text(project))
            .await?
            .ok_or_else(|| DbError::NotFound {
                what: "project",
                key: project.to_owned(),
            })?
            .int("id")?;
        // ON CONFLICT DO NOTHING (both dialects) keeps a PostgreSQL transaction usable
        // after a repeat, unlike catching the unique violation.
        let row = tx
            .fetch_optional(
                Q::new(
                    "INSERT INTO webhook_deliveries (project_id, delivery_id, kind, payload, received_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, delivery_id) DO NOTHING RETURNING id",
                )
                .int(project_id)
                .text(delivery_id)
                .text(kind)
                .text(payload)
                .int(now_ms()),
            )
            .await;
        let id = match row {
            Ok(Some(row)) => row.int("id")?,
            Ok(None) => return Ok(None),
            Err(e) if is_unique_violation(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        tx.event(event(
            EventKind::WebhookReceived,
            Some(project),
            None,
            None,
            json!({ "delivery": delivery_id, "kind": kind, "id": id }),
        ));
        self.commit(tx).await?;
        Ok(Some(id))
    }

    /// Deliveries accepted but not yet marked processed, oldest first.
    pub async fn pending_deliveries(&self) -> Result<Vec<Delivery>, DbError> {
        let rows = self
            .pool
            .fetch_all(Q::new(format!(
                "SELECT {COLUMNS} FROM webhook_deliveries w JOIN projects p ON p.id = w.project_id \
                 WHERE w.processed_at IS NULL ORDER BY w.id"
            )))
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Marks a delivery as acted upon; returns false if it was already.
    pub async fn mark_delivery_processed(&self, id: i64) -> Result<bool, DbError> {
        let changed = self
            .pool
            .execute(
                Q::new("UPDATE webhook_deliveries SET processed_at = $1 WHERE id = $2 AND processed_at IS NULL")
                    .int(now_ms())
                    .int(id),
            )
            .await?;
        Ok(changed > 0)
    }
}
