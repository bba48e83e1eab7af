//! The deploy commands against a real `ferry serve`: what they say when there is
//! nothing to deploy, and the exit codes scripts rely on.

use crate::harness::ServerProc;
use crate::support::{output, stderr, stdout};

#[test]
fn deploy_commands_explain_a_server_with_no_services() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("data"), &[]);
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
