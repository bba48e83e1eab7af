//! Issue 4, item 6: no request fails while deploys move traffic.
