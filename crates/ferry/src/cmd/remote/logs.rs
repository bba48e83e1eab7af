//! `ferry logs RUN [-f] [--job J]`: a run's stored logs, or its live stream.

use super::{Ctx, block_on};
use crate::cli::{Global, LogsArgs};
use crate::exit::Failure;
use crate::render::Style;
use ferry_client::api::LogLine;
use ferry_client::{LogQuery, LogStreamItem};
use ferry_types::{JobStatus, RunStatus};
use futures_util::StreamExt;
use std::io::Write;

/// Lines asked for per page.
const PAGE: i64 = 1000;

/// Runs `ferry logs`.
pub fn logs(global: &Global, args: LogsArgs) -> Result<(), Failure> {
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        if args.follow {
            follow(&ctx, &args).await
        } else {
            stored(&ctx, &args).await
        }
    })
}

/// Prints what is stored now, job by job.
async fn stored(ctx: &Ctx, args: &LogsArgs) -> Result<(), Failure> {
    let jobs = match &args.job {
        Some(job) => vec![job.clone()],
        None => {
            let detail = ctx.call(ctx.client.run(args.run)).await?;
            detail.jobs.into_iter().map(|j| j.name).collect()
        }
    };
    let prefix = args.job.is_none();
    let mut printer = Printer::new(ctx.json);
    for job in jobs {
        let mut from = 0;
        loop {
            let page = ctx
                .call(ctx.client.logs(
                    args.run,
                    &LogQuery {
                        job: Some(job.clone()),
                        from: Some(from),
                        limit: Some(PAGE),
                    },
                ))
                .await?;
            printer.lines(&job, &page.lines, prefix);
            if page.lines.is_empty() || page.next >= page.total {
                break;
            }
            from = page.next;
        }
    }
    printer.flush();
    Ok(())
}

/// Follows the live stream until the followed jobs end; exit 1 if the run failed.
async fn follow(ctx: &Ctx, args: &LogsArgs) -> Result<(), Failure> {
    let mut stream = ctx
        .call(ctx.client.follow_logs(args.run, args.job.as_deref(), 0))
        .await?;
    let prefix = args.job.is_none();
    let mut printer = Printer::new(ctx.json);
    while let Some(item) = stream.next().await {
        match item.map_err(super::failure)? {
            LogStreamItem::Lines(chunk) => {
                printer.lines(&chunk.job, &chunk.lines, prefix);
                printer.flush();
            }
            LogStreamItem::End(end) => {
                printer.flush();
                if !end.complete {
                    eprintln!(
                        "The server stopped the stream (shutting down?); the run is {}.",
                        end.status
                    );
                    return Err(Failure::Failed);
                }
                if let Some(job) = &args.job {
                    // One job followed: its own end decides.
                    let detail = ctx.call(ctx.client.run(args.run)).await?;
                    let status = detail
                        .jobs
                        .iter()
                        .find(|j| &j.name == job)
                        .map(|j| j.status);
                    if !ctx.json {
                        eprintln!(
                            "Job `{job}` of run {} ended: {}.",
                            args.run,
                            status.map_or_else(|| "unknown".to_string(), |s| s.to_string())
                        );
                    }
                    return match status {
                        Some(s) if s.lets_dependants_run() || s == JobStatus::Skipped => Ok(()),
                        _ => Err(Failure::Failed),
                    };
                }
                // Every line is in; the run's own status may lag its jobs' by a
                // reconciler step.
                let status = settled_status(ctx, args.run, end.status).await?;
                if !ctx.json {
                    eprintln!("Run {} ended: {status}.", args.run);
                }
                return match status {
                    RunStatus::Success => Ok(()),
                    _ => Err(Failure::Failed),
                };
            }
        }
    }
    printer.flush();
    Ok(())
}

/// The run's status once it is final (waiting briefly when the stream ended first).
async fn settled_status(ctx: &Ctx, run: i64, seen: RunStatus) -> Result<RunStatus, Failure> {
    let mut status = seen;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !status.is_finished() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        status = ctx.call(ctx.client.run(run)).await?.run.status;
    }
    Ok(status)
}

/// Writes lines as text (`job │ line`) or JSON lines.
struct Printer {
    out: std::io::BufWriter<std::io::Stdout>,
    style: Style,
    json: bool,
}

impl Printer {
    fn new(json: bool) -> Printer {
        Printer {
            out: std::io::BufWriter::new(std::io::stdout()),
            style: Style::detect(),
            json,
        }
    }

    fn lines(&mut self, job: &str, lines: &[LogLine], prefix: bool) {
        for line in lines {
            // A closed pipe (`| head`) ends the output, not the command with an error.
            let _ = if self.json {
                let value = serde_json::json!({
                    "job": job, "number": line.number, "step": line.step, "text": line.text,
                });
                writeln!(self.out, "{value}")
            } else if prefix {
                writeln!(self.out, "{} │ {}", self.style.dim(job), line.text)
            } else {
                writeln!(self.out, "{}", line.text)
            };
        }
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }
}
