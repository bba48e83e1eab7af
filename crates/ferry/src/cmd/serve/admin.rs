//! The first admin token, and the token file `ferry up` keeps for the local admin.
//!
//! `ferry serve` creates an admin token when the store holds no token at all, prints
//! it once and keeps only its hash. `ferry up` is for one person on one machine, so it
//! also writes the token to `admin.token` in the data directory (mode 0600), where the
//! client commands find it when no `--token` is given.

use anyhow::Context;
use ferry_store::db::Store;
use ferry_types::Role;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The token file's name inside the data directory.
pub const TOKEN_FILE: &str = "admin.token";

/// The path of the token file in `data_dir`.
pub fn token_file(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

/// Creates the first admin token if the store has none; returns it (to show once).
pub async fn first_admin_token(store: &Store) -> anyhow::Result<Option<String>> {
    let tokens = store
        .list_tokens()
        .await
        .context("cannot read the tokens from the store")?;
    if !tokens.is_empty() {
        return Ok(None);
    }
    let created = store
        .create_token("admin", Role::Admin)
        .await
        .context("cannot create the admin token")?;
    Ok(Some(created.token))
}

/// Prints a token that is shown once, where a person will see it.
pub fn announce_new_token(token: &str) {
    println!();
    println!("Admin token (shown once, only its hash is stored — keep it now):");
    println!();
    println!("    {token}");
    println!();
    println!("Use it with `--token` or `FERRY_TOKEN`, or create others with `ferry token create`.");
    println!();
}

/// The admin token `ferry up` uses: the one in the token file if it still works,
/// else a new one written there. Returns the token and whether it is new.
pub async fn up_token(store: &Store, data_dir: &Path) -> anyhow::Result<(String, bool)> {
    let path = token_file(data_dir);
    if let Some(token) = read_token_file(&path)? {
        let valid = store
            .verify_token(&token)
            .await
            .context("cannot check the admin token")?;
        if valid.is_some_and(|info| info.role == Role::Admin) {
            return Ok((token, false));
        }
    }
    let created = store
        .create_token("ferry up", Role::Admin)
        .await
        .context("cannot create the admin token")?;
    write_token_file(&path, &created.token)?;
    Ok((created.token, true))
}

/// The token in `path`, if the file exists.
pub fn read_token_file(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim();
            Ok((!token.is_empty()).then(|| token.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the token readable by its owner only (created 0600, never wider).
fn write_token_file(path: &Path, token: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("token.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", tmp.display()))?;
    writeln!(file, "{token}").with_context(|| format!("cannot write {}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
