//! `ferry up`: a server on defaults, the bundled example, a green run to watch.

use crate::harness::{ServerProc, http_head, wait_finished};
use crate::support::{ferry, output, stdout};
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn start_up(data: &Path) -> ServerProc {
    let mut cmd = ferry(data);
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--proxy-listen",
        "127.0.0.1:0",
    ]);
    ServerProc::spawn(cmd, data, "Ferry is running at ", "Ctrl-C stops the server")
}

/// The value after `label` on a line of `text`.
fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{text}"))
}

/// GETs `url` (`http://NAME.localhost:PORT/`) from the proxy on 127.0.0.1:PORT, with
/// the URL's host name in `Host`, as a browser resolving `*.localhost` would.
fn get_through_proxy(url: &str) -> (String, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = authority.rsplit_once(':').expect("a port in the URL");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
        .expect("connect to the proxy");
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
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

#[test]
fn up_serves_the_example_and_its_run_turns_green() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut up = start_up(&data);
    let printed = up.lines.lock().unwrap().join("\n");
    let open = field(&printed, "Open in your browser:");
    let run_url = field(&printed, "Example run:");
    let token = field(&printed, "Admin token:");
    assert!(
        open.starts_with(&format!("{}/login?token=ferry_", up.url)),
        "{printed}"
    );
    assert!(
        printed.contains("(new)"),
        "the first token is new: {printed}"
    );
    let id: i64 = run_url
        .rsplit('/')
        .next()
        .and_then(|i| i.parse().ok())
        .expect("run id in the URL");

    // The token file is the owner's only, and the CLI finds it without --token.
    let file = data.join("admin.token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    let detail = {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let out = ferry(&data)
                .env("FERRY_SERVER", &up.url)
                .args(["runs", "show", &id.to_string(), "--json"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if matches!(
                v["run"]["status"].as_str(),
                Some("success" | "failure" | "cancelled")
            ) {
                break v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the example run did not end: {v:#}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    assert_eq!(detail["run"]["status"], "success", "{detail:#}");
    assert_eq!(detail["run"]["project"], "static-site");

    // The run's `ship` job released the site and deployed it to staging, behind the
    // proxy at the printed URL; promotion takes the same release to production.
    let staging = field(&printed, "Example app:");
    let (head, body) = get_through_proxy(&staging);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    assert!(body.contains("<title>Ferry example site</title>"), "{body}");
    let production = printed
        .lines()
        .find_map(|l| {
            l.split_once("  ->  ")
                .map(|(_, url)| url.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no production URL in:\n{printed}"));
    let (head, _) = get_through_proxy(&production);
    assert!(
        head.starts_with("HTTP/1.1 404"),
        "production has no release before the promotion: {head}"
    );
    let out = output(ferry(&data).env("FERRY_SERVER", &up.url).args([
        "promote",
        "example",
        "--from",
        "staging",
        "--to",
        "production",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = get_through_proxy(&production);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    assert!(body.contains("<title>Ferry example site</title>"), "{body}");
    // The instances' output is kept: both production instances said where they serve.
    let out = output(ferry(&data).env("FERRY_SERVER", &up.url).args([
        "services",
        "example",
        "--output",
        "production",
    ]));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches("Serving public at http://127.0.0.1:").count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("==> example-production-v1-0 (v1) <=="),
        "{text}"
    );
    let out = output(
        ferry(&data)
            .env("FERRY_SERVER", &up.url)
            .args(["releases", "example"]),
    );
    let listed = stdout(&out);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("v1 ") && l.contains("production, staging")),
        "{listed}"
    );

    // The printed link signs the browser in, and the run's page shows the run.
    let head = http_head(&open);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().to_string())
        })
        .expect("a session cookie");
    let cookie = cookie.split(';').next().unwrap_or("").to_string();
    let (head, body) = crate::harness::http_get(&run_url, Some(&cookie));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.contains("static-site"),
        "the run page names the project"
    );

    let status = up.signal_and_wait(Signal::SIGINT, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));

    // A second `ferry up` reuses the token and the project, and runs it again.
    let again = start_up(&data);
    let printed = again.lines.lock().unwrap().join("\n");
    assert_eq!(field(&printed, "Admin token:"), token);
    assert!(!printed.contains("(new)"), "{printed}");
    let run_url = field(&printed, "Example run:");
    let second: i64 = run_url
        .rsplit('/')
        .next()
        .and_then(|i| i.parse().ok())
        .unwrap();
    assert!(second > id);
    let out = output(
        ferry(&data)
            .env("FERRY_SERVER", &again.url)
            .args(["project", "list"]),
    );
    assert!(out.status.success());
    let listed = stdout(&out);
    assert_eq!(
        listed
            .lines()
            .filter(|l| l.starts_with("static-site "))
            .count(),
        1,
        "{listed}"
    );
    let detail = wait_finished(&again, &token, second, Duration::from_secs(90));
    assert_eq!(detail["run"]["status"], "success", "{detail:#}");
}

#[test]
fn up_moves_to_the_next_free_port_when_7878_is_taken() {
    // Hold the default port (if something else holds it already, so much the better).
    let _taken = std::net::TcpListener::bind("127.0.0.1:7878");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = ferry(&data);
    cmd.args(["up", "--no-example"]).env_remove("FERRY_LISTEN");
    let up = ServerProc::spawn(
        cmd,
        &data,
        "Ferry is running at ",
        "Ctrl-C stops the server",
    );
    let printed = up.lines.lock().unwrap().join("\n");
    assert!(printed.contains("(port 7878 was taken)"), "{printed}");
    assert_ne!(up.port(), 7878);
    assert!((7879..=7898).contains(&up.port()), "{}", up.url);
    assert!(
        printed.contains(&format!("export FERRY_SERVER={}", up.url)),
        "{printed}"
    );
    assert!(!printed.contains("Example run:"), "--no-example: {printed}");
}
