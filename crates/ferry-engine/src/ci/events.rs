//! The event pipe: every component sends [`RunEvent`]s to one recorder, which appends
//! them to `events.jsonl` and forwards them to the caller.
//!
//! `Log` events are forwarded but not written to `events.jsonl`: their text is in the
//! step's log file byte for byte (`logs/<job>/<NN>-<step>.log`), and writing it twice
//! (once JSON-escaped) cost a third of a log-heavy step's throughput.

use ferry_types::RunEvent;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use tokio::sync::mpsc;

/// Cloneable handle for sending events.
#[derive(Clone)]
pub(crate) struct EventTx(mpsc::Sender<RunEvent>);

impl EventTx {
    pub(crate) async fn send(&self, ev: RunEvent) {
        // The recorder only stops after every sender is gone.
        let _ = self.0.send(ev).await;
    }
}

/// Starts the recorder thread; it ends once every [`EventTx`] is dropped.
pub(crate) fn start(
    jsonl: &Path,
    out: mpsc::Sender<RunEvent>,
) -> std::io::Result<(EventTx, tokio::task::JoinHandle<()>)> {
    let file = File::create(jsonl)?;
    let (tx, mut rx) = mpsc::channel::<RunEvent>(256);
    let handle = tokio::task::spawn_blocking(move || {
        let mut w = BufWriter::with_capacity(256 * 1024, file);
        let mut write_ok = true;
        let mut forward = true;
        while let Some(ev) = rx.blocking_recv() {
            if write_ok && !matches!(ev, RunEvent::Log { .. }) {
                let res = serde_json::to_writer(&mut w, &ev).map_err(std::io::Error::from);
                let res = res.and_then(|()| w.write_all(b"\n"));
                if let Err(e) = res {
                    tracing::warn!(error = %e, "Writing events.jsonl failed; the events still stream.");
                    write_ok = false;
                }
            }
            // Flush at boundaries people wait for, not per log line.
            if write_ok && rx.is_empty() {
                let _ = w.flush();
            }
            if forward && out.blocking_send(ev).is_err() {
                forward = false;
            }
        }
        let _ = w.flush();
    });
    Ok((EventTx(tx), handle))
}
