//! A deploy lab: a SQLite store, Ferry's proxy on 127.0.0.1, a deployer, and a small
//! Python HTTP service released as tarballs (its behaviour set by its env: `RELEASE`
//! names it in every answer, `MODE` makes it unhealthy, fail its smoke check or answer
//! 5xx).

use ferry_engine::deploy::{DeployConfig, Deployer, ReleaseRequest};
use ferry_proxy::{Proxy, RouteTable};
use ferry_store::BlobStore;
use ferry_store::db::{Deploy, NewProject, Release, Store};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The service: `/` answers `release=$RELEASE` (500 with `MODE=5xx`), `/healthz` 200
/// (503 with `MODE=unhealthy`), `/smoke` 200 (500 with `MODE=badsmoke`), `/stream?n=N`
/// N chunks 100 ms apart. HTTP/1.1 with keep-alive, one thread per connection.
pub const APP: &str = r#"
import os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RELEASE = os.environ.get("RELEASE", "?")
MODE = os.environ.get("MODE", "ok")

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Release", RELEASE)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(503 if MODE == "unhealthy" else 200, "ok")
        elif self.path == "/smoke":
            self.reply(500 if MODE == "badsmoke" else 200, "smoke")
        elif self.path.startswith("/stream"):
            n = int(self.path.split("n=")[1]) if "n=" in self.path else 10
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Release", RELEASE)
            self.end_headers()
            for i in range(n):
                chunk = ("%s chunk %d\n" % (RELEASE, i)).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                time.sleep(0.1)
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.reply(500 if MODE == "5xx" else 200, "release=" + RELEASE)

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

static SHAS: AtomicU64 = AtomicU64::new(1);

/// A store, a proxy, a deployer.
pub struct Lab {
    /// First, to be dropped before the data directory is deleted.
    reaper: Reaper,
    pub data: TempDir,
    pub store: Store,
    pub proxy: Proxy,
    pub proxy_addr: SocketAddr,
    pub deployer: Deployer,
    pub shutdown: CancellationToken,
    pub task: Option<JoinHandle<()>>,
    proxy_stop: CancellationToken,
}

/// Kills every instance process left under a data directory when the lab ends, even
/// when a test fails: instances outlive their server by design.
struct Reaper {
    instances: Option<PathBuf>,
    /// The deployer's loop, stopped first so it does not start instances again.
    shutdown: CancellationToken,
    task: Option<tokio::task::AbortHandle>,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let Some(root) = self.instances.take() else {
            return;
        };
        self.shutdown.cancel();
        if let Some(t) = &self.task {
            t.abort();
        }
        let dirs = |p: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(p)
                .map(|e| {
                    e.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default()
        };
        for service in dirs(&root) {
            for env in dirs(&service) {
                for instance in dirs(&env) {
                    let _ = std::fs::write(instance.join("owner"), "stopped");
                    if running(&instance.join("pid"))
                        && let Ok(text) = std::fs::read_to_string(instance.join("pid"))
                        && let Some(Ok(pid)) = text.split_whitespace().next().map(str::parse::<i32>)
                    {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
        }
    }
}

/// Settings for the tests: short drains and grace.
pub fn config(proxy: &Proxy) -> DeployConfig {
    DeployConfig {
        proxy: Some(proxy.clone()),
        lease: Duration::from_secs(5),
        drain_timeout: Duration::from_secs(30),
        grace: Duration::from_secs(2),
        keep_releases: 10,
        ..DeployConfig::default()
    }
}

impl Lab {
    pub async fn new() -> Lab {
        let data = tempfile::tempdir().expect("tempdir");
        let store = Store::open_data_dir(data.path())
            .await
            .expect("store opens");
        Lab::with_store(data, store).await
    }

    /// A lab on a fresh PostgreSQL database of the server `FERRY_TEST_DATABASE_URL`
    /// names (an admin URL); drop it with [`Lab::drop_database`].
    pub async fn postgres() -> (Lab, String) {
        use sqlx::Connection as _;
        let admin = std::env::var("FERRY_TEST_DATABASE_URL").expect(
            "FERRY_TEST_DATABASE_URL is not set: the PostgreSQL tests need an admin URL such as \
             postgres://postgres@127.0.0.1:54329/postgres (`cargo xtask test` sets it)",
        );
        let name = format!(
            "ferry_deploy_test_{}_{}",
            std::process::id(),
            SHAS.fetch_add(1, Ordering::SeqCst)
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL reachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("FERRY_TEST_DATABASE_URL has no database part: {admin}"),
        };
        let store = Store::connect(&url).await.expect("store opens");
        let data = tempfile::tempdir().expect("tempdir");
        (Lab::with_store(data, store).await, name)
    }

    /// Drops a database made by [`Lab::postgres`].
    pub async fn drop_database(self, name: &str) {
        use sqlx::Connection as _;
        self.store.close().await;
        let admin = std::env::var("FERRY_TEST_DATABASE_URL").expect("admin URL");
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL reachable");
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }

    async fn with_store(data: TempDir, store: Store) -> Lab {
        store
            .add_project(&NewProject {
                name: "app".into(),
                repo: data.path().display().to_string(),
                default_branch: "main".into(),
                webhook_secret: None,
            })
            .await
            .expect("project added");
        let mut lab = Lab::on(data, store).await;
        lab.start().await;
        lab
    }

    /// A lab over an existing data directory and store (a restarted server), not
    /// started yet.
    pub async fn on(data: TempDir, store: Store) -> Lab {
        let proxy = Proxy::new(RouteTable::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let proxy_addr = listener.local_addr().expect("addr");
        let proxy_stop = CancellationToken::new();
        tokio::spawn(ferry_proxy::serve(
            listener,
            proxy.clone(),
            proxy_stop.clone(),
        ));
        let deployer = Deployer::new(
            store.clone(),
            BlobStore::new(data.path().join("blobs")),
            data.path().to_path_buf(),
            "test-server".into(),
            config(&proxy),
        );
        let shutdown = CancellationToken::new();
        let reaper = Reaper {
            instances: Some(data.path().join("instances")),
            shutdown: shutdown.clone(),
            task: None,
        };
        Lab {
            data,
            store,
            proxy,
            proxy_addr,
            deployer,
            shutdown,
            task: None,
            proxy_stop,
            reaper,
        }
    }

    pub async fn start(&mut self) {
        let task = self
            .deployer
            .start(self.shutdown.clone())
            .await
            .expect("deployer starts");
        self.reaper.task = Some(task.abort_handle());
        self.task = Some(task);
    }

    /// Stops the deployer as a crash would (its deploys stop where they are; the
    /// processes it started keep running) and the proxy; returns the data directory
    /// and store for a restarted lab.
    pub async fn crash(mut self) -> (TempDir, Store) {
        self.reaper.instances = None;
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        self.proxy_stop.cancel();
        (self.data, self.store)
    }

    /// Makes a release: a tarball holding the app, and `yml` as its config.
    pub async fn release(&self, yml: &str) -> Release {
        let dir = tempfile::tempdir().expect("tempdir");
        let tar_path = dir.path().join("release.tar");
        let sha = format!("{:040x}", SHAS.fetch_add(1, Ordering::SeqCst));
        {
            let file = std::fs::File::create(&tar_path).expect("create tar");
            let mut tar = tar::Builder::new(file);
            let mut header = tar::Header::new_gnu();
            header.set_size(APP.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, "app.py", APP.as_bytes())
                .expect("append");
            let mut header = tar::Header::new_gnu();
            header.set_size(sha.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, "SHA", sha.as_bytes())
                .expect("append");
            tar.finish().expect("finish tar");
        }
        self.deployer
            .create_release(ReleaseRequest {
                project: "app".into(),
                sha,
                config: yml.to_owned(),
                artifact: None,
                source: Some(tar_path),
                branch: Some("main".into()),
                tag: None,
                run_id: None,
                created_by: "test".into(),
            })
            .await
            .expect("release created")
    }

    /// Deploys release `number` to `prod` and waits for the end.
    pub async fn deploy(&self, number: i64) -> Deploy {
        let d = self
            .deployer
            .deploy(ferry_engine::deploy::DeployRequest {
                service: "web".into(),
                environment: "prod".into(),
                release: Some(number),
                requested_by: "test".into(),
                run_id: None,
                job: None,
            })
            .await
            .expect("deploy queued");
        self.wait(d.id).await
    }

    pub async fn wait(&self, id: i64) -> Deploy {
        tokio::time::timeout(Duration::from_secs(60), self.deployer.wait(id))
            .await
            .expect("the deploy ends within a minute")
            .expect("wait")
    }

    /// The progress lines of a deploy, one per line.
    pub async fn steps(&self, id: i64) -> String {
        self.store
            .deploy_steps(id)
            .await
            .expect("steps")
            .into_iter()
            .map(|s| format!("[{}] {}", s.phase, s.message))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `GET path` through the proxy on a new connection.
    pub async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut c = Client::connect(self.proxy_addr).await?;
        c.get(path).await
    }

    /// The run directory of a process instance.
    pub fn instance_dir(&self, name: &str) -> PathBuf {
        self.deployer.instance_dir("web", "prod", name)
    }

    /// Waits until `name`'s process has stopped.
    pub async fn wait_stopped(&self, name: &str) {
        let pid = self.instance_dir(name).join("pid");
        let deadline = Instant::now() + Duration::from_secs(20);
        while running(&pid) {
            assert!(
                Instant::now() < deadline,
                "instance `{name}` still runs 20 s later"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether the process a pid file names runs (and is not a zombie).
pub fn running(pid_file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return false;
    };
    let Some(pid) = text.split_whitespace().next() else {
        return false;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// The service's `ferry.yml`: `strategy` and `extra` (more `deploy:` keys, indented
/// by 2) are spliced in; `RELEASE` and `MODE` are the app's env.
pub fn yml(release: &str, mode: &str, strategy: &str, extra: &str) -> String {
    format!(
        r#"name: app
jobs:
  build:
    steps:
      - "true"
deploy:
  name: web
  command: exec python3 app.py
  port: 8080
  env:
    RELEASE: "{release}"
    MODE: "{mode}"
  healthcheck:
    path: /healthz
    interval: 50ms
    timeout: 2s
    retries: 60
{extra}  environments:
    prod:
      routes:
        - host: web.test
      strategy:
{strategy}
"#
    )
}

/// A minimal HTTP/1.1 client over one connection (keep-alive), enough for the
/// proxy's answers: `Content-Length` and chunked bodies.
pub struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Result<Client, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).ok();
        Ok(Client {
            stream: BufReader::new(stream),
        })
    }

    /// Sends `GET path` and returns the status and the whole body.
    pub async fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        let (status, chunked, len) = self.head(path).await?;
        let body = if chunked {
            let mut body = Vec::new();
            while let Some(chunk) = self.chunk().await? {
                body.extend(chunk);
            }
            body
        } else {
            let mut body = vec![0; len.unwrap_or(0)];
            self.stream
                .read_exact(&mut body)
                .await
                .map_err(|e| format!("body: {e}"))?;
            body
        };
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Sends `GET path` and reads the head: status, chunked, content length.
    pub async fn head(&mut self, path: &str) -> Result<(u16, bool, Option<usize>), String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: web.test\r\nUser-Agent: lab\r\n\r\n");
        self.stream
            .get_mut()
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut line = String::new();
        self.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let (mut chunked, mut len) = (false, None);
        loop {
            line.clear();
            self.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().ok();
            }
        }
        Ok((status, chunked, len))
    }

    /// The next chunk of a chunked body; None after the last.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut line = String::new();
        self.read_line(&mut line).await?;
        let size = usize::from_str_radix(line.trim(), 16)
            .map_err(|_| format!("bad chunk size {line:?}"))?;
        let mut data = vec![0; size + 2];
        self.stream
            .read_exact(&mut data)
            .await
            .map_err(|e| format!("chunk: {e}"))?;
        data.truncate(size);
        Ok((size > 0).then_some(data))
    }

    async fn read_line(&mut self, line: &mut String) -> Result<(), String> {
        let n = self
            .stream
            .read_line(line)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the connection closed".into());
        }
        Ok(())
    }
}
