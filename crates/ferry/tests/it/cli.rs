//! The command line itself: help, version, completions, exit codes, `validate`, `schema`.

use crate::support::{Repo, ferry, output, stderr, stdout};

#[test]
fn version_names_the_binary_and_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = output(ferry(dir.path()).arg("--version"));
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("ferry {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["validate", "--help"],
        vec!["schema", "--help"],
        vec!["secret", "--help"],
        vec!["secret", "set", "--help"],
        vec!["secret", "list", "--help"],
        vec!["secret", "rm", "--help"],
        vec!["completions", "--help"],
        vec!["up", "--help"],
        vec!["serve", "--help"],
        vec!["agent", "--help"],
        vec!["project", "--help"],
        vec!["project", "add", "--help"],
        vec!["project", "list", "--help"],
        vec!["project", "show", "--help"],
        vec!["project", "rm", "--help"],
        vec!["hook", "install", "--help"],
        vec!["trigger", "--help"],
        vec!["runs", "--help"],
        vec!["runs", "show", "--help"],
        vec!["cancel", "--help"],
        vec!["approve", "--help"],
        vec!["rerun", "--help"],
        vec!["logs", "--help"],
        vec!["events", "--help"],
        vec!["token", "--help"],
        vec!["token", "create", "--help"],
        vec!["token", "list", "--help"],
        vec!["token", "revoke", "--help"],
    ] {
        let out = output(ferry(dir.path()).args(&args));
        assert!(out.status.success(), "{args:?} --help failed");
        assert!(
            stdout(&out).contains("Usage: ferry"),
            "{args:?} printed no usage"
        );
    }
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
    ] {
        let out = output(ferry(dir.path()).args(["completions", shell]));
        assert!(out.status.success());
        let text = stdout(&out);
        assert!(text.contains(marker), "{shell} completion lacks {marker:?}");
        assert!(
            text.contains("validate"),
            "{shell} completion lacks subcommands"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = output(ferry(dir.path()).arg("frobnicate"));
    assert_eq!(out.status.code(), Some(2));
    let out = output(ferry(dir.path()).args(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn validate_reports_every_problem_and_exits_2() {
    let repo = Repo::new(&[(
        "ferry.yml",
        "name: broken\njobs:\n  build:\n    neds: [lint]\n    steps:\n      - run: make\n  test:\n    needs: [biuld]\n    steps:\n      - run: make test\n",
    )]);
    let data = tempfile::tempdir().unwrap();
    let out = output(ferry(data.path()).arg("validate").current_dir(repo.path()));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("ferry.yml:4:5"),
        "unknown key not located: {err}"
    );
    assert!(err.contains("needs"), "no did-you-mean for `neds`: {err}");
    assert!(
        err.contains("ferry.yml:8:"),
        "missing job not located: {err}"
    );
    assert!(err.contains("build"), "no did-you-mean for `biuld`: {err}");
    assert!(err.contains("2 problems found"), "{err}");
}

#[test]
fn validate_accepts_a_good_file() {
    let repo = Repo::new(&[(
        "ferry.yml",
        "jobs:\n  test:\n    matrix:\n      n: [1, 2, 3]\n    steps:\n      - run: echo ${{ matrix.n }}\n",
    )]);
    let data = tempfile::tempdir().unwrap();
    let out = output(ferry(data.path()).arg("validate").current_dir(repo.path()));
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        "ferry.yml: valid, 1 job (3 with matrix combinations)"
    );
}

#[test]
fn validate_of_a_missing_file_is_bad_input() {
    let data = tempfile::tempdir().unwrap();
    let out = output(ferry(data.path()).args(["validate", "/nonexistent/ferry.yml"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/ferry.yml"));
}

#[test]
fn schema_is_json_describing_jobs() {
    let data = tempfile::tempdir().unwrap();
    let out = output(ferry(data.path()).arg("schema"));
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("schema is JSON");
    let text = schema.to_string();
    for key in [
        "jobs",
        "needs",
        "steps",
        "matrix",
        "services",
        "cancel-in-progress",
    ] {
        assert!(text.contains(key), "schema does not mention {key}");
    }
}
