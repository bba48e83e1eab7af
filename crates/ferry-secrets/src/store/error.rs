//! Errors of the secret store, worded for the person running Ferry.

use std::io;
use std::path::PathBuf;

/// Why a secret operation failed. The message says what failed, where, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// A secret name outside `[A-Za-z_][A-Za-z0-9_]*`.
    #[error(
        "invalid secret name `{name}`: a name starts with a letter or `_` and contains only \
         ASCII letters, digits and `_` (for example `DATABASE_URL`)"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
    },

    /// The master key text (variable or file) is not a key.
    #[error(
        "{origin} is not a valid master key: {reason}; expected 64 hex characters or the \
         base64 of 32 bytes (generate one with `openssl rand -hex 32`)"
    )]
    MalformedKey {
        /// Where the text came from (`FERRY_MASTER_KEY` or the key file).
        origin: String,
        /// What is wrong with it (never the text itself).
        reason: String,
    },

    /// The key file can be read by other users.
    #[error(
        "the master key file `{}` is accessible to other users (mode {mode:04o}); \
         restrict it with `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyFileExposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The master key is not the one the secrets file was written with.
    #[error(
        "the master key from {key_source} does not match the one `{}` was written with; \
         restore the original key (was `FERRY_MASTER_KEY` changed?) before changing secrets",
        path.display()
    )]
    KeyMismatch {
        /// The secrets file.
        path: PathBuf,
        /// Where the current key came from.
        key_source: String,
    },

    /// A secret could not be decrypted with the current key.
    #[error(
        "cannot decrypt secret `{name}` in `{}`: the master key from {key_source} does not \
         match the one it was encrypted with; restore the original key (was \
         `FERRY_MASTER_KEY` changed?) or set the secret again",
        path.display()
    )]
    WrongKey {
        /// The secret's name.
        name: String,
        /// The secrets file.
        path: PathBuf,
        /// Where the current key came from.
        key_source: String,
    },

    /// A stored value is not base64 of a nonce and ciphertext.
    #[error(
        "secret `{name}` in `{}` is corrupt (not an encrypted value); set it again",
        path.display()
    )]
    CorruptValue {
        /// The secret's name.
        name: String,
        /// The secrets file.
        path: PathBuf,
    },

    /// The secrets file is not valid.
    #[error(
        "`{}` is not a valid secrets file: {reason}; restore it from a backup",
        path.display()
    )]
    BadFile {
        /// The secrets file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },

    /// The secrets file was written by a newer Ferry.
    #[error(
        "`{}` has format version {version}, which this Ferry does not know (it reads \
         version 1); upgrade Ferry",
        path.display()
    )]
    UnsupportedVersion {
        /// The secrets file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },

    /// Reading or writing a file failed.
    #[error("could not {action} `{}`: {source}", path.display())]
    Io {
        /// What was being done (`read`, `create`, `lock`…).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The operating system's random generator failed.
    #[error("could not get random bytes from the operating system: {reason}")]
    Random {
        /// The generator's error.
        reason: String,
    },

    /// Encryption failed (only for values larger than 256 GiB).
    #[error("could not encrypt the secret value: it is too large")]
    Encrypt,

    /// A value sealed for keeping elsewhere ([`crate::SecretStore::seal_for`]) did not
    /// open.
    #[error(
        "cannot decrypt the {context}: {reason} (the master key in use comes from \
         {key_source})"
    )]
    Sealed {
        /// What the value is, e.g. `webhook secret of project `shop``.
        context: String,
        /// Why: corrupt, or sealed under another key.
        reason: &'static str,
        /// Where the key in use came from.
        key_source: String,
    },
}
