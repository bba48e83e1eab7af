//! End-to-end tests of the `ferry` binary: real processes, real git repositories,
//! a real Docker engine for the container examples.

mod cli;
mod examples;
mod run;
mod secrets;
mod support;
