//! The web UI's tests: pages and actions over HTTP against a real server, and a
//! headless Chromium session that watches a run turn green live and re-runs it.

mod browser;
mod deploys;
mod deploys_browser;
mod pages;
mod support;
