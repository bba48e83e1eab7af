//! Rendering run events for people: a line per step start and end, step output
//! prefixed by its job, and a closing summary table.

use ferry_types::{JobResult, RunEvent};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// ANSI colour, only on a terminal and never with `NO_COLOR`.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    enabled: bool,
}

impl Style {
    /// Colour if standard output is a terminal and `NO_COLOR` is unset or empty.
    pub fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            enabled: !no_color && std::io::stdout().is_terminal(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn result(self, r: JobResult) -> String {
        let code = match r {
            JobResult::Success => "32",
            JobResult::AllowedFailure | JobResult::Skipped => "33",
            JobResult::Failure | JobResult::TimedOut | JobResult::Cancelled => "31",
        };
        self.paint(code, r.as_str())
    }

    /// Dimmed text (job names, prefixes).
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// Formats a duration the way people read it: `0.42s`, `12.3s`, `2m05s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let total = d.as_secs();
        format!("{}m{:02}s", total / 60, total % 60)
    }
}

fn mark(r: JobResult) -> &'static str {
    match r {
        JobResult::Success => "✓",
        JobResult::AllowedFailure => "!",
        JobResult::Skipped => "-",
        JobResult::Failure | JobResult::TimedOut | JobResult::Cancelled => "✗",
    }
}

/// Writes one event as text. Returns an error only when the output is gone.
pub fn text_event(out: &mut impl Write, style: Style, ev: &RunEvent) -> std::io::Result<()> {
    match ev {
        RunEvent::RunStarted {
            run_id,
            sha,
            branch,
            pipeline,
            ..
        } => {
            let short = sha.get(..8).unwrap_or(sha);
            let on = branch
                .as_deref()
                .map(|b| format!(" on {b}"))
                .unwrap_or_default();
            writeln!(out, "Run {run_id} of `{pipeline}` at {short}{on}")
        }
        RunEvent::JobQueued { .. } => Ok(()),
        RunEvent::JobStarted {
            job,
            attempt,
            executor,
        } => {
            let again = if *attempt > 1 {
                format!(", attempt {attempt}")
            } else {
                String::new()
            };
            writeln!(out, "{} job started ({executor}{again})", style.dim(job))
        }
        RunEvent::ApprovalRequired { job, message } => {
            writeln!(out, "{} waits for approval: {message}", style.dim(job))
        }
        RunEvent::StepStarted { step } => {
            writeln!(out, "{} ▶ {}", style.dim(&step.job), step.name)
        }
        RunEvent::Log { job, line, .. } => {
            // The engine batches consecutive lines into one event for throughput, and a
            // flooding step makes millions of lines: the prefix is formatted once and
            // each line is copied with its newline as it lies in the event's text, so
            // a line costs two copies and no formatting machinery.
            let prefix = format!("{} │ ", style.dim(job));
            let text = line.as_bytes();
            let mut start = 0;
            for nl in Newlines::new(text) {
                out.write_all(prefix.as_bytes())?;
                out.write_all(&text[start..=nl])?;
                start = nl + 1;
            }
            // The last line has no `\n` in the text (and may be empty).
            out.write_all(prefix.as_bytes())?;
            out.write_all(&text[start..])?;
            out.write_all(b"\n")
        }
        RunEvent::StepFinished {
            step,
            result,
            exit_code,
            duration_ms,
        } => {
            let code = match exit_code {
                Some(c) if *c != 0 => format!("exit {c}, "),
                _ => String::new(),
            };
            writeln!(
                out,
                "{} {} {} ({}{}{})",
                style.dim(&step.job),
                mark(*result),
                step.name,
                if *result == JobResult::Success {
                    String::new()
                } else {
                    format!("{}, ", style.result(*result))
                },
                code,
                human_duration(Duration::from_millis(*duration_ms))
            )
        }
        RunEvent::JobRetrying { job, next_attempt } => {
            writeln!(
                out,
                "{} failed; retrying (attempt {next_attempt})",
                style.dim(job)
            )
        }
        RunEvent::JobFinished {
            job,
            result,
            reason,
            ..
        } => match reason {
            Some(why) if *result != JobResult::Success => {
                writeln!(out, "{} {}: {why}", style.dim(job), style.result(*result))
            }
            _ => Ok(()),
        },
        RunEvent::RunFinished { .. } => Ok(()),
    }
}

/// The positions of every `\n` in a text, found eight bytes at a time in one pass: a
/// flooding step makes millions of short lines, where a search per line spends more
/// on starting than on searching.
struct Newlines<'a> {
    bytes: &'a [u8],
    /// Where the next word starts.
    next: usize,
    /// Where the current word starts, and a high bit set in each of its `\n` bytes.
    base: usize,
    bits: u64,
}

impl<'a> Newlines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Newlines {
            bytes,
            next: 0,
            base: 0,
            bits: 0,
        }
    }
}

impl Iterator for Newlines<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        const NEWLINES: u64 = 0x0a0a_0a0a_0a0a_0a0a;
        while self.bits == 0 {
            let rest = self.bytes.get(self.next..).filter(|r| !r.is_empty())?;
            // A whole word is one load; only the last, partial one is padded (with
            // zeros, which are not `\n`).
            let (word, n) = match rest.first_chunk::<8>() {
                Some(word) => (*word, 8),
                None => {
                    let mut word = [0u8; 8];
                    word[..rest.len()].copy_from_slice(rest);
                    (word, rest.len())
                }
            };
            // Zero exactly where a byte is `\n`; then the high bit of each zero byte
            // (exact: no carry crosses bytes, unlike the shorter has-zero trick).
            let x = u64::from_le_bytes(word) ^ NEWLINES;
            self.bits = !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7);
            self.base = self.next;
            self.next += n;
        }
        let at = self.base + (self.bits.trailing_zeros() / 8) as usize;
        self.bits &= self.bits - 1;
        Some(at)
    }
}

/// One row of the closing summary.
#[derive(Debug, Clone)]
pub struct SummaryRow {
    /// Job instance id.
    pub job: String,
    /// Its result.
    pub result: JobResult,
    /// How long it took.
    pub duration: Duration,
}

/// Writes the closing summary table.
pub fn summary_table(
    out: &mut impl Write,
    style: Style,
    rows: &[SummaryRow],
) -> std::io::Result<()> {
    let width = rows
        .iter()
        .map(|r| r.job.chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    writeln!(out)?;
    writeln!(out, "{:<width$}  {:<15}  DURATION", "JOB", "RESULT")?;
    for r in rows {
        // Pad before colouring, so escape codes don't break the alignment.
        let result = format!("{:<15}", r.result.as_str());
        let painted = style.result(r.result);
        let result = result.replacen(r.result.as_str(), &painted, 1);
        writeln!(
            out,
            "{:<width$}  {result}  {}",
            r.job,
            human_duration(r.duration)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(420)), "0.42s");
        assert_eq!(human_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn log_events_print_each_line_with_the_job_prefix() {
        let render = |text: &str| {
            let ev = RunEvent::Log {
                job: "build".into(),
                step: 0,
                stream: "stdout".into(),
                line: text.into(),
            };
            let mut out = Vec::new();
            text_event(&mut out, Style { enabled: false }, &ev).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(render("one"), "build │ one\n");
        assert_eq!(render("one\ntwo"), "build │ one\nbuild │ two\n");
        assert_eq!(render(""), "build │ \n");
        assert_eq!(render("one\n"), "build │ one\nbuild │ \n");
        assert_eq!(render("\n\nx"), "build │ \nbuild │ \nbuild │ x\n");
    }

    #[test]
    fn newlines_are_found_at_every_position_of_a_word() {
        let mut text = Vec::new();
        for i in 0..40u8 {
            text.push(if i % 3 == 0 || i == 7 || i == 8 {
                b'\n'
            } else if i % 5 == 0 {
                0x8a // `\n` with the high bit set: a false positive of the short trick
            } else {
                i.max(0x0b)
            });
        }
        text.extend_from_slice("é\n\u{a0a}\n".as_bytes());
        for end in 0..=text.len() {
            let want: Vec<usize> = (0..end).filter(|&i| text[i] == b'\n').collect();
            assert_eq!(
                Newlines::new(&text[..end]).collect::<Vec<_>>(),
                want,
                "{end}"
            );
        }
    }

    #[test]
    fn summary_table_aligns_columns() {
        let rows = vec![
            SummaryRow {
                job: "build".into(),
                result: JobResult::Success,
                duration: Duration::from_millis(1500),
            },
            SummaryRow {
                job: "test (rust=1.80)".into(),
                result: JobResult::Failure,
                duration: Duration::from_secs(61),
            },
        ];
        let mut out = Vec::new();
        summary_table(&mut out, Style { enabled: false }, &rows).unwrap();
        insta::assert_snapshot!(String::from_utf8(out).unwrap(), @r"
        JOB               RESULT           DURATION
        build             success          1.50s
        test (rust=1.80)  failure          1m01s
        ");
    }
}
