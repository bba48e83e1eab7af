//! The client commands: they talk to a server through [`ferry_client::Client`].
//!
//! [`Ctx`] holds the client and the output mode. Every call's error goes through
//! [`failure`], which decides the exit code: 2 when the server refused the request
//! (4xx: bad input, a missing or weak token, something that does not exist), 1 when
//! the server failed or could not be reached.

pub mod deploys;
pub mod events;
pub mod hook;
pub mod logs;
pub mod project;
pub mod runs;
pub mod token;

use crate::cli::ClientArgs;
use crate::exit::Failure;
use anyhow::Context;
use ferry_client::{Client, ClientError};
use std::future::Future;
use std::path::PathBuf;

/// What a client command works with.
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// `--json`.
    pub json: bool,
}

/// Why a client could not be set up, as bad input with what to do.
pub(crate) fn client_setup_error(e: ferry_client::ClientError) -> Failure {
    match &e {
        ferry_client::ClientError::BadUrl(_) => crate::exit::bad_input(format!(
            "{e}; give the server as a URL, e.g. --server https://ferry.example.com or http://127.0.0.1:7878"
        )),
        _ => match e.hint() {
            Some(hint) => crate::exit::bad_input(format!("{e}; {hint}")),
            None => crate::exit::bad_input(e.to_string()),
        },
    }
}

impl Ctx {
    /// The client for `args`; the token is `--token`, `FERRY_TOKEN`, or the token
    /// file `ferry up` writes in the data directory.
    pub fn new(args: &ClientArgs, data_dir: Option<PathBuf>) -> Result<Ctx, Failure> {
        let token = resolve_token(args.token.clone(), data_dir)?;
        let client = Client::with_ca(
            &args.server,
            token.unwrap_or_default(),
            args.ca_cert.as_deref(),
        )
        .map_err(client_setup_error)?;
        Ok(Ctx {
            client,
            json: args.json,
        })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        self.client.base_url()
    }

    /// Waits for a call and turns its error into the right exit.
    pub async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, Failure> {
        fut.await.map_err(failure)
    }
}

/// `--token` / `FERRY_TOKEN`, else the token file in the data directory, else none.
pub fn resolve_token(
    explicit: Option<String>,
    data_dir: Option<PathBuf>,
) -> Result<Option<String>, Failure> {
    if let Some(t) = explicit.filter(|t| !t.trim().is_empty()) {
        return Ok(Some(t.trim().to_string()));
    }
    let Ok(dir) = crate::paths::data_dir(data_dir) else {
        return Ok(None);
    };
    crate::cmd::serve::admin::read_token_file(&crate::cmd::serve::admin::token_file(&dir))
        .map_err(Failure::Error)
}

/// The exit a client error leads to, with the server's words and hint.
pub fn failure(e: ClientError) -> Failure {
    match e {
        ClientError::Connect { .. } if e.is_untrusted_certificate() => {
            let hint = e.hint().unwrap_or_default().to_owned();
            crate::exit::bad_input(format!("{e}; {hint}"))
        }
        ClientError::Connect { .. } => Failure::Error(anyhow::anyhow!(
            "{e}; is `ferry serve` running? (or pass --server / set FERRY_SERVER)"
        )),
        ClientError::Api {
            status,
            error,
            hint,
        } => {
            let hint = hint.or_else(|| match status {
                401 => Some(
                    "pass a valid token with --token or FERRY_TOKEN (`ferry token create` makes one)"
                        .to_string(),
                ),
                _ => None,
            });
            let msg = match hint {
                Some(h) => format!("{error}\nhint: {h}"),
                None => error,
            };
            if (400..500).contains(&status) {
                Failure::BadInput(anyhow::anyhow!(msg))
            } else {
                Failure::Error(anyhow::anyhow!("the server failed: {msg}"))
            }
        }
        other => Failure::Error(anyhow::anyhow!(other)),
    }
}

/// A small runtime for one client command.
pub fn block_on<T>(fut: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::Error)?
        .block_on(fut)
}

/// Prints a value as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).context("cannot write JSON")?;
    println!("{text}");
    Ok(())
}
