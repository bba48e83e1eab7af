use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use ferry_secrets::{KeySource, MasterKey, SecretError, SecretStore};

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes([byte; 32])
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn round_trips_values_and_keeps_them_encrypted_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::open_with_key(dir.path(), key(1)).unwrap();
    store
        .set("DATABASE_URL", b"postgres://u:hunter2@db/app")
        .unwrap();
    store.set("_BINARY", &[0, 255, 10, 13]).unwrap();
    store.set("EMPTY", b"").unwrap();
    assert_eq!(
        store.get("DATABASE_URL").unwrap().as_deref(),
        Some(&b"postgres://u:hunter2@db/app"[..])
    );
    assert_eq!(
        store.get("_BINARY").unwrap().as_deref(),
        Some(&[0, 255, 10, 13][..])
    );
    assert_eq!(store.get("EMPTY").unwrap().as_deref(), Some(&b""[..]));
    assert_eq!(store.get("MISSING").unwrap(), None);

    // Overwrite, and a fresh handle sees the same.
    store.set("DATABASE_URL", b"postgres://new").unwrap();
    let reopened = SecretStore::open_with_key(dir.path(), key(1)).unwrap();
    assert_eq!(
        reopened.get("DATABASE_URL").unwrap().as_deref(),
        Some(&b"postgres://new"[..])
    );

    let on_disk = std::fs::read_to_string(dir.path().join("secrets.json")).unwrap();
    assert!(
        !on_disk.contains("hunter2") && !on_disk.contains("postgres"),
        "{on_disk}"
    );
    assert!(on_disk.contains("\"version\": 1"), "{on_disk}");
    assert_eq!(mode(&dir.path().join("secrets.json")), 0o600);
}

#[test]
fn get_many_returns_the_existing_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::open_with_key(dir.path(), key(1)).unwrap();
    store.set("A", b"1").unwrap();
    store.set("B", b"2").unwrap();
    let got = store.get_many(["A", "B", "C"]).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got["A"], b"1");
    assert_eq!(got["B"], b"2");
}

#[test]
fn list_shows_sorted_names_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::open_with_key(dir.path(), key(1)).unwrap();
    assert!(store.list().unwrap().is_empty());
    store.set("ZETA", b"value-z").unwrap();
    store.set("ALPHA", b"value-a").unwrap();
    store.set("_mid", b"value-m").unwrap();
    let names = store.list().unwrap();
    assert_eq!(names, ["ALPHA", "ZETA", "_mid"]);
    assert!(names.iter().all(|n| !n.contains("value")));
}

#[test]
fn remove_deletes_and_reports_whether_the_secret_existed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::open_with_key(dir.path(), key(1)).unwrap();
    store.set("TOKEN", b"abc").unwrap();
    store.set("OTHER", b"def").unwrap();
    assert!(store.remove("TOKEN").unwrap());
    assert!(!store.remove("TOKEN").unwrap());
    assert_eq!(store.get("TOKEN").unwrap(), None);
    assert_eq!(store.list().unwrap(), ["OTHER"]);
}

#[test]
fn rejects_invalid_names_saying_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::open_with_key(dir.path(), key(1)).unwrap();
    for bad in ["", "1ABC", "MY-KEY", "a b", "NAME=1", "ÜBER", "../x"] {
        let err = store.set(bad, b"v").unwrap_err();
        assert!(
            matches!(err, SecretError::InvalidName { .. }),
            "{bad}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("`{bad}`")), "{msg}");
        assert!(msg.contains("letters, digits and `_`"), "{msg}");
        assert!(store.get(bad).is_err());
    }
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn generates_the_key_file_with_mode_0600_and_reuses_it() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let store = SecretStore::open(&data);
    // `open` honours FERRY_MASTER_KEY; this test is about the file, so only check the
    // file when the variable is not set in the test environment.
    if std::env::var_os("FERRY_MASTER_KEY").is_some_and(|v| !v.is_empty()) {
        return;
    }
    let store = store.unwrap();
    let key_file = data.join("master.key");
    assert_eq!(store.key_source(), &KeySource::File(key_file.clone()));
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(&data), 0o700);
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(text.trim().len(), 64);
    store.set("TOKEN", b"abc").unwrap();
    // A second open reads the same key.
    let again = SecretStore::open(&data).unwrap();
    assert_eq!(again.get("TOKEN").unwrap().as_deref(), Some(&b"abc"[..]));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), text);
}

#[test]
fn refuses_a_key_file_other_users_can_read() {
    if std::env::var_os("FERRY_MASTER_KEY").is_some_and(|v| !v.is_empty()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    SecretStore::open(dir.path()).unwrap();
    let key_file = dir.path().join("master.key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let msg = SecretStore::open(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("accessible to other users (mode 0644)"),
        "{msg}"
    );
    assert!(msg.contains("chmod 600"), "{msg}");
}

#[test]
fn a_key_given_as_hex_or_base64_opens_the_same_secrets() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let bytes = [0x5a; 32];
    let hex_key = MasterKey::parse(&"5a".repeat(32), &KeySource::Env).unwrap();
    let b64_key = MasterKey::parse(
        &base64::engine::general_purpose::STANDARD.encode(bytes),
        &KeySource::Env,
    )
    .unwrap();
    SecretStore::open_with_key(dir.path(), hex_key)
        .unwrap()
        .set("T", b"v")
        .unwrap();
    let store = SecretStore::open_with_key(dir.path(), b64_key).unwrap();
    assert_eq!(store.get("T").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(!dir.path().join("master.key").exists());
}

#[test]
fn a_changed_master_key_is_a_clear_error_naming_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    SecretStore::open_with_key(dir.path(), key(1))
        .unwrap()
        .set("DEPLOY_TOKEN", b"tok")
        .unwrap();
    let wrong = SecretStore::open_with_key(dir.path(), key(2)).unwrap();

    let err = wrong.get("DEPLOY_TOKEN").unwrap_err();
    assert!(matches!(err, SecretError::WrongKey { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("`DEPLOY_TOKEN`"), "{msg}");
    assert!(msg.contains("master key"), "{msg}");
    assert!(msg.contains("does not match"), "{msg}");
    assert!(wrong.get_many(["DEPLOY_TOKEN"]).is_err());
    assert!(wrong.verify_key().is_err());

    // Writing with the wrong key is refused instead of mixing two keys in one file.
    let err = wrong.set("OTHER", b"x").unwrap_err();
    assert!(matches!(err, SecretError::KeyMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("does not match"), "{err}");
    // Names can still be listed, and the right key still works.
    assert_eq!(wrong.list().unwrap(), ["DEPLOY_TOKEN"]);
    let right = SecretStore::open_with_key(dir.path(), key(1)).unwrap();
    right.verify_key().unwrap();
    assert_eq!(
        right.get("DEPLOY_TOKEN").unwrap().as_deref(),
        Some(&b"tok"[..])
    );
}

#[test]
fn a_value_moved_to_another_name_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::open_with_key(dir.path(), key(1)).unwrap();
    store.set("PROD_TOKEN", b"prod").unwrap();
    store.set("TEST_TOKEN", b"test").unwrap();
    let path = dir.path().join("secrets.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let prod = json["secrets"]["PROD_TOKEN"].clone();
    json["secrets"]["TEST_TOKEN"] = prod;
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let err = store.get("TEST_TOKEN").unwrap_err();
    assert!(matches!(err, SecretError::WrongKey { ref name, .. } if name == "TEST_TOKEN"));
    assert_eq!(
        store.get("PROD_TOKEN").unwrap().as_deref(),
        Some(&b"prod"[..])
    );
}

#[test]
fn a_damaged_or_newer_secrets_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::open_with_key(dir.path(), key(1)).unwrap();
    let path = dir.path().join("secrets.json");
    std::fs::write(&path, "{ not json").unwrap();
    let msg = store.list().unwrap_err().to_string();
    assert!(
        msg.contains("secrets.json") && msg.contains("not a valid secrets file"),
        "{msg}"
    );
    std::fs::write(&path, r#"{"version": 7, "secrets": {}}"#).unwrap();
    let msg = store.get("A").unwrap_err().to_string();
    assert!(
        msg.contains("format version 7") && msg.contains("upgrade Ferry"),
        "{msg}"
    );
    std::fs::write(&path, r#"{"version": 1, "secrets": {"A": "!!"}}"#).unwrap();
    let msg = store.get("A").unwrap_err().to_string();
    assert!(
        msg.contains("secret `A`") && msg.contains("corrupt"),
        "{msg}"
    );
}

#[test]
fn concurrent_writers_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let path = dir.path();
            s.spawn(move || {
                let store = SecretStore::open_with_key(path, key(1)).unwrap();
                for i in 0..10 {
                    store.set(&format!("S_{t}_{i}"), b"v").unwrap();
                }
            });
        }
    });
    let store = SecretStore::open_with_key(dir.path(), key(1)).unwrap();
    assert_eq!(store.list().unwrap().len(), 40);
}

#[test]
fn concurrent_first_opens_agree_on_one_master_key() {
    if std::env::var_os("FERRY_MASTER_KEY").is_some_and(|v| !v.is_empty()) {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("fresh");
    std::thread::scope(|s| {
        for t in 0..4 {
            let data = &data;
            s.spawn(move || {
                SecretStore::open(data)
                    .unwrap()
                    .set(&format!("T{t}"), b"v")
                    .unwrap();
            });
        }
    });
    let store = SecretStore::open(&data).unwrap();
    for t in 0..4 {
        assert_eq!(
            store.get(&format!("T{t}")).unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
