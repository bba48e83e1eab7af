//! ferry-store's integration tests: one binary, every database test run on both
//! SQLite and PostgreSQL (see `support`).

mod support;

mod agents;
mod blob_gc;
mod deploys;
mod events;
mod fixtures;
mod hooks;
mod logs;
mod migrate;
mod queue;
mod runs;
mod tokens;
