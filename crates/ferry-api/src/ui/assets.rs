//! The UI's two static files, compiled into the binary.
//!
//! Pages link them with a content hash in the query (`/ui/assets/ui.css?v=…`), so
//! browsers may cache them for a year: a new binary with new assets links a new URL.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The stylesheet.
pub(super) const CSS: &str = include_str!("assets/ui.css");
/// The script: live updates, log viewer, relative times.
pub(super) const JS: &str = include_str!("assets/ui.js");

/// FNV-1a of the bytes, as 16 hex digits: a cache-busting version, not a security hash.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

const CSS_HASH: u64 = fnv1a(CSS.as_bytes());
const JS_HASH: u64 = fnv1a(JS.as_bytes());

/// The URL of the stylesheet, versioned by its content.
pub(super) fn css_url() -> String {
    format!("/ui/assets/ui.css?v={CSS_HASH:016x}")
}

/// The URL of the script, versioned by its content.
pub(super) fn js_url() -> String {
    format!("/ui/assets/ui.js?v={JS_HASH:016x}")
}

/// `GET /ui/assets/{file}`.
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    let (body, mime) = match file.as_str() {
        "ui.css" => (CSS, "text/css; charset=utf-8"),
        "ui.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
