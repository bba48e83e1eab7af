//! The docker and ssh deploy targets against a real Docker engine and real sshd.
//!
//! The ssh hosts are network namespaces with their own sshd ([`lab`]); the tests run
//! as root and fail, not skip, when sshd, `ip` or the Docker engine are missing.

mod docker;
mod lab;
mod ssh;

use ferry_config::model::Host;
use ferry_engine::deploy::targets::{Artifact, InstanceSpec};
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A service name no other test (or earlier run) uses.
pub fn unique_service(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A spec with the usual fields.
pub fn spec(
    service: &str,
    release: &str,
    index: u32,
    artifact: Artifact,
    command: Option<&str>,
    host: Option<Host>,
) -> InstanceSpec {
    InstanceSpec {
        service: service.into(),
        environment: "staging".into(),
        release: release.into(),
        index,
        artifact,
        command: command.map(String::from),
        port: None,
        env: BTreeMap::new(),
        host,
        health_path: "/index.html".into(),
    }
}

/// A tarball release holding `index.html` with `body`, written into `dir`.
pub fn tarball(dir: &Path, body: &str) -> Artifact {
    let file = dir.join("release.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&file).expect("release.tar"));
    let mut h = tar::Header::new_gnu();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "index.html", body.as_bytes())
        .expect("tar entry");
    b.into_inner().expect("tar written").flush().expect("flush");
    let bytes = std::fs::read(&file).expect("read release.tar");
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
    Artifact::Tarball {
        file,
        dir: dir.join("unpacked"),
        digest,
    }
}

/// GET `path` from `addr` (HTTP/1.0): the status code and body.
pub fn get_once(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// GET until the server answers 200 (it may still be binding its port), for up to 10 s.
pub fn get(addr: SocketAddr, path: &str) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match get_once(addr, path) {
            Ok((200, body)) => return body,
            r if Instant::now() > until => panic!("GET http://{addr}{path}: {r:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Whether a process with `pid` runs (exists and is not a zombie).
pub fn process_runs(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}
