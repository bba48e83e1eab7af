//! Private files and directories, atomic replacement, the writers' lock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::SecretError;
use super::key::write_private;

/// Mode of every file the store writes (owner read/write only).
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of the data directory when the store creates it.
pub const PRIVATE_DIR: u32 = 0o700;

pub fn io_error(action: &'static str, path: &Path, source: io::Error) -> SecretError {
    SecretError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is kept as is.
pub fn create_private_dir(dir: &Path) -> Result<(), SecretError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(PRIVATE_DIR);
    }
    builder
        .create(dir)
        .map_err(|e| io_error("create the data directory", dir, e))
}

/// A fresh, unguessable temp file name next to `name` in `dir`.
pub fn temp_path(dir: &Path, name: &str) -> Result<PathBuf, SecretError> {
    let mut salt = [0u8; 8];
    getrandom::getrandom(&mut salt).map_err(|e| SecretError::Random {
        reason: e.to_string(),
    })?;
    Ok(dir.join(format!(".{name}.{}.tmp", hex::encode(salt))))
}

/// Flushes a directory entry change (a rename or link) to disk.
pub fn sync_dir(dir: &Path) -> Result<(), SecretError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("sync", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Replaces `path` with `bytes` atomically: a 0600 temp file, fsync, rename, fsync dir.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<(), SecretError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = temp_path(dir, &name)?;
    let result = write_private(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| io_error("replace", path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

/// An exclusive lock held by a writer for its read-modify-write; released on drop.
pub struct WriteLock(File);

impl WriteLock {
    pub fn acquire(path: &Path) -> Result<Self, SecretError> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(PRIVATE_FILE);
        }
        let file = options.open(path).map_err(|e| io_error("open", path, e))?;
        file.lock().map_err(|e| io_error("lock", path, e))?;
        Ok(Self(file))
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first is just prompt.
        let _ = self.0.unlock();
    }
}
