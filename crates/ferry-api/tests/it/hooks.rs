//! Webhooks from GitHub, GitLab, Gitea and Forgejo.

use crate::both;
use crate::support::{SECRET, Server, TestResult, eventually};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use ferry_store::db::EventQuery;
use ferry_types::{EventKind, Trigger};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

fn sign(secret: &str, body: &[u8]) -> Result<String, hmac::digest::InvalidLength> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())?;
    mac.update(body);
    Ok(hex::encode(mac.finalize().into_bytes()))
}

fn push_body(sha: &str) -> Vec<u8> {
    json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": sha,
        "commits": [{"id": sha, "added": ["ferry.yml"], "modified": [], "removed": []}],
    })
    .to_string()
    .into_bytes()
}

async fn post(
    s: &Server,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<(StatusCode, Value), Box<dyn std::error::Error + Send + Sync>> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let (status, bytes) = s.raw(req.body(Body::from(body))?).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn github(sig: String, delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-github-event", "push".to_owned()),
        ("x-github-delivery", delivery.to_owned()),
        ("x-hub-signature-256", format!("sha256={sig}")),
    ]
}

async fn rejected_events(s: &Server) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let events = s
        .store
        .list_events(&EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .await?;
    Ok(events
        .iter()
        .filter(|e| e.kind == EventKind::WebhookRejected)
        .count())
}

both! {
    async fn accepts_a_signed_github_push_and_starts_a_run_once(s: Server) -> TestResult {
        let sha = s.head()?;
        let body = push_body(&sha);
        let headers = github(sign(SECRET, &body)?, "d-1");
        let (status, answer) = post(&s, "/hooks/github/app", &headers, body.clone()).await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["status"], "accepted");
        let run = eventually("the pushed run", || async {
            Ok(s.store.list_runs(Some("app"), 10).await?.into_iter().next())
        })
        .await?;
        assert_eq!((run.sha.as_str(), run.trigger), (sha.as_str(), Trigger::Push));
        assert_eq!(run.branch.as_deref(), Some("main"));
        eventually("the delivery marked processed", || async {
            Ok(s.store.pending_deliveries().await?.is_empty().then_some(()))
        })
        .await?;

        let (status, answer) = post(&s, "/hooks/github/app", &headers, body).await?;
        assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("duplicate")));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(s.store.list_runs(Some("app"), 10).await?.len(), 1, "a repeated delivery starts nothing");
        s.stop().await
    }
}

both! {
    async fn rejects_a_github_push_with_a_bad_signature(s: Server) -> TestResult {
        let body = push_body(&s.head()?);
        let headers = github(sign("not-the-secret", &body)?, "d-bad");
        let (status, answer) = post(&s, "/hooks/github/app", &headers, body.clone()).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            answer["error"],
            "webhook rejected: the signature does not match the body and the project's secret"
        );
        let unsigned = vec![("x-github-event", "push".to_owned()), ("x-github-delivery", "d-none".to_owned())];
        let (status, answer) = post(&s, "/hooks/github/app", &unsigned, body).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer["error"], "webhook rejected: missing `X-Hub-Signature-256` header");
        assert_eq!(rejected_events(&s).await?, 2);
        assert!(s.store.pending_deliveries().await?.is_empty(), "nothing was stored");
        assert!(s.store.list_runs(None, 10).await?.is_empty(), "nothing was started");
        s.stop().await
    }
}

#[tokio::test]
async fn answers_a_github_ping_and_ignores_deleting_pushes() -> TestResult {
    let s = Server::start().await?;
    let body = br#"{"zen":"Keep it logically awesome."}"#.to_vec();
    let mut headers = github(sign(SECRET, &body)?, "p-1");
    headers[0].1 = "ping".to_owned();
    let (status, answer) = post(&s, "/hooks/github/app", &headers, body).await?;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("pong"))
    );

    let body = push_body("0000000000000000000000000000000000000000");
    let headers = github(sign(SECRET, &body)?, "del-1");
    let (status, answer) = post(&s, "/hooks/github/app", &headers, body).await?;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    assert!(s.store.pending_deliveries().await?.is_empty());
    assert!(s.store.list_runs(None, 10).await?.is_empty());
    s.stop().await
}

#[tokio::test]
async fn checks_the_gitlab_token() -> TestResult {
    let s = Server::start().await?;
    let body = push_body(&s.head()?);
    let bad = vec![
        ("x-gitlab-event", "Push Hook".to_owned()),
        ("x-gitlab-event-uuid", "gl-0".to_owned()),
        ("x-gitlab-token", "wrong".to_owned()),
    ];
    let (status, _) = post(&s, "/hooks/gitlab/app", &bad, body.clone()).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(rejected_events(&s).await?, 1);
    let good = vec![
        ("x-gitlab-event", "Push Hook".to_owned()),
        ("idempotency-key", "gl-1".to_owned()),
        ("x-gitlab-token", SECRET.to_owned()),
    ];
    let (status, _) = post(&s, "/hooks/gitlab/app", &good, body.clone()).await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, answer) = post(&s, "/hooks/gitlab/app", &good, body).await?;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    eventually("the pushed run", || async {
        Ok(s.store.list_runs(None, 10).await?.into_iter().next())
    })
    .await?;
    s.stop().await
}

#[tokio::test]
async fn checks_gitea_and_forgejo_signatures() -> TestResult {
    let s = Server::start().await?;
    let body = push_body(&s.head()?);
    let gitea = vec![
        ("x-gitea-event", "push".to_owned()),
        ("x-gitea-delivery", "g-1".to_owned()),
        ("x-gitea-signature", sign(SECRET, &body)?),
    ];
    let (status, _) = post(&s, "/hooks/gitea/app", &gitea, body.clone()).await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    let forged = vec![
        ("x-forgejo-event", "push".to_owned()),
        ("x-forgejo-delivery", "f-1".to_owned()),
        ("x-forgejo-signature", sign("guess", &body)?),
    ];
    let (status, _) = post(&s, "/hooks/forgejo/app", &forged, body.clone()).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let forgejo = vec![
        ("x-forgejo-event", "push".to_owned()),
        ("x-forgejo-delivery", "f-2".to_owned()),
        ("x-forgejo-signature", sign(SECRET, &body)?),
    ];
    let (status, _) = post(&s, "/hooks/forgejo/app", &forgejo, body).await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(rejected_events(&s).await?, 1);
    s.stop().await
}

#[tokio::test]
async fn refuses_webhooks_for_projects_without_a_secret() -> TestResult {
    let s = Server::start().await?;
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/projects",
            Some(&s.admin),
            Some(json!({"name": "open", "repo": s.repo.path().display().to_string()})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED);
    let body = push_body(&s.head()?);
    let headers = github(sign("", &body)?, "o-1");
    let (status, answer) = post(&s, "/hooks/github/open", &headers, body).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer["error"],
        "webhook rejected: the project has no webhook secret"
    );
    s.stop().await
}

both! {
    async fn webhook_secrets_are_stored_sealed_and_still_verify(s: Server) -> TestResult {
        // `app` was stored with its secret in clear before the server started; the
        // start sealed it (and the other tests' webhooks verify against it).
        let stored = s.store.get_project("app").await?.ok_or("no app")?.webhook_secret.ok_or("no secret")?;
        assert!(stored.starts_with("ferry-sealed:v1:") && !stored.contains(SECRET), "{stored}");

        // A project added through the API is stored sealed from the start.
        let repo = s.repo.path().display().to_string();
        let (status, answer) = s
            .call(
                Method::POST,
                "/api/v1/projects",
                Some(&s.admin),
                Some(json!({ "name": "shop", "repo": repo, "webhook_secret": "shop-hook-secret" })),
            )
            .await?;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["has_webhook_secret"], true, "{answer}");
        let stored = s.store.get_project("shop").await?.ok_or("no shop")?.webhook_secret.ok_or("no secret")?;
        assert!(stored.starts_with("ferry-sealed:v1:") && !stored.contains("shop-hook-secret"), "{stored}");
        let body = push_body(&s.head()?);
        let headers = github(sign("shop-hook-secret", &body)?, "d-shop");
        let (status, answer) = post(&s, "/hooks/github/shop", &headers, body).await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");

        // Sealed for `shop`, the value does not open as another project's secret.
        s.store.set_webhook_secret("app", &stored).await?;
        let body = push_body(&s.head()?);
        let headers = github(sign("shop-hook-secret", &body)?, "d-app");
        let (status, answer) = post(&s, "/hooks/github/app", &headers, body).await?;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
        assert!(
            answer["error"].as_str().unwrap_or_default().starts_with("cannot decrypt the webhook secret of project `app`"),
            "{answer}"
        );
        s.stop().await
    }
}
