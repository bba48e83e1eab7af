//! `ferry proxy`: the edge proxy alone, for a box in front of anything. Routes come
//! from a YAML file ([`routes`]) reloaded on SIGHUP and when the file changes; a
//! broken file on reload leaves the routes in use and logs why. `ferry serve` runs the
//! same proxy ([`edge`]) with routes the deploy engine moves.

pub mod access;
pub mod edge;
mod metrics;
pub mod routes;

use crate::cli::ProxyArgs;
use crate::cmd::serve::options::parse_listen;
use crate::exit::{Failure, bad_input};
use edge::{EdgeListen, EdgeListeners, OptionNames, TlsListen};
use ferry_proxy::{Proxy, RouteTable};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// How often the routes file is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How long open connections get to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

/// The flags of `ferry proxy`, for error messages.
const NAMES: OptionNames = OptionNames {
    listen: "--listen",
    tls_listen: "--tls-listen",
    tls_files: "--tls-cert/--tls-key",
};

/// Runs `ferry proxy`.
pub fn proxy(args: ProxyArgs) -> Result<(), Failure> {
    access::init(&args.log_level, args.access_log.as_deref())?;
    let listen = parse_listen(&args.listen).map_err(|e| bad_input(format!("--listen: {e}")))?;
    let tls = match (&args.tls_listen, &args.tls_cert, &args.tls_key) {
        (None, None, None) => None,
        (Some(addr), Some(cert), Some(key)) => Some(TlsListen {
            listen: parse_listen(addr).map_err(|e| bad_input(format!("--tls-listen: {e}")))?,
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, _, _) => {
            return Err(bad_input(
                "--tls-cert and --tls-key need --tls-listen, the address to serve HTTPS on",
            ));
        }
        (Some(_), _, _) => {
            return Err(bad_input(
                "--tls-listen needs both --tls-cert FILE and --tls-key FILE (PEM)",
            ));
        }
    };
    let metrics_listen = args
        .metrics_listen
        .as_deref()
        .map(parse_listen)
        .transpose()
        .map_err(|e| bad_input(format!("--metrics-listen: {e}")))?;
    let table = routes::load(&args.routes, &RouteTable::default()).map_err(bad_input)?;
    let routes_file = args.routes.clone();

    crate::cmd::serve::runtime()?.block_on(async move {
        let proxy = Proxy::new(table);
        let listeners = EdgeListeners::bind(&EdgeListen { listen, tls }, NAMES).await?;
        let metrics_listener = match metrics_listen {
            Some(addr) => Some(edge::bind(addr, "--metrics-listen").await?),
            None => None,
        };
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| Failure::Error(anyhow::anyhow!("cannot watch SIGTERM: {e}")))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| Failure::Error(anyhow::anyhow!("cannot watch SIGINT: {e}")))?;
        let hup = signal(SignalKind::hangup())
            .map_err(|e| Failure::Error(anyhow::anyhow!("cannot watch SIGHUP: {e}")))?;

        let shutdown = CancellationToken::new();
        let url = listeners.url();
        let tls_url = listeners.tls_url();
        let tasks = listeners.serve(&proxy, &shutdown);
        if let Some(listener) = metrics_listener {
            let addr = listener
                .local_addr()
                .map_err(|e| Failure::Error(anyhow::anyhow!("cannot read an address: {e}")))?;
            println!("Metrics are at {}/metrics", edge::url("http", addr));
            tokio::spawn(metrics::serve(listener, proxy.clone(), shutdown.clone()));
        }
        tokio::spawn(watch_routes(
            routes_file.clone(),
            proxy.clone(),
            hup,
            shutdown.clone(),
        ));
        if let Some(tls_url) = &tls_url {
            println!("Ferry proxy is listening for HTTPS on {tls_url}");
        }
        tracing::info!(
            %url, tls = %tls_url.as_deref().unwrap_or("off"),
            routes = proxy.routes().routes().len(), file = %routes_file.display(),
            "Proxy started."
        );
        println!("Ferry proxy is listening on {url}");

        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("Shutting down: no new connections; open requests may finish.");
        shutdown.cancel();
        tasks.join(DRAIN).await;
        tracing::info!("Proxy stopped.");
        Ok(())
    })
}

/// Reloads the routes on SIGHUP and when the file's size or modification time changes.
async fn watch_routes(
    path: PathBuf,
    proxy: Proxy,
    mut hup: tokio::signal::unix::Signal,
    shutdown: CancellationToken,
) {
    let mut seen = stamp(&path);
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reason = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = hup.recv() => "SIGHUP",
            _ = tick.tick() => {
                let now = stamp(&path);
                if now == seen {
                    continue;
                }
                "the file changed"
            }
        };
        seen = stamp(&path);
        reload(&path, &proxy, reason);
    }
}

/// The file's size and modification time, to notice a change.
fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Swaps in the file's routes, or keeps the ones in use when the file is broken.
fn reload(path: &Path, proxy: &Proxy, reason: &str) {
    let old = proxy.routes();
    match routes::load(path, &old) {
        Ok(table) => {
            let count = table.routes().len();
            let kept: Vec<_> = table.routes().iter().map(|r| r.service.clone()).collect();
            proxy.set_routes(table);
            for release in retired(&old, &kept) {
                tokio::spawn(async move {
                    release.drained().await;
                    tracing::info!(release = %release.name(), "Release left the routes and drained.");
                });
            }
            tracing::info!(routes = count, file = %path.display(), reason, "Routes reloaded.");
        }
        Err(error) => tracing::error!(
            %error, reason,
            "Routes file not reloaded; the routes in use stay until it is fixed."
        ),
    }
}

/// The releases of `old` that none of the services in `kept` serves any more.
fn retired(old: &RouteTable, kept: &[ferry_proxy::Service]) -> Vec<Arc<ferry_proxy::Release>> {
    let releases = |s: &ferry_proxy::Service| {
        std::iter::once(s.live.clone())
            .chain(s.canary.clone())
            .collect::<Vec<_>>()
    };
    let live: Vec<_> = kept.iter().flat_map(releases).collect();
    let mut gone: Vec<Arc<ferry_proxy::Release>> = Vec::new();
    for release in old.routes().iter().flat_map(|r| releases(&r.service)) {
        let still = live.iter().any(|l| Arc::ptr_eq(l, &release));
        let listed = gone.iter().any(|g| Arc::ptr_eq(g, &release));
        if !still && !listed {
            gone.push(release);
        }
    }
    gone
}
