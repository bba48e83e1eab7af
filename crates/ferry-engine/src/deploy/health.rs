//! Health checks: HTTP GET of `healthcheck.path` on a new instance until it answers 2xx.
//!
//! The probe is a one-shot HTTP/1.1 request over a fresh connection (`Connection:
//! close`) that reads only the status line: what the check needs, with no client pool
//! to keep connections to instances that are about to stop.

use ferry_config::model::Healthcheck;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// One probe: the status code of `GET path`, or why there was none.
pub(crate) async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ferry-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending the request to {addr} failed: {e}"))?;
        let mut head = Vec::with_capacity(128);
        let mut buf = [0u8; 256];
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading the answer from {addr} failed: {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let line = line.lines().next().unwrap_or("");
        line.split_whitespace()
            .nth(1)
            .filter(|_| line.starts_with("HTTP/"))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("{addr} did not answer with HTTP (got {line:?})"))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("{addr} did not answer within {timeout:?}")),
    }
}

/// Probes every `interval` (the first after one interval, giving the instance time to
/// listen) until a 2xx; fails after `retries` failed probes in a row, with the last
/// failure. Stops early (with an error) when `cancel` fires.
pub(crate) async fn wait_healthy(
    addr: SocketAddr,
    check: &Healthcheck,
    cancel: &CancellationToken,
) -> Result<u32, String> {
    let mut failures = 0;
    let mut probes = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Err("the deploy was stopped".into()),
            _ = tokio::time::sleep(check.interval) => {}
        }
        probes += 1;
        let why = match probe(addr, &check.path, check.timeout).await {
            Ok(code) if (200..300).contains(&code) => return Ok(probes),
            Ok(code) => format!("`GET {}` answered {code}", check.path),
            Err(e) => e,
        };
        failures += 1;
        if failures >= check.retries.max(1) {
            return Err(format!(
                "failed {failures} health checks in a row; the last: {why}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve(status: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        addr
    }

    fn check() -> Healthcheck {
        Healthcheck {
            path: "/healthz".into(),
            interval: Duration::from_millis(10),
            timeout: Duration::from_secs(1),
            retries: 3,
        }
    }

    #[tokio::test]
    async fn a_2xx_answer_is_healthy() {
        let addr = serve("204 No Content").await;
        assert_eq!(
            probe(addr, "/healthz", Duration::from_secs(1)).await,
            Ok(204)
        );
        let probes = wait_healthy(addr, &check(), &CancellationToken::new()).await;
        assert_eq!(probes, Ok(1));
    }

    #[tokio::test]
    async fn a_5xx_after_the_retries_is_unhealthy_with_the_reason() {
        let addr = serve("503 Service Unavailable").await;
        let err = wait_healthy(addr, &check(), &CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            "failed 3 health checks in a row; the last: `GET /healthz` answered 503"
        );
    }

    #[tokio::test]
    async fn nobody_listening_is_unhealthy() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = wait_healthy(addr, &check(), &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
    }
}
