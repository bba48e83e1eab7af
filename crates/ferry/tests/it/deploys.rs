//! The deploy commands against a real `ferry serve`: what they say when there is
//! nothing to deploy, and the exit codes scripts rely on.

use crate::harness::ServerProc;
use crate::support::{output, stderr, stdout};

#[test]
fn deploy_commands_explain_a_server_with_no_services() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &["--no-proxy"]);
    let token = server.token.clone().expect("admin token");

    // `ferry releases` of an unknown service: exit 2, the server's words and hint.
    let out = output(server.cli(&token).args(["releases", "ghost"]));
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(stderr(&out), @r"
    error: service `ghost` not found
    hint: `ferry services` lists the services; a service and its first release are made by a pipeline job with `deploy: ENV` in the project's `ferry.yml` (then `ferry trigger PROJECT`)
    ");
    assert_eq!(stdout(&out), "");

    // `ferry deploy` of a service with no release says how to make one.
    let out = output(
        server
            .cli(&token)
            .args(["deploy", "ghost", "--env", "staging"]),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("service `ghost` not found"), "{err}");
    assert!(
        err.contains("a pipeline job with `deploy: ENV`") && err.contains("ferry trigger"),
        "{err}"
    );

    // A release that is not a release is refused before the server is asked.
    let out = output(server.cli(&token).args([
        "deploy",
        "ghost",
        "--env",
        "staging",
        "--release",
        "latest",
    ]));
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(stderr(&out), @"error: `latest` is not a release: give --release as `v3` or `3` (`ferry releases SERVICE` lists them)");

    // Empty listings are not errors.
    let out = output(server.cli(&token).arg("services"));
    assert!(out.status.success());
    assert!(stderr(&out).contains("No services yet"), "{}", stderr(&out));
    let out = output(server.cli(&token).arg("deploys"));
    assert!(out.status.success());
    assert!(stderr(&out).contains("No deploys yet"), "{}", stderr(&out));
    let out = output(server.cli(&token).args(["deploys", "--json"]));
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), "[]");

    // One deploy that does not exist.
    for sub in ["show", "approve", "cancel"] {
        let out = output(server.cli(&token).args(["deploys", sub, "41"]));
        assert_eq!(out.status.code(), Some(2), "deploys {sub}");
        assert!(
            stderr(&out).contains("deploy `41` not found"),
            "{}",
            stderr(&out)
        );
    }
    let out = output(
        server
            .cli(&token)
            .args(["deploys", "ghost", "--env", "prod"]),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("service `ghost` not found"));

    // Rolling back needs the operator role.
    let created = crate::harness::json(server.cli(&token).args([
        "token",
        "create",
        "--name",
        "dev",
        "--role",
        "developer",
    ]));
    let dev = created["token"].as_str().expect("the token").to_string();
    let out = output(
        server
            .cli(&dev)
            .args(["rollback", "ghost", "--env", "staging"]),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("operator"), "{}", stderr(&out));
}

/// A pipeline whose job `ship` deploys service `web` (Python's HTTP server, checked at
/// `health`) to `staging`.
fn service_yml(health: &str) -> String {
    format!(
        "on: [push, manual]
jobs:
  ship:
    deploy: staging
    steps:
      - echo shipping
deploy:
  name: web
  command: exec python3 -m http.server $PORT --bind 127.0.0.1
  healthcheck:
    path: {health}
    interval: 50ms
    timeout: 2s
    retries: 20
  environments:
    staging:
      strategy:
        blue-green:
          keep_old_for: 0s
"
    )
}

/// Stops the service processes the deploys left running when the test ends, however
/// it ends (they outlive the server by design: a restarted server takes them over).
struct Instances(std::path::PathBuf);

impl Drop for Instances {
    fn drop(&mut self) {
        let Ok(envs) = std::fs::read_dir(self.0.join("instances/web")) else {
            return;
        };
        for env in envs.flatten() {
            for instance in std::fs::read_dir(env.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(text) = std::fs::read_to_string(instance.path().join("pid"))
                    && let Some(pid) = text.split_whitespace().next()
                {
                    let _ = std::process::Command::new("kill").arg(pid).status();
                }
            }
        }
    }
}

#[test]
fn deploy_follows_a_deploy_to_its_end_and_exits_with_its_outcome() {
    use crate::harness::{add_project, job, trigger, wait_finished};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _instances = Instances(data.clone());
    let server = ServerProc::start(&data, &["--proxy-listen", "127.0.0.1:0"]);
    let token = server.token.clone().expect("admin token");
    let repo =
        crate::support::Repo::new(&[("ferry.yml", &service_yml("/")), ("index.html", "v1\n")]);
    add_project(&server, &token, "shop", repo.path());

    // The pipeline's `deploy: staging` job makes v1 and deploys it.
    let run = trigger(&server, &token, "shop");
    let detail = wait_finished(&server, &token, run, Duration::from_secs(90));
    assert_eq!(job(&detail, "ship")["status"], "success", "{detail:#}");
    let out = output(server.cli(&token).arg("services"));
    assert!(out.status.success());
    let line = stdout(&out)
        .lines()
        .find(|l| l.starts_with("web "))
        .map(str::to_string)
        .expect("web is listed");
    assert!(
        line.contains("shop") && line.contains("staging") && line.contains("v1"),
        "{line}"
    );
    let out = output(server.cli(&token).args(["releases", "web"]));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.starts_with("RELEASE"), "{text}");
    let v1 = text.lines().nth(1).expect("a release");
    assert!(v1.starts_with("v1 ") && v1.contains("staging"), "{v1}");
    assert!(
        v1.contains(&format!(" {run}")),
        "the run that built it: {v1}"
    );

    // `ferry deploy` prints each step and ends 0 when the release is live.
    let out = output(
        server
            .cli(&token)
            .args(["deploy", "web", "--env", "staging"]),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("`web` v1 is live in `staging`"), "{text}");
    for phase in ["start ", "health ", "shift "] {
        assert!(
            text.lines().any(|l| l.starts_with(phase)),
            "no {phase}line in:\n{text}"
        );
    }
    assert!(
        stderr(&out).contains("Deploy "),
        "the queued line: {}",
        stderr(&out)
    );

    // v2 never gets healthy: its job fails, and deploying it by hand exits 1 with why.
    std::fs::write(repo.path().join("ferry.yml"), service_yml("/missing")).unwrap();
    repo.commit_all("v2");
    let run = trigger(&server, &token, "shop");
    let detail = wait_finished(&server, &token, run, Duration::from_secs(90));
    assert_eq!(job(&detail, "ship")["status"], "failure", "{detail:#}");
    let out =
        output(
            server
                .cli(&token)
                .args(["deploy", "web", "--env", "staging", "--release", "v2"]),
        );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("v2 to `staging` was rolled back: "), "{err}");
    assert!(
        err.contains("not healthy") && err.contains("v1 is still live"),
        "{err}"
    );

    // The history, and one deploy step by step.
    let out = output(
        server
            .cli(&token)
            .args(["deploys", "web", "--env", "staging"]),
    );
    assert!(out.status.success());
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "two job deploys, two by hand:\n{text}");
    assert!(
        rows[0].contains("v1 → v2") && rows[0].contains("rolled_back"),
        "{text}"
    );
    let id = rows[0].split_whitespace().next().unwrap();
    let out = output(server.cli(&token).args(["deploys", "show", id]));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "Deploy {id} of `web` v1 → v2 to `staging`: rolled_back"
        )),
        "{text}"
    );
    assert!(text.contains("TIME") && text.contains("rollback"), "{text}");

    // A deploy started elsewhere is followed to its end with `deploys show --follow`,
    // which exits as `ferry deploy` would.
    let out = output(server.cli(&token).args([
        "deploy",
        "web",
        "--env",
        "staging",
        "--release",
        "v2",
        "--no-wait",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let queued = stdout(&out);
    let id = queued
        .strip_prefix("Deploy ")
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no deploy id in {queued:?}"))
        .to_string();
    let out = output(
        server
            .cli(&token)
            .args(["deploys", "show", &id, "--follow"]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    for phase in ["start ", "health ", "rollback "] {
        assert!(
            text.lines().any(|l| l.starts_with(phase)),
            "no {phase}line in:\n{text}"
        );
    }
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "Deploy {id} of `web` v1 → v2 to `staging` (deploy, asked for by "
        )),
        "{err}"
    );
    assert!(err.contains("v2 to `staging` was rolled back: "), "{err}");

    // Only v1 ever went live: nothing to roll back to.
    let out = output(
        server
            .cli(&token)
            .args(["rollback", "web", "--env", "staging"]),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("nothing to roll back to"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_job_on_an_agent_deploys_through_the_server() {
    use crate::harness::{
        add_project, agent_token, http_get, job, job_log, start_agent, trigger, wait_finished,
    };
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _instances = Instances(data.clone());
    let server = ServerProc::start(
        &data,
        &["--executor-jobs", "0", "--proxy-listen", "127.0.0.1:0"],
    );
    let admin = server.token.clone().expect("admin token");
    let token = agent_token(&server, &admin);
    let repo =
        crate::support::Repo::new(&[("ferry.yml", &service_yml("/")), ("index.html", "v1\n")]);
    add_project(&server, &admin, "shop", repo.path());
    let _agent = start_agent(dir.path(), &server.url, &token, "deployer", "pool", &[]);
    let run = trigger(&server, &admin, "shop");
    let detail = wait_finished(&server, &admin, run, Duration::from_secs(90));
    assert_eq!(job(&detail, "ship")["status"], "success", "{detail:#}");
    let by = crate::harness::started_by(&server, &admin, run, "ship");
    assert!(by.len() == 1 && by[0].starts_with("deployer-"), "{by:?}");
    let log = job_log(&server, &admin, run, "ship");
    assert!(log.contains("shipping"), "{log}");
    assert!(
        log.contains("deploy 1: shift: "),
        "the deploy's lines in the job's log:\n{log}"
    );

    let deploys = crate::harness::json(server.cli(&admin).args(["deploys"]));
    assert_eq!(deploys.as_array().map(Vec::len), Some(1), "{deploys:#}");
    assert_eq!(deploys[0]["state"], "succeeded");
    assert_eq!(deploys[0]["job"], "ship");
    assert_eq!(deploys[0]["run_id"], run);

    let out = output(server.cli(&admin).args(["services", "web"]));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.starts_with("Service `web` of project `shop`; newest release v1."),
        "{text}"
    );
    let staging = text
        .lines()
        .find(|l| l.starts_with("staging "))
        .expect("staging is listed");
    assert!(
        staging.contains("process") && staging.contains("blue-green") && staging.contains("v1 ("),
        "{staging}"
    );

    // The server's /metrics carries the proxy's families, in one exposition.
    let (head, body) = http_get(&format!("{}/metrics", server.url), None);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.contains("# TYPE ferry_proxy_requests counter"),
        "{body}"
    );
    assert!(body.contains("ferry_runs{"), "{body}");
    assert_eq!(body.matches("# EOF").count(), 1, "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
}
