//! Pruned releases give their disk back: their tarballs leave the blob store, the
//! kept releases' stay and still deploy.

use super::support::{Lab, yml};
use ferry_store::Digest;
use ferry_store::db::{Release, ReleaseArtifact};
use ferry_types::DeployState;
use std::time::{Duration, SystemTime};

const BLUE_GREEN: &str = "        blue-green:\n          keep_old_for: 0s";

fn tarball(release: &Release) -> Digest {
    match &release.artifact {
        ReleaseArtifact::Tarball { digest } => digest.parse().expect("a digest"),
        other => panic!("release {} is not a tarball: {other:?}", release.name()),
    }
}

/// Makes every blob look written two hours ago (past the one-hour grace period).
fn age_every_blob(root: &std::path::Path) {
    for prefix in std::fs::read_dir(root.join("sha256")).expect("blob dirs") {
        for blob in std::fs::read_dir(prefix.expect("entry").path()).expect("blobs") {
            std::fs::File::options()
                .write(true)
                .open(blob.expect("entry").path())
                .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(7200)))
                .expect("backdate a blob");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_releases_frees_their_tarballs_and_kept_releases_still_deploy() {
    let lab = Lab::new().await;
    let blobs = ferry_store::BlobStore::new(lab.data.path().join("blobs"));
    let mut releases = Vec::new();
    for n in 1..=10 {
        releases.push(
            lab.release(&yml(&format!("r{n}"), "ok", BLUE_GREEN, ""))
                .await,
        );
    }
    let first = lab.deploy(1).await;
    assert_eq!(
        first.state,
        DeployState::Succeeded,
        "{}",
        lab.steps(first.id).await
    );
    age_every_blob(blobs.root());
    let abandoned = blobs.root().join("tmp/4242-0.part");
    std::fs::write(&abandoned, vec![0u8; 4096]).expect("write a stray upload");
    std::fs::File::options()
        .write(true)
        .open(&abandoned)
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(7200)))
        .expect("backdate");

    // Ten are kept: v11 pushes nothing out (v1 is live), v12 and v13 push out v2 and v3.
    for n in 11..=13 {
        releases.push(
            lab.release(&yml(&format!("r{n}"), "ok", BLUE_GREEN, ""))
                .await,
        );
    }

    let numbers: Vec<i64> = lab
        .store
        .releases("web", 100)
        .await
        .expect("releases")
        .iter()
        .map(|r| r.number)
        .rev()
        .collect();
    assert_eq!(numbers, [1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    for r in &releases {
        let pruned = matches!(r.number, 2 | 3);
        assert_eq!(
            blobs.contains(&tarball(r)),
            !pruned,
            "the tarball of {} is {}",
            r.name(),
            if pruned { "freed" } else { "kept" }
        );
    }
    assert!(!abandoned.exists(), "an abandoned upload is removed too");

    // The oldest kept release was never unpacked: deploying it needs its tarball.
    let d = lab.deploy(4).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    assert_eq!(lab.get("/").await, Ok((200, "release=r4".to_owned())));
}
