//! Projects: a name, the repository to build and the secret its webhooks are signed
//! with.

use super::conn::{Q, Row};
use super::{DbError, Store, event, is_unique_violation, now_ms};
use ferry_types::EventKind;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A registered project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Database id.
    pub id: i64,
    /// Unique name, used in URLs and commands.
    pub name: String,
    /// Repository URL or local path.
    pub repo: String,
    /// The branch runs use when none is given.
    pub default_branch: String,
    /// The secret webhooks are signed with (HMAC key or GitLab token), if set.
    #[serde(skip_serializing)]
    pub webhook_secret: Option<String>,
    /// When it was added, unix ms.
    pub created_at: i64,
}

/// What [`Store::add_project`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    /// Unique name.
    pub name: String,
    /// Repository URL or local path.
    pub repo: String,
    /// Default branch, e.g. `main`.
    pub default_branch: String,
    /// Webhook secret, if webhooks are to be accepted.
    pub webhook_secret: Option<String>,
}

const COLUMNS: &str = "id, name, repo, default_branch, webhook_secret, created_at";

fn project_from_row(row: &Row) -> Result<Project, DbError> {
    Ok(Project {
        id: row.int("id")?,
        name: row.text("name")?,
        repo: row.text("repo")?,
        default_branch: row.text("default_branch")?,
        webhook_secret: row.opt_text("webhook_secret")?,
        created_at: row.int("created_at")?,
    })
}

impl Store {
    /// Registers a project; fails with [`DbError::Conflict`] if the name is taken.
    pub async fn add_project(&self, new: &NewProject) -> Result<Project, DbError> {
        let mut tx = self.pool.begin().await?;
        // The webhook secret is stored as given: verifying an HMAC needs the key
        // itself. It is to be encrypted at rest with ferry-secrets.
        let q = Q::new(format!(
            "INSERT INTO projects (name, repo, default_branch, webhook_secret, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ))
        .text(&new.name)
        .text(&new.repo)
        .text(&new.default_branch)
        .opt_text(new.webhook_secret.clone())
        .int(now_ms());
        let project = match tx.fetch_one(q).await {
            Ok(row) => project_from_row(&row)?,
            Err(e) if is_unique_violation(&e) => {
                return Err(DbError::Conflict {
                    what: "project",
                    key: new.name.clone(),
                });
            }
            Err(e) => return Err(e),
        };
        tx.event(event(
            EventKind::ProjectAdded,
            Some(&project.name),
            None,
            None,
            json!({ "repo": project.repo, "default_branch": project.default_branch }),
        ));
        self.commit(tx).await?;
        Ok(project)
    }

    /// Every project, by name.
    pub async fn list_projects(&self) -> Result<Vec<Project>, DbError> {
        let rows = self
            .pool
            .fetch_all(Q::new(format!(
                "SELECT {COLUMNS} FROM projects ORDER BY name"
            )))
            .await?;
        rows.iter().map(project_from_row).collect()
    }

    /// The project called `name`, if there is one.
    pub async fn get_project(&self, name: &str) -> Result<Option<Project>, DbError> {
        let row = self
            .pool
            .fetch_optional(
                Q::new(format!("SELECT {COLUMNS} FROM projects WHERE name = $1")).text(name),
            )
            .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    /// Replaces the stored webhook secret of project `name` (as stored: the engine
    /// seals it first). Returns false if there is no such project.
    pub async fn set_webhook_secret(&self, name: &str, stored: &str) -> Result<bool, DbError> {
        let changed = self
            .pool
            .execute(
                Q::new("UPDATE projects SET webhook_secret = $1 WHERE name = $2")
                    .text(stored)
                    .text(name),
            )
            .await?;
        Ok(changed > 0)
    }

    /// Removes a project with its runs, jobs, logs and webhook deliveries. The event
    /// log keeps its history. Returns false if there was no such project.
    pub async fn remove_project(&self, name: &str) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let removed = tx
            .execute(Q::new("DELETE FROM projects WHERE name = $1").text(name))
            .await?;
        if removed == 0 {
            return Ok(false);
        }
        tx.event(event(
            EventKind::ProjectRemoved,
            Some(name),
            None,
            None,
            json!({}),
        ));
        self.commit(tx).await?;
        Ok(true)
    }
}
