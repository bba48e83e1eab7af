//! Garbage collection of the blob store (`<data_dir>/blobs`): blobs nothing refers to
//! any more — mostly the tarballs of pruned releases — are deleted once they are older
//! than [`ferry_store::DEFAULT_GRACE`], along with abandoned temporary files.
//!
//! The roots are the database's references ([`ferry_store::db::Store::referenced_blobs`],
//! which lists every table that names a blob) plus the artifact indexes the engine
//! keeps as files: `artifacts/<run id>/*.json` (server runs) and
//! `runs/<run id>/artifacts.json` (`ferry run` on the same machine). Caches are a
//! blob store of their own (`cache/blobs`) and are not touched.
//!
//! A collection runs after a deploy's release pruned older ones
//! (`Deployer::prune`), and every [`EVERY`] in `ferry serve` ([`run`]), which also
//! deletes the source archives (`sources/<sha>.tar`) no job has asked for in
//! [`SOURCES_UNUSED`] ([`sweep_sources`]): one is made again from the mirror when
//! asked for.
//!
//! # Races
//! The candidates (blobs older than the grace period) are listed *before* the roots
//! are read. So a root recorded before the listing is seen; one recorded after it names
//! a blob that was written or stored again after the listing — storing refreshes the
//! file's modification time — which the sweep checks once more before deleting. The
//! grace period covers the rest: a blob between its upload and the row or file that
//! will name it, and an index file read halfway through its atomic rename.

use super::Core;
use ferry_store::db::Store;
use ferry_store::{BlobStore, DEFAULT_GRACE, Digest, Swept};
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often `ferry serve` collects.
pub(crate) const EVERY: Duration = Duration::from_secs(60 * 60);

/// A source archive no job asked for in this long is deleted.
pub(crate) const SOURCES_UNUSED: Duration = Duration::from_secs(24 * 60 * 60);

/// Deletes the blobs under `blobs` that neither the database nor the artifact indexes
/// under `data_dir` name and that were last written more than `grace` before `now`.
/// Any failure to read a root stops it before anything is deleted.
pub(crate) async fn collect(
    store: &Store,
    blobs: &BlobStore,
    data_dir: &Path,
    grace: Duration,
    now: SystemTime,
) -> Result<Swept, String> {
    let b = blobs.clone();
    let candidates = tokio::task::spawn_blocking(move || b.sweep_candidates(grace, now))
        .await
        .map_err(|e| format!("listing blobs failed: {e}"))?
        .map_err(|e| format!("listing blobs failed: {e}"))?;
    // Roots only after the listing: see the module docs.
    let mut referenced = store
        .referenced_blobs()
        .await
        .map_err(|e| format!("reading the blobs releases use failed: {e}"))?;
    let dir = data_dir.to_path_buf();
    let in_files = tokio::task::spawn_blocking(move || file_roots(&dir))
        .await
        .map_err(|e| format!("reading the artifact indexes failed: {e}"))?
        .map_err(|e| format!("reading the artifact indexes failed: {e}"))?;
    referenced.extend(in_files);
    let b = blobs.clone();
    tokio::task::spawn_blocking(move || b.sweep(candidates, &referenced))
        .await
        .map_err(|e| format!("deleting unused blobs failed: {e}"))?
        .map_err(|e| format!("deleting unused blobs failed: {e}"))
}

/// [`collect`] with the default grace period, now.
pub(crate) async fn collect_now(
    store: &Store,
    blobs: &BlobStore,
    data_dir: &Path,
) -> Result<Swept, String> {
    collect(store, blobs, data_dir, DEFAULT_GRACE, SystemTime::now()).await
}

/// Collects every [`EVERY`], the first time one period after the start (the first
/// deploy prunes and collects sooner).
pub(crate) async fn run(core: Core, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        match collect_now(core.store(), core.blobs(), &core.config().data_dir).await {
            Ok(swept) if !swept.is_empty() => log_freed(&swept, None),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Collecting unused blobs failed; they stay until the next try.")
            }
        }
        let data_dir = core.config().data_dir.clone();
        let swept = tokio::task::spawn_blocking(move || {
            sweep_sources(&data_dir, SOURCES_UNUSED, SystemTime::now())
        })
        .await;
        match swept {
            Ok(Ok((0, _))) => {}
            Ok(Ok((files, bytes))) => {
                tracing::info!(
                    files,
                    bytes,
                    "Deleted source archives no job asked for in a day."
                )
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Deleting old source archives failed; they stay until the next try.")
            }
            Err(e) => tracing::warn!(error = %e, "Deleting old source archives failed."),
        }
    }
}

/// Deletes the files in `<data_dir>/sources` last used more than `unused` before
/// `now`: source archives no job asked for since (asking refreshes the file's
/// modification time) and temporary files a crash left. Returns the files and bytes
/// deleted. Blocking.
pub(crate) fn sweep_sources(
    data_dir: &Path,
    unused: Duration,
    now: SystemTime,
) -> io::Result<(u64, u64)> {
    let Some(cutoff) = now.checked_sub(unused) else {
        return Ok((0, 0));
    };
    let (mut files, mut bytes) = (0, 0);
    for path in entries(&data_dir.join("sources"))? {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        if !meta.is_file() || meta.modified()? > cutoff {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                files += 1;
                bytes += meta.len();
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
    Ok((files, bytes))
}

/// Logs what a collection freed (after pruning `pruned` releases, if it followed one).
pub(crate) fn log_freed(swept: &Swept, pruned: Option<(&str, usize)>) {
    match pruned {
        Some((service, releases)) => tracing::info!(
            service,
            releases,
            freed_blobs = swept.blobs,
            freed_tmp_files = swept.tmp_files,
            freed_bytes = swept.bytes(),
            "Pruned old releases and freed the blobs nothing uses any more."
        ),
        None => tracing::info!(
            blobs = swept.blobs,
            tmp_files = swept.tmp_files,
            bytes = swept.bytes(),
            "Freed blobs nothing uses any more."
        ),
    }
}

/// Every digest named in the artifact indexes under `data_dir`. Blocking.
///
/// The files are searched as text for runs of exactly 64 hex digits, whatever their
/// format: a stray match only keeps a blob longer, and a file whose format changes is
/// never misread as naming nothing. A file that vanishes while read (renamed into
/// place) is skipped; any other error fails the whole collection.
fn file_roots(data_dir: &Path) -> io::Result<HashSet<Digest>> {
    let mut out = HashSet::new();
    // artifacts/<run id>/<hash of the job>.json (and .json.tmp while written)
    for run in entries(&data_dir.join("artifacts"))? {
        for file in entries(&run)? {
            scan(&file, &mut out)?;
        }
    }
    // runs/<run id>/artifacts.json (`ferry run`)
    for run in entries(&data_dir.join("runs"))? {
        for name in ["artifacts.json", "artifacts.json.tmp"] {
            scan(&run.join(name), &mut out)?;
        }
    }
    Ok(out)
}

/// The entries of `dir`; none when it does not exist or is not a directory.
fn entries(dir: &Path) -> io::Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(list) => list.map(|e| e.map(|e| e.path())).collect(),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    }
}

/// Adds the digests in the file at `path` to `out`.
fn scan(path: &Path, out: &mut HashSet<Digest>) -> io::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
            ) =>
        {
            return Ok(());
        }
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    for run in bytes.split(|b| !b.is_ascii_hexdigit()) {
        if run.len() == 64
            && let Ok(text) = std::str::from_utf8(run)
            && let Ok(d) = text.parse::<Digest>()
        {
            out.insert(d);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn backdate(path: &Path) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - 2 * HOUR)
            .unwrap();
    }

    #[test]
    fn source_archives_unused_for_a_day_go_and_recent_ones_stay() {
        let data = tempfile::tempdir().unwrap();
        let sources = data.path().join("sources");
        std::fs::create_dir_all(&sources).unwrap();
        let (old, recent, left) = (
            sources.join("aaaa.tar"),
            sources.join("bbbb.tar"),
            sources.join(".tmpXYZ"),
        );
        for (path, age) in [(&old, 25), (&recent, 23), (&left, 48)] {
            std::fs::write(path, "tar").unwrap();
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(SystemTime::now() - age * HOUR)
                .unwrap();
        }
        let swept = sweep_sources(data.path(), SOURCES_UNUSED, SystemTime::now()).unwrap();
        assert_eq!(swept, (2, 6));
        assert!(!old.exists() && !left.exists());
        assert!(recent.exists(), "used within the day");
        // No `sources` directory at all is not an error.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            sweep_sources(empty.path(), SOURCES_UNUSED, SystemTime::now()).unwrap(),
            (0, 0)
        );
    }

    #[tokio::test]
    async fn blobs_named_by_artifact_indexes_survive_and_others_go() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(data.path()).await.unwrap();
        let blobs = BlobStore::new(data.path().join("blobs"));
        let server_artifact = blobs.put_bytes(b"built by a server job").unwrap();
        let local_artifact = blobs.put_bytes(b"built by ferry run").unwrap();
        let unused = blobs.put_bytes(b"nobody's").unwrap();
        for d in [server_artifact, local_artifact, unused] {
            backdate(&blobs.path_of(&d));
        }
        super::super::artifacts::record(data.path(), 7, "build", &server_artifact.to_string())
            .unwrap();
        let run = data.path().join("runs/20261123-201500-ab12");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            run.join("artifacts.json"),
            format!(r#"{{"build": {{"digest": "{local_artifact}", "files": 3}}}}"#),
        )
        .unwrap();

        let swept = collect_now(&store, &blobs, data.path()).await.unwrap();

        assert!(
            blobs.contains(&server_artifact),
            "a server run's artifact stays"
        );
        assert!(
            blobs.contains(&local_artifact),
            "a `ferry run` artifact stays"
        );
        assert!(!blobs.contains(&unused));
        assert_eq!(
            (swept.blobs, swept.blob_bytes),
            (1, b"nobody's".len() as u64)
        );
    }

    #[tokio::test]
    async fn an_unreadable_index_stops_the_collection() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(data.path()).await.unwrap();
        let blobs = BlobStore::new(data.path().join("blobs"));
        let d = blobs.put_bytes(b"old").unwrap();
        backdate(&blobs.path_of(&d));
        // An index that cannot be read (a symbolic link loop here) might name any
        // blob: the collection stops rather than guess.
        let run = data.path().join("artifacts/7");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("x.json"), "{}").unwrap();
        std::os::unix::fs::symlink(run.join("loop"), run.join("loop")).unwrap();

        let err = collect_now(&store, &blobs, data.path()).await.unwrap_err();

        assert!(
            err.contains("artifact indexes") && err.contains("loop"),
            "{err}"
        );
        assert!(blobs.contains(&d), "nothing is deleted");
    }
}
