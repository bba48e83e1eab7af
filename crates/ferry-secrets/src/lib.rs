//! Secrets: encrypted at rest, masked in every output.
//!
//! Two independent halves:
//!
//! * [`SecretStore`] (module `store`) keeps named secrets in the data directory,
//!   encrypted with ChaCha20-Poly1305 under a master key taken from `FERRY_MASTER_KEY`
//!   or the generated `<data_dir>/master.key`. Start with [`SecretStore::open`]; the
//!   module docs describe the files on disk. Errors ([`SecretError`]) are written for the
//!   person running Ferry: what failed, where, what to do.
//! * [`Masker`] (module `mask`) compiles every form of every secret value — raw, per
//!   line, base64, percent-encoded, JSON-escaped — into a set of searchers (`memmem`
//!   for the values, SIMD multi-pattern for the rest), and
//!   [`StreamMasker`] replaces occurrences with `***` in a stream written in arbitrary
//!   chunks, holding back only bytes that could still begin a secret. The module docs
//!   list the masking rules; `mask/engine.rs` holds the streaming algorithm.
//!
//! The engine builds one [`Masker`] per job from [`SecretStore::get_many`] and runs a
//! [`StreamMasker`] over each output stream of each step.
#![deny(missing_docs)]

mod mask;
mod store;

pub use mask::{MIN_FRAGMENT_LEN, MIN_SECRET_LEN, Masker, StreamMasker};
pub use store::{
    KeySource, MASTER_KEY_ENV, MASTER_KEY_FILE, MasterKey, SEALED_PREFIX, SECRETS_FILE,
    SecretError, SecretStore, validate_name,
};
