//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A `ferry` command with an isolated data directory and no colour.
pub fn ferry(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.env("FERRY_DATA_DIR", data_dir)
        .env("NO_COLOR", "1")
        // Servers under test run side by side: none takes the proxy's default port.
        .env("FERRY_PROXY_LISTEN", "127.0.0.1:0")
        .env(
            "FERRY_MASTER_KEY",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        )
        // Examples that build with cargo must write to their own target/.
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null());
    cmd
}

/// Runs a command and returns its output, printing it when the test fails later.
pub fn output(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the ferry binary runs");
    eprintln!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Text of stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Text of stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary git repository holding `files` (path, content), committed on `main`.
pub struct Repo {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl Repo {
    /// Creates and commits the repository.
    pub fn new(files: &[(&str, &str)]) -> Repo {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, content) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("file has a parent")).expect("mkdir");
            std::fs::write(&p, content).expect("write file");
        }
        let repo = Repo { dir };
        repo.commit_all("initial");
        repo
    }

    /// A repository holding a copy of `src` (a directory), committed on `main`.
    pub fn copy_of(src: &Path) -> Repo {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(src, dir.path());
        let repo = Repo { dir };
        repo.commit_all("initial");
        repo
    }

    /// The work tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `git add -A && git commit`.
    pub fn commit_all(&self, message: &str) {
        if !self.path().join(".git").exists() {
            self.git(&["init", "-q", "-b", "main"]);
        }
        self.git(&["add", "-A"]);
        self.git(&[
            "-c",
            "user.name=Ferry Test",
            "-c",
            "user.email=test@ferry.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        ]);
    }

    /// Runs git in the repository, panicking on failure.
    pub fn git(&self, args: &[&str]) {
        let status = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(args)
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?} failed");
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    for entry in std::fs::read_dir(src).expect("read example dir") {
        let entry = entry.expect("dir entry");
        let from = entry.path();
        let to = dst.join(entry.file_name());
        if from.is_dir() {
            if entry.file_name() == "target" || entry.file_name() == "public" {
                continue;
            }
            std::fs::create_dir_all(&to).expect("mkdir");
            copy_dir(&from, &to);
        } else {
            std::fs::copy(&from, &to).expect("copy file");
        }
    }
}

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}
