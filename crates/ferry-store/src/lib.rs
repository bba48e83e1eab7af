//! Ferry's storage.
//!
//! For now, the content-addressed blob store that holds artifacts and caches on disk.
#![deny(missing_docs)]
