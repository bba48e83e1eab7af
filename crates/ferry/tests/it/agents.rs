//! `ferry agent` as separate processes: labels decide who runs what, one agent runs
//! inside a network namespace, and an agent killed mid-job loses the job to another.

use crate::harness::{
    ServerProc, add_project, agent_token, job, job_log, start_agent, started_by, trigger,
    wait_finished, wait_until,
};
use crate::support::Repo;
use std::process::Command;
use std::time::{Duration, Instant};

const LABELLED: &str = r#"
on: [manual]
jobs:
  gpu-job:
    runs-on: [gpu]
    steps:
      - run: echo "ran on a gpu agent"
  arm-job:
    runs-on: [arm]
    steps:
      - run: echo "ran on an arm agent"
"#;

#[test]
fn an_agent_runs_the_jobs_its_labels_match_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &["--executor-jobs", "0"]);
    let admin = server.token.clone().expect("admin token");
    let token = agent_token(&server, &admin);
    let repo = Repo::new(&[("ferry.yml", LABELLED)]);
    add_project(&server, &admin, "labels", repo.path());
    let _agent = start_agent(dir.path(), &server.url, &token, "gpu-box", "gpu,linux", &[]);
    let id = trigger(&server, &admin, "labels");
    let detail = wait_until(
        &server,
        &admin,
        id,
        Duration::from_secs(60),
        "gpu-job to succeed",
        |d| job(d, "gpu-job")["status"] == "success",
    );
    let _ = detail;
    let by = started_by(&server, &admin, id, "gpu-job");
    assert!(by.len() == 1 && by[0].starts_with("gpu-box-"), "{by:?}");
    assert!(job_log(&server, &admin, id, "gpu-job").contains("ran on a gpu agent"));
    // The agent keeps polling; the arm job stays queued, unclaimed.
    std::thread::sleep(Duration::from_secs(2));
    let detail = crate::harness::run_detail(&server, &admin, id);
    let arm = job(&detail, "arm-job");
    assert_eq!(arm["status"], "queued", "{arm:#}");
    assert!(arm["agent_id"].is_null(), "{arm:#}");
}

/// A network namespace joined to this one by a veth pair, removed on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
    ns_ip: String,
}

impl Netns {
    fn create() -> Netns {
        let n = std::process::id() % 250;
        let name = format!("ferry-it-{}", std::process::id());
        let host_if = format!("fh{}", std::process::id());
        let ns_if = format!("fn{}", std::process::id());
        let host_ip = format!("10.231.{n}.1");
        let ns_ip = format!("10.231.{n}.2");
        let ns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip: host_ip.clone(),
            ns_ip: ns_ip.clone(),
        };
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), name.clone()],
            vec![
                "link".into(),
                "add".into(),
                host_if.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                ns_if.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                ns_if.clone(),
                "netns".into(),
                name.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{host_ip}/30"),
                "dev".into(),
                host_if.clone(),
            ],
            vec!["link".into(), "set".into(), host_if.clone(), "up".into()],
            vec![
                "-n".into(),
                name.clone(),
                "addr".into(),
                "add".into(),
                format!("{ns_ip}/30"),
                "dev".into(),
                ns_if.clone(),
            ],
            vec![
                "-n".into(),
                name.clone(),
                "link".into(),
                "set".into(),
                ns_if.clone(),
                "up".into(),
            ],
            vec![
                "-n".into(),
                name.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
        ];
        for args in steps {
            let out = Command::new("ip").args(&args).output().unwrap_or_else(|e| {
                panic!("this test needs root and iproute2 (`ip`) to create a network namespace: cannot run `ip`: {e}")
            });
            assert!(
                out.status.success(),
                "this test needs root to create a network namespace; `ip {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

const TWO_PLACES: &str = r#"
on: [manual]
jobs:
  inside:
    runs-on: [isolated]
    steps:
      - run: ip -4 -o addr show
  outside:
    runs-on: [host]
    steps:
      - run: ip -4 -o addr show
"#;

#[test]
fn two_agents_with_different_labels_one_in_a_network_namespace() {
    let ns = Netns::create();
    let dir = tempfile::tempdir().unwrap();
    // The server listens on the host's end of the veth pair only: the namespace
    // reaches it there, and so do the other agent and the CLI on this host.
    let listen = format!("{}:0", ns.host_ip);
    let server = ServerProc::start(
        &dir.path().join("data"),
        &["--listen", &listen, "--executor-jobs", "0"],
    );
    let admin = server.token.clone().expect("admin token");
    let token = agent_token(&server, &admin);
    let repo = Repo::new(&[("ferry.yml", TWO_PLACES)]);
    add_project(&server, &admin, "places", repo.path());
    assert!(
        server.url.starts_with(&format!("http://{}:", ns.host_ip)),
        "{}",
        server.url
    );
    let remote_url = server.url.clone();
    let _inside = start_agent(
        dir.path(),
        &remote_url,
        &token,
        "netns-agent",
        "isolated",
        &["ip", "netns", "exec", &ns.name],
    );
    let _outside = start_agent(dir.path(), &server.url, &token, "host-agent", "host", &[]);
    let id = trigger(&server, &admin, "places");
    let detail = wait_finished(&server, &admin, id, Duration::from_secs(60));
    assert_eq!(detail["run"]["status"], "success", "{detail:#}");
    let inside_by = started_by(&server, &admin, id, "inside");
    assert!(
        inside_by.len() == 1 && inside_by[0].starts_with("netns-agent-"),
        "{inside_by:?}"
    );
    let outside_by = started_by(&server, &admin, id, "outside");
    assert!(
        outside_by.len() == 1 && outside_by[0].starts_with("host-agent-"),
        "{outside_by:?}"
    );
    let ns_ip = ns.ns_ip.clone();
    let inside = job_log(&server, &admin, id, "inside");
    assert!(
        inside.contains(&ns_ip),
        "the inside job did not run in the namespace:\n{inside}"
    );
    let outside = job_log(&server, &admin, id, "outside");
    assert!(!outside.contains(&ns_ip), "{outside}");
    assert!(
        outside.contains(&ns.host_ip),
        "the outside job ran on the host:\n{outside}"
    );
}

const RETRIED: &str = r#"
on: [manual]
jobs:
  work:
    runs-on: [pool]
    retry: 1
    steps:
      - run: echo "attempt on $(cat /proc/sys/kernel/hostname)" && sleep 6 && echo "work done"
"#;

#[test]
fn an_agent_killed_mid_job_loses_it_within_30s_and_another_reruns_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &["--executor-jobs", "0"]);
    let admin = server.token.clone().expect("admin token");
    let token = agent_token(&server, &admin);
    let repo = Repo::new(&[("ferry.yml", RETRIED)]);
    add_project(&server, &admin, "retried", repo.path());
    let mut first = start_agent(dir.path(), &server.url, &token, "doomed", "pool", &[]);
    let id = trigger(&server, &admin, "retried");
    wait_until(
        &server,
        &admin,
        id,
        Duration::from_secs(60),
        "the first agent to take the job",
        |d| {
            job(d, "work")["status"] == "running"
                && job(d, "work")["agent_id"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("doomed-"))
        },
    );
    first.kill9();
    let killed = Instant::now();
    let _second = start_agent(dir.path(), &server.url, &token, "survivor", "pool", &[]);
    let detail = wait_until(
        &server,
        &admin,
        id,
        Duration::from_secs(30),
        "the job to be taken back",
        |d| job(d, "work")["attempt"].as_i64() == Some(2),
    );
    assert!(
        killed.elapsed() <= Duration::from_secs(30),
        "noticed after {:?}",
        killed.elapsed()
    );
    let _ = detail;
    let detail = wait_finished(&server, &admin, id, Duration::from_secs(60));
    assert_eq!(detail["run"]["status"], "success", "{detail:#}");
    let by = started_by(&server, &admin, id, "work");
    assert_eq!(by.len(), 2, "{by:?}");
    assert!(
        by[0].starts_with("doomed-") && by[1].starts_with("survivor-"),
        "{by:?}"
    );
    let events = crate::harness::json(server.cli(&admin).args(["events", "--project", "retried"]));
    let kinds: Vec<&str> = events
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"job.lost"), "{kinds:?}");
    assert!(kinds.contains(&"job.retried"), "{kinds:?}");
}

const SLOW: &str = r#"
on: [manual]
jobs:
  slow:
    runs-on: [pool]
    steps:
      - run: echo "working" && sleep 3 && echo "finished"
"#;

#[test]
fn sigterm_lets_the_agents_running_job_finish_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &["--executor-jobs", "0"]);
    let admin = server.token.clone().expect("admin token");
    let token = agent_token(&server, &admin);
    let repo = Repo::new(&[("ferry.yml", SLOW)]);
    add_project(&server, &admin, "slow", repo.path());
    let mut agent = start_agent(dir.path(), &server.url, &token, "drained", "pool", &[]);
    let id = trigger(&server, &admin, "slow");
    wait_until(
        &server,
        &admin,
        id,
        Duration::from_secs(60),
        "the job to start",
        |d| job(d, "slow")["status"] == "running",
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = agent.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not stop:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "{}", agent.log_text());
    assert_eq!(
        job(&crate::harness::run_detail(&server, &admin, id), "slow")["status"],
        "success",
        "the job reported before the agent left"
    );
    let detail = wait_finished(&server, &admin, id, Duration::from_secs(30));
    assert_eq!(detail["run"]["status"], "success", "{detail:#}");
    assert!(job_log(&server, &admin, id, "slow").contains("finished"));
}

#[test]
fn an_agents_job_sees_what_started_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &["--executor-jobs", "0"]);
    let admin = server.token.clone().expect("admin token");
    let token = agent_token(&server, &admin);
    let repo = Repo::new(&[(
        "ferry.yml",
        "on: [manual]\njobs:\n  show:\n    runs-on: [pool]\n    steps:\n      - run: echo \"event=${{ ferry.event }} branch=$FERRY_BRANCH\"\n",
    )]);
    add_project(&server, &admin, "event", repo.path());
    let _agent = start_agent(dir.path(), &server.url, &token, "eventful", "pool", &[]);
    let id = trigger(&server, &admin, "event");
    let detail = wait_finished(&server, &admin, id, Duration::from_secs(60));
    assert_eq!(detail["run"]["status"], "success", "{detail:#}");
    let log = job_log(&server, &admin, id, "show");
    assert!(log.contains("event=api branch=main"), "{log}");
}

#[test]
fn an_agent_with_a_refused_token_stops_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &["--executor-jobs", "0"]);
    let mut agent = start_agent(
        dir.path(),
        &server.url,
        "ferry_not-a-real-token",
        "rejected",
        "pool",
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = agent.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the agent kept going:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(2));
    let log = agent.log_text();
    assert!(log.contains("error:") && log.contains("hint:"), "{log}");
}

const ENDLESS: &str = r#"
on: [manual]
jobs:
  endless:
    runs-on: [pool]
    steps:
      - run: echo "waiting forever" && sleep 300
"#;

#[test]
fn cancelling_a_run_stops_its_job_on_an_agent_at_the_next_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &["--executor-jobs", "0"]);
    let admin = server.token.clone().expect("admin token");
    let token = agent_token(&server, &admin);
    let repo = Repo::new(&[("ferry.yml", ENDLESS)]);
    add_project(&server, &admin, "endless", repo.path());
    let _agent = start_agent(dir.path(), &server.url, &token, "patient", "pool", &[]);
    let id = trigger(&server, &admin, "endless");
    wait_until(
        &server,
        &admin,
        id,
        Duration::from_secs(60),
        "the job to print",
        |_| job_log(&server, &admin, id, "endless").contains("waiting forever"),
    );
    let out = crate::support::output(server.cli(&admin).args(["cancel", &id.to_string()]));
    assert!(out.status.success());
    let cancelled = Instant::now();
    let detail = wait_until(
        &server,
        &admin,
        id,
        Duration::from_secs(30),
        "the job to stop",
        |d| job(d, "endless")["status"] == "cancelled",
    );
    // Heartbeats come every 5 s; the step gets SIGTERM at once.
    assert!(
        cancelled.elapsed() < Duration::from_secs(20),
        "took {:?}",
        cancelled.elapsed()
    );
    let _ = detail;
    let detail = wait_finished(&server, &admin, id, Duration::from_secs(30));
    assert_eq!(detail["run"]["status"], "cancelled", "{detail:#}");
}
