//! `bench deploy`: Ferry's edge proxy beside nginx, and how fast it moves traffic.
//!
//! - throughput and latency: wrk (`-t2 -c64`, 10 s) through `ferry proxy` and through
//!   nginx (Debian's, 2 worker processes, `proxy_pass` to an upstream with 64 keep-alive
//!   connections), both in front of the same backend — an nginx with 1 worker serving a
//!   1 KiB file. `ferry proxy` runs 2 runtime threads, so each proxy gets the same two
//!   workers on the machine's 2 cores; access logs are off on both. Runs alternate
//!   between the two, after a warm-up of each.
//! - switch time: `ferry proxy` in front of a `blue` backend while a keep-alive client
//!   sends requests back to back. Once the `green` backend answers (healthy), the
//!   routes file is rewritten to a new release on it and SIGHUP sent; the figure is the
//!   time from "green answered" to the first response from green after which no
//!   response comes from blue (checked for 200 ms). Then back to blue, and so on.
//!
//! - end to end through `ferry serve` ([`e2e`]): the switch time from a deploy's own
//!   steps, `ferry rollback` from start to exit, and failed requests under a steady
//!   load during 100 blue/green deploys.
//!
//! Every process started here is killed when the suite ends, however it ends.

mod e2e;

use super::machine::Machine;
use super::report::{Goal, Report, Row};
use super::stats::Timing;
use super::support::{Procs, resolve_ferry};
use crate::cli::FerrySource;
use crate::{deps, paths, phase, proc};
use anyhow::{Context, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// wrk's threads and connections, the same against both proxies.
const WRK_THREADS: usize = 2;
const WRK_CONNECTIONS: usize = 64;
const WRK_SECONDS: u64 = 10;
/// Worker processes of the nginx proxy: `ferry proxy` runs two runtime threads.
const NGINX_WORKERS: usize = 2;
/// The body the backend serves.
const BODY_BYTES: usize = 1024;
/// Release switches timed.
const SWITCHES: usize = 20;
/// How long after a switch every response must come from the new release.
const SETTLE: Duration = Duration::from_millis(200);
/// Goals.
const THROUGHPUT_RATIO_GOAL: f64 = 0.8;
const SWITCH_GOAL_MS: f64 = 100.0;

/// A loopback port free right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections on `port`.
fn wait_listening(port: u16, what: &str, procs: &mut Procs, logs: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        procs.check_alive(logs)?;
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{what} does not listen on 127.0.0.1:{port} after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// nginx and wrk, installed the way `cargo xtask setup` installs tools.
fn ensure_tools() -> anyhow::Result<()> {
    let wanted: Vec<deps::Tool> = deps::TOOLS
        .iter()
        .filter(|t| matches!(t.package, "nginx" | "wrk"))
        .cloned()
        .collect();
    let missing = deps::missing(&wanted, deps::Probe::is_present);
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    let p = phase::start(&format!("installing {}", packages.join(" ")));
    for mut cmd in deps::install_commands(&packages, deps::Privilege::detect())? {
        proc::run(&mut cmd)?;
    }
    p.done("installed");
    Ok(())
}

/// The directives every nginx here shares: files in `dir`, no logs of requests.
fn nginx_conf(dir: &Path, workers: usize, servers: &str) -> String {
    let d = dir.display();
    // As root, workers would drop to `nobody`, who cannot read the scratch directory.
    let user = if deps::Privilege::detect() == deps::Privilege::Root {
        "user root;\n"
    } else {
        ""
    };
    format!(
        "{user}worker_processes {workers};\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 1000000;\n\
           client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{servers}}}\n"
    )
}

/// Starts an nginx with `conf` in its own directory under `dir`.
fn start_nginx(
    name: &str,
    dir: &Path,
    workers: usize,
    servers: &str,
    procs: &mut Procs,
) -> anyhow::Result<()> {
    let home = dir.join(name);
    std::fs::create_dir_all(&home)?;
    let conf = home.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&home, workers, servers))?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-e")
        .arg(home.join("error.log"))
        .arg("-p")
        .arg(&home)
        .arg("-c")
        .arg(&conf);
    procs.spawn(
        name,
        &mut cmd,
        &dir.join("logs").join(format!("{name}.out")),
    )?;
    Ok(())
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// `635.00us`, `2.35ms`, `1.02s` in milliseconds.
fn wrk_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let (num, scale) = if let Some(v) = text.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// Requests per second, p50 and p99 from `wrk --latency` output, and its errors
/// (non-2xx/3xx answers and socket errors).
fn parse_wrk(out: &str) -> Option<Load> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let mut errors = 0;
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if let Some(v) = t.strip_prefix("50%") {
            p50 = wrk_ms(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            p99 = wrk_ms(v);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // connect 0, read 0, write 0, timeout 0
            errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Some(Load {
        rps: rps?,
        p50_ms: p50?,
        p99_ms: p99?,
        errors,
    })
}

fn wrk(port: u16, seconds: u64) -> anyhow::Result<Load> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        &format!("-t{WRK_THREADS}"),
        &format!("-c{WRK_CONNECTIONS}"),
        &format!("-d{seconds}s"),
        "--latency",
        "-H",
        "Host: bench.test",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    let out = proc::output(&mut cmd)?;
    parse_wrk(&out).with_context(|| format!("cannot read wrk's output:\n{out}"))
}

/// A keep-alive HTTP/1.1 client that reads `Content-Length` bodies.
struct Client {
    port: u16,
    host: &'static str,
    stream: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(port: u16) -> Client {
        Client {
            port,
            host: "bench.test",
            stream: None,
        }
    }

    /// The same client asking for another host.
    fn host(mut self, host: &'static str) -> Client {
        self.host = host;
        self
    }

    /// One GET with no retry: a closed connection is an error.
    fn get_once(&mut self) -> anyhow::Result<(u16, String)> {
        let answer = self.try_get();
        if answer.is_err() {
            self.stream = None;
        }
        answer
    }

    /// One GET; the status and body. Reconnects once if the connection was closed.
    fn get(&mut self) -> anyhow::Result<(u16, String)> {
        match self.try_get() {
            Ok(answer) => Ok(answer),
            Err(_) => {
                self.stream = None;
                self.try_get()
            }
        }
    }

    fn try_get(&mut self) -> anyhow::Result<(u16, String)> {
        if self.stream.is_none() {
            let s = TcpStream::connect(("127.0.0.1", self.port))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            self.stream = Some(BufReader::new(s));
        }
        let reader = self.stream.as_mut().context("connected above")?;
        let request = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        reader.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status line: {line:?}"))?;
        let mut length = 0;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                bail!("the connection closed in the head");
            }
            let t = line.trim_end();
            if t.is_empty() {
                break;
            }
            if let Some((k, v)) = t.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn routes_yaml(release: &str, port: u16) -> String {
    format!(
        "routes:\n  - host: \"*\"\n    service: bench\n    release: {{ name: {release}, instances: [127.0.0.1:{port}] }}\n"
    )
}

fn start_ferry_proxy(
    ferry: &Path,
    dir: &Path,
    name: &str,
    routes: &Path,
    procs: &mut Procs,
) -> anyhow::Result<(u16, u32)> {
    let port = free_port()?;
    let mut cmd = Command::new(ferry);
    cmd.args(["proxy", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--log-level", "warn", "--routes"])
        .arg(routes)
        .env("NO_COLOR", "1");
    let pid = procs.spawn(
        name,
        &mut cmd,
        &dir.join("logs").join(format!("{name}.out")),
    )?;
    wait_listening(port, "`ferry proxy`", procs, &dir.join("logs"))?;
    Ok((port, pid))
}

/// Runs the suite.
pub fn run(runs: usize, source: &FerrySource) -> anyhow::Result<Report> {
    let machine = Machine::detect();
    ensure_tools()?;
    let (ferry, ferry_desc) = resolve_ferry(source, "deploy", &["proxy", "serve"])?;
    let scratch = paths::ScratchDir::new("ferry-bench-deploy-")?;
    let dir = scratch.path().to_path_buf();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let mut procs = Procs::default();

    let p = phase::start("starting the backends (nginx, 1 worker)");
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), "x".repeat(BODY_BYTES))?;
    let (static_port, blue_port, green_port) = (free_port()?, free_port()?, free_port()?);
    let backend_servers = format!(
        "  server {{ listen 127.0.0.1:{static_port}; location / {{ root {}; }} }}\n\
         \x20 server {{ listen 127.0.0.1:{blue_port}; location / {{ return 200 \"blue\"; }} }}\n\
         \x20 server {{ listen 127.0.0.1:{green_port}; location / {{ return 200 \"green\"; }} }}\n",
        www.display()
    );
    start_nginx("backend", &dir, 1, &backend_servers, &mut procs)?;
    for port in [static_port, blue_port, green_port] {
        wait_listening(port, "the backend nginx", &mut procs, &logs)?;
    }
    p.done(&format!(
        "static on {static_port}, blue on {blue_port}, green on {green_port}"
    ));

    let p = phase::start(&format!(
        "starting the proxies: nginx ({NGINX_WORKERS} workers) and `ferry proxy` (2 threads)"
    ));
    let nginx_port = free_port()?;
    let proxy_servers = format!(
        "  upstream backend {{ server 127.0.0.1:{static_port}; keepalive {WRK_CONNECTIONS}; }}\n\
         \x20 server {{ listen 127.0.0.1:{nginx_port}; location / {{ proxy_pass http://backend; \
         proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host; }} }}\n"
    );
    start_nginx(
        "nginx-proxy",
        &dir,
        NGINX_WORKERS,
        &proxy_servers,
        &mut procs,
    )?;
    wait_listening(nginx_port, "the nginx proxy", &mut procs, &logs)?;
    let static_routes = dir.join("static-routes.yml");
    std::fs::write(&static_routes, routes_yaml("v1", static_port))?;
    let (ferry_port, _) =
        start_ferry_proxy(&ferry, &dir, "ferry-proxy", &static_routes, &mut procs)?;
    for (name, port) in [("ferry proxy", ferry_port), ("nginx", nginx_port)] {
        let (status, body) = Client::new(port).get()?;
        if status != 200 || body.len() != BODY_BYTES {
            bail!(
                "{name} on {port} answered {status} with {} bytes, not the backend's file",
                body.len()
            );
        }
    }
    p.done(&format!(
        "ferry proxy on {ferry_port}, nginx on {nginx_port}"
    ));

    let p = phase::start(&format!(
        "wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s, {runs} runs each, alternating"
    ));
    wrk(ferry_port, 2)?;
    wrk(nginx_port, 2)?;
    let (mut ferry_loads, mut nginx_loads) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ferry_loads.push(wrk(ferry_port, WRK_SECONDS)?);
        procs.check_alive(&logs)?;
        nginx_loads.push(wrk(nginx_port, WRK_SECONDS)?);
        procs.check_alive(&logs)?;
    }
    let best = |loads: &[Load]| {
        loads
            .iter()
            .copied()
            .max_by(|a, b| a.rps.total_cmp(&b.rps))
            .expect("at least one run")
    };
    let (ferry_best, nginx_best) = (best(&ferry_loads), best(&nginx_loads));
    let errors: u64 = ferry_loads
        .iter()
        .chain(&nginx_loads)
        .map(|l| l.errors)
        .sum();
    if errors > 0 {
        bail!("wrk saw {errors} failed requests: the throughput figures would mean nothing");
    }
    p.done(&format!(
        "ferry {:.0} req/s, nginx {:.0} req/s",
        ferry_best.rps, nginx_best.rps
    ));

    let p = phase::start(&format!(
        "{SWITCHES} release switches under a keep-alive client"
    ));
    let switch_routes = dir.join("switch-routes.yml");
    std::fs::write(&switch_routes, routes_yaml("r0", blue_port))?;
    let (switch_port, switch_pid) =
        start_ferry_proxy(&ferry, &dir, "ferry-switch", &switch_routes, &mut procs)?;
    let mut client = Client::new(switch_port);
    let mut switch_samples = Vec::new();
    for i in 1..=SWITCHES {
        let (color, port) = if i % 2 == 1 {
            ("green", green_port)
        } else {
            ("blue", blue_port)
        };
        // The new release is healthy: it answers on its own.
        let (status, body) = Client::new(port).get()?;
        if status != 200 || body != color {
            bail!("the {color} backend answered {status} {body:?}");
        }
        let healthy = Instant::now();
        std::fs::write(&switch_routes, routes_yaml(&format!("r{i}"), port))?;
        proc::run(Command::new("kill").args(["-HUP", &switch_pid.to_string()]))?;
        let mut first_new: Option<Instant> = None;
        loop {
            let (status, body) = client.get()?;
            let now = Instant::now();
            if status != 200 {
                bail!("switch {i}: the proxy answered {status} {body:?}");
            }
            if body == color {
                let since = *first_new.get_or_insert(now);
                if now.duration_since(since) >= SETTLE {
                    break;
                }
            } else {
                first_new = None;
            }
            if now.duration_since(healthy) > Duration::from_secs(10) {
                bail!("switch {i}: {color} still does not take every request after 10 s");
            }
        }
        let switched = first_new.context("the loop ends on the new release")?;
        switch_samples.push(switched.duration_since(healthy));
    }
    procs.check_alive(&logs)?;
    let switch = Timing::new(
        "switch: new release healthy → every request on it",
        &switch_samples,
    );
    p.done(&format!(
        "median {:.1} ms, max {:.1} ms",
        switch.median_s * 1000.0,
        switch.max_s * 1000.0
    ));

    let p = phase::start(&format!(
        "end to end through `ferry serve`: {} blue/green deploys under {} req/s, then {} rollbacks",
        e2e::DEPLOYS,
        e2e::RATE,
        e2e::ROLLBACKS
    ));
    let end_to_end = e2e::run(&ferry, &dir, &mut procs);
    match &end_to_end {
        Ok(m) => p.done(&format!(
            "{} deploys, {} of {} requests failed",
            m.deploys, m.failed, m.requests
        )),
        Err(e) => p.done(&format!("failed: {e:#}")),
    }

    drop(procs);
    drop(scratch);

    let ratio = ferry_best.rps / nginx_best.rps;
    let fairness = format!(
        "wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s, best of {runs} alternating runs; \
         same nginx backend (1 worker, 1 KiB file); ferry proxy 2 threads, nginx {NGINX_WORKERS} workers; access logs off"
    );
    let results = vec![
        Row::new(
            "proxy throughput, ferry / nginx",
            ratio,
            "",
            Some(Goal::AtLeast(THROUGHPUT_RATIO_GOAL)),
            &fairness,
        ),
        Row::new(
            "proxy throughput, ferry proxy",
            ferry_best.rps,
            "req/s",
            None,
            "the same run as the ratio",
        ),
        Row::new(
            "proxy throughput, nginx",
            nginx_best.rps,
            "req/s",
            None,
            "Debian's nginx, proxy_pass, upstream keepalive 64",
        ),
        Row::new(
            "latency p50, ferry proxy",
            ferry_best.p50_ms,
            "ms",
            None,
            "wrk --latency, best run",
        ),
        Row::new(
            "latency p99, ferry proxy",
            ferry_best.p99_ms,
            "ms",
            None,
            "wrk --latency, best run",
        ),
        Row::new(
            "latency p50, nginx",
            nginx_best.p50_ms,
            "ms",
            None,
            "wrk --latency, best run",
        ),
        Row::new(
            "latency p99, nginx",
            nginx_best.p99_ms,
            "ms",
            None,
            "wrk --latency, best run",
        ),
        Row::new(
            "switch time, worst of switches",
            switch.max_s * 1000.0,
            "ms",
            Some(Goal::AtMost(SWITCH_GOAL_MS)),
            &format!(
                "{SWITCHES} switches of `ferry proxy` (routes file + SIGHUP): from the new backend answering to the first response from it after which all are from it (200 ms checked), keep-alive client back to back; median {:.1} ms",
                switch.median_s * 1000.0
            ),
        ),
    ];
    let mut results = results;
    let mut e2e_timings = Vec::new();
    match end_to_end {
        Ok(m) => {
            let sw = Timing::new("end to end: healthy → switched, per deploy", &m.switch);
            let rb = Timing::new("end to end: ferry rollback, start to exit", &m.rollback);
            results.push(Row::new(
                "switch time end to end, worst of deploys",
                sw.max_s * 1000.0,
                "ms",
                Some(Goal::AtMost(SWITCH_GOAL_MS)),
                &format!(
                    "{} blue/green deploys through `ferry serve`: from the deploy's \"vN is healthy.\" step to its first step after the switch (ms timestamps); median {:.0} ms",
                    m.deploys,
                    sw.median_s * 1000.0
                ),
            ));
            results.push(Row::new(
                "rollback time, worst",
                rb.max_s,
                "s",
                Some(Goal::AtMost(3.0)),
                &format!(
                    "`ferry rollback web --env prod`, {} times, from start to exit, cold (the old release is not kept warm: it starts and passes its health check again); median {:.2} s",
                    m.rollback.len(),
                    rb.median_s
                ),
            ));
            results.push(Row::new(
                "failed requests during blue/green deploys",
                m.failed as f64,
                "",
                Some(Goal::AtMost(0.0)),
                &format!(
                    "{} deploys alternating two releases (python3 http.server, process target), {} req/s through the proxy (2 keep-alive connections, 1 new connection per request); {} requests sent{}",
                    m.deploys,
                    e2e::RATE,
                    m.requests,
                    if m.failures.is_empty() {
                        String::new()
                    } else {
                        format!("; first failures: {}", m.failures.join("; "))
                    }
                ),
            ));
            e2e_timings.push(sw);
            e2e_timings.push(rb);
        }
        Err(e) => phase::note(&format!("the end-to-end figures are missing: {e:#}")),
    }
    let secs = |loads: &[Load]| -> Vec<Duration> {
        // wrk's figures as the time per 1000 requests, so "min" is the best run.
        loads
            .iter()
            .map(|l| Duration::from_secs_f64(1000.0 / l.rps))
            .collect()
    };
    let timings = vec![
        Timing::new(
            "ferry proxy, 1000 requests (from req/s)",
            &secs(&ferry_loads),
        ),
        Timing::new("nginx, 1000 requests (from req/s)", &secs(&nginx_loads)),
        switch,
    ];
    let timings = timings.into_iter().chain(e2e_timings).collect();
    Ok(Report {
        suite: "deploy".into(),
        machine,
        ferry: ferry_desc,
        runs,
        results,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_figures_in_any_unit_and_counts_errors() {
        let out = "\
Running 10s test @ http://127.0.0.1:8080/
  2 threads and 64 connections
  Latency Distribution
     50%  635.00us
     75%    1.10ms
     90%    1.80ms
     99%    2.35ms
  412345 requests in 10.00s, 500.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  41234.50
Transfer/sec:     50.00MB
";
        let load = parse_wrk(out).unwrap();
        assert!((load.rps - 41234.5).abs() < 1e-9);
        assert!((load.p50_ms - 0.635).abs() < 1e-9);
        assert!((load.p99_ms - 2.35).abs() < 1e-9);
        assert_eq!(load.errors, 7);
        assert_eq!(wrk_ms("1.02s"), Some(1020.0));
        assert!(parse_wrk("garbage").is_none());
    }
}
