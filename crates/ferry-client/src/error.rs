//! What a call to the server can fail with.

use ferry_types::api::ErrorBody;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status; `error` and `hint` are its words.
    #[error("{error}")]
    Api {
        /// The HTTP status, e.g. 404.
        status: u16,
        /// What failed, as the server said.
        error: String,
        /// What to do next, as the server said.
        hint: Option<String>,
    },
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the Ferry server at {url}: {}", causes(source))]
    Connect {
        /// The URL called.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The CA certificate file given to trust could not be used.
    #[error("cannot use the CA certificate file {path}: {reason}")]
    CaCert {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The server's answer was not what this client understands.
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// The URL called.
        url: String,
        /// What was wrong with it.
        message: String,
    },
    /// The base URL or a path built from it is not a URL.
    #[error("`{0}` is not a valid server URL")]
    BadUrl(String),
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// The HTTP status, when the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's hint, or advice for transport errors.
    pub fn hint(&self) -> Option<&str> {
        match self {
            ClientError::Api { hint, .. } => hint.as_deref(),
            ClientError::Connect { source, .. } if is_certificate_error(source) => Some(
                "the server's TLS certificate is not trusted here: give the certificate of \
                 the CA that signed it (or the server's own, if self-signed) with --ca-cert \
                 FILE or FERRY_CA_CERT",
            ),
            ClientError::Connect { .. } => {
                Some("check that `ferry serve` is running and that the server URL is right")
            }
            ClientError::CaCert { .. } => {
                Some("give a PEM file holding one or more `BEGIN CERTIFICATE` sections")
            }
            _ => None,
        }
    }

    /// Whether the server's TLS certificate is not trusted here (the fix is to trust
    /// its CA, not to retry).
    pub fn is_untrusted_certificate(&self) -> bool {
        matches!(self, ClientError::Connect { source, .. } if is_certificate_error(source))
    }

    /// Whether the request itself was at fault (a 4xx): bad input, a missing or too
    /// weak token, something that does not exist. The CLI exits with 2 for these.
    pub fn is_client_error(&self) -> bool {
        matches!(self.status(), Some(s) if (400..500).contains(&s))
    }

    /// Whether the server said the thing does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Builds the error for a non-success answer from its status and body.
    pub(crate) fn from_answer(status: u16, body: &[u8]) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => ClientError::Api {
                status,
                error: b.error,
                hint: b.hint,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                ClientError::Api {
                    status,
                    error: if text.is_empty() {
                        format!("the server answered with status {status}")
                    } else {
                        format!("the server answered with status {status}: {text}")
                    },
                    hint: None,
                }
            }
        }
    }
}

/// Why a transport error happened: its causes, outermost first (reqwest's own message
/// only repeats the URL and says that the request failed).
fn causes(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let line = cause.to_string();
        if !parts.iter().any(|p| p.contains(&line)) {
            parts.push(line);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// Whether a transport error comes from a TLS certificate the client does not trust.
fn is_certificate_error(e: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let untrusted = |e: &rustls::Error| {
        matches!(
            e,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        )
    };
    while let Some(cause) = next {
        // The TLS stream reports rustls' error inside I/O errors (two deep), whose
        // `source` skips what they wrap.
        let mut inner: &(dyn std::error::Error + 'static) = cause;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if inner.downcast_ref::<rustls::Error>().is_some_and(untrusted) {
            return true;
        }
        next = cause.source();
    }
    false
}
