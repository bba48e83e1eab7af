//! Ferry's storage.
//!
//! For now, the content-addressed [`BlobStore`] that holds artifacts and caches on
//! disk: every blob is stored once under the SHA-256 of its bytes, written to a
//! temporary file first and renamed into place, so a crash or a full disk never leaves
//! a blob that looks complete but is not. Start reading at [`BlobStore::put_reader`].
//!
//! And [`db::Store`], the server's database — projects, runs, the job queue with
//! leases, the event log, compressed logs, tokens — on embedded SQLite or PostgreSQL.
#![deny(missing_docs)]

mod blob;
pub mod db;

pub use blob::{BlobStore, BlobWriter, DEFAULT_GRACE, Digest, StoreError, SweepCandidates, Swept};
