//! Secrets: encrypted at rest, masked in every output.
//!
//! [`SecretStore`] keeps named secrets in the data directory, encrypted with
//! ChaCha20-Poly1305 under a master key. [`Masker`] / [`StreamMasker`] replace every
//! occurrence of a secret value in output with `***`, including its multi-line, base64
//! and URL-encoded forms and occurrences split across writes.
#![deny(missing_docs)]

mod mask;
mod store;

pub use mask::{MIN_FRAGMENT_LEN, MIN_SECRET_LEN, Masker, StreamMasker};
pub use store::{SecretError, SecretStore};
