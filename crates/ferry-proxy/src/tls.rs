//! TLS from certificate files: a PEM certificate chain and a PEM private key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: cannot read {what}: {source} — give a PEM file")]
    Pem {
        /// The file.
        path: PathBuf,
        /// `certificate chain` or `private key`.
        what: &'static str,
        /// The underlying error.
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{0}: no certificate found — the file needs a `BEGIN CERTIFICATE` section")]
    NoCertificate(PathBuf),
    /// rustls refused the pair (for example a key that does not match the certificate).
    #[error("{cert} and {key}: {source} — check that the key belongs to the certificate")]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The underlying error.
        source: rustls::Error,
    },
}

/// A server configuration from a PEM certificate chain (leaf first) and a PEM private
/// key, offering HTTP/2 and HTTP/1.1 through ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let pem = |what, source| TlsError::Pem {
        path: cert.to_owned(),
        what,
        source,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem("certificate chain", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem("certificate chain", e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Pem {
        path: key.to_owned(),
        what: "private key",
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rejected = |source| TlsError::Rejected {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(rejected)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
