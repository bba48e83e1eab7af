//! Ferry's engine.
#![deny(missing_docs)]
