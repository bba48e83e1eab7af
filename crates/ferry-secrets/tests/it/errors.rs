//! The messages people read when a secret operation fails, pinned.

use std::os::unix::fs::PermissionsExt as _;

use ferry_secrets::{KeySource, MasterKey, SecretStore};

/// Runs `f` against a store in a temp dir and returns its error message with the
/// temp dir written as `<data>`.
fn message<T: std::fmt::Debug>(
    setup: impl FnOnce(&std::path::Path),
    f: impl FnOnce(&SecretStore) -> Result<T, ferry_secrets::SecretError>,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let store = SecretStore::open_with_key(dir.path(), MasterKey::from_bytes([1; 32])).unwrap();
    let err = f(&store).unwrap_err().to_string();
    err.replace(&dir.path().display().to_string(), "<data>")
}

fn written_with_another_key(dir: &std::path::Path) {
    let other = SecretStore::open_with_key(dir, MasterKey::from_bytes([2; 32])).unwrap();
    other.set("DEPLOY_TOKEN", b"t").unwrap();
}

#[test]
fn invalid_name_says_what_is_allowed() {
    insta::assert_snapshot!(message(|_| {}, |s| s.set("deploy-token", b"x")), @"invalid secret name `deploy-token`: a name starts with a letter or `_` and contains only ASCII letters, digits and `_` (for example `DATABASE_URL`)");
}

#[test]
fn malformed_master_key_says_the_expected_format() {
    let err = MasterKey::parse("0123456789abcdef", &KeySource::Env).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @"`FERRY_MASTER_KEY` is not a valid master key: it is base64 of 12 bytes, not 32; expected 64 hex characters or the base64 of 32 bytes (generate one with `openssl rand -hex 32`)");
}

#[test]
fn wrong_key_names_the_secret_and_the_key_source() {
    insta::assert_snapshot!(message(written_with_another_key, |s| s.get("DEPLOY_TOKEN")), @"cannot decrypt secret `DEPLOY_TOKEN` in `<data>/secrets.json`: the master key from the caller does not match the one it was encrypted with; restore the original key (was `FERRY_MASTER_KEY` changed?) or set the secret again");
}

#[test]
fn writing_with_a_changed_key_is_refused() {
    insta::assert_snapshot!(message(written_with_another_key, |s| s.set("OTHER", b"x")), @"the master key from the caller does not match the one `<data>/secrets.json` was written with; restore the original key (was `FERRY_MASTER_KEY` changed?) before changing secrets");
}

#[test]
fn damaged_files_name_the_file() {
    let bad_json = |d: &std::path::Path| std::fs::write(d.join("secrets.json"), "{").unwrap();
    insta::assert_snapshot!(message(bad_json, |s| s.list()), @"`<data>/secrets.json` is not a valid secrets file: EOF while parsing an object at line 1 column 1; restore it from a backup");
    let newer = |d: &std::path::Path| {
        std::fs::write(d.join("secrets.json"), r#"{"version":2,"secrets":{}}"#).unwrap()
    };
    insta::assert_snapshot!(message(newer, |s| s.list()), @"`<data>/secrets.json` has format version 2, which this Ferry does not know (it reads version 1); upgrade Ferry");
}

#[test]
fn exposed_key_file_says_how_to_fix_it() {
    if std::env::var_os("FERRY_MASTER_KEY").is_some_and(|v| !v.is_empty()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("master.key"), "00".repeat(32)).unwrap();
    std::fs::set_permissions(
        dir.path().join("master.key"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let err = SecretStore::open(dir.path()).unwrap_err().to_string();
    let err = err.replace(&dir.path().display().to_string(), "<data>");
    insta::assert_snapshot!(err, @"the master key file `<data>/master.key` is accessible to other users (mode 0640); restrict it with `chmod 600 <data>/master.key`");
}
