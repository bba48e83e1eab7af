//! A typed client of Ferry's HTTP API.
#![deny(missing_docs)]
