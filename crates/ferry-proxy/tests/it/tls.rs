//! TLS from certificate files.

use std::sync::Arc;

use ferry_proxy::{Proxy, Release};
use http_body_util::BodyExt;
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{backend, empty, single};

#[tokio::test]
async fn serves_https_from_pem_files_and_forwards_the_scheme() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();
    let config = ferry_proxy::tls::server_config(&cert_path, &key_path).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = Proxy::new(single(Release::new("v1", vec![backend("v1").await])));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(ferry_proxy::serve_tls(
        listener,
        proxy,
        config,
        shutdown.clone(),
    ));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    for alpn in [b"http/1.1".as_slice(), b"h2".as_slice()] {
        let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        client.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let io = TokioIo::new(tls);
        let resp = if alpn == b"h2" {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let req = Request::get("https://localhost/headers")
                .body(empty())
                .unwrap();
            sender.send_request(req).await.unwrap()
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let req = Request::get("/headers")
                .header("host", "localhost")
                .body(empty())
                .unwrap();
            sender.send_request(req).await.unwrap()
        };
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(
            body.contains("proto=https") && body.contains("host=localhost"),
            "{body}"
        );
    }
    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn names_the_file_when_a_certificate_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = ferry_proxy::tls::server_config(&missing, &missing)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing.pem") && err.contains("certificate chain"),
        "{err}"
    );
}
