//! `ferry serve`: the server — HTTP API, web UI, scheduler and built-in executor — until
//! SIGTERM or Ctrl-C, then a graceful drain.
//!
//! [`Server`] is the running whole, shared with `ferry up`: it opens the store, starts
//! the engine's core, the HTTP listener and the edge proxy (whose routes the deploy
//! engine moves), and on shutdown stops accepting, cancels the core's shutdown token and
//! waits for every loop to stop.

pub mod admin;
pub mod options;

use crate::cli::{Global, ServeArgs};
use crate::cmd::proxy::edge::{EdgeListeners, EdgeTasks, OptionNames};
use crate::exit::{Failure, bad_input};
use anyhow::Context;
use ferry_engine::deploy::DeployConfig;
use ferry_engine::server::{Core, CoreConfig, CoreTasks};
use ferry_proxy::{Proxy, RouteTable};
use ferry_store::db::Store;
use options::ServeOptions;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long in-flight HTTP requests (long polls, live streams) get to finish after a
/// shutdown signal before they are cut.
const HTTP_DRAIN: Duration = Duration::from_secs(10);

/// The proxy's flags, for error messages.
const PROXY_NAMES: OptionNames = OptionNames {
    listen: "--proxy-listen",
    tls_listen: "--proxy-tls-listen",
    tls_files: "--proxy-tls-cert/--proxy-tls-key",
};

/// Runs `ferry serve`.
pub fn serve(global: &Global, args: ServeArgs) -> Result<(), Failure> {
    let opts = ServeOptions::resolve(&args, global.data_dir.clone())?;
    crate::cmd::proxy::access::init(&opts.log_level, opts.access_log.as_deref())?;
    runtime()?.block_on(async move {
        let (store, lock) = open_store(&opts).await?;
        if let Some(token) = admin::first_admin_token(&store)
            .await
            .map_err(Failure::Error)?
        {
            admin::announce_new_token(&token);
        }
        let listener = bind(opts.listen).await?;
        let server = Server::start(&opts, store, listener, lock).await?;
        if let Some(url) = server.proxy_url() {
            println!("The proxy is listening on {url}");
        }
        println!("Ferry is listening on {}", server.url());
        server.run_until_signal().await
    })
}

/// The server's runtime: multi-threaded, two workers (plenty for I/O-bound serving;
/// jobs run in child processes).
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::Error)
}

/// The lock file that keeps two servers off one data directory.
const LOCK_FILE: &str = "server.lock";

/// Held while a server uses a data directory: a second `ferry serve` or `ferry up` on
/// it would take the first one's built-in jobs for interrupted ones.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

/// Takes the data directory's lock, or says who holds it.
pub fn lock_data_dir(dir: &Path) -> Result<DirLock, Failure> {
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(bad_input(format!(
                "another Ferry server{} is running with the data directory {}; stop it first, or give this one its own --data-dir",
                match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (process {pid})"),
                },
                dir.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Failure::Error(anyhow::anyhow!(
                "cannot lock {}: {e}",
                path.display()
            )));
        }
    }
    use std::io::Write;
    let _ = file.set_len(0);
    let _ = write!(file, "{}", std::process::id());
    Ok(DirLock { _file: file })
}

/// Creates the data directory (owner only), takes its lock and opens the store it or
/// `--database-url` names.
pub async fn open_store(opts: &ServeOptions) -> Result<(Store, DirLock), Failure> {
    create_data_dir(&opts.data_dir)?;
    let lock = lock_data_dir(&opts.data_dir)?;
    let store = match &opts.database_url {
        Some(url) => Store::connect(url).await.map_err(|e| {
            Failure::Error(anyhow::anyhow!(
                "cannot open the database at {}: {e}",
                redact_url(url)
            ))
        })?,
        None => Store::open_data_dir(&opts.data_dir).await.map_err(|e| {
            Failure::Error(anyhow::anyhow!(
                "cannot open the database in {}: {e}",
                opts.data_dir.display()
            ))
        })?,
    };
    Ok((store, lock))
}

/// Creates `dir` (and parents) readable by its owner only.
pub fn create_data_dir(dir: &Path) -> Result<(), Failure> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
        .map_err(Failure::Error)
}

/// Binds the listener, with a clear message when the address is taken.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            bad_input(format!(
                "cannot listen on {addr}: the address is in use (another `ferry serve`?); pick another with --listen"
            ))
        } else {
            bad_input(format!("cannot listen on {addr}: {e}"))
        }
    })
}

/// A password in a database URL is not for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The stable id the built-in executor claims jobs under: the same after a restart,
/// so jobs it held when the process died are recognised as interrupted.
fn executor_id() -> String {
    let host = super::hostname().unwrap_or_else(|| "localhost".to_string());
    format!("builtin@{host}")
}

/// A running server.
pub struct Server {
    core: Core,
    tasks: CoreTasks,
    shutdown: CancellationToken,
    http: JoinHandle<std::io::Result<()>>,
    addr: SocketAddr,
    /// `http`, or `https` with --tls-cert.
    scheme: &'static str,
    proxy_url: Option<String>,
    edge: Option<EdgeTasks>,
    _lock: DirLock,
}

impl Server {
    /// Starts the core (which first recovers from a previous crash), the HTTP server and,
    /// unless `--no-proxy`, the edge proxy with no routes yet.
    pub async fn start(
        opts: &ServeOptions,
        store: Store,
        listener: TcpListener,
        lock: DirLock,
    ) -> Result<Server, Failure> {
        let addr = listener
            .local_addr()
            .context("cannot read the listening address")?;
        let shutdown = CancellationToken::new();
        // Read before the engine starts, so a bad certificate stops the start cleanly.
        let tls = match &opts.tls {
            Some(t) => Some(
                ferry_proxy::tls::server_config(&t.cert, &t.key)
                    .map_err(|e| bad_input(format!("--tls-cert/--tls-key: {e}")))?,
            ),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Bound before the engine starts, so a taken port stops the start cleanly.
        let edge = match &opts.proxy {
            Some(listen) => Some(EdgeListeners::bind(listen, PROXY_NAMES).await?),
            None => None,
        };
        let proxy = edge.as_ref().map(|_| Proxy::new(RouteTable::default()));
        let proxy_url = edge.as_ref().map(EdgeListeners::url);
        let proxy_tls_url = edge.as_ref().and_then(EdgeListeners::tls_url);
        let config = CoreConfig {
            data_dir: opts.data_dir.clone(),
            executor_id: executor_id(),
            builtin_jobs: opts.executor_jobs,
            builtin_labels: opts.executor_labels.clone(),
            lease: opts.lease,
            poll_interval: opts.poll_interval,
            grace: Duration::from_secs(10),
            docker_host: None,
            deploy: DeployConfig {
                proxy: proxy.clone(),
                ..DeployConfig::default()
            },
        };
        let (core, tasks) = Core::start(store, config, shutdown.clone())
            .await
            .map_err(|e| {
                Failure::Error(anyhow::anyhow!("cannot start the server's engine: {e}"))
            })?;
        let state = ferry_api::AppState::new(
            core.clone(),
            ferry_api::ApiConfig {
                metrics_public: opts.metrics_public,
            },
        );
        let http = tokio::spawn(ferry_api::serve(listener, tls, state, shutdown.clone()));
        let edge = match (edge, &proxy) {
            (Some(listeners), Some(proxy)) => Some(listeners.serve(proxy, &shutdown)),
            _ => None,
        };
        tracing::info!(
            %addr,
            proxy = %proxy_url.as_deref().unwrap_or("off"),
            proxy_tls = %proxy_tls_url.as_deref().unwrap_or("off"),
            data_dir = %opts.data_dir.display(),
            executor_jobs = opts.executor_jobs,
            "Ferry server started."
        );
        Ok(Server {
            core,
            tasks,
            shutdown,
            http,
            addr,
            scheme,
            proxy_url,
            edge,
            _lock: lock,
        })
    }

    /// The edge proxy's plain HTTP URL, unless `--no-proxy`.
    pub fn proxy_url(&self) -> Option<&str> {
        self.proxy_url.as_deref()
    }

    /// The engine's handle.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The base URL people open.
    pub fn url(&self) -> String {
        let ip = self.addr.ip();
        let host = if ip.is_unspecified() {
            "127.0.0.1".to_string()
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        format!("{}://{host}:{}", self.scheme, self.addr.port())
    }

    /// Serves until SIGTERM or Ctrl-C (a second one stops at once), then drains.
    pub async fn run_until_signal(self) -> Result<(), Failure> {
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let mut http = self.http;
        let early = tokio::select! {
            _ = term.recv() => None,
            _ = int.recv() => None,
            res = &mut http => Some(res),
        };
        if let Some(res) = early {
            // The HTTP server stopped by itself: that is a failure, not a shutdown.
            self.shutdown.cancel();
            self.tasks.join().await;
            return match res {
                Ok(Ok(())) => Err(Failure::Error(anyhow::anyhow!(
                    "the HTTP server stopped unexpectedly"
                ))),
                Ok(Err(e)) => Err(Failure::Error(anyhow::anyhow!(
                    "the HTTP server failed: {e}"
                ))),
                Err(e) => Err(Failure::Error(anyhow::anyhow!(
                    "the HTTP server panicked: {e}"
                ))),
            };
        }
        tracing::info!("Shutting down: no new requests or jobs; waiting for running work to stop.");
        eprintln!("Shutting down gracefully (Ctrl-C again to stop at once)…");
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            eprintln!("Stopped at once; running jobs are recovered at the next start.");
            std::process::exit(1);
        });
        self.shutdown.cancel();
        let api = async {
            match tokio::time::timeout(HTTP_DRAIN, &mut http).await {
                Ok(Ok(Err(e))) => {
                    tracing::warn!(error = %e, "The HTTP server ended with an error.");
                }
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!("Open connections did not close in time; cutting them.");
                    http.abort();
                }
            }
        };
        let edge = async {
            if let Some(edge) = self.edge {
                edge.join(HTTP_DRAIN).await;
            }
        };
        tokio::join!(api, edge);
        self.tasks.join().await;
        // With the proxy gone, the service processes this server supervised would run
        // unreachable and unsupervised; the next start runs the live releases again.
        self.core.deployer().stop_processes().await;
        tracing::info!("Ferry server stopped.");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://ferry:s3cret@db:5432/ferry"),
            "postgres://ferry:***@db:5432/ferry"
        );
        assert_eq!(redact_url("postgres://db/ferry"), "postgres://db/ferry");
    }
}
