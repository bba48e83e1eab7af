//! The access log: one line per proxied request, appended to a file.
//!
//! The proxy reports each request as an info event on the `ferry_proxy::access` target.
//! Without `--access-log` those events go to the process's log like any other. With
//! it, [`init`] takes them out of that log and writes each as one line:
//!
//! ```text
//! 2026-11-23T22:40:01.123Z 192.0.2.7 app.example.com "GET /api/items" 200 5120 web v3 0.003
//! ```
//!
//! — the time the response ended (UTC, RFC 3339), the client's address, the host asked
//! for, the method and path in quotes, the status, the body bytes sent, the service and
//! release (`-` when no route matched), and the seconds from the request to the end of
//! the response (a client that went away ends it early). Lines are written whole with one `write`, so a
//! file shared with `logrotate`'s `copytruncate` or read by `tail -f` never shows half
//! a line.

use crate::exit::{Failure, bad_input};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

/// The proxy's access events.
pub const TARGET: &str = "ferry_proxy::access";

/// Installs the log subscriber: as [`crate::logging::init`] without `access_log`; with
/// it, access events go to the file (whatever the level) and not to standard error.
pub fn init(level: &str, access_log: Option<&Path>) -> Result<(), Failure> {
    let Some(path) = access_log else {
        return crate::logging::init(level);
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            bad_input(format!(
                "--access-log {}: cannot open the file for appending: {e}",
                path.display()
            ))
        })?;
    let env_filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec)
            .map_err(|e| bad_input(format!("RUST_LOG=`{spec}` is not a log filter: {e}")))?,
        _ => EnvFilter::try_new(format!("warn,ferry={level}")).map_err(|e| {
            bad_input(format!(
                "`{level}` is not a log level (error, warn, info, debug, trace): {e}"
            ))
        })?,
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = !no_color && std::io::stderr().is_terminal();
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(env_filter)
        .with_filter(filter::filter_fn(|m| m.target() != TARGET));
    let access = AccessLog {
        file: Mutex::new(file),
    }
    .with_filter(filter::filter_fn(|m| m.target() == TARGET));
    // A second init (tests calling twice) is harmless: keep the first.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(access)
        .try_init();
    Ok(())
}

/// Writes access events to a file, one line each.
struct AccessLog {
    file: Mutex<std::fs::File>,
}

impl<S: Subscriber> Layer<S> for AccessLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = fields.line(std::time::SystemTime::now());
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // A full disk must not take the proxy down; the request was served anyway.
        let _ = file.write_all(line.as_bytes());
    }
}

/// The fields of one access event.
#[derive(Debug, Default)]
struct Fields {
    method: String,
    client: String,
    host: String,
    path: String,
    status: u64,
    bytes: u64,
    service: String,
    release: String,
    duration_ms: f64,
}

impl Fields {
    fn line(&self, at: std::time::SystemTime) -> String {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        let mut line = String::with_capacity(128);
        let _ = writeln!(
            line,
            "{} {} {} \"{} {}\" {} {} {} {} {:.3}",
            humantime::format_rfc3339_millis(at),
            dash(&self.client),
            dash(&clean(&self.host)),
            clean(&self.method),
            clean(&self.path),
            self.status,
            self.bytes,
            dash(&self.service),
            dash(&self.release),
            self.duration_ms / 1000.0
        );
        line
    }
}

/// No quote, space-breaking control character or newline from a client reaches the
/// file as itself: a request cannot forge a line.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, format!("{value:?}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "status" => self.status = value,
            "bytes" => self.bytes = value,
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, u64::try_from(value).unwrap_or_default());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "duration_ms" {
            self.duration_ms = value;
        }
    }
}

impl Fields {
    fn set(&mut self, field: &Field, value: String) {
        match field.name() {
            "method" => self.method = value,
            "client" => self.client = value,
            "host" => self.host = value,
            "path" => self.path = value,
            "service" => self.service = value,
            "release" => self.release = value,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_every_field_and_no_forged_quotes() {
        let f = Fields {
            method: "GET".into(),
            client: "192.0.2.7".into(),
            host: "app.example.com".into(),
            path: "/a\"b\nc".into(),
            status: 200,
            bytes: 5120,
            service: "web".into(),
            release: "v2".into(),
            duration_ms: 3.4,
        };
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            f.line(at),
            "2023-11-14T22:13:20.123Z 192.0.2.7 app.example.com \"GET /a'b?c\" 200 5120 web v2 0.003\n"
        );
        let unrouted = Fields {
            method: "GET".into(),
            path: "/".into(),
            status: 404,
            ..Fields::default()
        };
        assert!(
            unrouted
                .line(at)
                .ends_with(" - - \"GET /\" 404 0 - - 0.000\n")
        );
    }
}
