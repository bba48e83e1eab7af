//! An instance's output log: keeping it within its size ([`rotate_log`]) and reading
//! its last lines across a rotation ([`last_lines`]).

use std::path::Path;

/// How much of the end of a log file [`last_lines`] reads.
const TAIL_WINDOW: u64 = 1 << 20;

/// The last `n` lines of the file at `path`, reading at most its last
/// [`TAIL_WINDOW`] bytes; none when it cannot be read.
pub(super) fn last_lines(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_WINDOW);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    // A window that starts mid-file starts mid-line: drop that partial line.
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    lines[skip..].iter().map(|l| l.to_string()).collect()
}

/// Once `output.log` in `dir` is larger than `max` bytes, copies it to
/// `output.log.1` (replacing the previous one) and empties it; returns whether it did.
///
/// The process keeps its file open in append mode, so after the emptying its writes
/// go on at the new end; the copy catches up with what was written while it ran just
/// before the emptying, so only what is written in between is lost. Two rotations at
/// once (the tail task and a liveness check) each use their own scratch file.
pub fn rotate_log(dir: &Path, max: u64) -> std::io::Result<bool> {
    let log = dir.join("output.log");
    let len = match std::fs::metadata(&log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= max {
        return Ok(false);
    }
    let tmp = dir.join(format!("output.log.1.{}", super::new_token()));
    let copied = (|| {
        let mut src = std::fs::File::open(&log)?;
        let mut dst = std::fs::File::create(&tmp)?;
        std::io::copy(&mut src, &mut dst)?;
        let emptied = std::fs::OpenOptions::new().write(true).open(&log)?;
        std::io::copy(&mut src, &mut dst)?;
        emptied.set_len(0)?;
        std::fs::rename(&tmp, dir.join("output.log.1"))
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied.map(|()| true)
}

/// [`rotate_log`] off the async runtime, logging a failure.
pub(super) async fn rotate_quietly(dir: &Path, max: u64) -> bool {
    let d = dir.to_path_buf();
    match tokio::task::spawn_blocking(move || rotate_log(&d, max)).await {
        Ok(Ok(rotated)) => rotated,
        Ok(Err(e)) => {
            tracing::warn!(dir = %dir.display(), error = %e, "Rotating an instance's output log failed; it keeps growing until the next try.");
            false
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn last_lines_keeps_the_end_and_drops_a_partial_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.log");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(last_lines(&path, 2), ["two", "three"]);
        assert_eq!(last_lines(&path, 10), ["one", "two", "three"]);
        // Longer than the 1 MiB window: the line cut by the window is left out.
        let long = format!("{}\nlast\n", "x".repeat(2 << 20));
        std::fs::write(&path, long).unwrap();
        assert_eq!(last_lines(&path, 5), ["last"]);
        assert!(last_lines(&dir.path().join("missing"), 5).is_empty());
    }
}
