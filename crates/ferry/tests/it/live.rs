//! Live streams through the CLI: `ferry logs -f` while a job prints, `ferry events
//! --follow` while a run goes by, and a server on PostgreSQL.

use crate::harness::{ServerProc, add_project, trigger, wait_finished};
use crate::support::Repo;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TICKING: &str = r#"
on: [manual]
jobs:
  tick:
    steps:
      - run: for i in 1 2 3; do echo "tick $i"; sleep 1; done
  fail:
    needs: tick
    steps:
      - run: echo "failing now" && exit 4
"#;

/// Reads a child's stdout lines into a channel.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn logs_follow_prints_lines_as_they_come_and_events_follow_sees_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &[]);
    let token = server.token.clone().expect("admin token");
    let repo = Repo::new(&[("ferry.yml", TICKING)]);
    add_project(&server, &token, "ticking", repo.path());

    let mut events = server
        .cli(&token)
        .args(["events", "--follow", "--project", "ticking"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ferry events --follow starts");
    let event_lines = lines_of(&mut events);

    let id = trigger(&server, &token, "ticking");
    let mut logs = server
        .cli(&token)
        .args(["logs", &id.to_string(), "-f"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ferry logs -f starts");
    let log_lines = lines_of(&mut logs);
    // The first line arrives while the job still runs (it takes 3 s).
    let first = log_lines
        .recv_timeout(Duration::from_secs(30))
        .expect("a live line");
    assert_eq!(first, "tick │ tick 1");
    let run_now = crate::harness::run_detail(&server, &token, id);
    assert_eq!(
        run_now["run"]["status"], "running",
        "the line came before the end"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = logs.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "ferry logs -f did not end with the run"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let rest: Vec<String> = log_lines.try_iter().collect();
    assert!(
        rest.starts_with(&[
            "tick │ tick 2".to_string(),
            "tick │ tick 3".to_string(),
            "fail │ failing now".to_string()
        ]),
        "lines in order: {rest:#?}"
    );
    assert_eq!(
        status.code(),
        Some(1),
        "the run failed, so following it exits 1"
    );

    let detail = wait_finished(&server, &token, id, Duration::from_secs(30));
    assert_eq!(detail["run"]["status"], "failure");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("run.finished")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match event_lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no run.finished among the followed events: {seen:#?}"),
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    let text = seen.join("\n");
    for kind in ["run.queued", "job.started", "job.finished"] {
        assert!(text.contains(kind), "{kind} not followed:\n{text}");
    }
    assert!(text.contains(&format!("run={id}")), "{text}");
}

#[test]
fn serve_keeps_its_state_in_postgres_with_database_url() {
    let admin_url = std::env::var("FERRY_TEST_DATABASE_URL").expect(
        "FERRY_TEST_DATABASE_URL is not set: this test needs PostgreSQL; `cargo xtask test` starts one and sets it",
    );
    let name = format!("ferry_cli_{}", std::process::id());
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([admin_url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .output()
            .expect("this test needs `psql`");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(&format!("DROP DATABASE IF EXISTS {name}"));
    psql(&format!("CREATE DATABASE {name}"));
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("the URL names a database");
    let url = format!("{base}/{name}");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let server = ServerProc::start(&data, &["--database-url", &url]);
        let token = server
            .token
            .clone()
            .expect("admin token on the first start");
        let repo = Repo::new(&[("ferry.yml", crate::server::PIPELINE)]);
        add_project(&server, &token, "pg", repo.path());
        let id = trigger(&server, &token, "pg");
        let detail = wait_finished(&server, &token, id, Duration::from_secs(60));
        assert_eq!(detail["run"]["status"], "success", "{detail:#}");
        assert!(
            !data.join("ferry.db").exists(),
            "no SQLite file beside PostgreSQL"
        );
    }
    // A fresh data directory on the same database sees the same state.
    let other = dir.path().join("other");
    {
        let server = ServerProc::start(&other, &["--database-url", &url]);
        assert_eq!(server.token, None, "the tokens are in PostgreSQL already");
    }
    psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}
