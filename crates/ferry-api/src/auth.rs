//! Bearer-token authentication and role checks.
//!
//! Every `/api/v1` handler takes an [`Auth<R>`] argument, so no handler can forget to
//! check: the extractor reads `Authorization: Bearer <token>`, verifies it with
//! [`ferry_store::db::Store::verify_token`] (tokens are stored hashed) and requires at
//! least the role `R`. No or a bad token → 401; a valid token with a weaker role → 403.
//!
//! The rules: reading anything needs [`Viewer`]; triggering, cancelling, re-running
//! and the agent endpoints need [`Developer`]; approving a job waiting for approval
//! needs [`Operator`] (approval gates guard deployments, which the product reserves to
//! operators); tokens need [`Admin`].

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use ferry_store::db::TokenInfo;
use ferry_types::Role;
use std::marker::PhantomData;

/// The token's facts if `token` is a valid, unrevoked API token; for the web UI's
/// cookie sessions too. A database failure is logged and counts as "not valid".
pub async fn authenticate(state: &AppState, token: &str) -> Option<TokenInfo> {
    match state.core.store().verify_token(token).await {
        Ok(info) => info,
        Err(e) => {
            tracing::error!(error = %e, "Verifying an API token failed.");
            None
        }
    }
}

/// How strong a role is: each includes the ones ranked below it.
pub fn rank(role: Role) -> u8 {
    match role {
        Role::Viewer => 0,
        Role::Developer => 1,
        Role::Operator => 2,
        Role::Admin => 3,
    }
}

/// Whether `has` includes `needs`.
pub fn allows(has: Role, needs: Role) -> bool {
    rank(has) >= rank(needs)
}

/// A minimum role, as a type, for [`Auth`].
pub trait MinRole {
    /// The role required.
    const ROLE: Role;
}

/// Requires the `viewer` role (any valid token).
#[derive(Debug, Clone, Copy)]
pub struct Viewer;
/// Requires the `developer` role.
#[derive(Debug, Clone, Copy)]
pub struct Developer;
/// Requires the `operator` role.
#[derive(Debug, Clone, Copy)]
pub struct Operator;
/// Requires the `admin` role.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl MinRole for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl MinRole for Developer {
    const ROLE: Role = Role::Developer;
}
impl MinRole for Operator {
    const ROLE: Role = Role::Operator;
}
impl MinRole for Admin {
    const ROLE: Role = Role::Admin;
}

/// The authenticated caller, holding at least role `R`.
#[derive(Debug, Clone)]
pub struct Auth<R> {
    /// The caller's token.
    pub token: TokenInfo,
    role: PhantomData<R>,
}

impl<R> Auth<R> {
    /// Who acted, for the event log: `token:<name>`.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token.name)
    }
}

/// The token in `Authorization: Bearer <token>`, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks the request's bearer token against role `needs`.
pub async fn check(
    state: &AppState,
    headers: &HeaderMap,
    needs: Role,
) -> Result<TokenInfo, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(
            ApiError::new(StatusCode::UNAUTHORIZED, "this request needs an API token").hint(
                "send `Authorization: Bearer <token>`; an admin creates tokens with `ferry token create`",
            ),
        );
    };
    let info = state
        .core
        .store()
        .verify_token(token)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the API token is not valid or was revoked",
            )
            .hint("ask an admin for a new token (`ferry token create`)")
        })?;
    if !allows(info.role, needs) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token `{}` has the role `{}`; this needs `{needs}` or above",
                info.name, info.role
            ),
        )
        .hint(format!("use a token with the `{needs}` role")));
    }
    Ok(info)
}

impl<R: MinRole + Send + Sync> FromRequestParts<AppState> for Auth<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = check(state, &parts.headers, R::ROLE).await?;
        Ok(Auth {
            token,
            role: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn each_role_includes_the_weaker_ones() {
        assert!(allows(Role::Admin, Role::Operator));
        assert!(allows(Role::Operator, Role::Developer));
        assert!(allows(Role::Developer, Role::Viewer));
        assert!(!allows(Role::Developer, Role::Operator));
        assert!(!allows(Role::Viewer, Role::Developer));
    }

    #[test]
    fn reads_bearer_tokens_with_any_case_of_scheme() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer ferry_abc"),
        );
        assert_eq!(bearer(&h), Some("ferry_abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcg=="),
        );
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }
}
