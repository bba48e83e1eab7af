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
    #[error("cannot reach the Ferry server at {url}: {source}")]
    Connect {
        /// The URL called.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
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
            ClientError::Connect { .. } => {
                Some("check that `ferry serve` is running and that the server URL is right")
            }
            _ => None,
        }
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
