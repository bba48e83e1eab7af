//! The web UI in headless Chromium, driven over WebDriver: sign in, start a run, watch
//! it turn green without a reload, read and search its logs, and re-run it.
//!
//! Needs `chromium` and `chromedriver` on the PATH (`cargo xtask test` installs them);
//! without them the test fails and says so.

use crate::support::{PIPELINE, Server, TestResult};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tempfile::TempDir;
use tokio::process::{Child, Command};

const MISSING: &str = "the web UI test drives headless Chromium and needs `chromium` and \
    `chromedriver` on the PATH: run `cargo xtask test`, which installs them (on Debian: \
    apt-get install chromium chromium-driver)";

/// The first of `names` found on the PATH.
fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver on a free port and one Chromium session through it.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    pub(crate) async fn start() -> TestResult<Browser> {
        let driver_bin = which(&["chromedriver"]).ok_or(MISSING)?;
        let chromium = which(&["chromium", "chromium-browser", "google-chrome"]).ok_or(MISSING)?;
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.port()
        };
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}; {MISSING}", driver_bin.display()))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if tokio::time::Instant::now() > deadline {
                return Err("chromedriver did not listen within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir()?;
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            return Err("capabilities are an object".into());
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| format!("cannot start a Chromium session ({e}); {MISSING}"))?;
        Ok(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    pub(crate) async fn close(self) {
        let Browser {
            client, mut driver, ..
        } = self;
        let _ = client.close().await;
        let _ = driver.kill().await;
    }
}

/// Runs `script` in the page and returns its value.
pub(crate) async fn js(client: &Client, script: &str) -> TestResult<Value> {
    Ok(client.execute(script, Vec::new()).await?)
}

/// Polls `script` every 100 ms until it returns `true`.
pub(crate) async fn wait_js(
    client: &Client,
    script: &str,
    limit: Duration,
    what: &str,
) -> TestResult {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if js(client, script).await? == Value::Bool(true) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let status = js(
                client,
                "return document.body ? document.body.innerText.slice(0, 1500) : ''",
            )
            .await?;
            return Err(
                format!("timed out after {limit:?} waiting for {what}; page:\n{status}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The run id of the page shown, if it is a run page (`/runs/N`).
async fn shown_run(client: &Client) -> TestResult<Option<i64>> {
    let url = client.current_url().await?;
    Ok(url
        .path()
        .strip_prefix("/runs/")
        .and_then(|id| id.parse().ok()))
}

/// Where the run page's screenshot goes: the test's scratch directory, or with
/// `FERRY_UPDATE_SCREENSHOTS=1` the one the docs show (so a test run leaves the
/// repository as it was unless asked).
fn screenshot_path() -> PathBuf {
    if std::env::var_os("FERRY_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots/run-page.png")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("run-page.png")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_page_turns_green_live_and_reruns_in_chromium() -> TestResult {
    let server = Server::start(2).await?;
    server.project("demo", PIPELINE).await?;
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(e) => {
            server.stop().await;
            return Err(e);
        }
    };
    let result = scenario(&server, &browser.client).await;
    browser.close().await;
    server.stop().await;
    result
}

async fn scenario(server: &Server, c: &Client) -> TestResult {
    let base = &server.base;

    // Signing in: the page asks for a token once and goes where the person was headed.
    c.goto(&format!("{base}/")).await?;
    assert_eq!(c.current_url().await?.path(), "/login");
    c.find(Locator::Id("token"))
        .await?
        .send_keys(&server.admin)
        .await?;
    c.find(Locator::Css("form[action='/login'] button[type=submit]"))
        .await?
        .click()
        .await?;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("a[href='/projects/demo']"))
        .await?
        .click()
        .await?;

    // Start a run from the project page; the browser lands on the run page.
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("form[action$='/trigger'] button"))
        .await?
        .click()
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let run_id = loop {
        if let Some(id) = shown_run(c).await? {
            break id;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the run page did not open".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#run-status .badge"))
        .await?;
    js(c, "window.ferryMarker = 'no reload'; return true").await?;

    // Live: running first, then green, with no reload.
    let badge = "document.querySelector('#run-status .badge').dataset.status";
    wait_js(
        c,
        &format!("return {badge} === 'running'"),
        Duration::from_secs(30),
        "the run to show running",
    )
    .await?;
    wait_js(
        c,
        &format!("return {badge} === 'success'"),
        Duration::from_secs(60),
        "the run to turn green",
    )
    .await?;
    assert_eq!(
        js(c, "return window.ferryMarker").await?,
        json!("no reload"),
        "the page updated itself without reloading"
    );
    let classes = js(
        c,
        "return Array.from(document.querySelectorAll('svg.graph a.node')).map(n => n.getAttribute('class'))",
    )
    .await?;
    assert_eq!(
        classes.as_array().map(|a| a
            .iter()
            .filter(|c| c.as_str().is_some_and(|c| c.contains("s-ok")))
            .count()),
        Some(3),
        "every job is green in the graph: {classes}"
    );
    assert!(
        c.find(Locator::Id("rerun-all"))
            .await?
            .is_displayed()
            .await?,
        "the re-run button appears once the run ended"
    );

    // Logs: open `build` from the graph, see its lines, search them.
    c.find(Locator::Css("svg.graph a.node[data-job='build']"))
        .await?
        .click()
        .await?;
    let lines = "Array.from(document.querySelectorAll('.log-pane[data-job=\"build\"] .l')).filter(l => l.offsetParent !== null).map(l => l.querySelector('.t').textContent)";
    wait_js(
        c,
        &format!("return {lines}.includes('package ready')"),
        Duration::from_secs(10),
        "the build log",
    )
    .await?;
    let all = js(c, &format!("return {lines}")).await?;
    for want in [
        "compiling the widget",
        "packing part 1",
        "packing part 2",
        "package ready",
    ] {
        assert!(
            all.as_array().is_some_and(|a| a.contains(&json!(want))),
            "log line `{want}` shown: {all}"
        );
    }
    let search = c.find(Locator::Id("log-search")).await?;
    search.send_keys("PACKING").await?;
    wait_js(
        c,
        &format!("return {lines}.length === 2"),
        Duration::from_secs(5),
        "the search to filter the log",
    )
    .await?;
    assert_eq!(
        js(c, &format!("return {lines}")).await?,
        json!(["packing part 1", "packing part 2"])
    );
    assert_eq!(
        js(
            c,
            "return document.querySelectorAll('.log-pane[data-job=\"build\"] mark').length"
        )
        .await?,
        json!(2),
        "matches are highlighted"
    );
    search.send_keys("\u{e00c}").await?; // Escape clears the search.
    wait_js(
        c,
        &format!(
            "return {lines}.length === {}",
            all.as_array().map_or(0, Vec::len)
        ),
        Duration::from_secs(5),
        "every line to come back",
    )
    .await?;

    // Keyboard: `]` and `[` move between jobs.
    js(
        c,
        "document.activeElement && document.activeElement.blur(); return true",
    )
    .await?;
    let selected = "document.querySelector('#log-job').value";
    let before = js(c, &format!("return {selected}")).await?;
    c.find(Locator::Css("body")).await?.send_keys("]").await?;
    let after = js(c, &format!("return {selected}")).await?;
    assert_ne!(before, after, "`]` selects the next job");
    c.find(Locator::Css("body")).await?.send_keys("[").await?;
    assert_eq!(js(c, &format!("return {selected}")).await?, before);

    js(c, "window.scrollTo(0, 0); return true").await?;
    let png = c.screenshot().await?;
    let path = screenshot_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, &png)?;

    // Re-run: a new run starts and its page opens.
    c.find(Locator::Id("rerun-all")).await?.click().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let new_id = loop {
        match shown_run(c).await? {
            Some(id) if id != run_id => break id,
            _ => {}
        }
        if tokio::time::Instant::now() > deadline {
            return Err("re-running did not open a new run".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(new_id > run_id);
    assert_eq!(
        js(c, "return window.ferryMarker === undefined").await?,
        json!(true)
    );
    wait_js(
        c,
        &format!("return {badge} === 'success'"),
        Duration::from_secs(60),
        "the re-run to turn green",
    )
    .await?;
    c.goto(&format!("{base}/runs")).await?;
    for id in [run_id, new_id] {
        c.find(Locator::Id(&format!("run-{id}"))).await?;
    }
    Ok(())
}

/// A job that fails in its second step, beside a job gated by an approval.
const GATED: &str = r#"name: ui-gates
on:
  push:
    branches: [main]
  manual: true
jobs:
  check:
    steps:
      - name: Prepare
        run: echo "preparing"
      - name: Break
        run: |
          echo "about to fail"
          echo "error: the widget is broken"
          exit 3
  deploy:
    approval: true
    steps:
      - name: Ship
        run: echo "shipped"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_by_keyboard_and_jumping_to_the_failed_step_in_chromium() -> TestResult {
    let server = Server::start(2).await?;
    server.project("gates", GATED).await?;
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(e) => {
            server.stop().await;
            return Err(e);
        }
    };
    let result = gated_scenario(&server, &browser.client).await;
    browser.close().await;
    server.stop().await;
    result
}

async fn gated_scenario(server: &Server, c: &Client) -> TestResult {
    let base = &server.base;
    let run = server.trigger("gates").await?;

    // The link `ferry up` prints signs in and lands on the page named by `next`.
    c.goto(&format!(
        "{base}/login?token={}&next=/runs/{}",
        server.admin, run.id
    ))
    .await?;
    wait_js(
        c,
        &format!(
            "return location.pathname === '/runs/{}' && !!document.querySelector('svg.graph')",
            run.id
        ),
        Duration::from_secs(10),
        "the run page after signing in by link",
    )
    .await?;
    assert!(
        !c.current_url().await?.as_str().contains("token="),
        "the token leaves the address bar"
    );

    // `check` fails while `deploy` waits for a person.
    let node = |job: &str| {
        format!(
            "document.querySelector(\"svg.graph a.node[data-job='{job}']\").getAttribute('class')"
        )
    };
    wait_js(
        c,
        &format!("return {}.includes('s-bad')", node("check")),
        Duration::from_secs(30),
        "`check` to turn red",
    )
    .await?;
    let approve = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-approve-job='deploy'] button"))
        .await?;
    assert!(
        approve.is_displayed().await?,
        "the approve button shows while `deploy` waits"
    );
    assert!(
        js(c, &format!("return {}", node("deploy")))
            .await?
            .as_str()
            .is_some_and(|c| c.contains("s-wait"))
    );

    // Jump to the failed step: the `Break` step's header, in view.
    let jump = c.find(Locator::Id("jump-failed")).await?;
    assert!(jump.is_displayed().await?, "offered for the failed job");
    jump.click().await?;
    assert_eq!(
        js(c, "const s = document.querySelector('.log-pane:not([hidden]) .step.failed'); return s && s.textContent").await?,
        json!("▸ Break")
    );
    assert_eq!(
        js(c, "return document.querySelector('#log-follow').checked").await?,
        json!(false)
    );

    // Approve with the keyboard alone: focus the button, press Enter.
    js(
        c,
        "document.querySelector(\"[data-approve-job='deploy'] button\").focus(); return true",
    )
    .await?;
    approve.send_keys("\u{e007}").await?;
    wait_js(
        c,
        &format!("return {}.includes('s-ok')", node("deploy")),
        Duration::from_secs(30),
        "`deploy` to run after the approval",
    )
    .await?;
    wait_js(
        c,
        "return document.querySelector('#run-status .badge').dataset.status === 'failure'",
        Duration::from_secs(30),
        "the run to end failed",
    )
    .await?;
    assert!(
        c.find(Locator::Id("rerun-failed"))
            .await?
            .is_displayed()
            .await?,
        "a failed run offers re-running only its failed jobs"
    );
    let granted = server
        .store()
        .list_events(&ferry_store::db::EventQuery {
            run_id: Some(run.id),
            ..Default::default()
        })
        .await?;
    assert!(
        granted
            .iter()
            .any(|e| e.kind == ferry_types::EventKind::ApprovalGranted
                && e.data.get("by").and_then(|b| b.as_str()) == Some("ui:ui-admin")),
        "the event log says who approved"
    );
    Ok(())
}
