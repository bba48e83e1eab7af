//! Integration tests of `ferry_engine::ci::run`: real git repositories, real processes,
//! real Docker containers.

mod bad_input;
mod container;
mod deploy;
mod exec;
mod host;
mod server;
mod storage;
mod support;
mod targets;
