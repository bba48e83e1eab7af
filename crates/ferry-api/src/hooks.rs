//! Webhooks from forges: GitHub, GitLab, Gitea and Forgejo, at
//! `POST /hooks/{provider}/{project}`. They carry no API token; the sender proves
//! itself with the project's webhook secret instead.
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the raw body;
//!   event in `X-GitHub-Event` (`ping` answers `pong`), delivery id in
//!   `X-GitHub-Delivery`.
//! - GitLab: `X-Gitlab-Token` is the secret itself; event in `X-Gitlab-Event`
//!   (`Push Hook`, `Tag Push Hook`), delivery id in `X-Gitlab-Event-UUID` or
//!   `Idempotency-Key`.
//! - Gitea and Forgejo: `X-Gitea-Signature` / `X-Forgejo-Signature`, the hex
//!   HMAC-SHA256 of the body; `X-Gitea-Event` / `X-Forgejo-Event`;
//!   `X-Gitea-Delivery` / `X-Forgejo-Delivery`.
//!
//! Every comparison is constant-time. A bad or missing signature answers 401, appends
//! `webhook.rejected` and starts nothing. An accepted push is stored first
//! ([`ferry_store::db::Store::record_delivery`], normalized to its ref, new commit and
//! changed paths) and answered 202; then the core triggers the run and marks the
//! delivery processed — a crash in between is recovered on start-up from the stored
//! delivery. A delivery id seen before answers 200 `duplicate` and starts nothing.

use crate::AppState;
use crate::error::{ApiError, Path};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use ferry_engine::server::{TriggerOutcome, TriggerRequest};
use ferry_store::db::NewEvent;
use ferry_types::api::HookResponse;
use ferry_types::{EventKind, Trigger};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use subtle::ConstantTimeEq;

/// The largest payload accepted (GitHub caps its payloads at 25 MB).
const MAX_BODY: usize = 25 * 1024 * 1024;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/hooks/github/{name}", post(github))
        .route("/hooks/gitlab/{name}", post(gitlab))
        .route("/hooks/gitea/{name}", post(gitea))
        .route("/hooks/forgejo/{name}", post(forgejo))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Who sent a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Gitea => "gitea",
            Provider::Forgejo => "forgejo",
        }
    }

    /// The headers naming the event, then the delivery id, most specific first.
    fn headers(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Provider::GitHub => (&["x-github-event"], &["x-github-delivery"]),
            Provider::GitLab => (
                &["x-gitlab-event"],
                &["x-gitlab-event-uuid", "idempotency-key"],
            ),
            Provider::Gitea => (&["x-gitea-event"], &["x-gitea-delivery"]),
            Provider::Forgejo => (
                &["x-forgejo-event", "x-gitea-event"],
                &["x-forgejo-delivery", "x-gitea-delivery"],
            ),
        }
    }
}

async fn github(
    state: State<AppState>,
    name: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(state, Provider::GitHub, name, headers, body).await
}

async fn gitlab(
    state: State<AppState>,
    name: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(state, Provider::GitLab, name, headers, body).await
}

async fn gitea(
    state: State<AppState>,
    name: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(state, Provider::Gitea, name, headers, body).await
}

async fn forgejo(
    state: State<AppState>,
    name: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(state, Provider::Forgejo, name, headers, body).await
}

fn header<'h>(headers: &'h HeaderMap, names: &[&str]) -> Option<&'h str> {
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn answer(
    status: StatusCode,
    what: &str,
    delivery: Option<i64>,
    reason: Option<String>,
) -> Response {
    let body = HookResponse {
        status: what.to_owned(),
        delivery,
        reason,
    };
    (status, axum::Json(body)).into_response()
}

async fn receive(
    State(state): State<AppState>,
    provider: Provider,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(&state, provider, &name, &headers, &body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: &AppState,
    provider: Provider,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let store = state.core.store();
    let project = store
        .get_project(name)
        .await?
        .ok_or_else(|| ApiError::not_found("project", name))?;
    let (event_headers, delivery_headers) = provider.headers();
    let delivery = header(headers, delivery_headers)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("body-sha256:{}", hex::encode(Sha256::digest(body))));
    let secret = match project.webhook_secret.clone().filter(|s| !s.is_empty()) {
        None => None,
        Some(stored) => {
            let opened = ferry_engine::server::webhook_secrets::open(
                &state.core.config().data_dir,
                name,
                &stored,
            )
            .await;
            match opened {
                Ok(secret) => Some(secret),
                Err(e) => {
                    tracing::error!(project = name, error = %e, "Cannot check a webhook: its secret does not decrypt.");
                    return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).hint(
                        "start the server with the master key the secret was sealed with (FERRY_MASTER_KEY or master.key in the data directory), or remove the project and add it again with its secret",
                    ));
                }
            }
        }
    };
    let verdict = match &secret {
        None => Err("the project has no webhook secret".to_owned()),
        Some(secret) => verify(provider, headers, body, secret),
    };
    if let Err(reason) = verdict {
        tracing::warn!(project = name, provider = provider.name(), %delivery, %reason, "Rejected a webhook.");
        let mut event = NewEvent::new(EventKind::WebhookRejected);
        event.project = Some(name.to_owned());
        event.data = json!({ "provider": provider.name(), "delivery": delivery, "reason": reason });
        store.append_event(event).await?;
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, format!("webhook rejected: {reason}"))
            .hint("set the same secret in the forge's webhook settings and in the project (`webhook_secret`)"));
    }
    let kind = header(headers, event_headers).unwrap_or("");
    if provider == Provider::GitHub && kind == "ping" {
        return Ok(answer(StatusCode::OK, "pong", None, None));
    }
    let is_push = match provider {
        Provider::GitLab => kind == "Push Hook" || kind == "Tag Push Hook",
        _ => kind == "push",
    };
    if !is_push {
        let reason = format!("only push events start runs, not `{kind}`");
        return Ok(answer(StatusCode::OK, "ignored", None, Some(reason)));
    }
    let push = parse_push(body)?;
    if push.deleting {
        let reason = format!("`{}` was deleted", push.git_ref);
        return Ok(answer(StatusCode::OK, "ignored", None, Some(reason)));
    }
    let normalized = json!({
        "provider": provider.name(),
        "ref": push.git_ref,
        "after": push.after,
        "changed_paths": push.changed_paths,
    });
    let Some(id) = store
        .record_delivery(name, &delivery, "push", &normalized.to_string())
        .await?
    else {
        return Ok(answer(StatusCode::OK, "duplicate", None, None));
    };
    let core = state.core.clone();
    let req = TriggerRequest {
        project: name.to_owned(),
        git_ref: Some(push.git_ref),
        sha: Some(push.after),
        trigger: Trigger::Push,
        changed_paths: push.changed_paths,
        delivery_id: Some(id),
    };
    // The delivery is durable now; the run starts without keeping the sender waiting.
    tokio::spawn(async move {
        let project = req.project.clone();
        match core.trigger(req).await {
            Ok(TriggerOutcome::Started(run)) => {
                tracing::info!(%project, run_id = run.id, delivery = id, "A push started a run.");
            }
            Ok(TriggerOutcome::Filtered(why)) => {
                tracing::info!(%project, delivery = id, %why, "A push matched no trigger.");
            }
            Err(e) => {
                tracing::warn!(%project, delivery = id, error = %e, "A push could not start a run.");
            }
        }
    });
    Ok(answer(StatusCode::ACCEPTED, "accepted", Some(id), None))
}

/// Checks the sender's proof against `secret`; the error says what was wrong.
fn verify(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
) -> Result<(), String> {
    match provider {
        Provider::GitHub => {
            let sig = header(headers, &["x-hub-signature-256"])
                .ok_or("missing `X-Hub-Signature-256` header")?;
            let hex_sig = sig
                .strip_prefix("sha256=")
                .ok_or("`X-Hub-Signature-256` does not start with `sha256=`")?;
            check_hmac(secret, body, hex_sig)
        }
        Provider::Gitea | Provider::Forgejo => {
            let sig = header(headers, &["x-forgejo-signature", "x-gitea-signature"])
                .ok_or("missing `X-Gitea-Signature` (or `X-Forgejo-Signature`) header")?;
            check_hmac(secret, body, sig)
        }
        Provider::GitLab => {
            let token =
                header(headers, &["x-gitlab-token"]).ok_or("missing `X-Gitlab-Token` header")?;
            // Comparing digests keeps the secret's length out of the timing too.
            let same: bool = Sha256::digest(token.as_bytes())
                .ct_eq(&Sha256::digest(secret))
                .into();
            if same {
                Ok(())
            } else {
                Err("`X-Gitlab-Token` does not match the project's secret".to_owned())
            }
        }
    }
}

/// Whether `hex_sig` is the HMAC-SHA256 of `body` under `secret`, compared in
/// constant time.
fn check_hmac(secret: &[u8], body: &[u8], hex_sig: &str) -> Result<(), String> {
    let sig = hex::decode(hex_sig.trim()).map_err(|_| "the signature is not hex".to_owned())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
    mac.update(body);
    mac.verify_slice(&sig)
        .map_err(|_| "the signature does not match the body and the project's secret".to_owned())
}

/// What a push payload says.
#[derive(Debug, PartialEq, Eq)]
struct Push {
    git_ref: String,
    after: String,
    deleting: bool,
    /// Paths added, modified or removed by the pushed commits; None when the payload
    /// does not list every commit.
    changed_paths: Option<Vec<String>>,
}

fn parse_push(body: &[u8]) -> Result<Push, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the push payload is not JSON: {e}")))?;
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let git_ref =
        text("ref").ok_or_else(|| ApiError::bad_request("the push payload has no `ref`"))?;
    let after = text("after").unwrap_or_default();
    let deleting = v.get("deleted").and_then(Value::as_bool).unwrap_or(false)
        || (!after.is_empty() && after.bytes().all(|b| b == b'0'));
    if after.is_empty() && !deleting {
        return Err(ApiError::bad_request(
            "the push payload has no `after` commit",
        ));
    }
    let commits = v.get("commits").and_then(Value::as_array);
    let complete = match (
        commits,
        v.get("total_commits_count").and_then(Value::as_u64),
    ) {
        (Some(list), Some(total)) => list.len() as u64 >= total,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let changed_paths = commits.filter(|_| complete).map(|list| {
        let mut paths = BTreeSet::new();
        for commit in list {
            for key in ["added", "modified", "removed"] {
                if let Some(files) = commit.get(key).and_then(Value::as_array) {
                    paths.extend(files.iter().filter_map(Value::as_str).map(str::to_owned));
                }
            }
        }
        paths.into_iter().collect()
    });
    Ok(Push {
        git_ref,
        after,
        deleting,
        changed_paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_changed_paths_of_every_commit_once() -> Result<(), ApiError> {
        let body = br#"{"ref":"refs/heads/main","after":"abc","commits":[
            {"added":["a.txt"],"modified":["src/x.rs"],"removed":[]},
            {"added":[],"modified":["src/x.rs"],"removed":["old.md"]}]}"#;
        let push = parse_push(body)?;
        assert_eq!(
            push.changed_paths,
            Some(vec!["a.txt".into(), "old.md".into(), "src/x.rs".into()])
        );
        assert!(!push.deleting);
        Ok(())
    }

    #[test]
    fn a_truncated_commit_list_leaves_changed_paths_unknown() -> Result<(), ApiError> {
        let body = br#"{"ref":"refs/heads/main","after":"abc","total_commits_count":30,
            "commits":[{"added":["a"],"modified":[],"removed":[]}]}"#;
        assert_eq!(parse_push(body)?.changed_paths, None);
        Ok(())
    }

    #[test]
    fn a_push_to_all_zeros_deletes_the_branch() -> Result<(), ApiError> {
        let body =
            br#"{"ref":"refs/heads/gone","after":"0000000000000000000000000000000000000000"}"#;
        assert!(parse_push(body)?.deleting);
        Ok(())
    }

    #[test]
    fn hmac_check_accepts_the_right_signature_only() {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(b"s3cret").expect("HMAC takes keys of any length");
        mac.update(b"body");
        let good = hex::encode(mac.finalize().into_bytes());
        assert_eq!(check_hmac(b"s3cret", b"body", &good), Ok(()));
        assert!(check_hmac(b"other", b"body", &good).is_err());
        assert!(check_hmac(b"s3cret", b"body", "zz").is_err());
    }
}
