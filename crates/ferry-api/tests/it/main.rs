//! ferry-api's integration tests: one binary. Requests go through `Router::oneshot`
//! and through a real server on 127.0.0.1 with `ferry-client`; stores are SQLite in
//! temporary directories, and the tests declared with `both!` also run on PostgreSQL
//! (`FERRY_TEST_DATABASE_URL`).

mod support;

mod agents;
mod auth;
mod deploys;
mod deploys_live;
mod events;
mod hooks;
mod logs;
mod metrics;
mod openapi;
mod projects;
mod runs;
