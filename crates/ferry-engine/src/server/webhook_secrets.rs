//! Webhook secrets are kept sealed in the store: encrypted under the master key of the
//! data directory (`ferry_secrets::SecretStore::seal_for`), bound to their project, so
//! a copy of the database (a dump, a backup, a read replica) does not give them away.
//!
//! A secret stored before sealing existed is read as it is, and sealed in place when
//! the server starts ([`seal_stored`]).

use super::Core;
use ferry_secrets::{SEALED_PREFIX, SecretError, SecretStore};
use std::path::Path;

/// What a project's webhook secret is sealed as: it opens for this project only.
fn context(project: &str) -> String {
    format!("webhook secret of project `{project}`")
}

/// The secret as the store keeps it.
pub fn seal(data_dir: &Path, project: &str, secret: &str) -> Result<String, SecretError> {
    SecretStore::open(data_dir)?.seal_for(&context(project), secret.as_bytes())
}

/// The secret from what the store keeps.
pub fn open(data_dir: &Path, project: &str, stored: &str) -> Result<Vec<u8>, SecretError> {
    SecretStore::open(data_dir)?.open_for(&context(project), stored)
}

/// Seals the webhook secrets still stored in clear. A failure is logged: such a
/// secret keeps working, in clear, until the next start.
pub(crate) async fn seal_stored(core: &Core) {
    let projects = match core.store().list_projects().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot list projects to seal their webhook secrets.");
            return;
        }
    };
    let data_dir = core.config().data_dir.clone();
    for p in projects {
        let Some(clear) = p.webhook_secret.filter(|s| !s.starts_with(SEALED_PREFIX)) else {
            continue;
        };
        let (dir, name) = (data_dir.clone(), p.name.clone());
        let sealed = match tokio::task::spawn_blocking(move || seal(&dir, &name, &clear)).await {
            Ok(sealed) => sealed.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let sealed = match sealed {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(project = %p.name, %error, "Cannot seal the webhook secret; it stays in clear.");
                continue;
            }
        };
        match core.store().set_webhook_secret(&p.name, &sealed).await {
            Ok(_) => {
                tracing::info!(project = %p.name, "Sealed the webhook secret stored in clear.")
            }
            Err(e) => {
                tracing::warn!(project = %p.name, error = %e, "Cannot store the sealed webhook secret; it stays in clear.");
            }
        }
    }
}
