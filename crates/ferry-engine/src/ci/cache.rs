//! Caches: directories restored before a job and saved after it, by key.
//!
//! Layout under the cache directory: `blobs/` (a [`BlobStore`] of tar archives) and
//! `keys/<sha256 of the key>.json` (`{"key": …, "digest": …}`). A key, once saved, is
//! never overwritten. Saving is best effort: any failure, a full disk included, is
//! returned as a warning for the job's log and never fails the job.

use super::archive;
use ferry_store::{BlobStore, Digest};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct KeyEntry {
    key: String,
    digest: String,
}

/// The cache directory.
pub(crate) struct CacheDir {
    root: PathBuf,
}

impl CacheDir {
    pub(crate) fn new(root: PathBuf) -> Self {
        CacheDir { root }
    }

    fn key_file(&self, key: &str) -> PathBuf {
        self.root
            .join("keys")
            .join(format!("{}.json", super::util::short_hash(key.as_bytes())))
    }

    fn store(&self) -> BlobStore {
        BlobStore::new(self.root.join("blobs"))
    }

    /// Restores the entry for `key` into `workspace`; `Ok(false)` when there is none.
    /// Blocking.
    pub(crate) fn restore(&self, key: &str, workspace: &Path) -> Result<bool, String> {
        let Some(entry) = self.lookup(key) else {
            return Ok(false);
        };
        let digest: Digest = entry
            .digest
            .parse()
            .map_err(|e: ferry_store::StoreError| e.to_string())?;
        let file = match self.store().open(&digest) {
            Ok(f) => f,
            Err(ferry_store::StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e.to_string()),
        };
        archive::unpack(std::io::BufReader::new(file), workspace).map_err(|e| e.to_string())?;
        Ok(true)
    }

    fn lookup(&self, key: &str) -> Option<KeyEntry> {
        let bytes = std::fs::read(self.key_file(key)).ok()?;
        let entry: KeyEntry = serde_json::from_slice(&bytes).ok()?;
        (entry.key == key).then_some(entry)
    }

    /// Saves `paths` of `workspace` under `key`; returns a note for the log, or a
    /// warning. Blocking.
    pub(crate) fn save(
        &self,
        key: &str,
        workspace: &Path,
        paths: &[String],
    ) -> Result<String, String> {
        if self.lookup(key).is_some() {
            return Ok(format!("Cache `{key}` exists already; not saved again."));
        }
        let files = archive::select(workspace, paths).map_err(|e| e.to_string())?;
        if files.is_empty() {
            return Ok(format!(
                "Cache `{key}` not saved: no file matches its paths."
            ));
        }
        let describe = |e: &dyn std::fmt::Display, full: bool| {
            if full {
                format!(
                    "saving cache `{key}` failed: the cache directory {} is full ({e}); the job goes on without it",
                    self.root.display()
                )
            } else {
                format!("saving cache `{key}` failed: {e}; the job goes on without it")
            }
        };
        let w = self
            .store()
            .writer()
            .map_err(|e| describe(&e, e.is_disk_full()))?;
        let w = archive::pack(workspace, &files, w).map_err(|e| describe(&e, is_full(&e)))?;
        let digest = w.commit().map_err(|e| describe(&e, e.is_disk_full()))?;
        let entry = KeyEntry {
            key: key.to_string(),
            digest: digest.to_string(),
        };
        let path = self.key_file(key);
        let write = || -> std::io::Result<()> {
            let dir = self.root.join("keys");
            std::fs::create_dir_all(&dir)?;
            let tmp = path.with_extension("json.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(&entry).map_err(std::io::Error::from)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(path.with_extension("json.tmp"));
            describe(&e, is_full(&e))
        })?;
        Ok(format!("Saved cache `{key}` ({} file(s)).", files.len()))
    }
}

fn is_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(28) | Some(122))
}
