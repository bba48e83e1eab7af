//! Sessions: an API token kept in a cookie, checked on every page and action.
//!
//! The cookie holds the token itself (HttpOnly, so scripts cannot read it;
//! SameSite=Strict, so other sites cannot make the browser send it) and every request
//! looks it up again, so revoking the token ends the session at once. Forms that change
//! state also carry a CSRF token derived from the session token.

use super::error::UiError;
use super::layout::{self, Nav};
use crate::AppState;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use ferry_store::db::TokenInfo;
use ferry_types::Role;
use maud::html;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;

/// The session cookie's name.
const COOKIE: &str = "ferry_session";
/// How long the browser keeps the cookie: 30 days.
const COOKIE_MAX_AGE: u64 = 30 * 24 * 3600;

/// A signed-in browser: the token's facts and the CSRF token for its forms.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// What the store knows about the token.
    pub info: TokenInfo,
    /// The value forms must send back as `csrf`.
    pub csrf: String,
}

impl Session {
    /// Whether the session's role includes `role`.
    pub fn can(&self, role: Role) -> bool {
        crate::auth::rank(self.info.role) >= crate::auth::rank(role)
    }

    /// Fails with 403 unless the session's role includes `role`.
    pub fn require(&self, role: Role) -> Result<(), UiError> {
        if self.can(role) {
            Ok(())
        } else {
            Err(UiError::Forbidden(format!(
                "this needs the `{role}` role; the token `{}` has `{}`",
                self.info.name, self.info.role
            )))
        }
    }

    /// Fails with 403 unless `form` carries this session's CSRF token.
    pub fn check_csrf(&self, form: &HashMap<String, String>) -> Result<(), UiError> {
        let sent = form.get("csrf").map(String::as_str).unwrap_or("");
        if constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(UiError::Forbidden(
                "the form is stale or came from another site; reload the page and try again".into(),
            ))
        }
    }

    /// Who did something, for the event log.
    pub fn actor(&self) -> String {
        format!("ui:{}", self.info.name)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The CSRF token of a session: a hash of the session token under a fixed label, so it
/// needs no server-side storage and changes with the token.
fn csrf_for(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"ferry-ui-csrf\0");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

/// The token's facts if it is valid and not revoked (the API's own check, so both
/// surfaces agree on who is signed in).
async fn lookup(state: &AppState, token: &str) -> Option<TokenInfo> {
    crate::authenticate(state, token).await
}

/// The value of cookie `name` in the request headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, COOKIE) else {
            return Err(unauthenticated(parts, false));
        };
        match lookup(state, &token).await {
            Some(info) => Ok(Session {
                info,
                csrf: csrf_for(&token),
            }),
            None => Err(unauthenticated(parts, true)),
        }
    }
}

/// Pages send the browser to the login form (and back afterwards); streams and
/// actions answer 401.
fn unauthenticated(parts: &Parts, clear: bool) -> Response {
    let path = parts.uri.path();
    let mut response = if path.starts_with("/ui/") {
        (StatusCode::UNAUTHORIZED, "sign in at /login first").into_response()
    } else {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let next = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
        Redirect::to(&format!("/login?next={next}")).into_response()
    };
    if clear {
        response
            .headers_mut()
            .append(header::SET_COOKIE, HeaderValue::from_static(CLEAR_COOKIE));
    }
    response
}

const CLEAR_COOKIE: &str = "ferry_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict";

fn set_cookie(token: &str) -> Result<HeaderValue, UiError> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Strict"
    ))
    .map_err(|_| UiError::BadRequest("that token contains characters a token never has".into()))
}

/// Where to go after signing in: a local path only, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// `application/x-www-form-urlencoded` into a map (the last value of a name wins).
pub(super) fn parse_form(body: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// The query of `GET /login`.
#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    token: Option<String>,
    next: Option<String>,
}

/// `GET /login`: the form, or with `?token=…` (the link `ferry up` prints) a sign-in.
pub(super) async fn login_page(
    State(state): State<AppState>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let Some(token) = q.token.filter(|t| !t.is_empty()) else {
        return login_form(&next, None, StatusCode::OK);
    };
    match sign_in(&state, token.trim()).await {
        // The token was in the URL: answer with a page that moves on by itself instead
        // of a redirect, so the address bar and history entry holding the token are
        // replaced, and the next request is a same-site navigation that carries the
        // SameSite=Strict cookie even when the link was opened from another site.
        Ok(cookie) => {
            let body = html! {
                (maud::DOCTYPE)
                html lang="en" {
                    head {
                        meta charset="utf-8";
                        meta http-equiv="refresh" content={ "0;url=" (next) };
                        title { "Signed in · Ferry" }
                        script src=(super::assets::js_url()) {}
                    }
                    body data-redirect=(next) {
                        p { "Signed in. " a href=(next) { "Continue" } }
                    }
                }
            };
            let mut response = layout::respond(body);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response.headers_mut().insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            response
        }
        Err(e) => login_form(&next, Some(&e), StatusCode::UNAUTHORIZED),
    }
}

/// `POST /login`: the form's token.
pub(super) async fn login_submit(State(state): State<AppState>, body: String) -> Response {
    let form = parse_form(&body);
    let next = safe_next(form.get("next").map(String::as_str));
    let token = form.get("token").map(|t| t.trim()).unwrap_or("");
    match sign_in(&state, token).await {
        Ok(cookie) => {
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => login_form(&next, Some(&e), StatusCode::UNAUTHORIZED),
    }
}

/// Checks a token and builds its cookie; the error is for the form.
async fn sign_in(state: &AppState, token: &str) -> Result<HeaderValue, String> {
    if token.is_empty() {
        return Err("Paste an API token.".into());
    }
    match lookup(state, token).await {
        Some(_) => set_cookie(token).map_err(|e| e.to_string()),
        None => Err(
            "That token is not valid: it may be mistyped or revoked. `ferry token create` makes a new one."
                .into(),
        ),
    }
}

fn login_form(next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let content = html! {
        section.login {
            h1 { "Sign in" }
            p.muted {
                "Paste an API token. " code { "ferry up" } " prints one with a sign-in link; "
                code { "ferry token create --name NAME" } " makes more."
            }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password"
                    placeholder="ferry_…" required autofocus;
                button.primary type="submit" { "Sign in" }
            }
        }
    };
    let mut response = layout::respond(layout::page("Sign in", Nav::None, None, content));
    *response.status_mut() = status;
    response
}

/// `GET /logout`: forgets the cookie.
pub(super) async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, HeaderValue::from_static(CLEAR_COOKIE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ferry_session=ferry_abc; b=2"),
        );
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("ferry_abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/runs/3")), "/runs/3");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn parses_urlencoded_forms() {
        let form = parse_form("csrf=ab%2Fc&job=deploy+prod&failed_only");
        assert_eq!(form.get("csrf").map(String::as_str), Some("ab/c"));
        assert_eq!(form.get("job").map(String::as_str), Some("deploy prod"));
        assert_eq!(form.get("failed_only").map(String::as_str), Some(""));
    }

    #[test]
    fn csrf_token_depends_on_the_session_token() {
        assert_ne!(csrf_for("ferry_a"), csrf_for("ferry_b"));
        assert!(constant_time_eq(
            csrf_for("x").as_bytes(),
            csrf_for("x").as_bytes()
        ));
    }
}
