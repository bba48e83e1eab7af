//! `kill -9` of the server in the middle of runs loses nothing: queued jobs stay
//! queued and run after the restart, a job on a remote agent finishes and reports
//! once the server is back, a job on the built-in executor is marked interrupted and
//! retried, and the log lines written before the crash are kept.

use crate::harness::{
    ServerProc, add_project, agent_token, job, job_log, start_agent, started_by, trigger,
    wait_finished, wait_until,
};
use crate::support::Repo;
use nix::sys::signal::Signal;
use std::time::Duration;

const MIXED: &str = r#"
on: [manual]
jobs:
  remote:
    runs-on: [remote]
    steps:
      - run: echo "remote started" && sleep 6 && echo "remote done"
  local:
    retry: 1
    steps:
      - run: echo "local started" && sleep 4 && echo "local done"
  after:
    needs: [remote, local]
    steps:
      - run: echo "after both"
"#;

#[test]
fn kill_9_of_the_server_loses_no_job_and_no_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProc::start(&data, &["--executor-jobs", "1"]);
    let admin = server.token.clone().expect("admin token");
    let token = agent_token(&server, &admin);
    let repo = Repo::new(&[("ferry.yml", MIXED)]);
    add_project(&server, &admin, "mixed", repo.path());
    let _agent = start_agent(dir.path(), &server.url, &token, "remote-box", "remote", &[]);
    let id = trigger(&server, &admin, "mixed");
    wait_until(
        &server,
        &admin,
        id,
        Duration::from_secs(60),
        "both jobs to print",
        |_| {
            job_log(&server, &admin, id, "remote").contains("remote started")
                && job_log(&server, &admin, id, "local").contains("local started")
        },
    );
    let port = server.port();
    let status = server.signal_and_wait(Signal::SIGKILL, Duration::from_secs(10));
    assert_eq!(status.code(), None, "killed by a signal");

    // The agent's job goes on while the server is down; then the server comes back on
    // the same address.
    std::thread::sleep(Duration::from_secs(1));
    let listen = format!("127.0.0.1:{port}");
    let server = ServerProc::start(&data, &["--executor-jobs", "1", "--listen", &listen]);
    assert_eq!(server.token, None);

    // The job `after` was queued (waiting for its needs) through the crash and runs.
    let detail = wait_finished(&server, &admin, id, Duration::from_secs(90));
    assert_eq!(detail["run"]["status"], "success", "{detail:#}");
    assert_eq!(job(&detail, "after")["status"], "success");
    // The remote job finished on its first attempt and reported after the restart.
    let remote = job(&detail, "remote");
    assert_eq!(remote["status"], "success", "{remote:#}");
    assert_eq!(remote["attempt"], 1, "{remote:#}");
    assert_eq!(started_by(&server, &admin, id, "remote").len(), 1);
    let remote_log = job_log(&server, &admin, id, "remote");
    assert!(
        remote_log.contains("remote started") && remote_log.contains("remote done"),
        "{remote_log}"
    );
    // The built-in job was interrupted and retried per its `retry: 1`.
    let local = job(&detail, "local");
    assert_eq!(local["status"], "success", "{local:#}");
    assert_eq!(local["attempt"], 2, "{local:#}");
    let local_log = job_log(&server, &admin, id, "local");
    assert!(
        local_log.contains("local started"),
        "the log before the crash is kept: {local_log}"
    );
    assert!(local_log.contains("local done"), "{local_log}");
    let events = crate::harness::json(server.cli(&admin).args(["events", "--project", "mixed"]));
    let interrupted = events
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["kind"] == "job.interrupted" && e["job"] == "local");
    assert!(
        interrupted,
        "no job.interrupted event for `local`: {events:#}"
    );
}
