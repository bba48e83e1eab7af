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
pub async fn seal(data_dir: &Path, project: &str, secret: &str) -> Result<String, SecretError> {
    let (dir, context, secret) = (data_dir.to_owned(), context(project), secret.to_owned());
    blocking(move || SecretStore::open(&dir)?.seal_for(&context, secret.as_bytes())).await
}

/// The secret from what the store keeps.
pub async fn open(data_dir: &Path, project: &str, stored: &str) -> Result<Vec<u8>, SecretError> {
    let (dir, context, stored) = (data_dir.to_owned(), context(project), stored.to_owned());
    blocking(move || SecretStore::open(&dir)?.open_for(&context, &stored)).await
}

/// Runs `f` (which reads the key file) off the async workers; a panic in it goes on
/// in the caller.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SecretError> + Send + 'static,
) -> Result<T, SecretError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
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
        let sealed = match seal(&data_dir, &p.name, &clear).await {
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
