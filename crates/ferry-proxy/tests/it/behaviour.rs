//! Routing, weights, stickiness, pass-through, errors and metrics.

use std::time::Duration;

use bytes::Bytes;
use ferry_proxy::{Release, Route, RouteTable, Service};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{backend, client, empty, get, single, start};

#[tokio::test]
async fn routes_by_host_then_longest_path_prefix() {
    let app = Release::new("v1", vec![backend("app").await]);
    let api = Release::new("v1", vec![backend("api").await]);
    let wild = Release::new("v1", vec![backend("wild").await]);
    let table = RouteTable::new(vec![
        Route::new("*.example.com", "/", Service::new("wild", wild)),
        Route::new("app.example.com", "/", Service::new("app", app)),
        Route::new("app.example.com", "/api", Service::new("api", api)),
    ]);
    let proxy = start(table).await;
    let c = client();
    assert_eq!(
        get(&c, proxy.addr, "app.example.com", "/").await,
        (200, "app".into())
    );
    assert_eq!(
        get(&c, proxy.addr, "APP.example.com:8080", "/api/users").await,
        (200, "api".into())
    );
    assert_eq!(
        get(&c, proxy.addr, "app.example.com", "/api").await,
        (200, "api".into())
    );
    assert_eq!(
        get(&c, proxy.addr, "app.example.com", "/apiary").await,
        (200, "app".into())
    );
    assert_eq!(
        get(&c, proxy.addr, "blog.example.com", "/api").await,
        (200, "wild".into())
    );
    let (status, body) = get(&c, proxy.addr, "example.org", "/").await;
    assert_eq!(status, 404);
    assert!(body.contains("example.org/"), "{body}");
    let (status, _) = get(&c, proxy.addr, "example.com", "/").await;
    assert_eq!(
        status, 404,
        "`*.example.com` does not match the bare domain"
    );
}

#[tokio::test]
async fn canary_weight_splits_requests() {
    let live = Release::new("v1", vec![backend("v1").await]);
    let canary = Release::new("v2", vec![backend("v2").await]);
    let proxy = start(RouteTable::new(vec![Route::new(
        "*",
        "/",
        Service::new("web", live).with_canary(canary, 30),
    )]))
    .await;
    let c = client();
    let mut to_canary = 0;
    for _ in 0..200 {
        let (status, body) = get(&c, proxy.addr, "x", "/").await;
        assert_eq!(status, 200);
        to_canary += usize::from(body == "v2");
    }
    assert!(
        (55..=65).contains(&to_canary),
        "{to_canary} of 200 went to the 30% canary"
    );
}

#[tokio::test]
async fn sticky_cookie_keeps_a_client_on_its_release() {
    let live = Release::new("v1", vec![backend("v1").await]);
    let canary = Release::new("v2", vec![backend("v2").await]);
    let service = Service::new("web", live)
        .with_canary(canary, 50)
        .sticky(true);
    let proxy = start(RouteTable::new(vec![Route::new("*", "/", service)])).await;
    let c = client();
    for _ in 0..4 {
        let resp = c
            .request(
                Request::get(format!("http://{}/", proxy.addr))
                    .body(empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        let first = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        assert!(
            cookie.starts_with(&format!("ferry_release_web={first};")),
            "{cookie}"
        );
        let pair = cookie.split(';').next().unwrap().to_owned();
        for _ in 0..10 {
            let resp = c
                .request(
                    Request::get(format!("http://{}/", proxy.addr))
                        .header("cookie", format!("theme=dark; {pair}"))
                        .body(empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert!(
                resp.headers().get("set-cookie").is_none(),
                "pinned clients get no new cookie"
            );
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, first.as_bytes());
        }
    }
}

#[tokio::test]
async fn answers_502_when_no_instance_answers_and_tries_the_next_on_connect_error() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down = Release::new("v1", vec![dead, dead]);
    let proxy = start(single(down)).await;
    let c = client();
    let (status, body) = get(&c, proxy.addr, "x", "/").await;
    assert_eq!(status, 502);
    assert!(
        body.contains("no instance of service `web` (release `v1`) answered"),
        "{body}"
    );
    let stats = proxy.proxy.stats("web", "v1", Duration::from_secs(60));
    assert_eq!((stats.requests, stats.errors), (1, 1));

    let half = Release::new("v2", vec![dead, backend("alive").await]);
    proxy.proxy.set_routes(single(half));
    for _ in 0..6 {
        assert_eq!(get(&c, proxy.addr, "x", "/").await, (200, "alive".into()));
    }
    // A request with a body is re-sent too: it was never read by the dead instance.
    for _ in 0..4 {
        let resp = c
            .request(
                Request::post(format!("http://{}/echo", proxy.addr))
                    .body(Full::new(Bytes::from_static(b"payload")).boxed())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.into_body().collect().await.unwrap().to_bytes(),
            "payload"
        );
    }
}

#[tokio::test]
async fn forwards_client_address_and_drops_hop_by_hop_headers() {
    let proxy = start(single(Release::new("v1", vec![backend("v1").await]))).await;
    let c = client();
    let req = Request::get(format!("http://{}/headers", proxy.addr))
        .header("host", "app.example.com")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .body(empty())
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body,
        "for=127.0.0.1 proto=http host=app.example.com fhost=app.example.com conn=-"
    );
}

#[tokio::test]
async fn websocket_upgrade_echoes_through_the_proxy() {
    let proxy = start(single(Release::new("v1", vec![backend("v1").await]))).await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let req = Request::get("/ws")
        .header("host", "x")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(empty())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["upgrade"], "websocket");
    let mut io = TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
    for msg in ["hello", "through the proxy"] {
        io.write_all(msg.as_bytes()).await.unwrap();
        let mut buf = vec![0; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), io.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, msg.as_bytes());
    }
}

#[tokio::test]
async fn serves_http2_prior_knowledge_clients() {
    let proxy = start(single(Release::new("v1", vec![backend("v1").await]))).await;
    let c: Client<HttpConnector, crate::support::TestBody> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = c.clone();
        let url = format!("http://{}/", proxy.addr);
        tasks.push(tokio::spawn(async move {
            let resp = c
                .request(Request::get(url).body(empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.version(), hyper::Version::HTTP_2);
            (
                resp.status().as_u16(),
                resp.into_body().collect().await.unwrap().to_bytes(),
            )
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), (200, Bytes::from_static(b"v1")));
    }
}

#[tokio::test]
async fn counts_requests_per_release_and_renders_prometheus_text() {
    let live = Release::new("v1", vec![backend("v1").await]);
    let canary = Release::new("v2", vec![backend("v2").await]);
    let proxy = start(RouteTable::new(vec![Route::new(
        "*",
        "/",
        Service::new("web", live).with_canary(canary, 50),
    )]))
    .await;
    let c = client();
    for _ in 0..10 {
        assert_eq!(get(&c, proxy.addr, "x", "/").await.0, 200);
    }
    let window = Duration::from_secs(60);
    let (v1, v2) = (
        proxy.proxy.stats("web", "v1", window),
        proxy.proxy.stats("web", "v2", window),
    );
    assert_eq!((v1.requests, v2.requests), (5, 5));
    assert_eq!((v1.errors, v1.error_rate), (0, 0.0));
    assert!(v1.p95 > Duration::ZERO && v1.p95 < Duration::from_secs(5));
    let text = proxy.proxy.render_metrics();
    assert!(
        text.contains("ferry_proxy_requests_total{service=\"web\",release=\"v1\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("ferry_proxy_requests_total{service=\"web\",release=\"v2\"} 5"),
        "{text}"
    );
    assert!(
        text.contains(
            "ferry_proxy_request_duration_seconds_count{service=\"web\",release=\"v2\"} 5"
        )
    );
}
