//! Ferry's engine: executes pipelines.
//!
//! [`ci::run`] takes a validated [`ferry_config::Pipeline`], pins it to the repository's
//! current commit, and runs its jobs in DAG order — on the host or in containers — while
//! streaming [`ferry_types::RunEvent`]s and writing logs, artifacts and caches under a
//! data directory. Start reading at [`ci`]: its module docs describe the run directory
//! layout and every rule the engine applies where `ferry.yml` leaves a choice.
//!
//! [`server::Core`] is the server's engine on top of the store: triggers, the pipeline
//! reconciler, the built-in executor (which runs jobs with [`ci::execute`], as remote
//! agents do), lease expiry, polling and cron. Its module docs list the rules it applies.
#![deny(missing_docs)]

pub mod ci;
pub mod deploy;
pub mod server;
