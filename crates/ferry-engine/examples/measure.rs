//! Measures the host executor's per-step overhead and log throughput.
//!
//! `cargo run --release -p ferry-engine --example measure` prints a table: the time
//! per step of `true` against one bash script running the same commands, and the time
//! of a step printing 200 MB against the same command writing to /dev/null.

use ferry_engine::ci::{self, RunOptions};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const STEPS: usize = 200;
const FLOOD: &str = "set +o pipefail; yes 'a typical log line of some eighty characters, like a compiler or test runner' | head -c 200000000";

fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=m", "-c", "user.email=m@example.invalid"])
        .args(args)
        .status()
        .map_err(|e| e.to_string())?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("git {args:?} failed"))
    }
}

async fn timed_run(yml: &str) -> Result<Duration, String> {
    let repo = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(repo.path().join("ferry.yml"), yml).map_err(|e| e.to_string())?;
    git(repo.path(), &["init", "-q"])?;
    git(repo.path(), &["add", "-A"])?;
    git(repo.path(), &["commit", "-qm", "m"])?;
    let pipeline =
        ferry_config::load(&repo.path().join("ferry.yml")).map_err(|d| format!("{d:?}"))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let t = Instant::now();
    let summary = ci::run(
        &pipeline,
        RunOptions::new(repo.path(), data.path()),
        tx,
        CancellationToken::new(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let took = t.elapsed();
    let _ = drain.await;
    if !summary.success {
        return Err(format!("the run failed: {:?}", summary.jobs));
    }
    Ok(took)
}

fn timed_bash(script: &str) -> Result<Duration, String> {
    let t = Instant::now();
    let st = Command::new("bash")
        .args(["-eo", "pipefail", "-c", script])
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("bash failed".into());
    }
    Ok(t.elapsed())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    // Per-step overhead: N steps of `true` vs N `bash -c true` from one script (the
    // honest baseline: every step is a fresh bash).
    let one = timed_run("jobs:\n  j:\n    steps: [{ run: 'true' }]\n").await?;
    let mut yml = String::from("jobs:\n  j:\n    steps:\n");
    for _ in 0..STEPS {
        yml.push_str("      - run: 'true'\n");
    }
    let many = timed_run(&yml).await?;
    let baseline = timed_bash(&format!(
        "for i in $(seq {STEPS}); do bash -eo pipefail -c true; done"
    ))?;
    let per_step = (many.saturating_sub(one)).as_secs_f64() * 1000.0 / (STEPS - 1) as f64;
    let bash_per = baseline.as_secs_f64() * 1000.0 / STEPS as f64;
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| run with 1 step (set-up included) | {:.1} ms |",
        one.as_secs_f64() * 1000.0
    );
    println!("| per step of `true` in Ferry | {per_step:.2} ms |");
    println!("| per `bash -c true` from a script | {bash_per:.2} ms |");
    println!(
        "| Ferry overhead per step | {:.2} ms |",
        per_step - bash_per
    );

    // Best of three of each: the machine is shared and noisy.
    let mut flood = Duration::MAX;
    let mut null = Duration::MAX;
    for _ in 0..3 {
        flood = flood.min(
            timed_run(&format!(
                "jobs:\n  j:\n    steps: [{{ run: \"{FLOOD}\" }}]\n"
            ))
            .await?,
        );
        null = null.min(timed_bash(&format!("{FLOOD} > /dev/null"))?);
    }
    let flood_net = flood.saturating_sub(one);
    println!(
        "| 200 MB step through Ferry | {:.0} ms ({:.0} MB/s) |",
        flood_net.as_secs_f64() * 1000.0,
        200.0 / flood_net.as_secs_f64()
    );
    println!(
        "| same command to /dev/null | {:.0} ms ({:.0} MB/s) |",
        null.as_secs_f64() * 1000.0,
        200.0 / null.as_secs_f64()
    );
    println!(
        "| speed relative to /dev/null | {:.2} |",
        null.as_secs_f64() / flood_net.as_secs_f64()
    );
    Ok(())
}
