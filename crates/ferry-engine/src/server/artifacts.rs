//! Which artifact blob each job of a run stored: one small file per job,
//! `<data_dir>/artifacts/<run_id>/<hash of the job name>.json` holding
//! `{"job": …, "digest": "sha256:…"}`, written atomically. Files, not rows, because
//! the blobs they name live in the same data directory.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct Entry {
    job: String,
    digest: String,
}

fn run_dir(data_dir: &Path, run_id: i64) -> PathBuf {
    data_dir.join("artifacts").join(run_id.to_string())
}

/// Records that `job` of `run_id` stored `digest`. Blocking.
pub(crate) fn record(data_dir: &Path, run_id: i64, job: &str, digest: &str) -> std::io::Result<()> {
    let dir = run_dir(data_dir, run_id);
    std::fs::create_dir_all(&dir)?;
    let name = hash(job);
    let path = dir.join(format!("{name}.json"));
    let tmp = dir.join(format!("{name}.json.tmp"));
    let bytes = serde_json::to_vec(&Entry {
        job: job.to_string(),
        digest: digest.to_string(),
    })?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)
}

/// Every job of `run_id` with artifacts → digest. Blocking.
pub(crate) fn read(data_dir: &Path, run_id: i64) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(run_dir(data_dir, run_id)) else {
        return out;
    };
    for e in entries.flatten() {
        if e.path().extension().is_some_and(|x| x == "json")
            && let Ok(bytes) = std::fs::read(e.path())
            && let Ok(entry) = serde_json::from_slice::<Entry>(&bytes)
        {
            out.insert(entry.job, entry.digest);
        }
    }
    out
}

/// A file-name-safe, fixed-length name for a job.
fn hash(job: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(job.as_bytes())[..12])
}
