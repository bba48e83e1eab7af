//! Secrets encrypted at rest in the data directory.

use std::path::Path;

/// Why a secret operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Anything, until implemented.
    #[error("{0}")]
    Other(String),
}

/// The encrypted secrets of one data directory.
#[derive(Debug)]
pub struct SecretStore {}

impl SecretStore {
    /// Opens (creating the key on first use) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, SecretError> {
        let _ = data_dir;
        todo!("implemented by the secrets work")
    }
}
