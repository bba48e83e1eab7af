//! The page shell and the small pieces every page uses: status badges, times,
//! durations, commit ids.

use super::assets;
use super::auth::Session;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Projects,
    Runs,
    Services,
    Events,
    Agents,
    None,
}

/// The whole page around `content`.
pub(super) fn page(title: &str, nav: Nav, session: Option<&Session>, content: Markup) -> Markup {
    let item = |target: Nav, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(nav == target).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Ferry" }
                link rel="stylesheet" href=(assets::css_url());
                link rel="icon" href=(FAVICON);
                script src=(assets::js_url()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { (logo()) " Ferry" }
                    @if session.is_some() {
                        nav aria-label="Main" {
                            (item(Nav::Projects, "/", "Projects"))
                            (item(Nav::Runs, "/runs", "Runs"))
                            (item(Nav::Services, "/services", "Services"))
                            (item(Nav::Events, "/events", "Events"))
                            (item(Nav::Agents, "/agents", "Agents"))
                        }
                    }
                    @if let Some(s) = session {
                        div.who {
                            span title="Signed in with this API token" {
                                (s.info.name) " · " (s.info.role.as_str())
                            }
                            a href="/logout" { "Log out" }
                        }
                    }
                }
                main #main tabindex="-1" { (content) }
            }
        }
    }
}

/// The mark beside the name: a boat on a wave, drawn inline so no font needs the glyph.
fn logo() -> Markup {
    html! {
        svg.logo xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="22" height="22"
            aria-hidden="true" {
            rect width="24" height="24" rx="6" {}
            path.hull d="M4 13h16l-2.6 4.2H6.6z" {}
            path.cabin d="M8 9.5h6.5l1.5 3H8z" {}
        }
    }
}

/// A tiny inline icon, so the browser does not ask for `/favicon.ico`.
const FAVICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' \
    viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%23276ef1'/%3E\
    %3Cpath d='M3 10h10l-2 3H5z' fill='white'/%3E%3C/svg%3E";

/// Content-Security-Policy of every page: only our own script and styles.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// An HTML response that is never cached and may not be framed.
pub(super) fn respond(markup: Markup) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// How a status looks: a colour class, a glyph and words.
pub(super) struct Look {
    /// CSS class: `ok`, `bad`, `busy`, `wait`, `queued`, `skip`, `warn`.
    pub cls: &'static str,
    /// A glyph shown before the words.
    pub icon: &'static str,
    /// Words for people.
    pub label: &'static str,
}

/// The look of a run, job or deploy status name.
pub(super) fn look(status: &str) -> Look {
    let (cls, icon, label) = match status {
        "success" => ("ok", "✓", "success"),
        "failure" => ("bad", "✗", "failed"),
        "timed_out" => ("bad", "✗", "timed out"),
        "lost" => ("bad", "✗", "lost"),
        "interrupted" => ("bad", "✗", "interrupted"),
        "allowed_failure" => ("warn", "!", "failed (allowed)"),
        "running" => ("busy", "●", "running"),
        "waiting_approval" => ("wait", "⏸", "waiting for approval"),
        "queued" => ("queued", "◷", "queued"),
        "cancelled" => ("skip", "⊘", "cancelled"),
        // Deploy states (the others share the run names above).
        "succeeded" => ("ok", "✓", "succeeded"),
        "rolled_back" => ("bad", "↺", "rolled back"),
        "failed" => ("bad", "✗", "failed"),
        "skipped" => ("skip", "–", "skipped"),
        _ => ("skip", "?", "unknown"),
    };
    Look { cls, icon, label }
}

/// A coloured status badge.
pub(super) fn badge(status: &str) -> Markup {
    let l = look(status);
    html! {
        span class={ "badge s-" (l.cls) } data-status=(status) {
            span.icon aria-hidden="true" { (l.icon) } " " (l.label)
        }
    }
}

/// A point in time: UTC text, turned into "3 min ago" (local time on hover) by the
/// script.
pub(super) fn time(ms: i64) -> Markup {
    let iso = iso_utc(ms);
    html! {
        time datetime=(iso) data-ts=(ms) title=(iso) { (iso.replace('T', " ").trim_end_matches('Z')) " UTC" }
    }
}

/// A duration between two instants; a running one ticks in the browser.
pub(super) fn duration(start: Option<i64>, end: Option<i64>) -> Markup {
    match (start, end) {
        (Some(s), Some(e)) => html! { span.dur { (human_ms(e.saturating_sub(s))) } },
        (Some(s), None) => html! {
            span.dur data-start=(s) { (human_ms(ferry_store::db::now_ms().saturating_sub(s))) }
        },
        _ => html! { span.dur.muted { "—" } },
    }
}

/// `1h 2m`, `3m 4s`, `5.2s`, `120ms`.
pub(super) fn human_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    if secs < 60 {
        return format!("{}.{}s", secs, (ms % 1000) / 100);
    }
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m {s}s")
    }
}

/// The first 8 characters of a commit id, with the whole id on hover.
pub(super) fn short_sha(sha: &str) -> Markup {
    let short: String = sha.chars().take(8).collect();
    html! { code.sha title=(sha) { (short) } }
}

/// The branch or tag a run built.
pub(super) fn git_ref(branch: Option<&str>, tag: Option<&str>) -> Markup {
    match (branch, tag) {
        (_, Some(t)) => html! { span.ref title="tag" { "🏷 " (t) } },
        (Some(b), None) => html! { span.ref title="branch" { (b) } },
        (None, None) => html! { span.muted { "—" } },
    }
}

/// `2026-11-23T20:07:23Z` for unix ms (the proleptic Gregorian calendar, UTC).
pub(super) fn iso_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Text for a `<script type="application/json">` or data attribute that cannot end
/// the element early.
pub(super) fn json_script(value: &serde_json::Value) -> PreEscaped<String> {
    PreEscaped(
        value
            .to_string()
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_ms_as_utc() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_795_982_843_000), "2026-11-29T20:07:23Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human_ms(120), "120ms");
        assert_eq!(human_ms(5_230), "5.2s");
        assert_eq!(human_ms(184_000), "3m 4s");
        assert_eq!(human_ms(3_720_000), "1h 2m");
    }
}
