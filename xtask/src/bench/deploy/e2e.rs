//! The end-to-end half of `bench deploy`, through `ferry serve`: a project whose
//! pipeline makes two releases of a small service (Python's `http.server` under the
//! `process` target, blue-green), then, under a steady load through the server's
//! proxy, [`DEPLOYS`] blue/green deploys alternating between the two releases with
//! `ferry deploy`, then [`ROLLBACKS`] `ferry rollback`s timed from the command's start
//! to its exit. The old release is not kept warm (`keep_old_for: 0s`), so every deploy
//! starts, checks and switches to new instances, and every rollback is a cold one.

use super::{Client, free_port, wait_listening};
use crate::bench::support::{Procs, git};
use crate::proc;
use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Blue/green deploys under load.
pub const DEPLOYS: usize = 100;
/// Rollbacks timed after them.
pub const ROLLBACKS: usize = 5;
/// Requests per second of the steady load, and how they are sent: two keep-alive
/// connections and one new connection per request.
pub const RATE: u32 = 100;

/// What the end-to-end half measured.
pub struct E2e {
    /// Per deploy: from the "vN is healthy." step to the step after the switch.
    pub switch: Vec<Duration>,
    /// Per rollback: `ferry rollback` from start to exit.
    pub rollback: Vec<Duration>,
    /// Requests sent during the deploys, and those that failed.
    pub requests: u64,
    /// Failed requests (not a 200, or no answer).
    pub failed: u64,
    /// The first failures, for the report.
    pub failures: Vec<String>,
    /// Deploys made.
    pub deploys: usize,
}

const PIPELINE: &str = r#"name: app
on: [manual]
jobs:
  ship:
    deploy: prod
    steps:
      - run: "true"
deploy:
  name: web
  command: exec python3 -m http.server "$PORT" --bind 127.0.0.1
  port: 8080
  healthcheck:
    path: /release.txt
    interval: 50ms
    timeout: 2s
    retries: 100
  environments:
    prod:
      routes:
        - host: web.test
      strategy:
        blue-green:
          keep_old_for: 0s
"#;

struct Server {
    ferry: PathBuf,
    url: String,
    token: String,
    proxy_port: u16,
}

impl Server {
    fn client(&self) -> Command {
        let mut c = Command::new(&self.ferry);
        c.env("FERRY_SERVER", &self.url)
            .env("FERRY_TOKEN", &self.token)
            .env("NO_COLOR", "1");
        c
    }

    fn api(&self, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Value> {
        let mut c = Command::new("curl");
        c.args(["-sS", "--fail-with-body", "--max-time", "30", "-X", method])
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token));
        if let Some(body) = body {
            c.args(["-H", "Content-Type: application/json", "--data", body]);
        }
        c.arg(format!("{}/api/v1{path}", self.url));
        let out = proc::output(&mut c)?;
        serde_json::from_str(&out).with_context(|| format!("`{method} {path}` answered {out}"))
    }

    /// Triggers a run of `app` and waits for it to succeed.
    fn run_pipeline(&self, procs: &mut Procs, logs: &Path) -> anyhow::Result<()> {
        let v = self.api("POST", "/projects/app/runs", Some("{}"))?;
        let id = v["run"]["id"]
            .as_i64()
            .with_context(|| format!("triggering `app` started no run: {v}"))?;
        let started = Instant::now();
        loop {
            procs.check_alive(logs)?;
            let v = self.api("GET", &format!("/runs/{id}"), None)?;
            match v["run"]["status"].as_str().unwrap_or("") {
                "queued" | "running" => {}
                "success" => return Ok(()),
                other => bail!("run {id} ended `{other}`: {v}"),
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("run {id} did not finish in 2 minutes");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `ferry deploy`/`rollback` …; the deploy's id from its first line.
    fn deploy_command(&self, args: &[&str]) -> anyhow::Result<(i64, Duration)> {
        let mut c = self.client();
        c.args(args);
        let started = Instant::now();
        let out = proc::output(&mut c)?;
        let took = started.elapsed();
        let id = out.lines().find_map(deploy_id).with_context(|| {
            format!(
                "no deploy id in the output of `{}`:\n{out}",
                proc::display(&c)
            )
        })?;
        Ok((id, took))
    }

    /// From the "is healthy." step to the next step after the switch.
    fn switch_time(&self, id: i64) -> anyhow::Result<Duration> {
        let v = self.api("GET", &format!("/deploys/{id}"), None)?;
        let steps = v["steps"].as_array().context("a deploy has steps")?;
        let at = |s: &Value| s["at"].as_i64().unwrap_or(0);
        let healthy = steps
            .iter()
            .find(|s| {
                s["phase"] == "health"
                    && s["message"]
                        .as_str()
                        .is_some_and(|m| m.ends_with("is healthy."))
            })
            .with_context(|| format!("deploy {id} has no healthy step: {v}"))?;
        let switched = steps
            .iter()
            .skip_while(|s| s["phase"] != "shift")
            .find(|s| s["phase"] != "shift")
            .with_context(|| format!("deploy {id} has no step after its switch: {v}"))?;
        let ms = u64::try_from(at(switched) - at(healthy)).unwrap_or(0);
        Ok(Duration::from_millis(ms))
    }
}

/// The deploy's id in a line of `ferry deploy`'s output: `Deploy 14 of …` or
/// `… (deploy 14, 4.21s).`
fn deploy_id(line: &str) -> Option<i64> {
    let rest = match line.strip_prefix("Deploy ") {
        Some(rest) => rest,
        None => &line[line.find("(deploy ")? + "(deploy ".len()..],
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Steady load through the proxy until `stop`: counts requests and failures.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Two keep-alive connections with 40% of the rate each, one new connection per
        // request with the other 20%.
        let plan = [
            (true, RATE * 2 / 5),
            (true, RATE * 2 / 5),
            (false, RATE / 5),
        ];
        let threads = plan
            .into_iter()
            .map(|(keep_alive, rate)| {
                let (stop, sent, failed, failures) =
                    (stop.clone(), sent.clone(), failed.clone(), failures.clone());
                std::thread::spawn(move || {
                    let every = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
                    let mut client = Client::new(port).host("web.test");
                    let mut next = Instant::now();
                    while !stop.load(Ordering::SeqCst) {
                        if !keep_alive {
                            client = Client::new(port).host("web.test");
                        }
                        sent.fetch_add(1, Ordering::SeqCst);
                        let outcome = match client.get_once() {
                            Ok((200, _)) => None,
                            Ok((status, body)) => Some(format!("{status} {}", body.trim())),
                            Err(e) => Some(format!("no answer: {e:#}")),
                        };
                        if let Some(why) = outcome {
                            failed.fetch_add(1, Ordering::SeqCst);
                            let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
                            if f.len() < 5 {
                                f.push(why);
                            }
                            client = Client::new(port).host("web.test");
                        }
                        next += every;
                        if let Some(wait) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            sent,
            failed,
            failures,
            threads,
        }
    }

    fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        let failures = self.failures.lock().map(|f| f.clone()).unwrap_or_default();
        (
            self.sent.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            failures,
        )
    }
}

/// Runs the end-to-end half in `dir`.
pub fn run(ferry: &Path, dir: &Path, procs: &mut Procs) -> anyhow::Result<E2e> {
    let logs = dir.join("logs");
    let proxy_port = free_port()?;
    let mut cmd = Command::new(ferry);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--proxy-listen", &format!("127.0.0.1:{proxy_port}")])
        .args(["--executor-jobs", "2", "--log-level", "warn", "--data-dir"])
        .arg(dir.join("server"))
        .env("NO_COLOR", "1");
    let out_file = logs.join("serve.out");
    procs.spawn("serve", &mut cmd, &out_file)?;
    let started = Instant::now();
    let (url, token) = loop {
        procs.check_alive(&logs)?;
        let out = std::fs::read_to_string(&out_file).unwrap_or_default();
        let url = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Ferry is listening on "));
        let token = out
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("ferry_") && !l.contains(' '));
        if let (Some(url), Some(token)) = (url, token) {
            break (url.to_string(), token.to_string());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("`ferry serve` did not start in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    wait_listening(proxy_port, "the server's proxy", procs, &logs)?;
    let server = Server {
        ferry: ferry.to_path_buf(),
        url,
        token,
        proxy_port,
    };

    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo)?;
    std::fs::write(repo.join("ferry.yml"), PIPELINE)?;
    std::fs::write(repo.join("release.txt"), "one\n")?;
    git(&repo, &["init", "--quiet", "--initial-branch=main"])?;
    git(&repo, &["add", "."])?;
    git(&repo, &["commit", "--quiet", "--message", "One"])?;
    let mut add = server.client();
    add.args(["project", "add", "app", "--repo"]).arg(&repo);
    proc::output(&mut add)?;
    server.run_pipeline(procs, &logs)?;
    std::fs::write(repo.join("release.txt"), "two\n")?;
    git(&repo, &["commit", "--quiet", "--all", "--message", "Two"])?;
    server.run_pipeline(procs, &logs)?;
    let (status, body) = Client::new(server.proxy_port).host("web.test").get_once()?;
    if status != 200 {
        bail!("the deployed service answers {status} through the proxy: {body}");
    }

    let load = Load::start(server.proxy_port);
    let mut switch = Vec::new();
    let mut deploys = 0;
    let result = (|| -> anyhow::Result<()> {
        for i in 0..DEPLOYS {
            let release = if i % 2 == 0 { "1" } else { "2" };
            let (id, _) =
                server.deploy_command(&["deploy", "web", "--env", "prod", "--release", release])?;
            deploys += 1;
            switch.push(server.switch_time(id)?);
            procs.check_alive(&logs)?;
        }
        Ok(())
    })();
    let (requests, failed, failures) = load.finish();
    result?;

    let mut rollback = Vec::new();
    for _ in 0..ROLLBACKS {
        let (_, took) = server.deploy_command(&["rollback", "web", "--env", "prod"])?;
        rollback.push(took);
    }
    Ok(E2e {
        switch,
        rollback,
        requests,
        failed,
        failures,
        deploys,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_deploy_id_in_either_line() {
        assert_eq!(
            super::deploy_id("Deploy 14 of `shop` v7 to `staging` is queued"),
            Some(14)
        );
        assert_eq!(
            super::deploy_id("`web` v1 is live in `prod` (deploy 3, 0.23s)."),
            Some(3)
        );
        assert_eq!(super::deploy_id("health v1 is healthy."), None);
    }
}
