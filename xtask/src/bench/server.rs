//! `bench server`: what `ferry serve` and `ferry agent` cost and how fast they answer,
//! on one scratch data directory with SQLite and two agents on 127.0.0.1:
//!
//! - idle memory: VmRSS of the server once start-up settles, and of an agent connected
//!   and waiting for work;
//! - push to first step: a commit pushed to a bare repository with `ferry hook install`
//!   until the first step of its run writes a timestamp, beside a plain `git clone`
//!   of the same repository timed the same way (interleaved, push after push);
//! - throughput: 5 runs of a 100-instance matrix of trivial jobs on 2 agents with
//!   `--jobs 2` each (the built-in executor off), from the first claim to the last
//!   finish, and the server's peak RSS (VmHWM) by then;
//! - the first page of a 1,000,000-line log, fetched with curl.
//!
//! Every wait is bounded, and every process started here is killed when the suite
//! ends, however it ends.

use super::machine::Machine;
use super::report::{Goal, Report, Row};
use super::stats::Timing;
use super::support::{Procs, git, resolve_ferry};
use crate::cli::FerrySource;
use crate::{paths, phase, proc};
use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Pushes timed; fewer when they run past [`PUSH_BUDGET`].
const PUSHES: usize = 50;
/// Pushes always timed, whatever the budget says.
const MIN_PUSHES: usize = 20;
/// Wall time the push measurement may take before it stops at [`MIN_PUSHES`] or more.
const PUSH_BUDGET: Duration = Duration::from_secs(120);
/// Matrix instances per throughput run, and runs.
const FANOUT_JOBS: usize = 100;
const FANOUT_RUNS: usize = 5;
/// Agents, and workers per agent.
const AGENTS: usize = 2;
const AGENT_JOBS: usize = 2;
/// The label the benchmark's jobs ask for and the agents have.
const LABEL: &str = "bench";
/// Lines the log job prints, and lines in the page fetched.
const LOG_LINES: usize = 1_000_000;
const PAGE: usize = 100;
/// Goals, in MiB and milliseconds.
const SERVER_RSS_GOAL: f64 = 30.0;
const AGENT_RSS_GOAL: f64 = 15.0;
const PUSH_GOAL_MS: f64 = 100.0;
const PAGE_GOAL_MS: f64 = 200.0;

/// Polls `check` every `every` until it gives a value, for at most `limit`.
fn wait_for<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if started.elapsed() > limit {
            bail!("gave up waiting for {what} after {}", phase::seconds(limit));
        }
        std::thread::sleep(every);
    }
}

/// The URL and admin token from `ferry serve`'s first-start output.
fn parse_serve_output(out: &str) -> Option<(String, String)> {
    let url = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Ferry is listening on "))?;
    let token = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ferry_") && !l.contains(' '))?;
    Some((url.trim().to_string(), token.to_string()))
}

/// A `Vm…:` field of /proc/PID/status, in KiB.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn read_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    status_kib(&text, field).with_context(|| format!("no {field} in {path}"))
}

/// VmRSS once it stops moving (two readings 500 ms apart within 64 KiB), in MiB.
fn settled_rss_mib(pid: u32) -> anyhow::Result<f64> {
    std::thread::sleep(Duration::from_secs(2));
    let mut last = read_kib(pid, "VmRSS")?;
    let kib = wait_for(
        "memory to settle",
        Duration::from_secs(15),
        Duration::from_millis(500),
        || {
            let now = read_kib(pid, "VmRSS")?;
            let settled = now.abs_diff(last) <= 64;
            last = now;
            Ok(settled.then_some(now))
        },
    )?;
    Ok(kib as f64 / 1024.0)
}

/// Nearest-rank percentile of unsorted samples (`p` in 0..=100).
fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn unix_ns() -> anyhow::Result<u128> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos())
}

/// A repository on branch `main` with `ferry.yml` committed.
fn init_repo(dir: &Path, pipeline: &str, extra: &[(&str, &str)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ferry.yml"), pipeline)?;
    for (name, text) in extra {
        std::fs::write(dir.join(name), text)?;
    }
    git(dir, &["init", "--quiet", "--initial-branch=main"])?;
    git(dir, &["add", "."])?;
    git(
        dir,
        &["commit", "--quiet", "--message", "Benchmark pipeline"],
    )?;
    Ok(())
}

/// The push pipeline: its one step records when it started, under the push's number.
fn push_yaml(stamps: &Path) -> String {
    let s = stamps.display();
    format!(
        "name: push\njobs:\n  first:\n    runs-on: [{LABEL}]\n    steps:\n      - run: 'n=$(cat n.txt); date +%s%N > {s}/.$n && mv {s}/.$n {s}/$n'\n"
    )
}

/// The throughput pipeline: one matrix job of trivial instances.
fn fanout_yaml() -> String {
    let values: Vec<String> = (0..FANOUT_JOBS).map(|i| i.to_string()).collect();
    format!(
        "name: fanout\njobs:\n  t:\n    runs-on: [{LABEL}]\n    matrix:\n      i: [{}]\n    steps:\n      - run: \"true\"\n",
        values.join(", ")
    )
}

fn log_yaml() -> String {
    format!(
        "name: log\njobs:\n  lines:\n    runs-on: [{LABEL}]\n    steps:\n      - run: seq {LOG_LINES}\n"
    )
}

/// One suite run: the scratch directory, the server and the agents.
struct Bench {
    dir: PathBuf,
    ferry: PathBuf,
    url: String,
    token: String,
    procs: Procs,
    server_pid: u32,
    agent_pids: Vec<u32>,
}

impl Bench {
    fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    fn client(&self) -> Command {
        let mut c = Command::new(&self.ferry);
        c.env("FERRY_SERVER", &self.url)
            .env("FERRY_TOKEN", &self.token)
            .env("NO_COLOR", "1");
        c
    }

    /// `curl` against the API; the parsed JSON answer.
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

    fn trigger(&self, project: &str) -> anyhow::Result<i64> {
        let v = self.api("POST", &format!("/projects/{project}/runs"), Some("{}"))?;
        v["run"]["id"]
            .as_i64()
            .with_context(|| format!("triggering `{project}` started no run: {v}"))
    }

    /// Waits for a run to end; fails unless it succeeded. Returns its detail.
    fn finished_run(&mut self, id: i64, limit: Duration) -> anyhow::Result<Value> {
        let logs = self.logs();
        let detail = wait_for(
            &format!("run {id} to finish"),
            limit,
            Duration::from_millis(250),
            || {
                self.procs.check_alive(&logs)?;
                let v = self.api("GET", &format!("/runs/{id}"), None)?;
                let status = v["run"]["status"].as_str().unwrap_or("");
                Ok((!matches!(status, "queued" | "running")).then_some(v))
            },
        )?;
        let status = detail["run"]["status"].as_str().unwrap_or("");
        if status != "success" {
            bail!(
                "run {id} ended `{status}`; see `ferry runs show {id}` with FERRY_SERVER={} (the data is in {})",
                self.url,
                self.dir.display()
            );
        }
        Ok(detail)
    }

    fn project_add(&self, name: &str, repo: &Path) -> anyhow::Result<()> {
        let mut c = self.client();
        c.args(["project", "add", name, "--repo"]).arg(repo);
        proc::output(&mut c).map(drop)
    }
}

/// Starts the server and reads its URL and admin token.
fn start_server(
    dir: &Path,
    ferry: &Path,
    procs: &mut Procs,
) -> anyhow::Result<(String, String, u32)> {
    let log = dir.join("logs/server");
    let mut cmd = Command::new(ferry);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--executor-jobs",
        "0",
        "--data-dir",
    ])
    .arg(dir.join("server"))
    .env("NO_COLOR", "1");
    let pid = procs.spawn("server", &mut cmd, &log)?;
    let logs = dir.join("logs");
    let (url, token) = wait_for(
        "`ferry serve` to listen",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            procs.check_alive(&logs)?;
            Ok(parse_serve_output(&std::fs::read_to_string(&log)?))
        },
    )?;
    Ok((url, token, pid))
}

/// What the suite measured, before it becomes rows.
struct Measured {
    server_idle_mib: f64,
    agent_idle_mib: f64,
    push_ms: Vec<f64>,
    clone_ms: Vec<f64>,
    jobs_per_s: f64,
    fanout_secs: f64,
    server_peak_mib: f64,
    page_ms: Vec<f64>,
}

/// Runs the suite.
pub fn run(runs: usize, source: &FerrySource) -> anyhow::Result<Report> {
    let machine = Machine::detect();
    let (ferry, ferry_desc) = resolve_ferry(source, "server", &["serve", "agent", "hook"])?;
    let scratch = paths::ScratchDir::new("ferry-bench-server-")?;
    let dir = scratch.path().to_path_buf();
    std::fs::create_dir_all(dir.join("logs"))?;

    let p = phase::start("starting `ferry serve` (SQLite, built-in executor off)");
    let mut procs = Procs::default();
    let (url, token, server_pid) = start_server(&dir, &ferry, &mut procs)?;
    let server_idle_mib = settled_rss_mib(server_pid)?;
    p.done(&format!(
        "listening on {url}, idle at {server_idle_mib:.1} MiB"
    ));

    let mut bench = Bench {
        dir: dir.clone(),
        ferry,
        url,
        token,
        procs,
        server_pid,
        agent_pids: Vec::new(),
    };
    let m = measure(&mut bench, runs, server_idle_mib)?;
    drop(bench);
    drop(scratch);
    let (results, timings) = figures(&m);
    Ok(Report {
        suite: "server".into(),
        machine,
        ferry: ferry_desc,
        runs,
        results,
        timings,
    })
}

fn measure(b: &mut Bench, runs: usize, server_idle_mib: f64) -> anyhow::Result<Measured> {
    let p = phase::start(&format!("starting {AGENTS} agents (`--jobs {AGENT_JOBS}`)"));
    let agent_token = {
        let mut c = b.client();
        c.args([
            "token",
            "create",
            "--name",
            "bench-agent",
            "--role",
            "developer",
            "--json",
        ]);
        let out = proc::output(&mut c)?;
        out.split('"')
            .find(|s| s.starts_with("ferry_"))
            .with_context(|| format!("no token in the output of `{}`: {out}", proc::display(&c)))?
            .to_string()
    };
    for i in 0..AGENTS {
        let mut cmd = Command::new(&b.ferry);
        cmd.args(["agent", "--server", &b.url, "--token", &agent_token])
            .args(["--labels", LABEL, "--jobs", &AGENT_JOBS.to_string()])
            .args(["--name", &format!("bench-{i}"), "--data-dir"])
            .arg(b.dir.join(format!("agent{i}")))
            .env("NO_COLOR", "1");
        let log = b.logs().join(format!("agent{i}"));
        let pid = b.procs.spawn(&format!("agent{i}"), &mut cmd, &log)?;
        b.agent_pids.push(pid);
    }
    let mut agent_idle_mib: f64 = 0.0;
    for pid in b.agent_pids.clone() {
        agent_idle_mib = agent_idle_mib.max(settled_rss_mib(pid)?);
    }
    b.procs.check_alive(&b.logs())?;
    p.done(&format!(
        "agents idle at {agent_idle_mib:.1} MiB (the larger)"
    ));

    // Throughput first, so the server's high-water mark is from start-up and this.
    let p = phase::start(&format!(
        "{FANOUT_RUNS} runs × {FANOUT_JOBS} trivial jobs on {AGENTS} agents"
    ));
    let fanout = b.dir.join("fanout");
    init_repo(&fanout, &fanout_yaml(), &[])?;
    b.project_add("fanout", &fanout)?;
    let ids: Vec<i64> = (0..FANOUT_RUNS)
        .map(|_| b.trigger("fanout"))
        .collect::<anyhow::Result<_>>()?;
    let mut first_start = i64::MAX;
    let mut last_finish = i64::MIN;
    let mut jobs = 0;
    for id in ids {
        let detail = b.finished_run(id, Duration::from_secs(600))?;
        for job in detail["jobs"].as_array().into_iter().flatten() {
            jobs += 1;
            first_start = first_start.min(job["started_at"].as_i64().unwrap_or(i64::MAX));
            last_finish = last_finish.max(job["finished_at"].as_i64().unwrap_or(i64::MIN));
        }
    }
    if jobs != FANOUT_RUNS * FANOUT_JOBS || last_finish <= first_start {
        bail!("the throughput runs had {jobs} jobs, timed {first_start}..{last_finish} ms");
    }
    let fanout_secs = (last_finish - first_start) as f64 / 1000.0;
    let jobs_per_s = jobs as f64 / fanout_secs;
    let server_peak_mib = read_kib(b.server_pid, "VmHWM")? as f64 / 1024.0;
    p.done(&format!(
        "{jobs} jobs in {fanout_secs:.1} s, {jobs_per_s:.1} jobs/s; server peak {server_peak_mib:.1} MiB"
    ));

    let (push_ms, clone_ms) = measure_pushes(b)?;

    let p = phase::start(&format!("a job printing {LOG_LINES} lines"));
    let log_repo = b.dir.join("log");
    init_repo(&log_repo, &log_yaml(), &[])?;
    b.project_add("log", &log_repo)?;
    let id = b.trigger("log")?;
    b.finished_run(id, Duration::from_secs(600))?;
    let page_path = format!("/runs/{id}/logs?job=lines&limit={PAGE}");
    let first = b.api("GET", &page_path, None)?;
    let lines = first["lines"].as_array().map_or(0, Vec::len);
    let total = first["total"].as_i64().unwrap_or(0);
    if lines != PAGE || total != LOG_LINES as i64 {
        bail!("the first page holds {lines} lines of {total}, not {PAGE} of {LOG_LINES}");
    }
    let mut page_ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut c = Command::new("curl");
        c.args([
            "-sS",
            "--fail",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{time_total}",
        ])
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", b.token))
        .arg(format!("{}/api/v1{page_path}", b.url));
        let out = proc::output(&mut c)?;
        let secs: f64 = out
            .trim()
            .parse()
            .with_context(|| format!("curl's time_total `{out}`"))?;
        page_ms.push(secs * 1000.0);
    }
    p.done("fetched the first page");

    Ok(Measured {
        server_idle_mib,
        agent_idle_mib,
        push_ms,
        clone_ms,
        jobs_per_s,
        fanout_secs,
        server_peak_mib,
        page_ms,
    })
}

/// Push after push: the time from `git push` to the first step's timestamp, and a
/// `git clone` of the same repository after each.
fn measure_pushes(b: &mut Bench) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let p = phase::start(&format!(
        "{PUSHES} pushes to a bare repository with the hook"
    ));
    let stamps = b.dir.join("stamps");
    std::fs::create_dir_all(&stamps)?;
    let work = b.dir.join("push-work");
    let bare = b.dir.join("push.git");
    init_repo(&work, &push_yaml(&stamps), &[("n.txt", "init\n")])?;
    git(
        &b.dir,
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            "push.git",
        ],
    )?;
    let bare_s = bare.to_string_lossy().into_owned();
    git(&work, &["remote", "add", "origin", &bare_s])?;
    git(&work, &["push", "--quiet", "origin", "main"])?;
    b.project_add("push", &bare)?;
    let mut c = b.client();
    c.args(["hook", "install", "--project", "push"]).arg(&bare);
    proc::output(&mut c)?;

    let started = Instant::now();
    let (mut push_ms, mut clone_ms) = (Vec::new(), Vec::new());
    for n in 0..PUSHES {
        if n >= MIN_PUSHES && started.elapsed() > PUSH_BUDGET {
            phase::note(&format!(
                "stopping at {n} pushes: the budget of {} is spent",
                phase::seconds(PUSH_BUDGET)
            ));
            break;
        }
        std::fs::write(work.join("n.txt"), format!("{n}\n"))?;
        git(
            &work,
            &[
                "commit",
                "--quiet",
                "--all",
                "--message",
                &format!("Push {n}"),
            ],
        )?;
        let before = unix_ns()?;
        git(&work, &["push", "--quiet", "origin", "main"])?;
        let stamp = stamps.join(n.to_string());
        let logs = b.logs();
        let procs = &mut b.procs;
        let at: u128 = wait_for(
            &format!("push {n}'s first step"),
            Duration::from_secs(60),
            Duration::from_millis(2),
            || {
                procs.check_alive(&logs)?;
                match std::fs::read_to_string(&stamp) {
                    Ok(s) => Ok(Some(s.trim().parse().with_context(|| {
                        format!("{} holds `{s}`, not a time", stamp.display())
                    })?)),
                    Err(_) => Ok(None),
                }
            },
        )?;
        push_ms.push(at.saturating_sub(before) as f64 / 1e6);

        let dst = b.dir.join("clone");
        let _ = std::fs::remove_dir_all(&dst);
        let before = Instant::now();
        git(&b.dir, &["clone", "--quiet", &bare_s, "clone"])?;
        clone_ms.push(before.elapsed().as_secs_f64() * 1000.0);
        std::fs::remove_dir_all(&dst)?;
    }
    p.done(&format!("timed {} pushes", push_ms.len()));
    Ok((push_ms, clone_ms))
}

fn timing(name: &str, ms: &[f64]) -> Timing {
    let d: Vec<Duration> = ms
        .iter()
        .map(|v| Duration::from_secs_f64(v / 1000.0))
        .collect();
    Timing::new(name, &d)
}

/// The suite's rows and timings.
fn figures(m: &Measured) -> (Vec<Row>, Vec<Timing>) {
    let n = m.push_ms.len();
    let pushes = if n < PUSHES {
        format!("{n} sequential pushes (cut from {PUSHES}: the run took too long)")
    } else {
        format!("{n} sequential pushes")
    };
    let (p50, p99) = (percentile(&m.push_ms, 50.0), percentile(&m.push_ms, 99.0));
    let (c50, c99) = (percentile(&m.clone_ms, 50.0), percentile(&m.clone_ms, 99.0));
    let best_page = m.page_ms.iter().copied().fold(f64::INFINITY, f64::min);
    let s = format!("{} runs", m.page_ms.len());
    let rows = vec![
        Row::new(
            "`ferry serve` idle RSS",
            m.server_idle_mib,
            "MiB",
            Some(Goal::AtMost(SERVER_RSS_GOAL)),
            "VmRSS once start-up settles; SQLite, built-in executor off",
        ),
        Row::new(
            "`ferry agent` idle RSS",
            m.agent_idle_mib,
            "MiB",
            Some(Goal::AtMost(AGENT_RSS_GOAL)),
            &format!(
                "VmRSS of a connected agent waiting for work (`--jobs {AGENT_JOBS}`), the larger of {AGENTS}"
            ),
        ),
        Row::new(
            "push to first step, p50",
            p50,
            "ms",
            None,
            &format!(
                "from just before `git push` to the first step's `date +%s%N`, {pushes}; hook → server → agent long poll"
            ),
        ),
        Row::new("push to first step, p99", p99, "ms", None, &pushes),
        Row::new(
            "`git clone` of the same repository, p50",
            c50,
            "ms",
            None,
            &format!("local `git clone` of the bare repository after each push; p99 {c99:.1} ms"),
        ),
        Row::new(
            "push to first step beyond `git clone`, p50",
            p50 - c50,
            "ms",
            Some(Goal::AtMost(PUSH_GOAL_MS)),
            "push p50 − clone p50",
        ),
        Row::new(
            "push to first step beyond `git clone`, p99",
            p99 - c99,
            "ms",
            None,
            "push p99 − clone p99",
        ),
        Row::new(
            "trivial jobs on 2 agents",
            m.jobs_per_s,
            "jobs/s",
            None,
            &format!(
                "{} jobs (`true`; {FANOUT_RUNS} runs × a {FANOUT_JOBS}-instance matrix) on {AGENTS} agents × `--jobs {AGENT_JOBS}`, first start to last finish: {:.1} s",
                FANOUT_RUNS * FANOUT_JOBS,
                m.fanout_secs
            ),
        ),
        Row::new(
            "`ferry serve` peak RSS",
            m.server_peak_mib,
            "MiB",
            None,
            "VmHWM after the throughput runs (start-up, idle agents and those jobs)",
        ),
        Row::new(
            "first page of a 1,000,000-line log",
            best_page,
            "ms",
            Some(Goal::AtMost(PAGE_GOAL_MS)),
            &format!(
                "`GET /api/v1/runs/ID/logs?job=J&limit={PAGE}` with curl (`time_total`), best of {s}"
            ),
        ),
    ];
    let timings = vec![
        timing("push to first step", &m.push_ms),
        timing("git clone", &m.clone_ms),
        timing("first log page (1,000,000 lines)", &m.page_ms),
    ];
    (rows, timings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_url_and_admin_token_from_first_start_output() {
        let out = "\nAdmin token (shown once, only its hash is stored — keep it now):\n\n    ferry_abc123\n\nUse it with `--token` or `FERRY_TOKEN`, or create others with `ferry token create`.\n\nFerry is listening on http://127.0.0.1:40123\n";
        assert_eq!(
            parse_serve_output(out),
            Some(("http://127.0.0.1:40123".into(), "ferry_abc123".into()))
        );
        assert_eq!(parse_serve_output("Admin token\n    ferry_abc\n"), None);
    }

    #[test]
    fn reads_memory_fields_from_proc_status() {
        let status = "Name:\tferry\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(20480));
        assert_eq!(status_kib(status, "VmHWM"), Some(40960));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=50).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 25.0);
        assert_eq!(percentile(&v, 99.0), 50.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn pipelines_ask_for_the_agents_label_and_the_right_sizes() {
        let fan = fanout_yaml();
        assert!(fan.contains("runs-on: [bench]"), "{fan}");
        assert!(
            fan.contains("i: [0, 1, 2,") && fan.contains(", 99]"),
            "{fan}"
        );
        assert!(log_yaml().contains("run: seq 1000000"));
        let push = push_yaml(Path::new("/s"));
        assert!(
            push.contains("date +%s%N > /s/.$n && mv /s/.$n /s/$n"),
            "{push}"
        );
    }

    #[test]
    fn the_push_goal_is_judged_on_the_difference_to_git_clone() {
        let m = Measured {
            server_idle_mib: 12.0,
            agent_idle_mib: 20.0,
            push_ms: vec![150.0; 50],
            clone_ms: vec![20.0; 50],
            jobs_per_s: 40.0,
            fanout_secs: 12.5,
            server_peak_mib: 50.0,
            page_ms: vec![30.0, 10.0, 20.0],
        };
        let (rows, timings) = figures(&m);
        let get = |name: &str| rows.iter().find(|r| r.metric == name).unwrap();
        assert_eq!(get("`ferry serve` idle RSS").met, Some(true));
        assert_eq!(get("`ferry agent` idle RSS").met, Some(false));
        let beyond = get("push to first step beyond `git clone`, p50");
        assert_eq!((beyond.value, beyond.met), (130.0, Some(false)));
        assert_eq!(get("first page of a 1,000,000-line log").value, 10.0);
        assert_eq!(timings.len(), 3);
        let short = Measured {
            push_ms: vec![1.0; 20],
            clone_ms: vec![1.0; 20],
            ..m
        };
        let (rows, _) = figures(&short);
        assert!(
            rows[3].note.contains("20 sequential pushes (cut from 50"),
            "{}",
            rows[3].note
        );
    }
}
