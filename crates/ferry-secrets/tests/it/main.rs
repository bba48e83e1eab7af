//! Integration tests of `ferry-secrets`, one binary for the crate.

mod errors;
mod mask;
mod store;
