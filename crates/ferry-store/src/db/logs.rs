//! Job logs, stored as compressed chunks of lines.
//!
//! Lines of one (run, job) are numbered from 0 across its steps. They are packed into
//! chunks of about [`CHUNK_BYTES`] — each line as its step index, its length and its
//! bytes — and deflated. A row per chunk records the line range it holds, so reading a
//! page decompresses only the one or two chunks that overlap it, however long the log.
//! Small appends (a live job sends a few lines at a time) are merged into the last
//! chunk while it is under half full, so live logs do not end up as a row per line.
//!
//! One writer per (run, job) at a time is assumed — the holder of the job's lease.

use super::conn::{Q, Row};
use super::events::CROSS_PROCESS_POLL;
use super::{DbError, Store};
use ferry_types::JobStatus;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use tokio::sync::broadcast;

/// Raw bytes per chunk before compression.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Line number within the job's log, from 0.
    pub number: i64,
    /// The step that printed it.
    pub step: u32,
    /// The text, without the trailing newline.
    pub text: String,
}

/// A chunk ready to be stored.
struct Encoded {
    first_line: i64,
    end_line: i64,
    raw_bytes: i64,
    data: Vec<u8>,
}

impl Store {
    /// Appends lines printed by step `step` of `job` in run `run_id`; returns the
    /// number of lines the job's log has now.
    pub async fn append_log(
        &self,
        run_id: i64,
        job: &str,
        step: u32,
        lines: Vec<String>,
    ) -> Result<i64, DbError> {
        if lines.is_empty() {
            return self.log_length(run_id, job).await;
        }
        let mut tx = self.pool.begin().await?;
        let last = tx
            .fetch_optional(
                Q::new(
                    "SELECT first_line, end_line, raw_bytes, data FROM log_chunks \
                     WHERE run_id = $1 AND job = $2 ORDER BY end_line DESC LIMIT 1",
                )
                .int(run_id)
                .text(job),
            )
            .await?;
        // Reopen the last chunk if it is small, so its lines and the new ones share one.
        let (start, reopened) = match &last {
            Some(row)
                if usize::try_from(row.int("raw_bytes")?).unwrap_or(usize::MAX)
                    < CHUNK_BYTES / 2 =>
            {
                (row.int("first_line")?, Some(row.bytes("data")?))
            }
            Some(row) => (row.int("end_line")?, None),
            None => (0, None),
        };
        let chunks = tokio::task::spawn_blocking(move || -> Result<Vec<Encoded>, DbError> {
            let mut all = match reopened {
                Some(data) => decode(&data)?,
                None => Vec::new(),
            };
            all.extend(lines.into_iter().map(|text| (step, text)));
            encode_chunks(start, &all)
        })
        .await
        .map_err(|e| DbError::Codec(std::io::Error::other(e)))??;
        tx.execute(
            Q::new("DELETE FROM log_chunks WHERE run_id = $1 AND job = $2 AND first_line = $3")
                .int(run_id)
                .text(job)
                .int(start),
        )
        .await?;
        let mut end = start;
        for chunk in chunks {
            end = chunk.end_line;
            tx.execute(
                Q::new(
                    "INSERT INTO log_chunks (run_id, job, first_line, end_line, raw_bytes, data) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .int(run_id)
                .text(job)
                .int(chunk.first_line)
                .int(chunk.end_line)
                .int(chunk.raw_bytes)
                .bytes(chunk.data),
            )
            .await?;
        }
        self.commit(tx).await?;
        // No receiver is fine: nobody follows this log right now.
        let _ = self.log_notify.send(run_id);
        Ok(end)
    }

    /// Up to `limit` lines of a job's log starting at line `from_line`.
    pub async fn read_log(
        &self,
        run_id: i64,
        job: &str,
        from_line: i64,
        limit: i64,
    ) -> Result<Vec<LogLine>, DbError> {
        let end = from_line.saturating_add(limit.max(0));
        if end <= from_line {
            return Ok(Vec::new());
        }
        let rows = self
            .pool
            .fetch_all(
                Q::new(
                    "SELECT first_line, data FROM log_chunks \
                     WHERE run_id = $1 AND job = $2 AND end_line > $3 AND first_line < $4 \
                     ORDER BY end_line",
                )
                .int(run_id)
                .text(job)
                .int(from_line)
                .int(end),
            )
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let first: i64 = row.int("first_line")?;
            for (offset, (step, text)) in decode_row(row)?.into_iter().enumerate() {
                let number = first + i64::try_from(offset).unwrap_or(i64::MAX);
                if number >= from_line && number < end {
                    out.push(LogLine { number, step, text });
                }
            }
        }
        Ok(out)
    }

    /// How many lines a job's log holds.
    pub async fn log_length(&self, run_id: i64, job: &str) -> Result<i64, DbError> {
        self.pool
            .fetch_one(
                Q::new("SELECT COALESCE(MAX(end_line), 0) AS n FROM log_chunks WHERE run_id = $1 AND job = $2")
                    .int(run_id)
                    .text(job),
            )
            .await?
            .int("n")
    }

    /// Follows a job's log from line `from_line`: see [`LogFollower::next`].
    pub fn follow_log(&self, run_id: i64, job: &str, from_line: i64) -> LogFollower {
        LogFollower {
            store: self.clone(),
            log_wake: self.log_notify.subscribe(),
            event_wake: self.notify.subscribe(),
            run_id,
            job: job.to_owned(),
            next_line: from_line,
        }
    }
}

/// A live cursor over one job's log; see [`Store::follow_log`].
///
/// It wakes when lines are appended or an event is appended (a job ending) in this
/// process, and otherwise looks every [`CROSS_PROCESS_POLL`] for writers elsewhere.
#[derive(Debug)]
pub struct LogFollower {
    store: Store,
    log_wake: broadcast::Receiver<i64>,
    event_wake: broadcast::Receiver<i64>,
    run_id: i64,
    job: String,
    next_line: i64,
}

impl LogFollower {
    /// The next lines, at most `limit`, waiting until there are some; `None` once the
    /// job has ended and every line it printed was handed out.
    pub async fn next(&mut self, limit: i64) -> Result<Option<Vec<LogLine>>, DbError> {
        loop {
            // Look at the job before reading: an executor appends its lines before it
            // reports the end, so if the job had ended by now, this read sees them all.
            let ended = self.job_ended().await?;
            let lines = self
                .store
                .read_log(self.run_id, &self.job, self.next_line, limit)
                .await?;
            if let Some(last) = lines.last() {
                self.next_line = last.number + 1;
                return Ok(Some(lines));
            }
            if ended {
                return Ok(None);
            }
            let run_id = self.run_id;
            let log_wake = &mut self.log_wake;
            tokio::select! {
                _ = async {
                    // Lagging or closing only means "look again".
                    while let Ok(id) = log_wake.recv().await {
                        if id == run_id {
                            break;
                        }
                    }
                } => {}
                _ = self.event_wake.recv() => {}
                _ = tokio::time::sleep(CROSS_PROCESS_POLL) => {}
            }
        }
    }

    /// The number of the next line this follower will hand out.
    pub fn position(&self) -> i64 {
        self.next_line
    }

    async fn job_ended(&self) -> Result<bool, DbError> {
        let row = self
            .store
            .pool
            .fetch_optional(
                Q::new("SELECT status FROM jobs WHERE run_id = $1 AND name = $2")
                    .int(self.run_id)
                    .text(&self.job),
            )
            .await?;
        Ok(match row {
            Some(row) => row.parse::<JobStatus>("status")?.is_finished(),
            None => true,
        })
    }
}

fn decode_row(row: &Row) -> Result<Vec<(u32, String)>, DbError> {
    decode(&row.bytes("data")?)
}

/// Packs lines into deflated chunks of about [`CHUNK_BYTES`], numbering from `start`.
fn encode_chunks(start: i64, lines: &[(u32, String)]) -> Result<Vec<Encoded>, DbError> {
    let mut chunks = Vec::new();
    let mut raw = Vec::with_capacity(CHUNK_BYTES + 1024);
    let mut first = start;
    let mut count = 0i64;
    for (step, text) in lines {
        let len = u32::try_from(text.len())
            .map_err(|_| DbError::Invalid("a log line longer than 4 GiB".into()))?;
        raw.extend_from_slice(&step.to_le_bytes());
        raw.extend_from_slice(&len.to_le_bytes());
        raw.extend_from_slice(text.as_bytes());
        count += 1;
        if raw.len() >= CHUNK_BYTES {
            chunks.push(compress(first, count, &raw)?);
            first += count;
            count = 0;
            raw.clear();
        }
    }
    if count > 0 {
        chunks.push(compress(first, count, &raw)?);
    }
    Ok(chunks)
}

fn compress(first_line: i64, count: i64, raw: &[u8]) -> Result<Encoded, DbError> {
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(raw.len() / 4), Compression::fast());
    encoder.write_all(raw)?;
    Ok(Encoded {
        first_line,
        end_line: first_line + count,
        raw_bytes: i64::try_from(raw.len()).unwrap_or(i64::MAX),
        data: encoder.finish()?,
    })
}

/// Unpacks one chunk into (step, text) pairs.
fn decode(data: &[u8]) -> Result<Vec<(u32, String)>, DbError> {
    let mut raw = Vec::new();
    DeflateDecoder::new(data).read_to_end(&mut raw)?;
    let mut lines = Vec::new();
    let mut rest = raw.as_slice();
    while !rest.is_empty() {
        let (Some(step), Some(len)) = (rest.get(0..4), rest.get(4..8)) else {
            return Err(DbError::Corrupt("truncated log chunk".into()));
        };
        let step = u32::from_le_bytes([step[0], step[1], step[2], step[3]]);
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let text = rest
            .get(8..8 + len)
            .ok_or_else(|| DbError::Corrupt("truncated log chunk".into()))?;
        lines.push((step, String::from_utf8_lossy(text).into_owned()));
        rest = &rest[8 + len..];
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_split_at_the_target_size() -> Result<(), DbError> {
        let lines: Vec<(u32, String)> = (0..10_000)
            .map(|i| (i % 3, format!("line {i} — ünïcode")))
            .collect();
        let chunks = encode_chunks(5, &lines)?;
        assert!(chunks.len() > 1, "10k lines should need several chunks");
        assert_eq!(chunks[0].first_line, 5);
        assert_eq!(chunks.last().map(|c| c.end_line), Some(10_005));
        let mut back = Vec::new();
        for c in &chunks {
            back.extend(decode(&c.data)?);
        }
        assert_eq!(back, lines);
        Ok(())
    }
}
