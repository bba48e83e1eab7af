//! Running other programs with errors that say which command failed and how.

use anyhow::{Context, bail};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// The command line as a person would type it (for messages and dry runs). Programs
/// from a rustup toolchain show by name: `cargo`, not its path in `~/.rustup`.
pub fn display(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    let shown = match program.file_name() {
        Some(name) if program.components().any(|c| c.as_os_str() == ".rustup") => name,
        _ => program.as_os_str(),
    };
    let mut parts = vec![quote(shown)];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `cmd` with inherited stdio; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = status(cmd)?;
    check(cmd, status)
}

/// Runs `cmd` with inherited stdio and returns how it exited.
pub fn status(cmd: &mut Command) -> anyhow::Result<ExitStatus> {
    cmd.stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot start `{}`", display(cmd)))
}

/// Runs `cmd`, capturing its output; fails (quoting stderr) unless it exits 0.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` {}: {}",
            display(cmd),
            describe(out.status),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `cmd` runs and exits 0, with its output discarded.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails with the command line unless `status` is success.
pub fn check(cmd: &Command, status: ExitStatus) -> anyhow::Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("`{}` {}", display(cmd), describe(status))
    }
}

/// "exited with code 3" or "was killed by signal 9".
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "ended abnormally".to_string(),
    }
}

/// Finds an executable the way `command -v` does, also looking in the sbin
/// directories a non-root PATH often lacks (dockerd lives in /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/local/sbin", "/usr/sbin", "/sbin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The last `lines` lines of a text file (for quoting a service's log in an error).
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_a_shell_would_need_quoted() {
        let mut cmd = Command::new("apt-get");
        cmd.args(["install", "-y", "docker.io", "it's here", ""]);
        assert_eq!(
            display(&cmd),
            r"apt-get install -y docker.io 'it'\''s here' ''"
        );
    }

    #[test]
    fn display_shows_toolchain_programs_by_name() {
        let cmd = Command::new("/root/.rustup/toolchains/stable/bin/cargo");
        assert_eq!(display(&cmd), "cargo");
        assert_eq!(
            display(&Command::new("/usr/sbin/dockerd")),
            "/usr/sbin/dockerd"
        );
    }

    #[test]
    fn finds_sh_and_not_a_made_up_program() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-xtask").is_none());
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("xtask-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("log");
        std::fs::write(&file, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&file, 2), "c\nd");
        assert_eq!(tail(&file, 10), "a\nb\nc\nd");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
