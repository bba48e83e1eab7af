//! Switching releases: draining, streaming across a switch, zero failures under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry_proxy::Release;
use http_body_util::BodyExt;
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::support::{backend, backend_with_stop, client, empty, single, start};

#[tokio::test]
async fn drained_resolves_only_after_in_flight_requests_finish() {
    let blue = Release::new("blue", vec![backend("blue").await]);
    let proxy = start(single(blue.clone())).await;
    let c = client();
    let url = format!("http://{}/slow", proxy.addr);
    let slow = tokio::spawn({
        let c = c.clone();
        async move {
            let resp = c
                .request(Request::get(url).body(empty()).unwrap())
                .await
                .unwrap();
            (
                resp.status().as_u16(),
                resp.into_body().collect().await.unwrap().to_bytes(),
            )
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(blue.in_flight(), 1);
    proxy
        .proxy
        .set_routes(single(Release::new("green", vec![backend("green").await])));
    assert!(blue.is_retired());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), blue.drained())
            .await
            .is_err(),
        "drained while a request was still in flight"
    );
    tokio::time::timeout(Duration::from_secs(5), blue.drained())
        .await
        .expect("drains");
    assert!(slow.is_finished() || blue.in_flight() == 0);
    assert_eq!(
        slow.await.unwrap(),
        (200, bytes::Bytes::from_static(b"blue"))
    );
}

#[tokio::test]
async fn streaming_response_started_before_a_switch_completes_after_it() {
    let (blue_addr, blue_stop) = backend_with_stop("blue").await;
    let blue = Release::new("blue", vec![blue_addr]);
    let proxy = start(single(blue.clone())).await;
    let c = client();
    let resp = c
        .request(
            Request::get(format!("http://{}/stream", proxy.addr))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "blue-0;");

    proxy
        .proxy
        .set_routes(single(Release::new("green", vec![backend("green").await])));
    assert_eq!(
        crate::support::get(&c, proxy.addr, "x", "/").await.1,
        "green"
    );
    // The deploy engine waits for the drain, then stops the old instance.
    let drain = tokio::spawn({
        let blue = blue.clone();
        async move {
            blue.drained().await;
            blue_stop.cancel();
            Instant::now()
        }
    });
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        rest.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    let finished = Instant::now();
    let expected: String = (1..20).map(|i| format!("blue-{i};")).collect();
    assert_eq!(String::from_utf8(rest).unwrap(), expected);
    let drained_at = tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .unwrap()
        .unwrap();
    assert!(
        drained_at >= finished - Duration::from_millis(5),
        "drained before the stream ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_releases_ten_times_under_load_fails_no_request() {
    let (addr, mut stop) = backend_with_stop("r0").await;
    let mut current = Release::new("r0", vec![addr]);
    let proxy = start(single(current.clone())).await;
    let addr = proxy.addr;

    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    // Keep-alive clients (pooled connections), some asking for slow responses.
    for w in 0..4 {
        let (done, ok, failures) = (done.clone(), ok.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            let c = client();
            let path = if w == 0 { "/slow" } else { "/" };
            for _ in 0..5_000 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let req = Request::get(format!("http://{addr}{path}"))
                    .body(empty())
                    .unwrap();
                match c.request(req).await {
                    Ok(resp) if resp.status() == 200 => match resp.into_body().collect().await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            failures.lock().unwrap().push(format!("body: {e}"));
                            0
                        }
                    },
                    Ok(resp) => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("status {}", resp.status()));
                        0
                    }
                    Err(e) => {
                        failures.lock().unwrap().push(format!("request: {e:?}"));
                        0
                    }
                };
            }
        }));
    }
    // A new connection per request.
    for _ in 0..2 {
        let (done, ok, failures) = (done.clone(), ok.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            for _ in 0..2_000 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let result = async {
                    let stream = tokio::net::TcpStream::connect(addr).await?;
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                    tokio::spawn(conn);
                    let req = Request::get("/").header("host", "x").body(empty())?;
                    let resp = sender.send_request(req).await?;
                    let status = resp.status();
                    resp.into_body().collect().await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(status)
                }
                .await;
                match result {
                    Ok(s) if s == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(s) => failures
                        .lock()
                        .unwrap()
                        .push(format!("new connection: status {s}")),
                    Err(e) => failures
                        .lock()
                        .unwrap()
                        .push(format!("new connection: {e}")),
                }
            }
        }));
    }

    const NAMES: [&str; 11] = [
        "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10",
    ];
    for name in &NAMES[1..] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (next_addr, next_stop) = backend_with_stop(name).await;
        let next = Release::new(*name, vec![next_addr]);
        proxy.proxy.set_routes(single(next.clone()));
        let old = std::mem::replace(&mut current, next);
        // Stop the old instance as soon as it is drained, as the deploy engine will.
        tokio::time::timeout(Duration::from_secs(5), old.drained())
            .await
            .expect("old release drains");
        std::mem::replace(&mut stop, next_stop).cancel();
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    done.store(true, Ordering::SeqCst);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .unwrap()
            .unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
    let window = Duration::from_secs(60);
    let served: u64 = NAMES
        .iter()
        .map(|n| proxy.proxy.stats("web", n, window).requests)
        .sum();
    assert_eq!(served, ok.load(Ordering::Relaxed) as u64);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_refuses_new_connections() {
    let proxy = start(single(Release::new("v1", vec![backend("v1").await]))).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(ferry_proxy::serve(
        listener,
        proxy.proxy.clone(),
        shutdown.clone(),
    ));
    let c = client();
    let slow = tokio::spawn({
        let c = c.clone();
        async move {
            let resp = c
                .request(
                    Request::get(format!("http://{addr}/slow"))
                        .body(empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            (
                resp.status().as_u16(),
                resp.into_body().collect().await.unwrap().to_bytes(),
            )
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns")
        .unwrap();
    assert_eq!(slow.await.unwrap(), (200, bytes::Bytes::from_static(b"v1")));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}
