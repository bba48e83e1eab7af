//! `ferry trigger`, `ferry runs [show]`, `ferry cancel`, `ferry approve`, `ferry rerun`.

use super::{Ctx, block_on, print_json};
use crate::cli::{ApproveArgs, CancelArgs, Global, RerunArgs, RunsArgs, RunsCommand, TriggerArgs};
use crate::exit::{Failure, bad_input};
use crate::table::{Table, ago, or_dash, span};
use ferry_client::api::{Run, RunDetail, TriggerRequest, TriggerResponse};
use ferry_types::RunStatus;
use std::io::IsTerminal;
use std::time::Duration;

/// `ferry trigger NAME [--ref R] [--wait]`.
pub fn trigger(global: &Global, args: TriggerArgs) -> Result<(), Failure> {
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let request = TriggerRequest {
            git_ref: args.git_ref.clone(),
            sha: None,
        };
        let run = match ctx
            .call(ctx.client.trigger(&args.project, &request))
            .await?
        {
            TriggerResponse::Started { run } => run,
            TriggerResponse::Filtered { reason } => {
                return Err(bad_input(format!(
                    "no run started: {reason}\nhint: a manual run needs `manual: true` under `on:` in ferry.yml"
                )));
            }
        };
        let queued = format!(
            "Run {} of `{}` queued at {}{}: {}/runs/{}",
            run.id,
            run.project,
            short(&run.sha),
            on_ref(&run),
            ctx.server(),
            run.id
        );
        if !args.wait {
            if ctx.json {
                return print_json(&run);
            }
            println!("{queued}");
            return Ok(());
        }
        if !ctx.json {
            // The wait's result goes to stdout; the queued line is progress.
            eprintln!("{queued}");
        }
        let detail = wait_for(&ctx, run.id).await?;
        if ctx.json {
            print_json(&detail)?;
        } else {
            print_detail(&ctx, &detail);
        }
        if detail.run.status == RunStatus::Success {
            Ok(())
        } else {
            Err(Failure::Failed)
        }
    })
}

/// Polls a run until it ends, with a spinner on a terminal.
async fn wait_for(ctx: &Ctx, id: i64) -> Result<RunDetail, Failure> {
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.enable_steady_tick(Duration::from_millis(120));
    loop {
        let detail = ctx.call(ctx.client.run(id)).await?;
        if detail.run.status.is_finished() {
            bar.finish_and_clear();
            return Ok(detail);
        }
        let running: Vec<&str> = detail
            .jobs
            .iter()
            .filter(|j| j.status == ferry_types::JobStatus::Running)
            .map(|j| j.name.as_str())
            .collect();
        let done = detail
            .jobs
            .iter()
            .filter(|j| j.status.is_finished())
            .count();
        bar.set_message(format!(
            "run {id} {} — {done}/{} jobs done{}",
            detail.run.status,
            detail.jobs.len(),
            if running.is_empty() {
                String::new()
            } else {
                format!(", running: {}", running.join(", "))
            }
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `ferry runs [--project P]` and `ferry runs show ID`.
pub fn runs(global: &Global, args: RunsArgs) -> Result<(), Failure> {
    if let Some(RunsCommand::Show(show)) = args.command {
        let ctx = Ctx::new(&show.client, global.data_dir.clone())?;
        return block_on(async {
            let detail = ctx.call(ctx.client.run(show.id)).await?;
            if ctx.json {
                return print_json(&detail);
            }
            print_detail(&ctx, &detail);
            Ok(())
        });
    }
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let runs = ctx
            .call(
                ctx.client
                    .runs(args.project.as_deref(), Some(i64::from(args.limit))),
            )
            .await?;
        if ctx.json {
            return print_json(&runs);
        }
        if runs.is_empty() {
            eprintln!("No runs yet; start one with `ferry trigger PROJECT`.");
            return Ok(());
        }
        let mut t = Table::new(&[
            "ID", "PROJECT", "STATUS", "TRIGGER", "REF", "COMMIT", "CREATED", "DURATION",
        ]);
        for r in &runs {
            t.row(vec![
                r.id.to_string(),
                r.project.clone(),
                r.status.to_string(),
                r.trigger.to_string(),
                or_dash(r.branch.clone().or_else(|| r.tag.clone())),
                short(&r.sha).to_string(),
                ago(r.created_at),
                span(r.started_at, r.finished_at),
            ]);
        }
        t.print();
        Ok(())
    })
}

fn print_detail(ctx: &Ctx, d: &RunDetail) {
    let r = &d.run;
    println!(
        "Run {} of `{}`: {} ({} at {}{})",
        r.id,
        r.project,
        r.status,
        r.trigger,
        short(&r.sha),
        on_ref(r)
    );
    println!(
        "Created {}, {}. {}/runs/{}",
        ago(r.created_at),
        if r.finished_at.is_some() {
            format!("took {}", span(r.started_at, r.finished_at))
        } else if r.started_at.is_some() {
            format!("running for {}", span(r.started_at, None))
        } else {
            "not started".to_string()
        },
        ctx.server(),
        r.id
    );
    println!();
    let mut t = Table::new(&["JOB", "STATUS", "ATTEMPT", "EXECUTOR", "DURATION", "REASON"]);
    for j in &d.jobs {
        t.row(vec![
            j.name.clone(),
            j.status.to_string(),
            format!("{}/{}", j.attempt, j.max_attempts),
            or_dash(j.agent_id.clone()),
            span(j.started_at, j.finished_at),
            j.reason.clone().unwrap_or_default(),
        ]);
    }
    t.print();
}

/// `ferry cancel ID`.
pub fn cancel(global: &Global, args: CancelArgs) -> Result<(), Failure> {
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let detail = ctx.call(ctx.client.cancel(args.id)).await?;
        if ctx.json {
            return print_json(&detail);
        }
        println!(
            "Run {} is {}: queued jobs were cancelled, running ones told to stop.",
            args.id, detail.run.status
        );
        Ok(())
    })
}

/// `ferry approve ID JOB`.
pub fn approve(global: &Global, args: ApproveArgs) -> Result<(), Failure> {
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let job = ctx.call(ctx.client.approve(args.id, &args.job)).await?;
        if ctx.json {
            return print_json(&job);
        }
        println!(
            "Job `{}` of run {} approved; it is {} now.",
            job.name, args.id, job.status
        );
        Ok(())
    })
}

/// `ferry rerun ID [--failed]`.
pub fn rerun(global: &Global, args: RerunArgs) -> Result<(), Failure> {
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let run = ctx.call(ctx.client.rerun(args.id, args.failed)).await?;
        if ctx.json {
            return print_json(&run);
        }
        println!(
            "Run {} re-runs {} of run {}: {}/runs/{}",
            run.id,
            if args.failed {
                "the failed jobs"
            } else {
                "every job"
            },
            args.id,
            ctx.server(),
            run.id
        );
        Ok(())
    })
}

/// The first 8 characters of a commit.
pub fn short(sha: &str) -> &str {
    sha.get(..8).unwrap_or(sha)
}

fn on_ref(run: &Run) -> String {
    match (&run.branch, &run.tag) {
        (Some(b), _) => format!(" on {b}"),
        (None, Some(t)) => format!(" tag {t}"),
        _ => String::new(),
    }
}
