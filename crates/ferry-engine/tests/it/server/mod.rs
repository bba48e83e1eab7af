//! The server core: triggers, the reconciler, the built-in executor, leases,
//! restarts, the poller, cron and the post-receive hook — on real git repositories
//! and a real SQLite store in temporary directories.

mod agent;
mod flow;
mod hook;
mod restart;
mod schedule;
mod support;
