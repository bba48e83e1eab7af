//! The web UI's tests: pages and actions over HTTP against a real server, and
//! headless Chromium sessions that watch a run turn green live and re-run it, and roll
//! a service back through its confirmation.

mod browser;
mod deploys;
mod deploys_browser;
mod pages;
mod support;
