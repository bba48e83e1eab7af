//! Ferry's domain types: the vocabulary every other crate shares.
//!
//! This crate holds plain data only — results, run events and their payloads — with
//! serde derives and no I/O, so the engine, the store, the API and the CLI can agree on
//! one shape. Start with [`RunEvent`], the stream a pipeline run produces; the server's
//! statuses, roles and event-log kinds ([`RunStatus`], [`JobStatus`], [`EventKind`]) live
//! in `server.rs`.
#![deny(missing_docs)]

pub mod api;
mod event;
mod result;
mod server;

pub use event::{RunEvent, StepRef};
pub use result::JobResult;
pub use server::{
    DeployKind, DeployPhase, DeployState, EventKind, JobStatus, Role, RunStatus, Trigger,
    UnknownName,
};
