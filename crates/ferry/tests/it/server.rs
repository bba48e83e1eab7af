//! `ferry serve` and the client commands, end to end: a real server process on a free
//! loopback port, driven through the CLI.

use crate::harness::{ServerProc, add_project, job, json, trigger, wait_finished};
use crate::support::{Repo, ferry, output, stderr, stdout};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// Two jobs, the second needing the first; manual runs allowed.
pub const PIPELINE: &str = r#"
name: demo
on: [push, manual]
jobs:
  build:
    steps:
      - name: Say hello
        run: echo "hello from ferry" && echo "second line"
  test:
    needs: build
    steps:
      - run: echo "tested on $FERRY_BRANCH"
"#;

#[test]
fn serve_prints_the_admin_token_once_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProc::start(&data, &[]);
    let token = server
        .token
        .clone()
        .expect("the first start prints an admin token");
    assert!(token.starts_with("ferry_"), "{token}");
    // The token works…
    let out = output(server.cli(&token).args(["token", "list"]));
    assert!(out.status.success());
    assert!(stdout(&out).contains("admin"));
    let status = server.signal_and_wait(Signal::SIGTERM, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean stop");
    // …and nothing on disk holds it in clear.
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "{} holds the token in clear",
                path.display()
            );
        }
    }
    let again = ServerProc::start(&data, &[]);
    assert_eq!(again.token, None, "a second start shows no token");
    let printed = again.lines.lock().unwrap().join("\n");
    assert!(!printed.contains("ferry_"), "{printed}");
}

#[test]
fn client_commands_take_a_project_from_add_to_a_green_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &[]);
    let token = server.token.clone().expect("admin token");
    let repo = Repo::new(&[("ferry.yml", PIPELINE)]);

    // project add / list / show
    let out = output(
        server
            .cli(&token)
            .args(["project", "add", "demo", "--repo"])
            .arg(repo.path()),
    );
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("Project `demo` added"),
        "{}",
        stdout(&out)
    );
    let out = output(server.cli(&token).args(["project", "list"]));
    assert!(out.status.success());
    let list = stdout(&out);
    assert!(list.starts_with("NAME"), "{list}");
    assert!(list.contains("demo") && list.contains("main"), "{list}");
    let shown = json(server.cli(&token).args(["project", "show", "demo"]));
    assert_eq!(shown["name"], "demo");
    assert_eq!(shown["default_branch"], "main");
    // Adding it twice is the user's mistake: exit 2 with the server's words.
    let out = output(
        server
            .cli(&token)
            .args(["project", "add", "demo", "--repo"])
            .arg(repo.path()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("demo"), "{}", stderr(&out));

    // trigger → runs → runs show
    let id = trigger(&server, &token, "demo");
    let out = output(server.cli(&token).arg("runs"));
    assert!(out.status.success());
    let runs = stdout(&out);
    assert!(
        runs.lines()
            .any(|l| l.starts_with(&format!("{id} ")) && l.contains("demo")),
        "run {id} not listed:\n{runs}"
    );
    let detail = wait_finished(&server, &token, id, Duration::from_secs(60));
    assert_eq!(detail["run"]["status"], "success", "{detail:#}");
    assert_eq!(job(&detail, "build")["status"], "success");
    assert_eq!(job(&detail, "test")["status"], "success");
    let out = output(server.cli(&token).args(["runs", "show", &id.to_string()]));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains(&format!("Run {id} of `demo`: success")),
        "{text}"
    );
    assert!(text.contains("build") && text.contains("test"), "{text}");

    // logs, whole run and one job
    let out = output(server.cli(&token).args(["logs", &id.to_string()]));
    assert!(out.status.success());
    let logs = stdout(&out);
    assert!(logs.contains("build │ hello from ferry"), "{logs}");
    assert!(logs.contains("build │ second line"), "{logs}");
    assert!(logs.contains("test │ tested on main"), "{logs}");
    let out = output(
        server
            .cli(&token)
            .args(["logs", &id.to_string(), "--job", "test"]),
    );
    assert!(out.status.success());
    assert!(
        stdout(&out).lines().any(|l| l == "tested on main"),
        "{}",
        stdout(&out)
    );
    // Following a finished run prints it all and ends.
    let out = output(server.cli(&token).args(["logs", &id.to_string(), "-f"]));
    assert!(out.status.success());
    assert!(stdout(&out).contains("hello from ferry"));

    // events
    let out = output(server.cli(&token).args(["events", "--project", "demo"]));
    assert!(out.status.success());
    let events = stdout(&out);
    for kind in ["project.added", "run.queued", "job.started", "run.finished"] {
        assert!(events.contains(kind), "no {kind} in:\n{events}");
    }
    let events = json(server.cli(&token).args(["events", "--since", "1h"]));
    assert!(events.as_array().is_some_and(|e| !e.is_empty()));

    // rerun, then rm
    let rerun = json(server.cli(&token).args(["rerun", &id.to_string()]));
    let rerun_id = rerun["id"].as_i64().expect("rerun id");
    assert_ne!(rerun_id, id);
    let detail = wait_finished(&server, &token, rerun_id, Duration::from_secs(60));
    assert_eq!(detail["run"]["status"], "success");
    let out = output(server.cli(&token).args(["project", "rm", "demo"]));
    assert!(out.status.success());
    let out = output(server.cli(&token).args(["project", "show", "demo"]));
    assert_eq!(out.status.code(), Some(2), "a removed project is not found");
    assert!(stderr(&out).contains("demo"));
}

#[test]
fn a_revoked_token_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &[]);
    let admin = server.token.clone().expect("admin token");
    let created = json(
        server
            .cli(&admin)
            .args(["token", "create", "--name", "ci-bot", "--role", "viewer"]),
    );
    let token = created["token"].as_str().expect("the token").to_string();
    let id = created["info"]["id"].as_i64().expect("token id");
    let out = output(server.cli(&token).arg("runs"));
    assert!(out.status.success(), "a fresh viewer token can list runs");
    // A viewer may not create tokens.
    let out = output(server.cli(&token).args(["token", "create", "--name", "x"]));
    assert_eq!(out.status.code(), Some(2));

    let out = output(
        server
            .cli(&admin)
            .args(["token", "revoke", &id.to_string()]),
    );
    assert!(out.status.success());
    let out = output(server.cli(&token).arg("runs"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("error:"), "{err}");
    assert!(err.contains("hint:"), "no hint for a refused token: {err}");
    let listed = output(server.cli(&admin).args(["token", "list"]));
    let line = stdout(&listed)
        .lines()
        .find(|l| l.contains("ci-bot"))
        .map(str::to_string)
        .expect("the revoked token is listed");
    assert!(
        line.trim_end().ends_with("ago"),
        "revocation time missing: {line}"
    );
}

#[test]
fn client_commands_say_when_the_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens there.
    let out = output(ferry(dir.path()).args([
        "runs",
        "--server",
        "http://127.0.0.1:1",
        "--token",
        "ferry_x",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach the Ferry server at http://127.0.0.1:1/"),
        "{err}"
    );
    // Why, from the transport, then what to check.
    assert!(err.contains("Connection refused"), "{err}");
    assert!(err.contains("is `ferry serve` running?"), "{err}");
}

#[test]
fn serve_rejects_an_unknown_config_key_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.yml");
    std::fs::write(&config, "listen: 127.0.0.1:0\nexecutor-job: 2\n").unwrap();
    let out = output(ferry(dir.path()).arg("serve").arg("--config").arg(&config));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("server.yml:2:1"), "{err}");
    assert!(
        err.contains("unknown key `executor-job` — did you mean `executor-jobs`?"),
        "{err}"
    );
}

#[test]
fn sigterm_drains_gracefully_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProc::start(&dir.path().join("data"), &[]);
    let token = server.token.clone().expect("admin token");
    let repo = Repo::new(&[(
        "ferry.yml",
        "on: [manual]\njobs:\n  slow:\n    steps:\n      - run: echo started && sleep 2 && echo done\n",
    )]);
    add_project(&server, &token, "slow", repo.path());
    let id = trigger(&server, &token, "slow");
    crate::harness::wait_until(
        &server,
        &token,
        id,
        Duration::from_secs(30),
        "the job to start",
        |d| d["run"]["status"] == "running",
    );
    let started = Instant::now();
    let status = server.signal_and_wait(Signal::SIGTERM, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log_text());
    assert!(started.elapsed() < Duration::from_secs(25));
    let log = server.log_text();
    assert!(log.contains("Shutting down"), "{log}");
}

#[test]
fn a_push_to_a_bare_repository_with_the_hook_starts_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &[]);
    let token = server.token.clone().expect("admin token");
    let work = Repo::new(&[("ferry.yml", PIPELINE)]);
    let bare = dir.path().join("app.git");
    let status = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(work.path())
        .arg(&bare)
        .status()
        .unwrap();
    assert!(status.success());
    add_project(&server, &token, "pushed", &bare);
    let out = output(
        server
            .cli(&token)
            .args(["hook", "install", "--project", "pushed"])
            .arg(&bare),
    );
    assert!(out.status.success());
    assert!(stdout(&out).contains("every push to"), "{}", stdout(&out));
    let token_file = bare.join("hooks/ferry-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let hook_text = std::fs::read_to_string(bare.join("hooks/post-receive")).unwrap();
    assert!(
        !hook_text.contains("ferry_"),
        "the hook script holds no token"
    );

    std::fs::write(work.path().join("README"), "pushed\n").unwrap();
    work.commit_all("a change");
    work.git(&["push", "-q", bare.to_str().expect("UTF-8 path"), "main"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let runs = loop {
        let runs = json(server.cli(&token).args(["runs", "--project", "pushed"]));
        if runs.as_array().is_some_and(|r| !r.is_empty()) {
            break runs;
        }
        assert!(Instant::now() < deadline, "the push started no run");
        std::thread::sleep(Duration::from_millis(200));
    };
    let head = std::process::Command::new("git")
        .arg("-C")
        .arg(work.path())
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert_eq!(
        runs[0]["sha"],
        head.as_str(),
        "the run is pinned to the pushed commit: {runs:#}"
    );
    assert_eq!(runs[0]["branch"], "main", "{runs:#}");
    let id = runs[0]["id"].as_i64().unwrap();
    let detail = wait_finished(&server, &token, id, Duration::from_secs(60));
    assert_eq!(detail["run"]["status"], "success", "{detail:#}");
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _first = ServerProc::start(&data, &[]);
    let out = output(ferry(&data).args(["serve", "--listen", "127.0.0.1:0"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("another Ferry server"), "{err}");
    assert!(err.contains(&data.display().to_string()), "{err}");
}

#[test]
fn metrics_answer_without_a_token_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let open = ServerProc::start(&dir.path().join("open"), &[]);
    let head = crate::harness::http_head(&format!("{}/metrics", open.url));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let closed = ServerProc::start(&dir.path().join("closed"), &["--metrics-public", "false"]);
    let head = crate::harness::http_head(&format!("{}/metrics", closed.url));
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let head = crate::harness::http_head(&format!("{}/api/v1/projects", closed.url));
    assert!(
        head.starts_with("HTTP/1.1 401"),
        "the API needs a token: {head}"
    );
}

const GATED: &str = r#"
on: [manual]
jobs:
  build:
    steps:
      - run: echo built
  flaky:
    needs: build
    steps:
      - run: test -f /nonexistent-ferry-marker
  deploy:
    needs: build
    approval:
      message: Ship it?
    steps:
      - run: echo deployed
"#;

#[test]
fn approve_cancel_rerun_and_trigger_wait_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &[]);
    let token = server.token.clone().expect("admin token");
    let repo = Repo::new(&[("ferry.yml", GATED)]);
    add_project(&server, &token, "gated", repo.path());

    // `trigger --wait` follows the run to its end; `deploy` waits for approval.
    let id = trigger(&server, &token, "gated");
    crate::harness::wait_until(
        &server,
        &token,
        id,
        Duration::from_secs(60),
        "deploy to wait",
        |d| job(d, "deploy")["status"] == "waiting_approval",
    );
    let out = output(
        server
            .cli(&token)
            .args(["approve", &id.to_string(), "deploy"]),
    );
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("Job `deploy` of run"),
        "{}",
        stdout(&out)
    );
    let detail = wait_finished(&server, &token, id, Duration::from_secs(60));
    assert_eq!(
        detail["run"]["status"], "failure",
        "`flaky` fails the run: {detail:#}"
    );
    assert_eq!(job(&detail, "deploy")["status"], "success");
    // Approving it again is the user's mistake.
    let out = output(
        server
            .cli(&token)
            .args(["approve", &id.to_string(), "deploy"]),
    );
    assert_eq!(out.status.code(), Some(2));

    // `rerun --failed` runs `flaky` again and reuses the rest.
    let rerun = json(
        server
            .cli(&token)
            .args(["rerun", &id.to_string(), "--failed"]),
    );
    let rerun_id = rerun["id"].as_i64().expect("rerun id");
    let detail = wait_finished(&server, &token, rerun_id, Duration::from_secs(60));
    assert_eq!(job(&detail, "flaky")["status"], "failure");
    assert_eq!(job(&detail, "flaky")["attempt"], 1);
    assert_eq!(job(&detail, "build")["status"], "success");

    // `trigger --wait` exits 1 for a failed run; `cancel` stops one waiting for approval.
    let broken = Repo::new(&[(
        "ferry.yml",
        "on: [manual]\njobs:\n  x:\n    steps:\n      - run: exit 3\n",
    )]);
    add_project(&server, &token, "broken", broken.path());
    let out = output(server.cli(&token).args(["trigger", "broken", "--wait"]));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed run fails `trigger --wait`"
    );
    assert!(stdout(&out).contains("failure"), "{}", stdout(&out));
    let id = trigger(&server, &token, "gated");
    crate::harness::wait_until(
        &server,
        &token,
        id,
        Duration::from_secs(60),
        "deploy to wait",
        |d| job(d, "deploy")["status"] == "waiting_approval",
    );
    let out = output(server.cli(&token).args(["cancel", &id.to_string()]));
    assert!(out.status.success());
    let detail = wait_finished(&server, &token, id, Duration::from_secs(30));
    assert_eq!(detail["run"]["status"], "cancelled", "{detail:#}");
}

#[test]
fn the_config_file_sits_under_variables_and_its_poll_interval_starts_push_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Read from the data directory by default; its `listen` (port 1) loses to
    // FERRY_LISTEN, its other keys apply.
    std::fs::write(
        data.join("ferry-server.yml"),
        "listen: 127.0.0.1:1\npoll-interval: 1s\nexecutor-jobs: 1\n",
    )
    .unwrap();
    let mut cmd = ferry(&data);
    cmd.arg("serve").env("FERRY_LISTEN", "127.0.0.1:0");
    let server = ServerProc::spawn(
        cmd,
        &data,
        "Ferry is listening on ",
        "Ferry is listening on ",
    );
    assert_ne!(server.port(), 1);
    let token = server.token.clone().expect("admin token");
    let repo = Repo::new(&[("ferry.yml", PIPELINE)]);
    add_project(&server, &token, "polled", repo.path());
    // The first poll only clones; a commit after it is a push.
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(repo.path().join("CHANGELOG"), "polled\n").unwrap();
    repo.commit_all("a change the poller finds");
    let deadline = Instant::now() + Duration::from_secs(30);
    let runs = loop {
        let runs = json(server.cli(&token).args(["runs", "--project", "polled"]));
        if runs.as_array().is_some_and(|r| !r.is_empty()) {
            break runs;
        }
        assert!(Instant::now() < deadline, "the poller started no run");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(runs[0]["trigger"], "push", "{runs:#}");
    assert_eq!(runs[0]["branch"], "main", "{runs:#}");
}
