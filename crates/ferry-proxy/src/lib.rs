//! Ferry's edge proxy: the reverse proxy in front of deployed services.
//!
//! It routes by host and path prefix ([`RouteTable`]) to a [`Service`], whose live
//! [`Release`] — or, for a canary, a weighted share of requests to a second release —
//! answers. The deploy engine moves traffic by handing [`Proxy::set_routes`] a new
//! table: new requests go to the new release at once, requests in flight finish on the
//! old one, and [`Release::drained`] says when the old instances can be stopped.
//! Every request is counted per service and release ([`Metrics`]) for `/metrics` and for
//! canary analysis ([`Proxy::stats`]), and logged on the `ferry_proxy::access` target.
//!
//! Start reading at [`Proxy::handle`] (one request) and [`serve`] (the listener).
//!
//! The proxy speaks HTTP/1.1 and HTTP/2 (prior knowledge) to clients and HTTP/1.1 to
//! backends (TLS to clients from certificate files: [`tls::server_config`] and
//! [`serve_tls`]), streams bodies without buffering, passes upgrades (WebSockets) through,
//! and answers 404 when no route matches and 502 when no instance answers.

#![deny(missing_docs)]

mod body;
mod metrics;
mod proxy;
mod serve;
mod table;
pub mod tls;

pub use body::{BoxError, ProxyBody};
pub use metrics::{Metrics, Stats};
pub use proxy::Proxy;
pub use serve::{serve, serve_tls};
pub use table::{HostMatch, Release, Route, RouteTable, Service};
