//! Integration tests of the edge proxy over real sockets on 127.0.0.1, with tiny hyper
//! servers as backends.

mod support;

mod behaviour;
mod switching;
mod tls;
