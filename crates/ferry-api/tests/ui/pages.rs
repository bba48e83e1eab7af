//! Pages and actions over HTTP, with jobs left queued (no executor) or driven through
//! the store as a fake agent would.

use crate::support::{Http, PIPELINE, Server, TestResult, csrf_of, eventually};
use axum::http::{StatusCode, header};
use ferry_store::db::JobOutcome;
use ferry_types::{JobResult, Role, RunStatus};
use futures_util::StreamExt as _;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_send_people_without_a_session_to_sign_in() -> TestResult {
    let server = Server::start(0).await?;
    let http = Http::new(&server.base);

    let home = http.get("/", None).await?;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.header(header::LOCATION), "/login?next=%2F");

    let run = http.get("/runs/7?x=1", None).await?;
    assert_eq!(
        run.header(header::LOCATION),
        "/login?next=%2Fruns%2F7%3Fx%3D1"
    );

    let stale = http
        .get("/events", Some("ferry_revoked-or-made-up"))
        .await?;
    assert_eq!(stale.status, StatusCode::SEE_OTHER);
    assert!(
        stale.header(header::SET_COOKIE).contains("Max-Age=0"),
        "a cookie that no longer signs in is cleared"
    );

    let stream = http.get("/ui/runs/stream", None).await?;
    assert_eq!(stream.status, StatusCode::UNAUTHORIZED);
    let action = http.post("/ui/runs/1/cancel", None, "csrf=x").await?;
    assert_eq!(action.status, StatusCode::UNAUTHORIZED);

    let login = http.get("/login", None).await?;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("name=\"token\""));
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_link_sets_a_strict_http_only_cookie_and_moves_on() -> TestResult {
    let server = Server::start(0).await?;
    let http = Http::new(&server.base);

    let ok = http
        .get(&format!("/login?token={}&next=/runs", server.admin), None)
        .await?;
    assert_eq!(ok.status, StatusCode::OK);
    let cookie = ok.header(header::SET_COOKIE);
    assert!(cookie.starts_with(&format!("ferry_session={};", server.admin)));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        ok.body.contains("url=/runs"),
        "moves on to `next`: {}",
        ok.body
    );
    assert_eq!(ok.header(header::REFERRER_POLICY), "no-referrer");

    let offsite = http
        .get(
            &format!("/login?token={}&next=//evil.example/", server.admin),
            None,
        )
        .await?;
    assert!(
        offsite.body.contains("url=/\""),
        "never moves on to another site"
    );

    let bad = http.get("/login?token=ferry_not-a-token", None).await?;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.header(header::SET_COOKIE).is_empty());
    assert!(bad.body.contains("not valid"));

    let form = http
        .post(
            "/login",
            None,
            &format!("token={}&next=%2Fevents", server.admin),
        )
        .await?;
    assert_eq!(form.status, StatusCode::SEE_OTHER);
    assert_eq!(form.header(header::LOCATION), "/events");
    assert!(form.header(header::SET_COOKIE).contains("HttpOnly"));

    let out = http.get("/logout", Some(&server.admin)).await?;
    assert!(out.header(header::SET_COOKIE).contains("Max-Age=0"));
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_projects_runs_and_the_job_graph() -> TestResult {
    let server = Server::start(0).await?;
    let http = Http::new(&server.base);
    let token = server.token("reader", Role::Viewer).await?;
    server.project("demo", PIPELINE).await?;
    let run = server.trigger("demo").await?;
    server
        .store()
        .add_project(&ferry_store::db::NewProject {
            name: "odd".into(),
            repo: "/srv/<script>alert(1)</script>".into(),
            default_branch: "main".into(),
            webhook_secret: None,
        })
        .await?;

    let home = http.get("/", Some(&token)).await?;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains(">demo</a>"));
    assert!(home.body.contains(&format!("href=\"/runs/{}\"", run.id)));
    assert!(home.body.contains("data-status=\"queued\""));
    assert!(home.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!home.body.contains("<script>alert(1)"), "text is escaped");
    assert!(
        home.header(header::CONTENT_SECURITY_POLICY)
            .contains("script-src 'self'")
    );
    assert!(
        !home.body.contains("ferry_session"),
        "the token never appears in a page"
    );

    let runs = http.get("/runs", Some(&token)).await?;
    assert!(runs.body.contains(&format!("id=\"run-{}\"", run.id)));
    assert!(runs.body.contains(&run.sha[..8]));
    assert!(runs.body.contains(">manual<"));
    assert!(runs.body.contains(">main<"));

    let project = http.get("/projects/demo", Some(&token)).await?;
    assert!(project.body.contains(&format!("id=\"run-{}\"", run.id)));
    assert!(
        !project.body.contains("Run pipeline"),
        "a viewer cannot start runs"
    );

    let page = http.get(&format!("/runs/{}", run.id), Some(&token)).await?;
    assert_eq!(page.status, StatusCode::OK);
    for job in ["build", "lint", "test"] {
        assert!(
            page.body.contains(&format!("aria-label=\"{job}: queued\"")),
            "{job} in the graph"
        );
    }
    assert_eq!(
        page.body.matches("<path class=\"edge\"").count(),
        2,
        "test needs build and lint"
    );
    assert!(
        page.body.contains("\"Compile\"") && page.body.contains("\"Package\""),
        "step names"
    );
    assert!(
        !page.body.contains("id=\"rerun-form\""),
        "a viewer gets no buttons"
    );

    let missing = http.get("/runs/999999", Some(&token)).await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_need_a_developer_and_the_form_token() -> TestResult {
    let server = Server::start(0).await?;
    let http = Http::new(&server.base);
    let viewer = server.token("reader", Role::Viewer).await?;
    let developer = server.token("dev", Role::Developer).await?;
    server.project("demo", PIPELINE).await?;
    let run = server.trigger("demo").await?;
    let cancel = format!("/ui/runs/{}/cancel", run.id);

    let denied = http.post(&cancel, Some(&viewer), "csrf=whatever").await?;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(denied.body.contains("needs the `developer` role"));

    let forged = http.post(&cancel, Some(&developer), "csrf=forged").await?;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let page = http
        .get(&format!("/runs/{}", run.id), Some(&developer))
        .await?;
    let csrf = csrf_of(&page.body).ok_or("the run page has a form token")?;
    let done = http
        .post(&cancel, Some(&developer), &format!("csrf={csrf}"))
        .await?;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.header(header::LOCATION), format!("/runs/{}", run.id));
    let store = server.store().clone();
    eventually(Duration::from_secs(10), "the run to be cancelled", || {
        let store = store.clone();
        async move {
            Ok(store.get_run(run.id).await?.map(|r| r.status) == Some(RunStatus::Cancelled))
        }
    })
    .await?;

    let again = http
        .post(&cancel, Some(&developer), &format!("csrf={csrf}"))
        .await?;
    assert!(
        again.status.is_client_error(),
        "cancelling an ended run is refused, not an error page 500: {}",
        again.status
    );

    let rerun = http
        .post(
            &format!("/ui/runs/{}/rerun", run.id),
            Some(&developer),
            &format!("csrf={csrf}&failed_only=true"),
        )
        .await?;
    assert_eq!(rerun.status, StatusCode::SEE_OTHER, "{}", rerun.body);
    assert!(rerun.header(header::LOCATION).starts_with("/runs/"));

    // Approving is an operator's decision, in the UI as in the API.
    let approve = http
        .post(
            &format!("/ui/runs/{}/approve", run.id),
            Some(&developer),
            &format!("csrf={csrf}&job=build"),
        )
        .await?;
    assert_eq!(approve.status, StatusCode::FORBIDDEN, "{}", approve.body);
    assert!(
        approve.body.contains("needs the `operator` role"),
        "{}",
        approve.body
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stream_sends_the_state_then_log_lines_as_they_are_stored() -> TestResult {
    let server = Server::start(0).await?;
    let http = Http::new(&server.base);
    server.project("demo", PIPELINE).await?;
    let run = server.trigger("demo").await?;
    let store = server.store().clone();
    // Play an agent: take `build`, print, and finish it.
    let claimed = store
        .claim_job("fake-agent", &[], Duration::from_secs(60))
        .await?
        .ok_or("a job to claim")?;
    let job = claimed.job.name.clone();
    store
        .append_log(run.id, &job, 0, vec!["first line".into()])
        .await?;

    let response = http
        .send(
            "GET",
            &format!("/ui/runs/{}/stream", run.id),
            Some(&server.admin),
            None,
        )
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()?
            .starts_with("text/event-stream")
    );
    let mut body = response.into_body().into_data_stream();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "event: state").await?;
    read_until(&mut body, &mut seen, "first line").await?;
    store
        .append_log(run.id, &job, 1, vec!["second <line>".into()])
        .await?;
    read_until(&mut body, &mut seen, "second <line>").await?;
    store
        .finish_job(
            &claimed.lease,
            &JobOutcome {
                result: JobResult::Success,
                reason: None,
            },
        )
        .await?;
    read_until(&mut body, &mut seen, "\"status\":\"success\"").await?;
    assert!(seen.contains("event: log"));
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_page_filters_by_project_and_agents_page_lists_agents() -> TestResult {
    let server = Server::start(0).await?;
    let http = Http::new(&server.base);
    server.project("alpha", PIPELINE).await?;
    server.project("beta", PIPELINE).await?;
    server
        .store()
        .agent_seen("agent-7", "builder-7", &["linux".into(), "docker".into()])
        .await?;

    let all = http.get("/events", Some(&server.admin)).await?;
    assert!(all.body.contains("href=\"/projects/alpha\">alpha</a>"));
    assert!(all.body.contains("href=\"/projects/beta\">beta</a>"));
    let newest = all.body.find("agent.registered").ok_or("agent event")?;
    let oldest = all.body.find("project.added").ok_or("project event")?;
    assert!(newest < oldest, "newest first");

    let alpha = http
        .get("/events?project=alpha", Some(&server.admin))
        .await?;
    assert!(alpha.body.contains("href=\"/projects/alpha\">alpha</a>"));
    assert!(!alpha.body.contains("href=\"/projects/beta\">beta</a>"));
    assert!(
        alpha
            .body
            .contains("data-stream-events=\"/ui/events/stream?after=")
    );

    let agents = http.get("/agents", Some(&server.admin)).await?;
    assert!(agents.body.contains("builder-7"));
    assert!(agents.body.contains("connected"));
    assert!(agents.body.contains(">docker<"));
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_embedded_and_cached_for_a_year() -> TestResult {
    let server = Server::start(0).await?;
    let http = Http::new(&server.base);
    let page = http.get("/login", None).await?;
    let at = page
        .body
        .find("/ui/assets/ui.css?v=")
        .ok_or("the page links the stylesheet")?;
    let url: String = page.body[at..].chars().take_while(|c| *c != '"').collect();
    let css = http.get(&url, None).await?;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.header(header::CACHE_CONTROL).contains("immutable"));
    assert!(css.header(header::CONTENT_TYPE).starts_with("text/css"));
    assert!(css.body.contains("prefers-color-scheme: dark"));
    let js = http.get("/ui/assets/ui.js", None).await?;
    assert!(
        js.header(header::CONTENT_TYPE)
            .starts_with("text/javascript")
    );
    let missing = http.get("/ui/assets/nope.js", None).await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    server.stop().await;
    Ok(())
}

/// Reads the stream until `seen` holds `needle` (10 s at most).
async fn read_until(
    body: &mut axum::body::BodyDataStream,
    seen: &mut String,
    needle: &str,
) -> TestResult {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .map_err(|_| format!("no `{needle}` in the stream; got:\n{seen}"))?
            .ok_or("the stream ended")??;
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    Ok(())
}
