//! Live servers and agents for the end-to-end tests: `ferry serve` and `ferry agent`
//! as real child processes, and helpers that drive them through the CLI.

use crate::support::{ferry, output, stdout};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `ferry serve`.
pub struct ServerProc {
    /// Its base URL, as it printed it.
    pub url: String,
    /// The admin token it printed on its first start, if it printed one.
    pub token: Option<String>,
    /// Its data directory.
    pub data: PathBuf,
    /// Every line it printed on standard output so far.
    pub lines: Arc<Mutex<Vec<String>>>,
    /// Its standard error, in a file.
    pub log: PathBuf,
    /// Its certificate, when it serves HTTPS: [`ServerProc::cli`] trusts it.
    pub ca_cert: Option<PathBuf>,
    child: Option<Child>,
}

impl ServerProc {
    /// Starts `ferry serve` on a free loopback port (unless `args` has `--listen`) with
    /// `data` as its data directory, and waits until it listens.
    pub fn start(data: &Path, args: &[&str]) -> ServerProc {
        let mut cmd = ferry(data);
        cmd.arg("serve");
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args);
        let mut server = ServerProc::spawn(
            cmd,
            data,
            "Ferry is listening on ",
            "Ferry is listening on ",
        );
        // Its own certificate is the CA its clients trust.
        server.ca_cert = args
            .iter()
            .position(|a| *a == "--tls-cert")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from);
        server
    }

    /// Starts `cmd` (a `ferry serve` or `ferry up`), reading its standard output until a
    /// line starts with `ready`; the URL follows `url_prefix` on some line before.
    pub fn spawn(mut cmd: Command, data: &Path, url_prefix: &str, ready: &str) -> ServerProc {
        std::fs::create_dir_all(data).expect("create the data directory");
        let log = data.with_extension(format!("stderr-{}", std::process::id()));
        cmd.env("FERRY_LOG_LEVEL", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create the server log"));
        let mut child = cmd.spawn().expect("start ferry serve");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let out = child.stdout.take().expect("piped stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().expect("lines lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut token = None;
        let mut url = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let t = line.trim();
                    if t.starts_with("ferry_") {
                        token = Some(t.to_string());
                    }
                    if let Some(u) = line.strip_prefix(url_prefix) {
                        let first = u.split_whitespace().next().unwrap_or("");
                        url = Some(first.trim_end_matches('.').to_string());
                    }
                    if line.starts_with(ready) {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the server did not start; its log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
        let url = url.expect("the server printed its URL");
        ServerProc {
            url,
            token,
            data: data.to_path_buf(),
            lines,
            log,
            ca_cert: None,
            child: Some(child),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the URL ends with a port")
    }

    /// A `ferry` client command aimed at this server with `token`.
    pub fn cli(&self, token: &str) -> Command {
        let mut cmd = ferry(&self.data);
        cmd.env("FERRY_SERVER", &self.url).env("FERRY_TOKEN", token);
        if let Some(ca) = &self.ca_cert {
            cmd.env("FERRY_CA_CERT", ca);
        }
        cmd
    }

    /// Sends a signal and waits (bounded) for the exit.
    pub fn signal_and_wait(
        &mut self,
        sig: nix::sys::signal::Signal,
        within: Duration,
    ) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
        nix::sys::signal::kill(pid, sig).expect("signal the server");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the server") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not exit within {within:?} of {sig}; its log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its standard error so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM first, so the server stops the service processes it supervises
            // (deploy tests start some); SIGKILL if it takes too long.
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("--- server log\n{}", self.log_text());
            }
        }
    }
}

/// A child process killed when dropped (agents).
pub struct Proc {
    /// The child.
    pub child: Child,
    /// Its standard error, in a file.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with standard error going to `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the log"));
        let child = cmd.spawn().expect("start the process");
        Proc { child, log }
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its standard error so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} \n{}", self.log.display(), self.log_text());
        }
    }
}

/// Runs a client command, asserting success, and parses its `--json` output.
pub fn json(cmd: &mut Command) -> serde_json::Value {
    let out = output(cmd.arg("--json"));
    assert!(out.status.success(), "{cmd:?} failed");
    serde_json::from_str(&stdout(&out)).expect("--json prints JSON")
}

/// Registers a project whose repository is `repo`.
pub fn add_project(server: &ServerProc, token: &str, name: &str, repo: &Path) {
    let out = output(
        server
            .cli(token)
            .args(["project", "add", name, "--repo"])
            .arg(repo),
    );
    assert!(out.status.success(), "project add failed");
}

/// Starts a run of `project`; returns its id.
pub fn trigger(server: &ServerProc, token: &str, project: &str) -> i64 {
    let v = json(server.cli(token).args(["trigger", project]));
    v["id"].as_i64().expect("the run has an id")
}

/// `ferry runs show ID --json`.
pub fn run_detail(server: &ServerProc, token: &str, id: i64) -> serde_json::Value {
    let out = server
        .cli(token)
        .args(["runs", "show", &id.to_string(), "--json"])
        .output()
        .expect("ferry runs show runs");
    assert!(
        out.status.success(),
        "runs show failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("runs show --json prints JSON")
}

/// Polls until `pred` holds for the run's detail, or panics after `within`.
pub fn wait_until(
    server: &ServerProc,
    token: &str,
    id: i64,
    within: Duration,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let detail = run_detail(server, token, id);
        if pred(&detail) {
            return detail;
        }
        if Instant::now() > deadline {
            panic!(
                "run {id}: {what} did not happen within {within:?}; the run is now:\n{detail:#}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits for the run to end; returns its detail.
pub fn wait_finished(
    server: &ServerProc,
    token: &str,
    id: i64,
    within: Duration,
) -> serde_json::Value {
    wait_until(server, token, id, within, "the end of the run", |d| {
        matches!(
            d["run"]["status"].as_str(),
            Some("success" | "failure" | "cancelled")
        )
    })
}

/// The job named `name` in a run's detail.
pub fn job<'a>(detail: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    detail["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .unwrap_or_else(|| panic!("no job `{name}` in {detail:#}"))
}

/// Starts `ferry agent` for `server_url` with `labels`, its own data directory under
/// `dir`, and `name`. `prefix` runs it through another command (`ip netns exec NS`).
pub fn start_agent(
    dir: &Path,
    server_url: &str,
    token: &str,
    name: &str,
    labels: &str,
    prefix: &[&str],
) -> Proc {
    let data = dir.join(format!("agent-{name}"));
    std::fs::create_dir_all(&data).expect("agent data directory");
    let mut cmd = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(env!("CARGO_BIN_EXE_ferry"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_ferry")),
    };
    cmd.arg("agent")
        .args(["--server", server_url, "--token", token, "--name", name])
        .args(["--labels", labels])
        .arg("--data-dir")
        .arg(&data)
        .env("NO_COLOR", "1")
        .env("FERRY_LOG_LEVEL", "debug")
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_SERVER")
        .stdin(Stdio::null());
    Proc::spawn(cmd, dir.join(format!("agent-{name}.log")))
}

/// A developer token for agents, made with `ferry token create`.
pub fn agent_token(server: &ServerProc, admin: &str) -> String {
    let created = json(server.cli(admin).args([
        "token",
        "create",
        "--name",
        "agents",
        "--role",
        "developer",
    ]));
    created["token"].as_str().expect("token").to_string()
}

/// The text of `ferry logs RUN --job JOB`.
pub fn job_log(server: &ServerProc, token: &str, run: i64, job: &str) -> String {
    let out = server
        .cli(token)
        .args(["logs", &run.to_string(), "--job", job])
        .output()
        .expect("ferry logs runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// The executors that started `job` of run `run`, in order, from the event log.
pub fn started_by(server: &ServerProc, token: &str, run: i64, job: &str) -> Vec<String> {
    let events = json(server.cli(token).args(["events", "--limit", "1000"]));
    events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "job.started" && e["run_id"] == run && e["job"] == job)
        .filter_map(|e| e["data"]["agent"].as_str().map(str::to_string))
        .collect()
}

/// A plain HTTP GET; returns the status line and headers.
pub fn http_head(url: &str) -> String {
    http_get(url, None).0
}

/// A plain HTTP GET with an optional cookie; returns the head and the body.
pub fn http_get(url: &str, cookie: Option<&str>) -> (String, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(host).expect("connect to the server");
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) => (head.to_string(), body.to_string()),
        None => (answer, String::new()),
    }
}
