//! Step output: masking, line splitting, log files and `Log` events.
//!
//! Output is read as bytes, masked per stream (a secret split across two reads is
//! still caught), appended to the step's log file as is, and emitted as `Log` events.
//! One event carries every complete line a read produced (joined by `\n`), so a step
//! that floods its output makes one event per read buffer rather than one per line;
//! a line longer than [`MAX_CHUNK`] is emitted in chunks, so memory stays bounded.

use super::events::EventTx;
use ferry_secrets::{Masker, StreamMasker};
use ferry_types::RunEvent;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The longest text one `Log` event carries.
pub(crate) const MAX_CHUNK: usize = 64 * 1024;

/// Which output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

struct StreamState {
    masker: StreamMasker,
    /// Masked output not emitted yet; the masker appends to it directly.
    pending: Vec<u8>,
}

/// The sink of one step's output.
pub(crate) struct StepOutput {
    job: String,
    step: usize,
    events: EventTx,
    log: Option<BufWriter<File>>,
    log_path: PathBuf,
    log_error: Option<String>,
    streams: [StreamState; 2],
}

impl StepOutput {
    /// Creates the log file (a failure to create it is reported once, in the events,
    /// and output still streams).
    pub(crate) fn new(
        job: &str,
        step: usize,
        log_path: &Path,
        masker: &Masker,
        events: EventTx,
    ) -> Self {
        let (log, log_error) = match File::create(log_path) {
            Ok(f) => (Some(BufWriter::with_capacity(128 * 1024, f)), None),
            Err(e) => (
                None,
                Some(format!(
                    "cannot write the log file {}: {e}",
                    log_path.display()
                )),
            ),
        };
        let state = || StreamState {
            masker: masker.stream(),
            pending: Vec::new(),
        };
        StepOutput {
            job: job.to_string(),
            step,
            events,
            log,
            log_path: log_path.to_path_buf(),
            log_error,
            streams: [state(), state()],
        }
    }

    /// Takes a chunk of raw output.
    pub(crate) async fn push(&mut self, stream: Stream, bytes: &[u8]) {
        if let Some(msg) = self.log_error.take() {
            self.emit(Stream::Stderr, msg).await;
        }
        let st = &mut self.streams[stream as usize];
        let start = st.pending.len();
        st.masker.push(bytes, &mut st.pending);
        self.log_masked(stream, start);
        self.drain(stream, false).await;
    }

    /// Appends what the masker just added to `pending` (from `start`) to the log file.
    fn log_masked(&mut self, stream: Stream, start: usize) {
        let new = &self.streams[stream as usize].pending[start..];
        if let Some(log) = &mut self.log
            && let Err(e) = log.write_all(new)
        {
            let msg = format!(
                "writing the log file {} failed: {e}",
                self.log_path.display()
            );
            self.log = None;
            self.log_error = Some(msg);
        }
    }

    /// Emits complete lines (and over-long line chunks); with `all`, everything.
    ///
    /// Text that fits one event is handed over as is (no copy); a longer buffer is
    /// emitted window by window from an offset and shifted once at the end, so a
    /// large read costs one copy per byte rather than a shift per event.
    async fn drain(&mut self, stream: Stream, all: bool) {
        let mut done = 0;
        loop {
            let st = &mut self.streams[stream as usize];
            let rest = &st.pending[done..];
            if rest.is_empty() {
                break;
            }
            let window = rest.len().min(MAX_CHUNK);
            let (end, next) = if let Some(nl) = rest[..window].iter().rposition(|&b| b == b'\n') {
                (nl, nl + 1)
            } else if rest.len() >= MAX_CHUNK {
                let cut = utf8_cut(&rest[..MAX_CHUNK]);
                (cut, cut)
            } else if all {
                (rest.len(), rest.len())
            } else {
                break;
            };
            // The buffer itself becomes the first event's text when what follows it
            // is short (the usual case: the tail of a partial line), so copying that
            // stays cheap; otherwise windows are copied out and shifted once at the end.
            let text = if done == 0 && st.pending.len() - next <= MAX_CHUNK {
                split_off_text(&mut st.pending, end, next)
            } else {
                let text = into_text(rest[..end].to_vec());
                done += next;
                text
            };
            self.emit(stream, text).await;
        }
        if done > 0 {
            self.streams[stream as usize].pending.drain(..done);
        }
    }

    async fn emit(&self, stream: Stream, line: String) {
        self.events
            .send(RunEvent::Log {
                job: self.job.clone(),
                step: self.step,
                stream: stream.name().to_string(),
                line,
            })
            .await;
    }

    /// Flushes maskers, the last partial lines and the log file.
    pub(crate) async fn finish(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let st = &mut self.streams[stream as usize];
            let start = st.pending.len();
            st.masker.finish(&mut st.pending);
            if let Some(log) = &mut self.log {
                let _ = log.write_all(&self.streams[stream as usize].pending[start..]);
            }
            self.drain(stream, true).await;
        }
        if let Some(log) = &mut self.log {
            let _ = log.flush();
        }
        if let Some(msg) = self.log_error.take() {
            self.emit(Stream::Stderr, msg).await;
        }
    }

    /// A message from Ferry itself about this step (shown on stderr, also logged).
    pub(crate) async fn note(&mut self, text: &str) {
        let line = format!("ferry: {text}\n");
        if let Some(log) = &mut self.log {
            let _ = log.write_all(line.as_bytes());
        }
        self.emit(Stream::Stderr, format!("ferry: {text}")).await;
    }
}

/// Where a chunk may be cut without splitting a UTF-8 sequence (falls back to the
/// whole slice for bytes that are not UTF-8 anyway).
fn utf8_cut(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => e.valid_up_to(),
        _ => bytes.len(),
    }
}

/// Takes `pending[..end]` as text and keeps `pending[rest..]`. The text is the
/// buffer itself (no copy of the usually large head); only the short tail is copied
/// into a fresh buffer, sized for the next read.
fn split_off_text(pending: &mut Vec<u8>, end: usize, rest: usize) -> String {
    let mut next = Vec::with_capacity(MAX_CHUNK.max(pending.len() - rest));
    next.extend_from_slice(&pending[rest..]);
    let mut head = std::mem::replace(pending, next);
    head.truncate(end);
    into_text(head)
}

/// UTF-8 text of `bytes`, invalid sequences replaced (validation first: the common,
/// valid case then costs one fast check and no copy).
fn into_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Notes the engine writes about a job (cache, artifacts, approvals) to
/// `logs/<job>/ferry.log` and as `Log` events on stream `ferry`.
pub(crate) struct JobNotes {
    job: String,
    path: PathBuf,
    events: EventTx,
}

impl JobNotes {
    pub(crate) fn new(job: &str, path: PathBuf, events: EventTx) -> Self {
        JobNotes {
            job: job.to_string(),
            path,
            events,
        }
    }

    /// Records `text` for step index `step` (the step it happened before or after).
    pub(crate) async fn note(&self, step: usize, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path);
        if let Ok(f) = &mut f {
            let _ = writeln!(f, "{text}");
        }
        self.events
            .send(RunEvent::Log {
                job: self.job.clone(),
                step,
                stream: "ferry".to_string(),
                line: text.to_string(),
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::utf8_cut;

    #[test]
    fn chunks_do_not_split_characters() {
        let s = "aé".as_bytes();
        assert_eq!(utf8_cut(&s[..2]), 1);
        assert_eq!(utf8_cut(s), 3);
        assert_eq!(utf8_cut(&[0xff, 0xfe]), 2);
    }
}
