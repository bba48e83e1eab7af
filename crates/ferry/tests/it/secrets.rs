//! `ferry secret`: set, list, remove, and values never shown.

use crate::support::{ferry, output, stderr, stdout};
use std::io::Write;
use std::process::Stdio;

pub(crate) fn set_secret(data: &std::path::Path, name: &str, value: &str) {
    let mut child = ferry(data)
        .args(["secret", "set", name])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn secrets_are_set_listed_by_name_and_removed() {
    let data = tempfile::tempdir().unwrap();
    set_secret(data.path(), "DEPLOY_TOKEN", "tok-123456\n");
    let file = data.path().join("value.txt");
    std::fs::write(&file, "from-a-file-value").unwrap();
    let out = output(
        ferry(data.path())
            .args(["secret", "set", "API_KEY", "--from-file"])
            .arg(&file),
    );
    assert!(out.status.success());

    let out = output(ferry(data.path()).args(["secret", "list"]));
    assert!(out.status.success());
    assert_eq!(stdout(&out), "API_KEY\nDEPLOY_TOKEN\n");

    // Nothing on disk holds the value in the clear.
    for entry in std::fs::read_dir(data.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path != file {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("tok-123456"),
                "{} holds the value",
                path.display()
            );
        }
    }

    let out = output(ferry(data.path()).args(["secret", "rm", "DEPLOY_TOKEN"]));
    assert!(out.status.success());
    let out = output(ferry(data.path()).args(["secret", "list"]));
    assert_eq!(stdout(&out), "API_KEY\n");

    let out = output(ferry(data.path()).args(["secret", "rm", "DEPLOY_TOKEN"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no secret named `DEPLOY_TOKEN`"));
}

#[test]
fn a_bad_secret_name_is_bad_input() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("v");
    std::fs::write(&file, "value").unwrap();
    let out = output(
        ferry(data.path())
            .args(["secret", "set", "NOT-OK", "--from-file"])
            .arg(&file),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("NOT-OK"));
}
