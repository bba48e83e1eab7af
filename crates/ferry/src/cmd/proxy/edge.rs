//! The edge proxy's listeners, shared by `ferry serve` and `ferry proxy`: bind the plain
//! and TLS addresses (a busy port names the option that chose it), then serve a
//! [`Proxy`] on them until the shutdown token is cancelled.

use crate::exit::{Failure, bad_input};
use ferry_proxy::Proxy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where the proxy listens.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeListen {
    /// Plain HTTP (HTTP/1.1 and HTTP/2 prior knowledge).
    pub listen: SocketAddr,
    /// HTTPS, if asked for.
    pub tls: Option<TlsListen>,
}

/// The HTTPS listener and its certificate files.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsListen {
    /// The address.
    pub listen: SocketAddr,
    /// The PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
}

/// How the options are called on the command line, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct OptionNames {
    /// The plain listener's flag.
    pub listen: &'static str,
    /// The TLS listener's flag.
    pub tls_listen: &'static str,
    /// The certificate and key flags, as one phrase.
    pub tls_files: &'static str,
}

/// Starts serving a bound TLS listener (it holds the certificate).
type StartTls = Box<dyn FnOnce(Proxy, CancellationToken) -> JoinHandle<()> + Send>;

/// Bound listeners, not yet serving.
pub struct EdgeListeners {
    plain: TcpListener,
    tls: Option<StartTls>,
    /// The plain listener's address.
    pub addr: SocketAddr,
    /// The TLS listener's address.
    pub tls_addr: Option<SocketAddr>,
}

impl EdgeListeners {
    /// Loads the certificate (if any) and binds both addresses.
    pub async fn bind(opts: &EdgeListen, names: OptionNames) -> Result<Self, Failure> {
        let tls_config = match &opts.tls {
            Some(tls) => Some(
                ferry_proxy::tls::server_config(&tls.cert, &tls.key)
                    .map_err(|e| bad_input(format!("{}: {e}", names.tls_files)))?,
            ),
            None => None,
        };
        let plain = bind(opts.listen, names.listen).await?;
        let addr = local_addr(&plain)?;
        let (tls, tls_addr) = match (&opts.tls, tls_config) {
            (Some(t), Some(config)) => {
                let listener = bind(t.listen, names.tls_listen).await?;
                let tls_addr = local_addr(&listener)?;
                let start: StartTls = Box::new(move |proxy, shutdown| {
                    tokio::spawn(ferry_proxy::serve_tls(listener, proxy, config, shutdown))
                });
                (Some(start), Some(tls_addr))
            }
            _ => (None, None),
        };
        Ok(EdgeListeners {
            plain,
            tls,
            addr,
            tls_addr,
        })
    }

    /// The plain listener's URL.
    pub fn url(&self) -> String {
        url("http", self.addr)
    }

    /// The TLS listener's URL, if there is one.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_addr.map(|a| url("https", a))
    }

    /// Serves `proxy` on the listeners until `shutdown` is cancelled.
    pub fn serve(self, proxy: &Proxy, shutdown: &CancellationToken) -> EdgeTasks {
        let mut tasks = vec![tokio::spawn(ferry_proxy::serve(
            self.plain,
            proxy.clone(),
            shutdown.clone(),
        ))];
        if let Some(start) = self.tls {
            tasks.push(start(proxy.clone(), shutdown.clone()));
        }
        EdgeTasks { tasks }
    }
}

/// The serving tasks.
#[derive(Debug)]
pub struct EdgeTasks {
    tasks: Vec<JoinHandle<()>>,
}

impl EdgeTasks {
    /// Waits for the listeners to finish their open requests (after shutdown), at most
    /// `within`; connections still open then are cut.
    pub async fn join(self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!("Proxy connections did not close in time; cutting them.");
                task.abort();
            }
        }
    }
}

/// Binds `addr`, naming `option` when the address is taken.
pub async fn bind(addr: SocketAddr, option: &str) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            bad_input(format!(
                "cannot listen on {addr} for the proxy: the address is in use; pick another with {option}"
            ))
        } else {
            bad_input(format!("cannot listen on {addr} ({option}): {e}"))
        }
    })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, Failure> {
    listener
        .local_addr()
        .map_err(|e| Failure::Error(anyhow::anyhow!("cannot read the listening address: {e}")))
}

/// `scheme://host:port`, with loopback for an unspecified address.
pub fn url(scheme: &str, addr: SocketAddr) -> String {
    let ip = addr.ip();
    let host = if ip.is_unspecified() {
        "127.0.0.1".to_string()
    } else if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("{scheme}://{host}:{}", addr.port())
}
