//! Garbage collection of the blob store: deleting blobs nothing refers to.
//!
//! The store keeps no reference counts: whoever records a digest (a release row, a
//! run's artifact index) is a root, and only the caller knows them all. A sweep is
//! therefore two steps, in this order:
//!
//! 1. [`BlobStore::sweep_candidates`] lists the blobs older than the grace period;
//! 2. the caller reads its roots *afterwards* and hands them to [`BlobStore::sweep`],
//!    which deletes each candidate that no root names and that is still old.
//!
//! # Why nothing live is lost
//! - **A blob written but not yet recorded** (an upload before the release or the job
//!   result that names it, an artifact between its commit and the index file) is
//!   younger than the grace period ([`DEFAULT_GRACE`], an hour), so it is not a
//!   candidate. Writing a blob that exists already refreshes its modification time
//!   (see `BlobStore::install`), so re-using an old, unreferenced blob counts as a
//!   new write.
//! - **A root recorded while the sweep runs** is either in the set the caller read
//!   after listing, or was recorded after that read — and then its blob was written
//!   (or refreshed) after the listing, so it is checked again: [`BlobStore::sweep`]
//!   looks at the modification time once more, moves the blob out of the way with an
//!   atomic rename, looks a last time, and puts it back if a writer refreshed it in
//!   between. A writer that refreshes a blob a sweep has just moved away finds it
//!   missing and stores its own copy.
//!
//! The `tmp/` directory holds writes in progress; a file there older than the grace
//! period belongs to a write that was abandoned (a crash, a dropped upload) and is
//! deleted.

use super::{BlobStore, Digest, StoreError};
use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// How old an unreferenced blob (or a temporary file) must be before a sweep deletes
/// it: long enough for any upload or artifact to be recorded after it is written.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60 * 60);

/// The blobs a sweep may delete, listed by [`BlobStore::sweep_candidates`].
#[derive(Debug, Clone)]
pub struct SweepCandidates {
    grace: Duration,
    now: SystemTime,
    blobs: Vec<Digest>,
}

impl SweepCandidates {
    /// How many blobs were older than the grace period when listed.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether no blob was old enough.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }
}

/// What a sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Blobs deleted: unreferenced and older than the grace period.
    pub blobs: u64,
    /// Their total size in bytes.
    pub blob_bytes: u64,
    /// Abandoned temporary files deleted from `tmp/`.
    pub tmp_files: u64,
    /// Their total size in bytes.
    pub tmp_bytes: u64,
}

impl Swept {
    /// Every byte freed.
    pub fn bytes(&self) -> u64 {
        self.blob_bytes + self.tmp_bytes
    }

    /// Whether anything was deleted.
    pub fn is_empty(&self) -> bool {
        self.blobs == 0 && self.tmp_files == 0
    }
}

impl BlobStore {
    /// Lists the blobs whose file was last modified more than `grace` before `now`:
    /// what [`BlobStore::sweep`] may delete once the caller has read its references.
    /// Files under `sha256/` that are not blobs of this store are never listed.
    /// Blocking.
    pub fn sweep_candidates(
        &self,
        grace: Duration,
        now: SystemTime,
    ) -> Result<SweepCandidates, StoreError> {
        let mut blobs = Vec::new();
        let top = self.root.join("sha256");
        for prefix in read_dir(&top)? {
            if !prefix.is_dir() {
                continue;
            }
            for path in read_dir(&prefix)? {
                let Some(digest) = blob_digest(self, &path) else {
                    continue;
                };
                match modified(&path)? {
                    Some(at) if is_old(at, grace, now) => blobs.push(digest),
                    _ => {}
                }
            }
        }
        Ok(SweepCandidates { grace, now, blobs })
    }

    /// Deletes every candidate not in `referenced` whose file is still older than the
    /// grace period, and every file in `tmp/` older than it. Read `referenced` after
    /// listing the candidates (the module docs say why). Blocking.
    ///
    /// Stops at the first error other than a file vanishing under it (another sweep
    /// got there first); what was deleted before stays deleted.
    pub fn sweep(
        &self,
        candidates: SweepCandidates,
        referenced: &HashSet<Digest>,
    ) -> Result<Swept, StoreError> {
        let SweepCandidates { grace, now, blobs } = candidates;
        let mut swept = Swept::default();
        for digest in blobs {
            if referenced.contains(&digest) {
                continue;
            }
            if let Some(bytes) = self.remove_if_old(&digest, grace, now)? {
                swept.blobs += 1;
                swept.blob_bytes += bytes;
            }
        }
        let tmp_dir = self.root.join("tmp");
        for path in read_dir(&tmp_dir)? {
            let Some(meta) = metadata(&path)? else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let at = meta.modified().map_err(|e| StoreError::io(&path, e))?;
            if !is_old(at, grace, now) {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    swept.tmp_files += 1;
                    swept.tmp_bytes += meta.len();
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&path, e)),
            }
        }
        Ok(swept)
    }

    /// Deletes the blob if its file is older than the grace period; returns its size
    /// when it did. The blob is first renamed into `tmp/` (atomic), so a writer that
    /// refreshes it at the same moment either refreshed it before the rename — then
    /// the moved file is young and goes back — or finds it missing and stores it anew.
    fn remove_if_old(
        &self,
        digest: &Digest,
        grace: Duration,
        now: SystemTime,
    ) -> Result<Option<u64>, StoreError> {
        let path = self.path_of(digest);
        match modified(&path)? {
            Some(at) if is_old(at, grace, now) => {}
            _ => return Ok(None),
        }
        let tmp_dir = self.root.join("tmp");
        fs::create_dir_all(&tmp_dir).map_err(|e| StoreError::io(&tmp_dir, e))?;
        let doomed = tmp_dir.join(format!(
            "{}-{}.sweep",
            std::process::id(),
            super::TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::rename(&path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&path, e)),
        }
        let Some(meta) = metadata(&doomed)? else {
            return Ok(None);
        };
        let at = meta.modified().map_err(|e| StoreError::io(&doomed, e))?;
        if !is_old(at, grace, now) {
            // Refreshed by a writer between the check and the rename: it is in use.
            // If the writer already stored a new copy, this one replaces it with the
            // same bytes.
            fs::rename(&doomed, &path).map_err(|e| StoreError::io(&path, e))?;
            return Ok(None);
        }
        match fs::remove_file(&doomed) {
            Ok(()) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(&doomed, e)),
        }
    }
}

/// Whether a file modified at `at` is older than `grace` at `now`. A time in the
/// future (a clock step) counts as young.
fn is_old(at: SystemTime, grace: Duration, now: SystemTime) -> bool {
    now.duration_since(at).is_ok_and(|age| age > grace)
}

/// The digest of the blob at `path`, if the file is one: a 64-hex-digit name in the
/// directory of its first two digits.
fn blob_digest(store: &BlobStore, path: &Path) -> Option<Digest> {
    let name = path.file_name()?.to_str()?;
    if name.len() != 64 {
        return None;
    }
    let digest: Digest = name.parse().ok()?;
    (store.path_of(&digest) == path).then_some(digest)
}

/// The entries of `dir`; none when it does not exist.
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        out.push(entry.map_err(|e| StoreError::io(dir, e))?.path());
    }
    Ok(out)
}

/// The metadata of `path` (not following a symbolic link); None when it is gone.
fn metadata(path: &Path) -> Result<Option<fs::Metadata>, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// When the file at `path` was last modified; None when it is gone.
fn modified(path: &Path) -> Result<Option<SystemTime>, StoreError> {
    match metadata(path)? {
        Some(meta) => meta
            .modified()
            .map(Some)
            .map_err(|e| StoreError::io(path, e)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    const HOUR: Duration = Duration::from_secs(3600);

    /// Sets the file's modification time `age` before now.
    fn age(path: &Path, age: Duration) {
        let when = SystemTime::now() - age;
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn sweep(store: &BlobStore, referenced: &[Digest]) -> Swept {
        let referenced: HashSet<Digest> = referenced.iter().copied().collect();
        let candidates = store
            .sweep_candidates(DEFAULT_GRACE, SystemTime::now())
            .unwrap();
        store.sweep(candidates, &referenced).unwrap()
    }

    #[test]
    fn deletes_only_old_unreferenced_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let kept = store.put_bytes(b"referenced").unwrap();
        let old = store.put_bytes(b"old and unused").unwrap();
        let young = store.put_bytes(b"just written").unwrap();
        age(&store.path_of(&kept), 2 * HOUR);
        age(&store.path_of(&old), 2 * HOUR);
        age(&store.path_of(&young), HOUR - Duration::from_secs(60));

        let swept = sweep(&store, &[kept]);

        assert!(store.contains(&kept), "a referenced blob stays");
        assert!(!store.contains(&old), "an old unreferenced blob goes");
        assert!(
            store.contains(&young),
            "a blob within the grace period stays"
        );
        assert_eq!(
            swept,
            Swept {
                blobs: 1,
                blob_bytes: b"old and unused".len() as u64,
                tmp_files: 0,
                tmp_bytes: 0,
            }
        );
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn removes_abandoned_temporary_files_but_not_writes_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let mut writing = store.writer().unwrap();
        io::Write::write_all(&mut writing, b"in progress").unwrap();
        io::Write::flush(&mut writing).unwrap();
        let abandoned = dir.path().join("tmp/1234-0.part");
        fs::write(&abandoned, b"left by a crash").unwrap();
        age(&abandoned, 3 * HOUR);

        let swept = sweep(&store, &[]);

        assert!(!abandoned.exists());
        assert_eq!((swept.tmp_files, swept.tmp_bytes), (1, 15));
        let digest = writing.commit().unwrap();
        assert_eq!(
            digest,
            Digest::of(b"in progress"),
            "the live write completes"
        );
        assert!(store.contains(&digest));
    }

    #[test]
    fn storing_an_old_blob_again_protects_it_from_a_sweep_listed_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let d = store.put_bytes(b"reused tarball").unwrap();
        age(&store.path_of(&d), 5 * HOUR);
        let candidates = store
            .sweep_candidates(DEFAULT_GRACE, SystemTime::now())
            .unwrap();
        assert_eq!(candidates.len(), 1);

        // A release reuses the tarball after the listing, before its row is read.
        assert_eq!(store.put_bytes(b"reused tarball").unwrap(), d);
        let swept = store.sweep(candidates, &HashSet::new()).unwrap();

        assert!(store.contains(&d), "a blob stored again is young again");
        assert!(swept.is_empty());
    }

    #[test]
    fn leaves_files_that_are_not_blobs_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let d = store.put_bytes(b"x").unwrap();
        let stray = dir.path().join("sha256/zz/notes.txt");
        fs::create_dir_all(stray.parent().unwrap()).unwrap();
        fs::write(&stray, b"mine").unwrap();
        // A blob's name in the wrong directory is not this store's either.
        let misplaced = dir.path().join("sha256/00").join(d.to_hex());
        fs::create_dir_all(misplaced.parent().unwrap()).unwrap();
        fs::write(&misplaced, b"x").unwrap();
        for p in [&stray, &misplaced, &store.path_of(&d)] {
            age(p, 2 * HOUR);
        }

        let swept = sweep(&store, &[]);

        assert_eq!(swept.blobs, 1);
        assert!(!store.contains(&d));
        assert!(stray.exists() && misplaced.exists());
    }

    #[test]
    fn an_empty_store_sweeps_to_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("never-written"));
        assert!(sweep(&store, &[]).is_empty());
    }
}
