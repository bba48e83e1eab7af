//! Bad input never crashes the engine and never loses the run.

use crate::support::{repo, run, run_with};
use ferry_types::{JobResult, RunEvent};
use std::process::Command;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn no_bash_on_the_host_fails_the_job_with_a_clear_message() {
    let r = repo(
        "jobs:\n  default:\n    steps: [{ run: 'echo hi' }]\n  posix:\n    shell: sh\n    steps: [{ run: 'echo from-sh' }]\n",
        &[],
    );
    let bin = tempfile::tempdir().unwrap();
    for tool in ["sh", "git", "echo"] {
        let target = which(tool);
        std::os::unix::fs::symlink(&target, bin.path().join(tool)).unwrap();
    }
    let mut o = r.opts();
    o.path_env = Some(bin.path().as_os_str().to_owned());
    let ran = run_with(&r, o, CancellationToken::new()).await;
    assert_eq!(ran.result("default"), JobResult::Failure);
    let why = ran.reason("default");
    assert!(
        why.contains("`bash` was not found on PATH; install bash or set `shell: sh`"),
        "{why}"
    );
    assert_eq!(
        ran.result("posix"),
        JobResult::Success,
        "{}",
        ran.reason("posix")
    );
    assert!(ran.logs("posix").contains("from-sh"));
    assert!(ran.summary.run_dir.join("summary.json").is_file());
}

fn which(tool: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn image_without_a_docker_engine_fails_the_job_with_how_to_fix_it() {
    let r = repo(
        "jobs:\n  boxed:\n    image: alpine:3\n    steps: [{ run: 'true' }]\n",
        &[],
    );
    let mut o = r.opts();
    o.docker_host = Some("unix:///nonexistent.sock".into());
    let ran = run_with(&r, o, CancellationToken::new()).await;
    assert_eq!(ran.result("boxed"), JobResult::Failure);
    let why = ran.reason("boxed");
    assert!(
        why.contains("job `boxed`")
            && why.contains("start the Docker engine (dockerd) or set DOCKER_HOST"),
        "{why}"
    );
}

#[tokio::test]
async fn invalid_utf8_output_is_decoded_lossily_and_logged_as_is() {
    let r = repo(
        "jobs:\n  j:\n    steps: [{ name: bytes, run: \"printf 'ok \\\\377\\\\376 end\\\\n'\" }]\n",
        &[],
    );
    let ran = run(&r).await;
    assert!(ran.summary.success, "{:?}", ran.summary.jobs);
    assert!(
        ran.logs("j").contains("ok \u{FFFD}\u{FFFD} end"),
        "{:?}",
        ran.logs("j")
    );
    let raw = std::fs::read(ran.log_dir("j").join("01-bytes.log")).unwrap();
    assert_eq!(raw, b"ok \xff\xfe end\n");
}

#[tokio::test]
async fn a_hundred_megabyte_line_streams_in_bounded_chunks() {
    let r = repo(
        "jobs:\n  j:\n    steps: [{ name: big, run: \"head -c 100000000 /dev/zero | tr '\\\\0' x; echo; echo done\" }]\n",
        &[],
    );
    let pipeline = r.pipeline();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    // Count instead of keeping 100 MB of events.
    let counter = tokio::spawn(async move {
        let (mut chunks, mut max, mut total, mut saw_done) = (0usize, 0usize, 0usize, false);
        while let Some(e) = rx.recv().await {
            if let RunEvent::Log { line, .. } = e {
                chunks += 1;
                max = max.max(line.len());
                total += line.len();
                saw_done |= line.ends_with("done");
            }
        }
        (chunks, max, total, saw_done)
    });
    let summary = ferry_engine::ci::run(&pipeline, r.opts(), tx, CancellationToken::new())
        .await
        .unwrap();
    let (chunks, max, total, saw_done) = counter.await.unwrap();
    assert!(summary.success);
    assert!(saw_done);
    assert!(max <= 64 * 1024, "chunks stay small: {max}");
    assert!(chunks >= 100_000_000 / (64 * 1024));
    assert!(total >= 100_000_000);
    let log = summary.run_dir.join("logs/j/01-big.log");
    assert_eq!(std::fs::metadata(log).unwrap().len(), 100_000_000 + 1 + 5);
    let rss_kb: u64 = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    assert!(
        rss_kb < 200 * 1024,
        "peak memory stays bounded: {rss_kb} kB"
    );
}

#[tokio::test]
async fn a_secret_throughout_a_line_longer_than_a_read_is_masked_everywhere() {
    // 70,000 occurrences on one line of about 1 MB: many reads, read boundaries inside
    // occurrences, and events cut mid-line.
    let r = repo(
        "jobs:\n  j:\n    env:\n      TOKEN: ${{ secrets.API_TOKEN }}\n    steps: [{ name: long, run: \"{ yes \\\"$TOKEN\\\" || true; } | head -n 70000 | tr '\\\\n' ' '; echo; echo done\" }]\n",
        &[],
    );
    let mut o = r.opts();
    o.secrets = std::sync::Arc::new(std::collections::HashMap::from([(
        "API_TOKEN".to_string(),
        b"hunter2-s3cr3t".to_vec(),
    )]));
    let ran = run_with(&r, o, CancellationToken::new()).await;
    assert!(ran.summary.success, "{:?}", ran.summary.jobs);
    let log = std::fs::read_to_string(ran.log_dir("j").join("01-long.log")).unwrap();
    assert_eq!(log, format!("{}\ndone\n", "*** ".repeat(70_000)));
    let logs = ran.logs("j");
    assert!(!logs.contains("hunter2"));
    assert_eq!(logs.matches("***").count(), 70_000);
    assert!(logs.ends_with("done\n"), "{}", &logs[logs.len() - 20..]);
}

#[tokio::test]
async fn a_workspace_deleted_mid_run_fails_the_step_clearly() {
    let r = repo(
        "jobs:\n  j:\n    steps:\n      - run: rm -rf \"$FERRY_WORKSPACE\"\n      - run: echo unreachable\n",
        &[],
    );
    let ran = run(&r).await;
    assert_eq!(ran.result("j"), JobResult::Failure);
    assert!(
        ran.reason("j")
            .contains("does not exist (was the workspace deleted?)"),
        "{}",
        ran.reason("j")
    );
    assert!(ran.summary.run_dir.join("summary.json").is_file());
    assert!(matches!(
        ran.events.last(),
        Some(RunEvent::RunFinished { success: false, .. })
    ));
}

#[tokio::test]
async fn a_full_cache_directory_warns_and_the_job_still_succeeds() {
    let r = repo(
        r#"
jobs:
  j:
    cache:
      key: big
      paths: [blob]
    steps:
      - run: head -c 2000000 /dev/urandom > blob
"#,
        &[],
    );
    let cache = tempfile::tempdir().unwrap();
    let mnt = cache.path().join("tmpfs");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a tmpfs needs root");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let mut o = r.opts();
    o.cache_dir = Some(mnt.clone());
    let ran = run_with(&r, o, CancellationToken::new()).await;
    assert_eq!(ran.result("j"), JobResult::Success, "{}", ran.reason("j"));
    assert!(ran.summary.success);
    let logs = ran.logs("j");
    assert!(
        logs.contains("warning: saving cache `big` failed") && logs.contains("is full"),
        "{logs}"
    );
    let notes = std::fs::read_to_string(ran.log_dir("j").join("ferry.log")).unwrap();
    assert!(notes.contains("is full"));
    // Nothing half-written is left to be restored later.
    assert!(
        !mnt.join("keys").exists()
            || std::fs::read_dir(mnt.join("keys"))
                .unwrap()
                .next()
                .is_none()
    );
    let _ = Duration::ZERO;
}
