//! End-to-end tests of the `ferry` binary: real processes, real git repositories,
//! a real Docker engine for the container examples, real servers and agents.

mod agents;
mod cli;
mod deploys;
mod examples;
mod harness;
mod live;
mod proxy;
mod restart;
mod run;
mod secrets;
mod server;
mod support;
mod tls;
mod up;
