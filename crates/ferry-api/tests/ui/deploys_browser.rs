//! The services, service and deploy pages in headless Chromium: roll `production` back
//! from the service page through the confirmation dialog, and watch a deploy and the
//! service page follow a deploy to its end without a reload.
//!
//! Needs `chromium` and `chromedriver` on the PATH (`cargo xtask test` installs them);
//! without them the test fails and says so.

use crate::browser::{Browser, js, wait_js};
use crate::deploys::{Seeded, waiting_for_approval};
use crate::support::TestResult;
use fantoccini::{Client, Locator};
use ferry_types::Role;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the service page's screenshot goes: the scratch directory, or with
/// `FERRY_UPDATE_SCREENSHOTS=1` the one the docs show.
fn screenshot_path() -> PathBuf {
    if std::env::var_os("FERRY_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots/service-page.png")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("service-page.png")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_from_the_service_page_asks_first_in_chromium() -> TestResult {
    let server = Seeded::start().await?;
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(e) => {
            server.stop().await;
            return Err(e);
        }
    };
    let result = rollback_scenario(&server, &browser.client).await;
    browser.close().await;
    server.stop().await;
    result
}

async fn rollback_scenario(server: &Seeded, c: &Client) -> TestResult {
    let base = &server.base;
    let operator = server.token("ops", Role::Operator).await?;
    c.goto(&format!("{base}/login?token={operator}&next=/services"))
        .await?;
    wait_js(
        c,
        "return location.pathname === '/services' && !!document.querySelector('table.envs')",
        Duration::from_secs(10),
        "the services page after signing in",
    )
    .await?;

    // The services page: production runs v2, deployed by carol.
    let live = js(
        c,
        "return document.querySelector(\"tr[data-env='production'] td.live\").innerText",
    )
    .await?;
    let live = live.as_str().unwrap_or_default();
    assert!(
        live.contains("v2") && live.contains("22222222") && live.contains("carol"),
        "production's live release, commit and deployer: {live:?}"
    );

    // The service page: release history and the rollback button.
    c.find(Locator::Css("a[href='/services/shop']"))
        .await?
        .click()
        .await?;
    let rollback = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("a[data-rollback='production']"))
        .await?;
    assert_eq!(rollback.text().await?, "Roll back to v1");
    let history = js(
        c,
        "return Array.from(document.querySelectorAll('table.releases tbody tr')).map(r => r.dataset.release)",
    )
    .await?;
    assert_eq!(history, json!(["2", "1"]), "releases newest first");
    js(c, "window.scrollTo(0, 0); return true").await?;
    let png = c.screenshot().await?;
    let path = screenshot_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, &png)?;

    // Clicking asks first; keeping v2 changes nothing.
    js(c, "window.ferryMarker = 'no reload'; return true").await?;
    rollback.click().await?;
    wait_js(
        c,
        "const d = document.getElementById('confirm-dialog'); return !!d && d.open",
        Duration::from_secs(10),
        "the confirmation dialog",
    )
    .await?;
    let question = js(
        c,
        "return document.querySelector('#confirm-dialog h1').textContent",
    )
    .await?;
    assert_eq!(question, json!("Roll back production of shop?"));
    std::fs::write(
        screenshot_path().with_file_name("service-rollback.png"),
        c.screenshot().await?,
    )?;
    assert_eq!(
        js(c, "return window.ferryMarker").await?,
        json!("no reload"),
        "the confirmation opens over the page"
    );
    c.find(Locator::Css("#confirm-dialog [data-dismiss]"))
        .await?
        .click()
        .await?;
    wait_js(
        c,
        "return !document.getElementById('confirm-dialog').open",
        Duration::from_secs(5),
        "the dialog to close",
    )
    .await?;
    assert!(
        server.rollbacks().await?.is_empty(),
        "keeping v2 queues nothing"
    );

    // Asking again and confirming queues the rollback and opens its page.
    rollback.click().await?;
    wait_js(
        c,
        "const d = document.getElementById('confirm-dialog'); return d.open && !!d.querySelector('#confirm-submit')",
        Duration::from_secs(10),
        "the confirmation dialog again",
    )
    .await?;
    let submit = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#confirm-dialog #confirm-submit"))
        .await?;
    assert_eq!(submit.text().await?, "Roll back to v1");
    submit.click().await?;
    wait_js(
        c,
        "return location.pathname.startsWith('/deploys/') && !!document.querySelector('#deploy-status')",
        Duration::from_secs(10),
        "the rollback's deploy page",
    )
    .await?;
    let rollbacks = server.rollbacks().await?;
    let [queued] = rollbacks.as_slice() else {
        return Err(format!("one rollback queued: {rollbacks:?}").into());
    };
    assert_eq!(queued.release_id, server.v1.id);
    assert_eq!(queued.requested_by, "ui:ops");
    assert_eq!(
        c.current_url().await?.path(),
        format!("/deploys/{}", queued.id)
    );
    let facts = js(c, "return document.querySelector('dl.facts').innerText").await?;
    let facts = facts.as_str().unwrap_or_default();
    assert!(
        facts.contains("rollback") && facts.contains("v1") && facts.contains("production"),
        "the deploy page names the rollback: {facts:?}"
    );

    // Back on the service page the rollback is listed.
    c.goto(&format!("{base}/services/shop")).await?;
    let row = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id(&format!("deploy-{}", queued.id)))
        .await?;
    let text = row.text().await?;
    assert!(
        text.contains("rollback") && text.contains("v1") && text.contains("ui:ops"),
        "the deploys table lists it: {text:?}"
    );

    // A deploy waiting for approval: its page offers Approve, and follows the deploy
    // live once it is approved elsewhere (v1's tarball is not in the blob store, so
    // the engine fails it in its first phase).
    let gated = waiting_for_approval(server).await?;
    c.goto(&format!("{base}/deploys/{}", gated.id)).await?;
    let approve = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#approve-form button"))
        .await?;
    assert!(approve.is_displayed().await?);
    wait_js(
        c,
        "return document.body.dataset.live === 'on'",
        Duration::from_secs(10),
        "the deploy page's stream to open",
    )
    .await?;
    js(c, "window.ferryMarker = 'no reload'; return true").await?;
    server.store().approve_deploy(gated.id, "cli:erin").await?;
    wait_js(
        c,
        "return document.getElementById('deploy-live').dataset.state === 'failed'",
        Duration::from_secs(30),
        "the approved deploy to run and fail",
    )
    .await?;
    let shown = js(
        c,
        "return { marker: window.ferryMarker, badge: document.querySelector('#deploy-status .badge').dataset.status, \
         reason: (document.querySelector('.callout.reason') || {}).innerText, \
         approved: document.querySelector('dl.facts').innerText.includes('cli:erin'), \
         steps: document.querySelectorAll('table.steps tbody tr').length, \
         approve: !!document.querySelector('#approve-form') }",
    )
    .await?;
    let ended = server.store().deploy(gated.id).await?;
    let reason = ended.reason.clone().unwrap_or_default();
    assert_eq!(shown["marker"], json!("no reload"), "{shown}");
    assert_eq!(shown["badge"], json!("failed"));
    assert!(
        shown["reason"]
            .as_str()
            .is_some_and(|r| !reason.is_empty() && r.contains(&reason)),
        "the page says why, as the store does ({reason:?}): {shown}"
    );
    assert_eq!(shown["approved"], json!(true), "who approved: {shown}");
    let steps = server.store().deploy_steps(gated.id).await?;
    assert_eq!(shown["steps"], json!(steps.len()), "every progress line");
    assert_eq!(
        shown["approve"],
        json!(false),
        "nothing to approve any more"
    );
    js(c, "window.scrollTo(0, 0); return true").await?;
    let png = c.screenshot().await?;
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy-page.png"),
        &png,
    )?;

    // The service page follows its deploys too: a new one appears, then ends, with
    // no reload.
    c.goto(&format!("{base}/services/shop")).await?;
    wait_js(
        c,
        "return document.body.dataset.live === 'on'",
        Duration::from_secs(10),
        "the service page's stream to open",
    )
    .await?;
    js(c, "window.ferryMarker = 'no reload'; return true").await?;
    let third = waiting_for_approval(server).await?;
    let badge = format!("document.querySelector('#deploy-{} .badge')", third.id);
    wait_js(
        c,
        &format!("return !!{badge} && {badge}.dataset.status === 'waiting_approval'"),
        Duration::from_secs(10),
        "the new deploy to appear on the service page",
    )
    .await?;
    server.store().approve_deploy(third.id, "cli:erin").await?;
    wait_js(
        c,
        &format!("return {badge}.dataset.status === 'failed'"),
        Duration::from_secs(30),
        "the deploy to end on the service page",
    )
    .await?;
    assert_eq!(
        js(c, "return window.ferryMarker").await?,
        json!("no reload")
    );
    Ok(())
}
