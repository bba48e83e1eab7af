//! Integration tests of `ferry-secrets`, one binary for the crate.

mod mask;
mod store;
