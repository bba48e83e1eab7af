//! `ferry serve --tls-cert --tls-key`: the API over HTTPS, reached by the CLI and an
//! agent that trust its certificate through `--ca-cert` / `FERRY_CA_CERT`.

use crate::harness::{
    ServerProc, add_project, agent_token, job, job_log, start_agent, trigger, wait_until,
};
use crate::support::{Repo, output, stderr};
use std::path::Path;
use std::time::Duration;

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
fn certificate(dir: &Path) -> (String, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    (
        cert.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
    )
}

#[test]
fn the_cli_and_an_agent_reach_an_https_server_that_they_trust() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let server = ServerProc::start(
        &dir.path().join("data"),
        &[
            "--executor-jobs",
            "0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let admin = server.token.clone().expect("admin token");

    // Not trusted: the system's CAs never signed this certificate.
    let out = output(
        server
            .cli(&admin)
            .env_remove("FERRY_CA_CERT")
            .args(["project", "list"]),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("certificate"), "{err}");
    assert!(
        err.contains("--ca-cert"),
        "the hint says how to trust it: {err}"
    );

    // Trusted through the flag, and through the variable (which `cli` sets for a
    // server started with --tls-cert).
    let out = output(server.cli(&admin).env_remove("FERRY_CA_CERT").args([
        "project",
        "list",
        "--ca-cert",
        &cert,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let repo = Repo::new(&[(
        "ferry.yml",
        "on: [manual]\njobs:\n  hello:\n    steps:\n      - run: echo hello over https\n",
    )]);
    add_project(&server, &admin, "secure", repo.path());

    // An agent takes and finishes a job over HTTPS (long-polls, logs, results).
    let token = agent_token(&server, &admin);
    let trust = format!("FERRY_CA_CERT={cert}");
    let _agent = start_agent(
        dir.path(),
        &server.url,
        &token,
        "tls-agent",
        "linux",
        &["env", &trust],
    );
    let id = trigger(&server, &admin, "secure");
    wait_until(
        &server,
        &admin,
        id,
        Duration::from_secs(60),
        "hello to succeed",
        |d| job(d, "hello")["status"] == "success",
    );
    assert!(job_log(&server, &admin, id, "hello").contains("hello over https"));

    // Plain HTTP to the HTTPS port gets no answer it could mistake for the API.
    let plain = server.url.replacen("https://", "http://", 1);
    let out = output(
        server
            .cli(&admin)
            .args(["project", "list", "--server", &plain]),
    );
    assert!(!out.status.success());
}

#[test]
fn a_certificate_without_its_key_is_refused_before_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = certificate(dir.path());
    let serve = |tls: &[&str]| {
        output(
            crate::support::ferry(&dir.path().join("data"))
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(tls),
        )
    };
    let out = serve(&["--tls-cert", &cert]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");

    // A key that is not a key names the file.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a key\n").unwrap();
    let out = serve(&["--tls-cert", &cert, "--tls-key", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("junk.pem"), "{}", stderr(&out));
}
