//! Artifacts: files a job hands to the jobs that need it.
//!
//! After a successful job its `artifacts.paths` are packed into one tar blob in
//! `<data_dir>/blobs/`; `<run_dir>/artifacts.json` maps job instance ids to blob
//! digests, so the artifacts of a run outlive it (re-running one job later can reuse
//! them). Before a job's steps, the artifacts of every instance it needs are unpacked
//! into its workspace at the same relative paths.

use super::archive;
use ferry_store::{BlobStore, Digest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One job's artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// `sha256:<hex>` of the tar blob.
    pub digest: String,
    /// Files in it.
    pub files: usize,
}

/// The artifacts of one run.
pub(crate) struct Artifacts {
    store: BlobStore,
    manifest: PathBuf,
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Artifacts {
    pub(crate) fn new(store: BlobStore, manifest: PathBuf) -> Self {
        Artifacts {
            store,
            manifest,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// Packs `patterns` from `workspace` and records them for `job`; returns a
    /// human-readable summary. Blocking.
    pub(crate) fn save(
        &self,
        job: &str,
        workspace: &Path,
        patterns: &[String],
    ) -> Result<String, String> {
        let files = archive::select(workspace, patterns).map_err(|e| e.to_string())?;
        if files.is_empty() {
            return Err(format!(
                "no file matches the artifact paths {}",
                patterns
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let w = self.store.writer().map_err(|e| e.to_string())?;
        let w = archive::pack(workspace, &files, w).map_err(|e| e.to_string())?;
        let digest = w.commit().map_err(|e| e.to_string())?;
        let entry = Entry {
            digest: digest.to_string(),
            files: files.len(),
        };
        let snapshot = {
            let mut map = self
                .entries
                .lock()
                .map_err(|_| "artifact manifest lock poisoned".to_string())?;
            map.insert(job.to_string(), entry);
            map.clone()
        };
        let json = serde_json::to_vec_pretty(&snapshot).map_err(|e| e.to_string())?;
        let tmp = self.manifest.with_extension("json.tmp");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &self.manifest))
            .map_err(|e| format!("{}: {e}", self.manifest.display()))?;
        Ok(format!(
            "Saved {} artifact file(s) as {digest}.",
            files.len()
        ))
    }

    /// Unpacks the artifacts of `needs` (instance ids) into `workspace`; returns one
    /// note per restored artifact. Blocking.
    pub(crate) fn restore(
        &self,
        needs: &[String],
        workspace: &Path,
    ) -> Result<Vec<String>, String> {
        let wanted: Vec<(String, Entry)> = {
            let map = self
                .entries
                .lock()
                .map_err(|_| "artifact manifest lock poisoned".to_string())?;
            needs
                .iter()
                .filter_map(|n| map.get(n).map(|e| (n.clone(), e.clone())))
                .collect()
        };
        let mut notes = Vec::new();
        for (job, entry) in wanted {
            let digest: Digest = entry
                .digest
                .parse()
                .map_err(|e: ferry_store::StoreError| e.to_string())?;
            let file = self.store.open(&digest).map_err(|e| e.to_string())?;
            archive::unpack(std::io::BufReader::new(file), workspace)
                .map_err(|e| format!("unpacking the artifacts of `{job}`: {e}"))?;
            notes.push(format!(
                "Restored {} artifact file(s) from `{job}`.",
                entry.files
            ));
        }
        Ok(notes)
    }
}
