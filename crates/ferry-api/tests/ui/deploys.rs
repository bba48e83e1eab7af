//! The services, service and deploy pages: a service with two releases, live in
//! `staging` and `production`, written through the store as a deploy engine would
//! (create → claim → steps → switch → finish) before the server starts; the pages,
//! the confirmation without the script, the deploy buttons' roles over HTTP. The
//! Chromium scenario is in `deploys_browser.rs`.

use crate::support::{Http, TestResult, csrf_of, git_repo};
use axum::http::{StatusCode, header};
use ferry_api::{ApiConfig, AppState};
use ferry_engine::server::{Core, CoreConfig, CoreTasks, TriggerOutcome, TriggerRequest};
use ferry_store::db::{
    Deploy, DeployQuery, NewDeploy, NewProject, NewRelease, Release, ReleaseArtifact, Store, Switch,
};
use ferry_types::{DeployKind, DeployPhase, DeployState, Role, Trigger};
use futures_util::StreamExt as _;
use serde_json::json;
use std::time::Duration;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The service's `ferry.yml`: two environments, `staging` then `production`.
const CONFIG: &str = r#"name: shop
on:
  manual: true
jobs:
  build:
    steps:
      - run: echo build
deploy:
  name: shop
  command: ./shop
  port: 8080
  healthcheck:
    path: /healthz
  environments:
    staging:
      strategy: blue-green
    production:
      strategy: rolling
"#;

const SHA1: &str = "1111111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA2: &str = "2222222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A server whose store holds the `shop` service before the core starts (so its
/// deploy loop never races the seeding for a queued deploy).
pub struct Seeded {
    pub base: String,
    pub core: Core,
    pub v1: Release,
    shutdown: CancellationToken,
    tasks: Option<CoreTasks>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    _dir: TempDir,
}

impl Seeded {
    pub async fn start() -> TestResult<Seeded> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");
        let store = Store::open_data_dir(&data_dir).await?;
        let repo = git_repo(&dir.path().join("repo-shop"), CONFIG)?;
        store
            .add_project(&NewProject {
                name: "shop".into(),
                repo: repo.display().to_string(),
                default_branch: "main".into(),
                webhook_secret: None,
            })
            .await?;
        let v1 = release(&store, SHA1, "alice").await?;
        let v2 = release(&store, SHA2, "bob").await?;
        deploy(&store, &v1, "staging", "alice", false).await?;
        deploy(&store, &v2, "staging", "bob", true).await?;
        deploy(&store, &v1, "production", "alice", false).await?;
        deploy(&store, &v2, "production", "carol", false).await?;

        let shutdown = CancellationToken::new();
        let config = CoreConfig {
            data_dir,
            executor_id: "ui-deploys-test".into(),
            builtin_jobs: 0,
            builtin_labels: Vec::new(),
            lease: Duration::from_secs(30),
            poll_interval: None,
            grace: Duration::from_secs(2),
            docker_host: None,
            deploy: Default::default(),
        };
        let (core, tasks) = Core::start(store, config, shutdown.clone()).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = AppState::new(core.clone(), ApiConfig::default());
        let http = tokio::spawn(ferry_api::serve(listener, None, state, shutdown.clone()));
        Ok(Seeded {
            base,
            core,
            v1,
            shutdown,
            tasks: Some(tasks),
            http: Some(http),
            _dir: dir,
        })
    }

    pub fn store(&self) -> &Store {
        self.core.store()
    }

    pub async fn token(&self, name: &str, role: Role) -> TestResult<String> {
        Ok(self.store().create_token(name, role).await?.token)
    }

    /// The rollbacks of `production`.
    pub async fn rollbacks(&self) -> TestResult<Vec<Deploy>> {
        Ok(self
            .store()
            .deploys(&DeployQuery {
                service: Some("shop".into()),
                environment: Some("production".into()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter(|d| d.kind == DeployKind::Rollback)
            .collect())
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(http) = self.http.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), http).await;
        }
        if let Some(tasks) = self.tasks.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), tasks.join()).await;
        }
    }
}

impl Drop for Seeded {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A release of `shop` at `sha`. The tarball is not in the blob store: a deploy of it
/// fails in its first phase, which is all the pages need.
async fn release(store: &Store, sha: &str, by: &str) -> TestResult<Release> {
    Ok(store
        .create_release(&NewRelease {
            project: "shop".into(),
            service: "shop".into(),
            sha: sha.into(),
            artifact: ReleaseArtifact::Tarball {
                digest: format!("sha256:{}", sha.repeat(2).get(..64).unwrap_or(sha)),
            },
            config: CONFIG.into(),
            env: Default::default(),
            run_id: None,
            created_by: by.into(),
        })
        .await?)
}

/// Deploys `release` to `env` the way the engine records a switch; `warm` keeps the
/// release it replaces running for an hour, as blue-green does.
async fn deploy(
    store: &Store,
    release: &Release,
    env: &str,
    by: &str,
    warm: bool,
) -> TestResult<Deploy> {
    let owner = "seed";
    let queued = store
        .create_deploy(&NewDeploy {
            service: "shop".into(),
            environment: env.into(),
            release_id: release.id,
            kind: DeployKind::Deploy,
            requested_by: by.into(),
            run_id: None,
            job: None,
            needs_approval: false,
        })
        .await?;
    let claimed = store
        .claim_deploy(owner, Duration::from_secs(30))
        .await?
        .ok_or("the queued deploy could not be claimed")?;
    assert_eq!(claimed.id, queued.id);
    for (phase, message) in [
        (
            DeployPhase::Prepare,
            format!("Unpacked {}.", release.name()),
        ),
        (
            DeployPhase::Start,
            "Started 1 instance on port 41001.".into(),
        ),
        (
            DeployPhase::Health,
            "`/healthz` answered 200 after 0.4s.".into(),
        ),
        (DeployPhase::Shift, "Moved all traffic.".into()),
    ] {
        store.deploy_step(queued.id, owner, phase, &message).await?;
    }
    store
        .switch_live(
            queued.id,
            owner,
            &Switch {
                instances: json!([]),
                keep_previous: warm.then(|| (json!([]), ferry_store::db::now_ms() + 3_600_000)),
            },
        )
        .await?;
    Ok(store
        .finish_deploy(queued.id, owner, DeployState::Succeeded, None)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_services_releases_and_deploy_progress() -> TestResult {
    let server = Seeded::start().await?;
    let http = Http::new(&server.base);
    let viewer = server.token("viewer", Role::Viewer).await?;

    let services = http.get("/services", Some(&viewer)).await?;
    assert_eq!(services.status, StatusCode::OK);
    let body = &services.body;
    let staging = body
        .find("data-env=\"staging\"")
        .ok_or("staging is listed")?;
    let production = body
        .find("data-env=\"production\"")
        .ok_or("production is listed")?;
    assert!(staging < production, "environments in promotion order");
    assert!(body.contains("<strong class=\"release\">v2</strong> <code class=\"sha\" title=\"2222222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\">22222222</code>"));
    assert!(
        body.contains("<span class=\"release warm\" title=\"Still running, for an instant rollback\">v1</span>"),
        "staging keeps v1 warm after its blue/green switch"
    );
    assert!(
        body.contains(" by carol"),
        "who deployed production's live release"
    );

    let page = http.get("/services/shop", Some(&viewer)).await?;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"release-1\"") && page.body.contains("id=\"release-2\""));
    assert!(
        !page.body.contains("data-confirm"),
        "a viewer is offered no deploy or rollback"
    );

    let seeded = server
        .store()
        .deploys(&DeployQuery {
            service: Some("shop".into()),
            environment: Some("production".into()),
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    let last = seeded.first().ok_or("production has a deploy")?;
    let shown = http
        .get(&format!("/deploys/{}", last.id), Some(&viewer))
        .await?;
    assert_eq!(shown.status, StatusCode::OK);
    for want in [
        "Unpacked v2.",
        "`/healthz` answered 200 after 0.4s.",
        "data-status=\"succeeded\"",
        "data-phase=\"shift\"",
    ] {
        assert!(shown.body.contains(want), "the deploy page shows {want}");
    }
    assert!(
        !shown.body.contains("data-live-part="),
        "a finished deploy opens no stream"
    );

    // A run whose job asked for a deploy links to it.
    let run = match server
        .core
        .trigger(TriggerRequest {
            project: "shop".into(),
            git_ref: None,
            sha: None,
            trigger: Trigger::Manual,
            changed_paths: None,
            delivery_id: None,
        })
        .await?
    {
        TriggerOutcome::Started(run) => run,
        TriggerOutcome::Filtered(why) => return Err(format!("the run was filtered: {why}").into()),
    };
    let asked = server
        .store()
        .create_deploy(&NewDeploy {
            service: "shop".into(),
            environment: "staging".into(),
            release_id: server.v1.id,
            kind: DeployKind::Deploy,
            requested_by: "ferry".into(),
            run_id: Some(run.id),
            job: Some("build".into()),
            needs_approval: true,
        })
        .await?;
    let run_page = http
        .get(&format!("/runs/{}", run.id), Some(&viewer))
        .await?;
    assert!(
        run_page.body.contains(&format!(
            "<a href=\"/deploys/{}\">shop v1 → staging</a>",
            asked.id
        )),
        "the run page links to its deploy"
    );
    let deploy_page = http
        .get(&format!("/deploys/{}", asked.id), Some(&viewer))
        .await?;
    assert!(deploy_page.body.contains(&format!(
        "<a href=\"/runs/{}\">#{}</a> build",
        run.id, run.id
    )));

    let missing = http.get("/services/nope", Some(&viewer)).await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_cannot_roll_back() -> TestResult {
    let server = Seeded::start().await?;
    let http = Http::new(&server.base);
    let developer = server.token("dev", Role::Developer).await?;

    let page = http.get("/services/shop", Some(&developer)).await?;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("disabled title=\"Rolling back needs the `operator` role"),
        "the rollback button is shown disabled, saying why"
    );
    assert!(!page.body.contains("data-confirm"));

    let confirm = http
        .get(
            "/services/shop/confirm?env=production&release=1",
            Some(&developer),
        )
        .await?;
    assert_eq!(confirm.status, StatusCode::FORBIDDEN);

    let csrf = csrf_of(&http.get("/projects/shop", Some(&developer)).await?.body)
        .ok_or("the project page has a form")?;
    let refused = http
        .post(
            "/ui/services/shop/deploy",
            Some(&developer),
            &format!("csrf={csrf}&env=production&release=1"),
        )
        .await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("needs the `operator` role"));
    assert!(server.rollbacks().await?.is_empty(), "nothing was queued");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_works_without_the_script() -> TestResult {
    let server = Seeded::start().await?;
    let http = Http::new(&server.base);
    let operator = server.token("ops", Role::Operator).await?;

    let confirm = http
        .get(
            "/services/shop/confirm?env=production&release=1",
            Some(&operator),
        )
        .await?;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Roll back production of shop?"));
    assert!(confirm.body.contains("Roll back to v1"));
    assert!(confirm.body.contains("Keep v2"));
    assert!(server.rollbacks().await?.is_empty(), "asking is not doing");

    let csrf = csrf_of(&confirm.body).ok_or("the confirmation has a form")?;
    let stale = http
        .post(
            "/ui/services/shop/deploy",
            Some(&operator),
            "csrf=forged&env=production&release=1",
        )
        .await?;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);

    let done = http
        .post(
            "/ui/services/shop/deploy",
            Some(&operator),
            &format!("csrf={csrf}&env=production&release=1"),
        )
        .await?;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let rollbacks = server.rollbacks().await?;
    let [rollback] = rollbacks.as_slice() else {
        return Err(format!("one rollback queued: {rollbacks:?}").into());
    };
    assert_eq!(rollback.release_id, server.v1.id);
    assert_eq!(rollback.requested_by, "ui:ops");
    assert_eq!(
        done.header(header::LOCATION),
        format!("/deploys/{}", rollback.id)
    );

    let warm = http
        .get(
            "/services/shop/confirm?env=staging&release=1",
            Some(&operator),
        )
        .await?;
    assert!(
        warm.body
            .contains("is still running (kept warm): traffic switches back to it at once"),
        "a warm release is said to switch back at once"
    );

    let again = http
        .get(
            "/services/shop/confirm?env=staging&release=2",
            Some(&operator),
        )
        .await?;
    assert!(
        again.body.contains("is live in staging already"),
        "deploying the live release is not offered"
    );
    server.stop().await;
    Ok(())
}

/// A deploy of v1 to `staging` waiting for approval.
pub async fn waiting_for_approval(server: &Seeded) -> TestResult<Deploy> {
    Ok(server
        .store()
        .create_deploy(&NewDeploy {
            service: "shop".into(),
            environment: "staging".into(),
            release_id: server.v1.id,
            kind: DeployKind::Deploy,
            requested_by: "dave".into(),
            run_id: None,
            job: None,
            needs_approval: true,
        })
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_approve_and_cancel_deploys_and_developers_cannot() -> TestResult {
    let server = Seeded::start().await?;
    let http = Http::new(&server.base);
    let developer = server.token("dev", Role::Developer).await?;
    let operator = server.token("ops", Role::Operator).await?;
    let first = waiting_for_approval(&server).await?;
    let path = format!("/deploys/{}", first.id);

    let seen = http.get(&path, Some(&developer)).await?;
    assert!(seen.body.contains("An operator can approve or cancel it."));
    assert!(!seen.body.contains("approve-form"));
    let csrf = csrf_of(&http.get("/projects/shop", Some(&developer)).await?.body)
        .ok_or("the project page has a form")?;
    let refused = http
        .post(
            &format!("/ui/deploys/{}/approve", first.id),
            Some(&developer),
            &format!("csrf={csrf}"),
        )
        .await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        server.store().deploy(first.id).await?.state,
        DeployState::WaitingApproval
    );

    let page = http.get(&path, Some(&operator)).await?;
    assert!(page.body.contains("id=\"approve-form\""));
    let csrf = csrf_of(&page.body).ok_or("the deploy page has forms")?;
    let cancelled = http
        .post(
            &format!("/ui/deploys/{}/cancel", first.id),
            Some(&operator),
            &format!("csrf={csrf}"),
        )
        .await?;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
    assert_eq!(cancelled.header(header::LOCATION), path);
    assert_eq!(
        server.store().deploy(first.id).await?.state,
        DeployState::Cancelled
    );
    let late = http
        .post(
            &format!("/ui/deploys/{}/approve", first.id),
            Some(&operator),
            &format!("csrf={csrf}"),
        )
        .await?;
    assert_eq!(
        late.status,
        StatusCode::CONFLICT,
        "a cancelled deploy cannot be approved: {}",
        late.body
    );

    let second = waiting_for_approval(&server).await?;
    let approved = http
        .post(
            &format!("/ui/deploys/{}/approve", second.id),
            Some(&operator),
            &format!("csrf={csrf}"),
        )
        .await?;
    assert_eq!(approved.status, StatusCode::SEE_OTHER);
    let after = server.store().deploy(second.id).await?;
    assert_ne!(after.state, DeployState::WaitingApproval);
    assert_eq!(after.approved_by.as_deref(), Some("ui:ops"));
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_stream_sends_the_page_again_when_a_deploy_is_queued() -> TestResult {
    let server = Seeded::start().await?;
    let http = Http::new(&server.base);
    let viewer = server.token("viewer", Role::Viewer).await?;
    let page = http.get("/services", Some(&viewer)).await?;
    let at = page
        .body
        .find("/ui/services/stream?after=")
        .ok_or("the services page names its stream")?;
    let url: String = page.body[at..].chars().take_while(|c| *c != '"').collect();

    let response = http.send("GET", &url, Some(&viewer), None).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let queued = waiting_for_approval(&server).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    let needle = format!("href=\\\"/deploys/{}\\\"", queued.id);
    while !seen.contains(&needle) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .map_err(|_| format!("no `{needle}` in the stream; got:\n{seen}"))?
            .ok_or("the stream ended")??;
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.starts_with("event: part\n"), "{seen}");
    assert!(
        seen.contains("data-status=\\\"waiting_approval\\\""),
        "staging's last deploy now waits for approval"
    );
    server.stop().await;
    Ok(())
}
