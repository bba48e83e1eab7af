//! Secrets encrypted at rest in the data directory.
//!
//! Layout of `<data_dir>` (created with mode 0700 if missing; files are 0600):
//!
//! * `master.key` — the master key as 64 hex characters, generated on first use,
//!   unless `FERRY_MASTER_KEY` is set (64 hex characters, or the base64 of 32 bytes).
//!   The file is refused if other users can read it.
//! * `secrets.json` — `{"version": 1, "key_check": …, "secrets": {NAME: value}}`, where
//!   each value is base64(nonce ‖ ciphertext): ChaCha20-Poly1305 with a random 96-bit
//!   nonce and the secret's name as associated data, so a value moved to another name
//!   fails to decrypt. `key_check` is a fixed text encrypted under the same key, so a
//!   changed master key is reported instead of silently mixing two keys in one file.
//!   Written atomically (temp file, fsync, rename, fsync of the directory).
//! * `secrets.lock` — writers hold an exclusive lock on it for their
//!   read-modify-write, so concurrent `set`s (threads or processes) never lose updates.
//!   Readers need no lock: they see the old file or the new one, never a mix.

mod error;
mod fsutil;
mod key;

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};

pub use error::SecretError;
pub use key::{KeySource, MASTER_KEY_ENV, MASTER_KEY_FILE, MasterKey};

/// The prefix of a value sealed by [`SecretStore::seal_for`].
pub const SEALED_PREFIX: &str = "ferry-sealed:v1:";

/// The secrets file's name inside the data directory.
pub const SECRETS_FILE: &str = "secrets.json";
const LOCK_FILE: &str = "secrets.lock";
const FORMAT_VERSION: u32 = 1;
const NONCE_LEN: usize = 12;
/// Associated data of the key check; cannot collide with a secret name (those have no `:`).
const KEY_CHECK_AD: &[u8] = b"ferry:key-check";
const KEY_CHECK_TEXT: &[u8] = b"ferry master key check v1";

/// The encrypted secrets of one data directory.
///
/// Every call reads `secrets.json` afresh, so changes made by another process (the CLI
/// while the server runs) are seen at once. `Debug` never shows the key.
pub struct SecretStore {
    dir: PathBuf,
    cipher: ChaCha20Poly1305,
    key_source: KeySource,
}

#[derive(Serialize, Deserialize)]
struct SecretsFile {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_check: Option<String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

impl SecretStore {
    /// Opens (creating the key on first use) the store in `data_dir`.
    ///
    /// The master key comes from `FERRY_MASTER_KEY` when it is set and not empty,
    /// otherwise from `<data_dir>/master.key`, which is generated (mode 0600) if missing.
    /// The key is checked against existing secrets on first use, or with
    /// [`SecretStore::verify_key`].
    pub fn open(data_dir: &Path) -> Result<Self, SecretError> {
        let env = std::env::var_os(MASTER_KEY_ENV);
        Self::open_with_env(data_dir, env.as_deref())
    }

    /// Opens the store in `data_dir` with this master key (never reads `master.key`).
    pub fn open_with_key(data_dir: &Path, key: MasterKey) -> Result<Self, SecretError> {
        fsutil::create_private_dir(data_dir)?;
        Ok(Self::with_key(data_dir, &key, KeySource::Explicit))
    }

    /// `open`, with the environment variable's value passed in (testable without
    /// mutating the process environment).
    fn open_with_env(data_dir: &Path, env: Option<&std::ffi::OsStr>) -> Result<Self, SecretError> {
        fsutil::create_private_dir(data_dir)?;
        match env.filter(|v| !v.is_empty()) {
            Some(value) => {
                let text = value.to_str().ok_or_else(|| SecretError::MalformedKey {
                    origin: KeySource::Env.to_string(),
                    reason: "it is not valid UTF-8".into(),
                })?;
                let key = MasterKey::parse(text, &KeySource::Env)?;
                Ok(Self::with_key(data_dir, &key, KeySource::Env))
            }
            None => {
                let (key, source) = key::load_or_create(data_dir)?;
                Ok(Self::with_key(data_dir, &key, source))
            }
        }
    }

    fn with_key(data_dir: &Path, key: &MasterKey, key_source: KeySource) -> Self {
        Self {
            dir: data_dir.to_path_buf(),
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.bytes())),
            key_source,
        }
    }

    /// Where the master key came from.
    pub fn key_source(&self) -> &KeySource {
        &self.key_source
    }

    /// The path of `secrets.json`.
    pub fn path(&self) -> PathBuf {
        self.dir.join(SECRETS_FILE)
    }

    /// Checks that the master key is the one the existing secrets were written with
    /// (useful at startup, to fail early after `FERRY_MASTER_KEY` changed).
    pub fn verify_key(&self) -> Result<(), SecretError> {
        self.check_key(&self.read()?)
    }

    /// Stores `value` under `name`, replacing any previous value.
    pub fn set(&self, name: &str, value: &[u8]) -> Result<(), SecretError> {
        validate_name(name)?;
        let _lock = fsutil::WriteLock::acquire(&self.dir.join(LOCK_FILE))?;
        let mut file = self.read()?;
        self.check_key(&file)?;
        if file.key_check.is_none() {
            file.key_check = Some(self.seal(KEY_CHECK_AD, KEY_CHECK_TEXT)?);
        }
        let sealed = self.seal(name.as_bytes(), value)?;
        file.secrets.insert(name.to_owned(), sealed);
        self.write(&file)
    }

    /// The value of `name`, or `None` if there is no such secret.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SecretError> {
        validate_name(name)?;
        let file = self.read()?;
        file.secrets
            .get(name)
            .map(|sealed| self.open_value(name, sealed))
            .transpose()
    }

    /// The values of several secrets, read from one consistent version of the file.
    /// Names without a secret are absent from the result.
    pub fn get_many<I, S>(&self, names: I) -> Result<BTreeMap<String, Vec<u8>>, SecretError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let file = self.read()?;
        let mut values = BTreeMap::new();
        for name in names {
            let name = name.as_ref();
            validate_name(name)?;
            if let Some(sealed) = file.secrets.get(name) {
                values.insert(name.to_owned(), self.open_value(name, sealed)?);
            }
        }
        Ok(values)
    }

    /// The names of all secrets, sorted. Values are not decrypted.
    pub fn list(&self) -> Result<Vec<String>, SecretError> {
        Ok(self.read()?.secrets.into_keys().collect())
    }

    /// Deletes `name`; returns whether it existed.
    pub fn remove(&self, name: &str) -> Result<bool, SecretError> {
        validate_name(name)?;
        let _lock = fsutil::WriteLock::acquire(&self.dir.join(LOCK_FILE))?;
        let mut file = self.read()?;
        if file.secrets.remove(name).is_none() {
            return Ok(false);
        }
        self.write(&file)?;
        Ok(true)
    }

    fn read(&self) -> Result<SecretsFile, SecretError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(SecretsFile {
                    version: FORMAT_VERSION,
                    key_check: None,
                    secrets: BTreeMap::new(),
                });
            }
            Err(e) => return Err(fsutil::io_error("read", &path, e)),
        };
        let bad = |e: serde_json::Error| SecretError::BadFile {
            path: path.clone(),
            reason: e.to_string(),
        };
        let probe: VersionProbe = serde_json::from_slice(&bytes).map_err(bad)?;
        if probe.version != FORMAT_VERSION {
            return Err(SecretError::UnsupportedVersion {
                path,
                version: probe.version,
            });
        }
        serde_json::from_slice(&bytes).map_err(bad)
    }

    fn write(&self, file: &SecretsFile) -> Result<(), SecretError> {
        let path = self.path();
        let mut json = serde_json::to_vec_pretty(file).map_err(|e| SecretError::BadFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        json.push(b'\n');
        fsutil::replace_atomically(&path, &json)
    }

    fn check_key(&self, file: &SecretsFile) -> Result<(), SecretError> {
        let Some(check) = &file.key_check else {
            return Ok(());
        };
        match self.unseal(KEY_CHECK_AD, check) {
            Ok(text) if text == KEY_CHECK_TEXT => Ok(()),
            _ => Err(SecretError::KeyMismatch {
                path: self.path(),
                key_source: self.key_source.to_string(),
            }),
        }
    }

    /// Encrypts `value` for keeping outside `secrets.json` — a database column, such
    /// as a project's webhook secret — under the master key. `context` names what it
    /// is (`webhook secret of project `shop``): the value opens only with the same
    /// context, so a value copied to another row does not. The result starts with
    /// [`SEALED_PREFIX`].
    pub fn seal_for(&self, context: &str, value: &[u8]) -> Result<String, SecretError> {
        let sealed = self.seal(sealed_ad(context).as_bytes(), value)?;
        Ok(format!("{SEALED_PREFIX}{sealed}"))
    }

    /// Decrypts a value made by [`SecretStore::seal_for`] with the same `context`. A
    /// value without [`SEALED_PREFIX`] was stored before sealing existed and is
    /// returned as it is.
    pub fn open_for(&self, context: &str, stored: &str) -> Result<Vec<u8>, SecretError> {
        let Some(sealed) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.as_bytes().to_vec());
        };
        self.unseal(sealed_ad(context).as_bytes(), sealed)
            .map_err(|e| SecretError::Sealed {
                context: context.to_owned(),
                reason: match e {
                    Unseal::Malformed => "it is corrupt",
                    Unseal::Rejected => {
                        "it was sealed with another master key, or for something else"
                    }
                },
                key_source: self.key_source.to_string(),
            })
    }

    fn seal(&self, ad: &[u8], value: &[u8]) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|e| SecretError::Random {
            reason: e.to_string(),
        })?;
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: ad,
                },
            )
            .map_err(|_| SecretError::Encrypt)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(STANDARD.encode(sealed))
    }

    /// Decrypts; `Rejected` means the authentication tag did not verify.
    fn unseal(&self, ad: &[u8], sealed: &str) -> Result<Vec<u8>, Unseal> {
        let bytes = STANDARD.decode(sealed).map_err(|_| Unseal::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(Unseal::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: ad,
                },
            )
            .map_err(|_| Unseal::Rejected)
    }

    fn open_value(&self, name: &str, sealed: &str) -> Result<Vec<u8>, SecretError> {
        self.unseal(name.as_bytes(), sealed).map_err(|e| match e {
            Unseal::Malformed => SecretError::CorruptValue {
                name: name.to_owned(),
                path: self.path(),
            },
            Unseal::Rejected => SecretError::WrongKey {
                name: name.to_owned(),
                path: self.path(),
                key_source: self.key_source.to_string(),
            },
        })
    }
}

/// The associated data of a sealed value: never a secret's name (those have no `:`).
fn sealed_ad(context: &str) -> String {
    format!("ferry:sealed:{context}")
}

enum Unseal {
    Malformed,
    Rejected,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("dir", &self.dir)
            .field("key_source", &self.key_source)
            .finish_non_exhaustive()
    }
}

/// Checks a secret name: `[A-Za-z_][A-Za-z0-9_]*` (it becomes an environment variable).
pub fn validate_name(name: &str) -> Result<(), SecretError> {
    let mut bytes = name.bytes();
    let valid = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(SecretError::InvalidName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_prefers_a_non_empty_master_key_variable() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::from_bytes([9; 32]);
        let env = std::ffi::OsString::from(key.to_hex());
        let store = SecretStore::open_with_env(dir.path(), Some(&env)).unwrap();
        assert_eq!(store.key_source(), &KeySource::Env);
        store.set("TOKEN", b"v").unwrap();
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
        // The same key given explicitly reads it back.
        let again = SecretStore::open_with_key(dir.path(), key).unwrap();
        assert_eq!(again.get("TOKEN").unwrap().as_deref(), Some(&b"v"[..]));
        // An empty variable counts as unset: the key file is used (and created).
        let empty = std::ffi::OsString::new();
        let from_file = SecretStore::open_with_env(dir.path(), Some(&empty)).unwrap();
        assert!(matches!(from_file.key_source(), KeySource::File(_)));
        assert!(dir.path().join(MASTER_KEY_FILE).exists());
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_context_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open_with_key(dir.path(), MasterKey::from_bytes([7; 32])).unwrap();
        let context = "webhook secret of project `shop`";
        let sealed = store.seal_for(context, b"s3cret").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX), "{sealed}");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(store.open_for(context, &sealed).unwrap(), b"s3cret");
        // Sealing twice gives two texts (a fresh nonce each time).
        assert_ne!(store.seal_for(context, b"s3cret").unwrap(), sealed);

        let other = "webhook secret of project `cart`";
        let err = store.open_for(other, &sealed).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot decrypt the webhook secret of project `cart`"),
            "{err}"
        );
        let other_key =
            SecretStore::open_with_key(dir.path(), MasterKey::from_bytes([8; 32])).unwrap();
        let err = other_key
            .open_for(context, &sealed)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sealed with another master key"), "{err}");
        let err = store
            .open_for(context, &format!("{SEALED_PREFIX}!!"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("it is corrupt"), "{err}");
        // A value stored before sealing existed reads as it is.
        assert_eq!(store.open_for(context, "plain").unwrap(), b"plain");
    }

    #[test]
    fn open_rejects_a_malformed_master_key_variable() {
        let dir = tempfile::tempdir().unwrap();
        let env = std::ffi::OsString::from("hunter2");
        let err = SecretStore::open_with_env(dir.path(), Some(&env)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("`FERRY_MASTER_KEY` is not a valid master key"),
            "{msg}"
        );
        assert!(
            !msg.contains("hunter2"),
            "the value must not be echoed: {msg}"
        );
    }
}
