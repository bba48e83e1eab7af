//! The blob store's garbage collection against the database's references: what a
//! release names survives a sweep, what pruning frees does not.

use crate::both;
use crate::fixtures::project;
use crate::support::{TestDb, TestResult};
use ferry_store::db::{NewRelease, ReleaseArtifact, Store};
use ferry_store::{BlobStore, DEFAULT_GRACE, Digest, Swept};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Sets the file's modification time `age` before now, as if written then.
fn backdate(path: &Path, age: Duration) -> std::io::Result<()> {
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now() - age)
}

/// A release of `service` at `sha` whose artifact is the tarball `digest` (as text).
async fn tarball_release(
    store: &Store,
    service: &str,
    sha: &str,
    digest: &str,
) -> Result<i64, ferry_store::db::DbError> {
    let release = store
        .create_release(&NewRelease {
            project: "shop".to_owned(),
            service: service.to_owned(),
            sha: sha.to_owned(),
            artifact: ReleaseArtifact::Tarball {
                digest: digest.to_owned(),
            },
            config: format!("deploy:\n  name: {service}\n  command: ./run\n"),
            env: BTreeMap::new(),
            run_id: None,
            created_by: "ferry".to_owned(),
        })
        .await?;
    Ok(release.number)
}

/// Lists the candidates, then reads the references, then sweeps: the order the
/// engine uses.
async fn collect(
    store: &Store,
    blobs: &BlobStore,
) -> Result<Swept, Box<dyn std::error::Error + Send + Sync>> {
    let candidates = blobs.sweep_candidates(DEFAULT_GRACE, SystemTime::now())?;
    let referenced = store.referenced_blobs().await?;
    Ok(blobs.sweep(candidates, &referenced)?)
}

const TWO_HOURS: Duration = Duration::from_secs(2 * 3600);

both! {
    async fn a_sweep_keeps_what_releases_name_and_frees_old_unused_blobs(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "shop").await?;
        let dir = tempfile::tempdir()?;
        let blobs = BlobStore::new(dir.path().join("blobs"));
        let released = blobs.put_bytes(b"release tarball")?;
        let bare = blobs.put_bytes(b"tarball named by bare hex")?;
        let unused = blobs.put_bytes(b"an upload nobody recorded")?;
        let fresh = blobs.put_bytes(b"an upload being recorded")?;
        tarball_release(store, "web", "a1", &released.to_string()).await?;
        tarball_release(store, "api", "b2", &bare.to_hex()).await?;
        for d in [released, bare, unused] {
            backdate(&blobs.path_of(&d), TWO_HOURS)?;
        }
        let abandoned = dir.path().join("blobs/tmp/99-7.part");
        std::fs::write(&abandoned, b"half an upload")?;
        backdate(&abandoned, TWO_HOURS)?;

        let referenced = store.referenced_blobs().await?;
        assert_eq!(referenced.len(), 2, "{referenced:?}");
        assert!(referenced.contains(&released) && referenced.contains(&bare));

        let swept = collect(store, &blobs).await?;

        assert!(blobs.contains(&released), "the release's tarball stays");
        assert!(blobs.contains(&bare), "a digest without `sha256:` still counts");
        assert!(!blobs.contains(&unused), "an old blob nothing names goes");
        assert!(blobs.contains(&fresh), "a blob within the grace period stays");
        assert!(!abandoned.exists(), "an abandoned write goes");
        assert_eq!(swept, Swept {
            blobs: 1,
            blob_bytes: b"an upload nobody recorded".len() as u64,
            tmp_files: 1,
            tmp_bytes: b"half an upload".len() as u64,
        });
        assert!(collect(store, &blobs).await?.is_empty(), "a second sweep finds nothing");
        Ok(())
    }
}

both! {
    async fn pruning_a_release_lets_a_sweep_free_its_tarball(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "shop").await?;
        let dir = tempfile::tempdir()?;
        let blobs = BlobStore::new(dir.path().join("blobs"));
        let mut tarballs: Vec<Digest> = Vec::new();
        for n in 1..=3u8 {
            let d = blobs.put_bytes(&[n; 1000])?;
            tarball_release(store, "web", &format!("sha{n}"), &d.to_string()).await?;
            backdate(&blobs.path_of(&d), TWO_HOURS)?;
            tarballs.push(d);
        }
        // v3 reuses v1's tarball: pruning v1 must not free it.
        tarball_release(store, "web", "sha4", &tarballs[0].to_string()).await?;
        assert!(collect(store, &blobs).await?.is_empty(), "every tarball is in use");

        let pruned: Vec<i64> = store.prune_releases("web", 2).await?.iter().map(|r| r.number).collect();
        assert_eq!(pruned, [1, 2]);
        let swept = collect(store, &blobs).await?;

        assert_eq!((swept.blobs, swept.blob_bytes), (1, 1000), "only v2's tarball is unused");
        assert!(!blobs.contains(&tarballs[1]));
        assert!(blobs.contains(&tarballs[0]), "still v4's tarball");
        assert!(blobs.contains(&tarballs[2]), "still v3's tarball");
        Ok(())
    }
}

both! {
    async fn an_unreadable_release_artifact_stops_the_sweep(db: TestDb) -> TestResult {
        let store = &db.store;
        project(store, "shop").await?;
        tarball_release(store, "web", "a1", &Digest::of(b"x").to_string()).await?;
        // Through the driver: the store never writes such a row itself.
        corrupt_artifacts(&db).await?;
        let err = store.referenced_blobs().await.expect_err("a release it cannot read");
        assert!(err.to_string().contains("artifact"), "{err}");
        Ok(())
    }
}

/// Writes the bad artifact through the backend's own driver.
async fn corrupt_artifacts(db: &TestDb) -> TestResult {
    use sqlx::Connection as _;
    const SQL: &str = "UPDATE releases SET artifact = '{\"kind\":\"floppy\"}'";
    if let Some(path) = &db.sqlite_path {
        let mut c =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
        sqlx::query(SQL).execute(&mut c).await?;
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await?;
        sqlx::query(SQL).execute(&mut c).await?;
    }
    Ok(())
}
