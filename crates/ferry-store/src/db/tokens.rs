//! API tokens: random, shown once, stored only as their SHA-256.
//!
//! A token is `ferry_` followed by 32 random bytes in unpadded base64url. Its hash is
//! the lookup key, so verifying is one indexed query and the database never holds
//! anything that would let a reader of a backup call the API. (Comparing hashes needs
//! no constant time: an attacker who can time the lookup learns about a hash, not a
//! token.)

use super::conn::{Q, Row};
use super::{DbError, Store, event, now_ms};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferry_types::{EventKind, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// The prefix of every token, so scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "ferry_";

/// What the store knows about a token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Token id.
    pub id: i64,
    /// A name saying who or what uses it.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Unix ms.
    pub created_at: i64,
    /// When it was revoked, unix ms.
    pub revoked_at: Option<i64>,
}

/// A token just created: the only time its secret is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedToken {
    /// The stored facts.
    pub info: TokenInfo,
    /// The token to hand to the user, once.
    pub token: String,
}

const COLUMNS: &str = "id, name, role, created_at, revoked_at";

fn token_from_row(row: &Row) -> Result<TokenInfo, DbError> {
    Ok(TokenInfo {
        id: row.int("id")?,
        name: row.text("name")?,
        role: row.parse("role")?,
        created_at: row.int("created_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

/// The stored form of a token: hex SHA-256.
fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Creates a token with `role`; the returned [`CreatedToken::token`] is not stored.
    pub async fn create_token(&self, name: &str, role: Role) -> Result<CreatedToken, DbError> {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| {
            DbError::Codec(std::io::Error::other(format!(
                "no randomness for a token: {e}"
            )))
        })?;
        let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
        let mut tx = self.pool.begin().await?;
        let info = token_from_row(
            &tx.fetch_one(
                Q::new(format!(
                    "INSERT INTO tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
                ))
                .text(name)
                .text(role.as_str())
                .text(hash(&token))
                .int(now_ms()),
            )
            .await?,
        )?;
        tx.event(event(
            EventKind::TokenCreated,
            None,
            None,
            None,
            json!({ "token_id": info.id, "name": name, "role": role }),
        ));
        self.commit(tx).await?;
        Ok(CreatedToken { info, token })
    }

    /// The token's facts if `token` is a token that exists and is not revoked.
    pub async fn verify_token(&self, token: &str) -> Result<Option<TokenInfo>, DbError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let row = self
            .pool
            .fetch_optional(
                Q::new(format!(
                    "SELECT {COLUMNS} FROM tokens WHERE hash = $1 AND revoked_at IS NULL"
                ))
                .text(hash(token)),
            )
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, DbError> {
        let rows = self
            .pool
            .fetch_all(Q::new(format!("SELECT {COLUMNS} FROM tokens ORDER BY id")))
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token; returns false if there is no such token or it was revoked
    /// already.
    pub async fn revoke_token(&self, id: i64) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = tx
            .fetch_optional(
                Q::new("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING name")
                    .int(now_ms())
                    .int(id),
            )
            .await?
        else {
            return Ok(false);
        };
        let name = row.text("name")?;
        tx.event(event(
            EventKind::TokenRevoked,
            None,
            None,
            None,
            json!({ "token_id": id, "name": name }),
        ));
        self.commit(tx).await?;
        Ok(true)
    }
}
