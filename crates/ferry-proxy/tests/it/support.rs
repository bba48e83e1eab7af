//! Backends, a running proxy and clients for the tests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use ferry_proxy::{Proxy, Release, Route, RouteTable, Service};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Starts a backend named `name` and returns its address. It answers:
/// `/stream` with 20 chunks 50 ms apart, `/slow` after 300 ms, `/ws` by upgrading and
/// echoing bytes, `/headers` with the forwarded headers, anything else with its name.
pub async fn backend(name: &'static str) -> SocketAddr {
    backend_with_stop(name).await.0
}

/// A backend as [`backend`] that closes its listener and every connection, mid-request
/// or not, when the returned token is cancelled — as a stopped instance would.
pub async fn backend_with_stop(name: &'static str) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stopped.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else { return };
            let stopped = stopped.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(name, req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                tokio::select! {
                    () = stopped.cancelled() => {}
                    _ = conn => {}
                }
            });
        }
    });
    (addr, stop)
}

async fn answer(
    name: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let resp = match path.as_str() {
        "/stream" => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
            tokio::spawn(async move {
                for i in 0..20 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if tx.send(Bytes::from(format!("{name}-{i};"))).await.is_err() {
                        return;
                    }
                }
            });
            Response::new(Channel(rx).boxed())
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Response::new(full(name))
        }
        "/ws" => {
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
            Response::builder()
                .status(101)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(full(""))
                .unwrap()
        }
        "/headers" => {
            let h = req.headers();
            let get = |n: &str| {
                h.get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned()
            };
            let text = format!(
                "for={} proto={} host={} fhost={} conn={}",
                get("x-forwarded-for"),
                get("x-forwarded-proto"),
                get("host"),
                get("x-forwarded-host"),
                get("x-hop")
            );
            Response::new(full(&text))
        }
        "/echo" => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Response::new(Full::new(body).boxed())
        }
        _ => Response::builder()
            .header("x-backend", name)
            .body(full(name))
            .unwrap(),
    };
    Ok(resp)
}

/// A body fed by a channel, streamed frame by frame.
struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

pub fn full(text: &str) -> TestBody {
    Full::new(Bytes::from(text.to_owned())).boxed()
}

pub fn empty() -> TestBody {
    Empty::new().boxed()
}

/// A proxy serving `table` on a fresh port; cancelled when the token is dropped... by
/// the test at its end.
pub struct Running {
    pub proxy: Proxy,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start(table: RouteTable) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = Proxy::new(table);
    let shutdown = CancellationToken::new();
    tokio::spawn(ferry_proxy::serve(
        listener,
        proxy.clone(),
        shutdown.clone(),
    ));
    Running {
        proxy,
        addr,
        shutdown,
    }
}

/// A table with one catch-all route to service `web` on `release`.
pub fn single(release: std::sync::Arc<Release>) -> RouteTable {
    RouteTable::new(vec![Route::new("*", "/", Service::new("web", release))])
}

pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends a GET through `proxy` for `host` and `path`; returns status and body text.
pub async fn get(
    client: &Client<HttpConnector, TestBody>,
    proxy: SocketAddr,
    host: &str,
    path: &str,
) -> (u16, String) {
    let req = Request::get(format!("http://{proxy}{path}"))
        .header("host", host)
        .body(empty())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
