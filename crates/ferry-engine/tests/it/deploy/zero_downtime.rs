//! Issue 4, item 6: no request fails while deploys move traffic.
//!
//! Steady load goes through the proxy — one keep-alive client, one client opening a
//! new connection per request, and one long streaming response — while the service
//! goes through 10 blue-green deploys, 10 rolling deploys over 3 instances and a canary
//! whose release answers 5xx. Every answer must be a 200 from some release, except
//! the canary's own 5xx (the errors its analysis exists to catch), and the stream must
//! arrive whole.

use super::support::{Client, Lab, yml};
use ferry_types::DeployState;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const BLUE_GREEN: &str = "        blue-green:\n          keep_old_for: 0s";
const ROLLING: &str = "        rolling:\n          instances: 3\n          max_surge: 1\n          max_unavailable: 0";
const CANARY: &str = "        canary:\n          steps:\n            - { weight: 20, pause: 5s }\n          analysis:\n            max_error_rate: 5%\n            min_requests: 20";
/// Chunks of the long stream, 100 ms apart.
const STREAM_CHUNKS: usize = 120;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    canary_errors: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    async fn record(&self, answer: Result<(u16, String), String>) {
        match answer {
            Ok((200, body)) if body.starts_with("release=") && body != "release=bad" => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok((500, body)) if body == "release=bad" => {
                self.canary_errors.fetch_add(1, Ordering::Relaxed);
            }
            other => self.failures.lock().await.push(format!("{other:?}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_under_load_lose_no_request() {
    let lab = Lab::new().await;
    let first = lab.release(&yml("bg0", "ok", BLUE_GREEN, "")).await;
    assert_eq!(lab.deploy(first.number).await.state, DeployState::Succeeded);

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let addr = lab.proxy_addr;
    let keep_alive = tokio::spawn({
        let (tally, stop) = (tally.clone(), stop.clone());
        async move {
            let mut client = Client::connect(addr).await.expect("connect");
            while !stop.load(Ordering::Relaxed) {
                tally.record(client.get("/").await).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let fresh = tokio::spawn({
        let (tally, stop) = (tally.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let answer = match Client::connect(addr).await {
                    Ok(mut c) => c.get("/").await,
                    Err(e) => Err(e),
                };
                tally.record(answer).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let stream = tokio::spawn(async move {
        let mut client = Client::connect(addr).await.expect("connect");
        let (status, chunked, _) = client
            .head(&format!("/stream?n={STREAM_CHUNKS}"))
            .await
            .expect("stream head");
        assert_eq!((status, chunked), (200, true));
        let mut lines = Vec::new();
        while let Some(chunk) = client.chunk().await.expect("stream chunk") {
            lines.push(String::from_utf8_lossy(&chunk).trim().to_string());
        }
        lines
    });

    let started = Instant::now();
    for i in 1..=10 {
        let r = lab
            .release(&yml(&format!("bg{i}"), "ok", BLUE_GREEN, ""))
            .await;
        let d = lab.deploy(r.number).await;
        assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    }
    let blue_green = started.elapsed();
    for i in 1..=10 {
        let r = lab
            .release(&yml(&format!("roll{i}"), "ok", ROLLING, ""))
            .await;
        let d = lab.deploy(r.number).await;
        assert_eq!(d.state, DeployState::Succeeded, "{}", lab.steps(d.id).await);
    }
    let rolling = started.elapsed() - blue_green;
    let bad = lab.release(&yml("bad", "5xx", CANARY, "")).await;
    let canary = lab.deploy(bad.number).await;
    assert_eq!(canary.state, DeployState::RolledBack);
    let reason = canary.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("canary analysis failed at 20%"),
        "{reason}"
    );
    let live = lab.store.live_env("web", "prod").await.unwrap().unwrap();
    assert_eq!(
        live.release_number,
        bad.number - 1,
        "the last rolling release stays live"
    );

    // A moment of load after the rollback, then the end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    keep_alive.await.expect("keep-alive client");
    fresh.await.expect("new-connection client");
    let lines = stream.await.expect("the stream completes");
    assert_eq!(lines.len(), STREAM_CHUNKS, "the stream arrived whole");
    assert_eq!(lines[0], "bg0 chunk 0");
    assert_eq!(
        lines[STREAM_CHUNKS - 1],
        format!("bg0 chunk {}", STREAM_CHUNKS - 1)
    );

    let failures = tally.failures.lock().await.clone();
    let ok = tally.ok.load(Ordering::Relaxed);
    let canary_errors = tally.canary_errors.load(Ordering::Relaxed);
    eprintln!(
        "zero downtime: {ok} answers, {canary_errors} canary 5xx, 10 blue-green deploys in {blue_green:?}, 10 rolling deploys in {rolling:?}"
    );
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(ok > 500, "only {ok} requests were answered");
    assert!(
        canary_errors >= 20,
        "the canary got {canary_errors} requests"
    );
    // The proxy's own figures, which the analysis read, agree.
    let seen = lab
        .proxy
        .stats("web/prod", &bad.name(), Duration::from_secs(600));
    assert_eq!(seen.errors, canary_errors);
    for _ in 0..5 {
        assert_eq!(lab.get("/").await.unwrap(), (200, "release=roll10".into()));
    }
}
