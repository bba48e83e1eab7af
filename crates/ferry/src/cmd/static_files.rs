//! `ferry static`: serve a directory's files over HTTP until SIGTERM or Ctrl-C.
//!
//! The example app of `ferry up` runs it as its deployed process (the process target
//! puts the `ferry` binary's directory first on `PATH` and the port in `PORT`), and it
//! is a quick way to preview a built site.

use crate::cli::StaticArgs;
use crate::exit::{Failure, bad_input};
use std::net::{Ipv4Addr, SocketAddr};
use tokio::signal::unix::{SignalKind, signal};

/// The port when neither `--listen` nor `PORT` says.
const DEFAULT_PORT: u16 = 8000;

pub fn serve(args: StaticArgs) -> Result<(), Failure> {
    if !args.dir.is_dir() {
        return Err(bad_input(format!(
            "{} is not a directory; give the directory to serve, e.g. `ferry static public`",
            args.dir.display()
        )));
    }
    let addr = match args.listen {
        Some(addr) => addr,
        None => SocketAddr::from((Ipv4Addr::LOCALHOST, port_from_env()?)),
    };
    super::serve::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| bad_input(format!("cannot listen on {addr}: {e}")))?;
        let app = axum::Router::new().fallback_service(
            tower_http::services::ServeDir::new(&args.dir).append_index_html_on_directories(true),
        );
        eprintln!("Serving {} at http://{addr}/", args.dir.display());
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped())
            .await
            .map_err(|e| Failure::Error(anyhow::anyhow!("serving {addr} failed: {e}")))
    })
}

/// The port in `PORT`, or the default.
fn port_from_env() -> Result<u16, Failure> {
    match std::env::var("PORT") {
        Ok(text) => text.trim().parse().map_err(|_| {
            bad_input(format!(
                "PORT is `{text}`, not a port number; set it to e.g. 8000 or pass --listen"
            ))
        }),
        Err(_) => Ok(DEFAULT_PORT),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stopped() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
