//! `ferry hook install`: a push to a bare repository calls the server.

use super::support::git;
use ferry_engine::server::{HOOK_TOKEN_FILE, install_hook, post_receive_hook, write_hook_token};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[test]
fn git_push_to_a_bare_repository_posts_each_ref_with_the_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the body announced by Content-Length is in.
        loop {
            let n = conn.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
        }
        conn.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            .expect("write");
        String::from_utf8_lossy(&req).to_string()
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let bare = dir.path().join("app.git");
    git(
        dir.path(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            &bare.display().to_string(),
        ],
    );
    let script = post_receive_hook(
        &format!("http://127.0.0.1:{port}/"),
        "app",
        Path::new(HOOK_TOKEN_FILE),
    );
    assert!(
        !script.contains("fy_secret"),
        "the token is never in the script"
    );
    let hook = install_hook(&bare, &script).expect("install");
    let token = write_hook_token(&bare, "fy_secret").expect("token");
    assert_eq!(
        std::fs::metadata(&hook).expect("hook").permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::metadata(&token)
            .expect("token")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let work = dir.path().join("work");
    git(
        dir.path(),
        &["init", "-q", "-b", "main", &work.display().to_string()],
    );
    std::fs::write(work.join("ferry.yml"), "jobs:\n  a:\n    steps: [echo]\n").expect("write");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "init"]);
    git(&work, &["push", "-q", &bare.display().to_string(), "main"]);
    let sha = String::from_utf8_lossy(
        &std::process::Command::new("git")
            .arg("-C")
            .arg(&work)
            .args(["rev-parse", "HEAD"])
            .output()
            .expect("git")
            .stdout,
    )
    .trim()
    .to_string();

    let request = server.join().expect("listener");
    assert!(
        request.starts_with("POST /api/v1/projects/app/runs "),
        "{request}"
    );
    assert!(
        request.contains("Authorization: Bearer fy_secret\r\n"),
        "{request}"
    );
    let body = request
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    assert_eq!(json["ref"], "refs/heads/main");
    assert_eq!(json["sha"], sha.as_str());
}
