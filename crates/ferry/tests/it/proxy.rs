//! The edge proxy end to end: `ferry serve` runs it (or not, with `--no-proxy`), and
//! `ferry proxy` serves a routes file, reloads it and reports metrics.

use crate::harness::ServerProc;
use crate::support::{ferry, output, stderr};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GET to `addr` for `host` and `path`; returns the status code and the body.
fn get(addr: &str, host: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}

/// An HTTP backend answering every request with `name`; returns its address.
fn backend(name: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                    name.len()
                );
            });
        }
    });
    addr
}

#[test]
fn serve_runs_the_proxy_and_answers_404_for_an_unknown_host() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = ServerProc::start(&dir.path().join("data"), &["--proxy-listen", &listen]);
    let printed = server.lines.lock().unwrap().join("\n");
    assert!(
        printed.contains(&format!("The proxy is listening on http://{listen}")),
        "{printed}"
    );
    let (status, body) = get(&listen, "nowhere.example.com", "/some/page");
    assert_eq!(status, 404);
    assert_eq!(body, "No route for `nowhere.example.com/some/page`.\n");
    assert!(
        server
            .log_text()
            .contains(&format!("proxy=http://{listen}"))
    );
}

#[test]
fn serve_with_no_proxy_does_not_listen() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = ServerProc::start(
        &dir.path().join("data"),
        &["--no-proxy", "--proxy-listen", &listen],
    );
    let printed = server.lines.lock().unwrap().join("\n");
    assert!(!printed.contains("proxy"), "{printed}");
    assert!(
        TcpStream::connect(&listen).is_err(),
        "nothing listens on {listen}"
    );
}

#[test]
fn serve_refuses_a_taken_proxy_port_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let out = output(ferry(&dir.path().join("data")).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--proxy-listen",
        &listen,
    ]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&listen) && err.contains("--proxy-listen"),
        "{err}"
    );
}

/// A running `ferry proxy`.
struct ProxyProc {
    child: Child,
    addr: String,
    metrics: String,
    log: std::path::PathBuf,
}

impl ProxyProc {
    fn start(dir: &Path, routes: &Path, extra: &[&str]) -> ProxyProc {
        let log = dir.join("proxy.stderr");
        let mut child = ferry(&dir.join("data"))
            .args(["proxy", "--listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0", "--routes"])
            .arg(routes)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start ferry proxy");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut addr, mut metrics) = (None, None);
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(m) = line.strip_prefix("Metrics are at http://") {
                metrics = Some(m.trim_end_matches("/metrics").to_string());
            }
            if let Some(a) = line.strip_prefix("Ferry proxy is listening on http://") {
                addr = Some(a.to_string());
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        let Some(addr) = addr else {
            let _ = child.kill();
            panic!(
                "ferry proxy did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        ProxyProc {
            child,
            addr,
            metrics: metrics.expect("the metrics address is printed"),
            log,
        }
    }

    fn hup(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `host` is answered by `body`.
    fn wait_for(&self, host: &str, body: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, got) = get(&self.addr, host, "/");
            if status == 200 && got == body {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{host} still answers {status} {got:?}, not {body:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- ferry proxy log\n{}", self.log_text());
        }
    }
}

fn routes(a: &str, b: &str) -> String {
    format!(
        "routes:
  - host: a.test
    service: alpha
    release: {{ name: v1, instances: [{a}] }}
  - host: b.test
    path: /
    service: beta
    release:
      name: v1
      instances: [{b}]
"
    )
}

#[test]
fn proxy_routes_by_host_and_switches_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (blue, green) = (backend("blue"), backend("green"));
    let file = dir.path().join("routes.yml");
    std::fs::write(&file, routes(&blue, &green)).unwrap();
    let access = dir.path().join("access.log");
    let proxy = ProxyProc::start(
        dir.path(),
        &file,
        &["--access-log", access.to_str().unwrap()],
    );

    assert_eq!(get(&proxy.addr, "a.test", "/x"), (200, "blue".into()));
    assert_eq!(get(&proxy.addr, "b.test", "/"), (200, "green".into()));
    assert_eq!(get(&proxy.addr, "c.test", "/").0, 404);

    // A new release of alpha on green's instance, picked up on SIGHUP.
    let switched = routes(&green, &green).replacen("name: v1", "name: v2", 1);
    std::fs::write(&file, switched).unwrap();
    proxy.hup();
    proxy.wait_for("a.test", "green");

    // A broken file keeps the routes in use and says where it is broken.
    std::fs::write(&file, "routes:\n  - host: a.test\n    servce: alpha\n").unwrap();
    proxy.hup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy.log_text().contains("Routes file not reloaded") {
        assert!(Instant::now() < deadline, "{}", proxy.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        proxy.log_text().contains("routes.yml:3:5"),
        "{}",
        proxy.log_text()
    );
    assert_eq!(get(&proxy.addr, "a.test", "/"), (200, "green".into()));

    // Fixing the file is noticed without a signal.
    std::fs::write(&file, routes(&blue, &green)).unwrap();
    proxy.wait_for("a.test", "blue");

    let (status, metrics) = get(&proxy.metrics, "metrics", "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("ferry_proxy_requests_total{service=\"alpha\",release=\"v2\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferry_proxy_requests_total{service=\"beta\",release=\"v1\"} 1"),
        "{metrics}"
    );

    // Each line: the client, host, request, status, body bytes, service and release.
    let log = std::fs::read_to_string(&access).unwrap();
    assert!(
        log.contains(" 127.0.0.1 a.test \"GET /x\" 200 4 alpha v1 "),
        "{log}"
    );
    let not_found = "No route for `c.test/`.\n".len();
    assert!(
        log.contains(&format!(" 127.0.0.1 c.test \"GET /\" 404 {not_found} - - ")),
        "{log}"
    );
    assert!(
        !proxy.log_text().contains("Proxied request"),
        "access lines go to the file only"
    );
}

#[test]
fn proxy_with_a_broken_routes_file_exits_2_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yml");
    std::fs::write(
        &file,
        "routes:\n  - host: a.test\n    service: alpha\n    release: { name: v1, instances: [nowhere] }\n",
    )
    .unwrap();
    let out = output(
        ferry(&dir.path().join("data"))
            .args(["proxy", "--listen", "127.0.0.1:0", "--routes"])
            .arg(&file),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("routes.yml:4:") && err.contains("`nowhere` is not an instance address"),
        "{err}"
    );
}
