//! Deploys end to end: strategies, rollback, crash recovery, zero downtime.
//!
//! Every test runs real processes (a small Python HTTP service, see `support`) behind
//! Ferry's real proxy on 127.0.0.1, with a SQLite store.

mod gc;
mod phases;
mod recovery;
mod safety;
mod strategies;
mod support;
mod zero_downtime;
