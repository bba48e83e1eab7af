//! The master key: parsing, generation and the `master.key` file.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::SecretError;
use super::fsutil::{self, PRIVATE_FILE};

/// The environment variable that supplies the master key.
pub const MASTER_KEY_ENV: &str = "FERRY_MASTER_KEY";

/// The key file's name inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// A 256-bit master key for ChaCha20-Poly1305. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| SecretError::Random {
            reason: e.to_string(),
        })?;
        Ok(Self(bytes))
    }

    /// Parses a key written as 64 hex characters or as the base64 (standard or
    /// URL-safe, padding optional) of 32 bytes. Surrounding whitespace is ignored.
    /// `origin` says where the text came from, for the error message.
    pub fn parse(text: &str, origin: &KeySource) -> Result<Self, SecretError> {
        decode_key(text.trim())
            .map(Self)
            .map_err(|reason| SecretError::MalformedKey {
                origin: origin.to_string(),
                reason,
            })
    }

    /// The key as 64 lower-case hex characters (the `master.key` file format, and a
    /// valid `FERRY_MASTER_KEY` value).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

fn decode_key(text: &str) -> Result<[u8; 32], String> {
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; 32];
        hex::decode_to_slice(text, &mut key).map_err(|e| e.to_string())?;
        return Ok(key);
    }
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(text) {
            return <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| format!("it is base64 of {} bytes, not 32", bytes.len()));
        }
    }
    Err(format!(
        "it is {} characters that are neither 64 hex digits nor base64",
        text.chars().count()
    ))
}

/// Where a store's master key came from (named in error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The `FERRY_MASTER_KEY` environment variable.
    Env,
    /// A key file (normally `<data_dir>/master.key`).
    File(PathBuf),
    /// Passed by the caller (`SecretStore::open_with_key`).
    Explicit,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env => write!(f, "`{MASTER_KEY_ENV}`"),
            Self::File(path) => write!(f, "`{}`", path.display()),
            Self::Explicit => f.write_str("the caller"),
        }
    }
}

/// Reads `<data_dir>/master.key`, generating it (mode 0600) if it does not exist.
pub fn load_or_create(data_dir: &Path) -> Result<(MasterKey, KeySource), SecretError> {
    let path = data_dir.join(MASTER_KEY_FILE);
    let source = KeySource::File(path.clone());
    match read_key_file(&path, &source) {
        Err(SecretError::Io { source: e, .. }) if e.kind() == ErrorKind::NotFound => {}
        other => return other.map(|key| (key, source)),
    }
    let key = MasterKey::generate()?;
    // Write a private temp file, then hard-link it into place: the link fails if another
    // process created the key meanwhile, and nobody ever sees a half-written key.
    let tmp = fsutil::temp_path(data_dir, MASTER_KEY_FILE)?;
    let written = write_private(&tmp, format!("{}\n", key.to_hex()).as_bytes());
    let linked = written.and_then(|()| {
        fs::hard_link(&tmp, &path).map_err(|e| fsutil::io_error("create", &path, e))
    });
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            fsutil::sync_dir(data_dir)?;
            Ok((key, source))
        }
        Err(SecretError::Io { source: e, .. }) if e.kind() == ErrorKind::AlreadyExists => {
            read_key_file(&path, &source).map(|key| (key, source))
        }
        Err(_) => {
            // A filesystem without hard links (or a failed temp write): create the key
            // file directly, still exclusively and private from the start.
            match write_private(&path, format!("{}\n", key.to_hex()).as_bytes()) {
                Ok(()) => {
                    fsutil::sync_dir(data_dir)?;
                    Ok((key, source))
                }
                Err(SecretError::Io { source: e, .. }) if e.kind() == ErrorKind::AlreadyExists => {
                    read_key_file(&path, &source).map(|key| (key, source))
                }
                Err(e) => Err(e),
            }
        }
    }
}

fn read_key_file(path: &Path, source: &KeySource) -> Result<MasterKey, SecretError> {
    let text = fs::read_to_string(path).map_err(|e| fsutil::io_error("read", path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = fs::metadata(path).map_err(|e| fsutil::io_error("inspect", path, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::KeyFileExposed {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    MasterKey::parse(&text, source)
}

/// Creates `path` with mode 0600 from the start, writes `bytes` and syncs them.
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SecretError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(PRIVATE_FILE);
    }
    let mut file = options
        .open(path)
        .map_err(|e| fsutil::io_error("create", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| fsutil::io_error("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_spell_the_same_key() {
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        let origin = KeySource::Env;
        let from_hex = MasterKey::parse(&hex::encode(bytes), &origin).unwrap();
        let from_upper = MasterKey::parse(&hex::encode_upper(bytes), &origin).unwrap();
        let from_b64 = MasterKey::parse(&STANDARD.encode(bytes), &origin).unwrap();
        let from_url = MasterKey::parse(&URL_SAFE_NO_PAD.encode(bytes), &origin).unwrap();
        let from_padded_line =
            MasterKey::parse(&format!(" {}\n", hex::encode(bytes)), &origin).unwrap();
        for key in [&from_upper, &from_b64, &from_url, &from_padded_line] {
            assert_eq!(key, &from_hex);
        }
        assert_eq!(from_hex.bytes(), &bytes);
    }

    #[test]
    fn rejects_malformed_keys_with_the_expected_format() {
        for bad in [
            "",
            "abc",
            &"ab".repeat(31),
            &STANDARD.encode([1u8; 16]),
            "not a key at all!",
        ] {
            let err = MasterKey::parse(bad, &KeySource::Env)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("`FERRY_MASTER_KEY` is not a valid master key"),
                "{err}"
            );
            assert!(
                err.contains("64 hex characters or the base64 of 32 bytes"),
                "{err}"
            );
        }
        let err = MasterKey::parse(&STANDARD.encode([1u8; 16]), &KeySource::Env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("base64 of 16 bytes"), "{err}");
    }

    #[test]
    fn debug_hides_the_key() {
        let key = MasterKey::from_bytes([0xab; 32]);
        assert!(!format!("{key:?}").contains("ab"));
    }
}
