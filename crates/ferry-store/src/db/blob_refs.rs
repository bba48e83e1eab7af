//! Which blobs the database refers to: the roots of the blob store's garbage
//! collector ([`crate::BlobStore::sweep`]).
//!
//! # Every place a blob digest is recorded
//! In the database (what [`Store::referenced_blobs`] reads, one query per table):
//! - `releases.artifact`: a release's tarball (`{"kind":"tarball","digest":…}`), made
//!   from a job's artifacts or the commit's source archive. Pruning deletes the rows
//!   of old releases; a live, warm or in-flight release keeps its row.
//!
//! Not references:
//! - `events.data` copies digests (`release.created`, job results) into the log, which
//!   outlives what it talks about and never needs the bytes again.
//! - `deploys` and `live_envs` name releases by id, never blobs; a release they need
//!   keeps its row (see [`Store::prune_releases`]).
//! - `log_chunks.data` holds log bytes inline, not in the blob store.
//!
//! Outside the database, kept by `ferry-engine` as files in the data directory, which
//! the engine adds to this set before sweeping:
//! - `artifacts/<run id>/*.json`: the artifact blob of each job of a server run;
//! - `runs/<run id>/artifacts.json`: the same for `ferry run` on the server's machine.
//!
//! Caches (`cache/blobs`, `cache/keys`) are a blob store of their own and are not
//! swept; `sources/<sha>.tar` and unpacked releases are plain files, not blobs.

use super::conn::Q;
use super::deploys::ReleaseArtifact;
use super::{DbError, Store};
use crate::Digest;
use std::collections::HashSet;

impl Store {
    /// Every blob a row refers to. A blob not in the set and not written recently
    /// (see [`crate::DEFAULT_GRACE`]) is unused as far as the database knows.
    ///
    /// Fails rather than leave a reference out: a release whose artifact cannot be
    /// read is [`DbError::Corrupt`], so a sweep stops instead of deleting its blob.
    pub async fn referenced_blobs(&self) -> Result<HashSet<Digest>, DbError> {
        let mut out = HashSet::new();
        let rows = self
            .pool
            .fetch_all(Q::new("SELECT artifact FROM releases"))
            .await?;
        for row in rows {
            match row.json::<ReleaseArtifact>("artifact")? {
                ReleaseArtifact::Tarball { digest } => {
                    // Deploys parse the digest the same way, so one that does not
                    // parse names no stored blob.
                    if let Ok(d) = digest.parse::<Digest>() {
                        out.insert(d);
                    }
                }
                ReleaseArtifact::Image { .. } => {}
            }
        }
        Ok(out)
    }
}
