//! Artifacts and caches, across jobs and across invocations.

use crate::support::{repo, run};
use ferry_store::{BlobStore, Digest};
use ferry_types::JobResult;

#[tokio::test]
async fn artifacts_are_handed_to_dependent_jobs_and_persisted() {
    let r = repo(
        r#"
jobs:
  build:
    artifacts:
      paths: [dist, "*.txt"]
    steps:
      - run: |
          mkdir -p dist/sub
          echo binary > dist/sub/app
          chmod +x dist/sub/app
          echo notes > notes.txt
          touch -d @1700000000 dist/sub/app notes.txt
  test:
    needs: [build]
    steps:
      - run: |
          test -x dist/sub/app
          cat dist/sub/app notes.txt
  unrelated:
    steps:
      - run: test ! -e dist
"#,
        &[],
    );
    let ran = run(&r).await;
    assert!(ran.summary.success, "{:?}", ran.summary.jobs);
    let logs = ran.logs("test");
    assert!(logs.contains("binary") && logs.contains("notes"), "{logs}");
    assert!(
        logs.contains("Restored 2 artifact file(s) from `build`"),
        "{logs}"
    );
    // The manifest names a blob that is stored and outlives the run.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ran.summary.run_dir.join("artifacts.json")).unwrap())
            .unwrap();
    let digest: Digest = manifest["build"]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(BlobStore::new(r.data().join("blobs")).contains(&digest));
    // A second run producing the same files (same content and times) stores no
    // second blob.
    let again = run(&r).await;
    assert!(again.summary.success);
    let count = walk_files(&r.data().join("blobs/sha256"));
    assert_eq!(count, 1, "identical artifacts are deduplicated");
}

fn walk_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        n += if p.is_dir() { walk_files(&p) } else { 1 };
    }
    n
}

#[tokio::test]
async fn cache_is_restored_on_the_next_invocation() {
    let r = repo(
        r#"
jobs:
  build:
    cache:
      key: deps-${{ hashFiles('lock.txt') }}
      paths: [.deps]
    steps:
      - run: |
          if [ -f .deps/fetched ]; then echo "warm $(cat .deps/fetched)"; else echo cold; mkdir -p .deps; echo once > .deps/fetched; fi
"#,
        &[("lock.txt", "v1\n")],
    );
    let first = run(&r).await;
    assert!(first.summary.success, "{:?}", first.summary.jobs);
    let logs = first.logs("build");
    assert!(
        logs.contains("cold") && logs.contains("Saved cache `deps-"),
        "{logs}"
    );
    let second = run(&r).await;
    let logs = second.logs("build");
    assert!(
        logs.contains("warm once") && logs.contains("Restored cache `deps-"),
        "{logs}"
    );
    assert!(logs.contains("exists already"), "{logs}");
    // A new lock file is a new key: cold again.
    std::fs::write(r.path().join("lock.txt"), "v2\n").unwrap();
    crate::support::git(r.path(), &["commit", "-qam", "bump"]);
    let third = run(&r).await;
    assert!(third.logs("build").contains("cold"));
    assert_eq!(third.result("build"), JobResult::Success);
}
