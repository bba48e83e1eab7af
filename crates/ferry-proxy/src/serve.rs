//! Accepting connections: HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN over TLS) on
//! one listener, with graceful shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Proxy;

/// How long open connections get to finish their requests after shutdown is asked.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `proxy` over plain HTTP on `listener` until `shutdown` is cancelled, then
/// stops accepting, lets open connections finish their requests (up to 30 s) and
/// returns.
pub async fn serve(listener: TcpListener, proxy: Proxy, shutdown: CancellationToken) {
    accept_loop(listener, proxy, shutdown, None).await;
}

/// As [`serve`], over TLS with `config` (see [`crate::tls::server_config`]).
pub async fn serve_tls(
    listener: TcpListener,
    proxy: Proxy,
    config: Arc<rustls::ServerConfig>,
    shutdown: CancellationToken,
) {
    accept_loop(
        listener,
        proxy,
        shutdown,
        Some(tokio_rustls::TlsAcceptor::from(config)),
    )
    .await;
}

async fn accept_loop(
    listener: TcpListener,
    proxy: Proxy,
    shutdown: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "Accepting a connection failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (proxy, watcher, tls) = (proxy.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => connection(stream, remote, proxy, "http", watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, remote, proxy, "https", watcher).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%remote, %error, "TLS handshake failed.");
                        }
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out."),
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("Connections still open after the shutdown grace period were closed.");
    }
}

async fn connection<S>(
    stream: S,
    remote: std::net::SocketAddr,
    proxy: Proxy,
    scheme: &'static str,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        async move { Ok::<_, Infallible>(proxy.handle(req, remote, scheme).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(error) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%remote, %error, "Client connection ended with an error.");
    }
}
