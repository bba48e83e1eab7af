//! Ferry's domain types: the vocabulary every other crate shares.
//!
//! This crate holds plain data only — results, run events and their payloads — with
//! serde derives and no I/O, so the engine, the store, the API and the CLI can agree on
//! one shape. Start with [`RunEvent`], the stream a pipeline run produces.
#![deny(missing_docs)]

mod event;
mod result;

pub use event::{RunEvent, StepRef};
pub use result::JobResult;
