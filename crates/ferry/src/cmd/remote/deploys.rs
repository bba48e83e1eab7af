//! `ferry services`, `ferry releases`, `ferry deploy`, `ferry promote`,
//! `ferry rollback` and `ferry deploys [show|approve|cancel]`.
//!
//! `deploy`, `promote` and `rollback` queue a deploy on the server, then follow it:
//! each progress line is printed as the server records it, and the exit code is the
//! deploy's: 0 when the release went live, 1 when it was rolled back, failed or was
//! cancelled (with the reason), 2 when the request itself was refused. Interrupting the
//! command stops following, not the deploy.

use super::{Ctx, block_on, print_json};
use crate::cli::{
    DeployArgs, DeployIdArgs, DeployShowArgs, DeploysArgs, DeploysCommand, Global, PromoteArgs,
    ReleasesArgs, RollbackArgs, ServicesArgs,
};
use crate::cmd::remote::runs::short;
use crate::exit::{Failure, bad_input};
use crate::table::{Table, ago, or_dash, span, timestamp};
use ferry_client::DeployFilter;
use ferry_client::api::{
    DeployDetail, DeployInfo, DeployRequest, PromoteRequest, ReleaseArtifact, RollbackRequest,
    ServiceInfo,
};
use ferry_types::DeployState;
use std::io::IsTerminal;
use std::time::Duration;

/// How often a followed deploy is polled.
const POLL: Duration = Duration::from_millis(400);

/// `v3` or `3` → 3.
fn release_number(text: &str, flag: &str) -> Result<i64, Failure> {
    let digits = text.trim().strip_prefix('v').unwrap_or(text.trim());
    match digits.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad_input(format!(
            "`{text}` is not a release: give {flag} as `v3` or `3` (`ferry releases SERVICE` lists them)"
        ))),
    }
}

/// `ferry services [NAME]`.
pub fn services(global: &Global, args: ServicesArgs) -> Result<(), Failure> {
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        if let (Some(name), Some(env)) = (&args.name, &args.output) {
            let out = ctx
                .call(ctx.client.instance_output(name, env, Some(args.lines)))
                .await?;
            if ctx.json {
                return print_json(&out);
            }
            for instance in &out {
                println!("==> {} ({}) <==", instance.instance, instance.release);
                for line in &instance.lines {
                    println!("{line}");
                }
                if let Some(note) = &instance.note {
                    println!("({note})");
                }
            }
            return Ok(());
        }
        if let Some(name) = &args.name {
            let service = ctx.call(ctx.client.service(name)).await?;
            if ctx.json {
                return print_json(&service);
            }
            print_service(&service);
            return Ok(());
        }
        let services = ctx.call(ctx.client.services()).await?;
        if ctx.json {
            return print_json(&services);
        }
        if services.is_empty() {
            eprintln!(
                "No services yet; a pipeline job with `deploy: ENV` makes a service's first release (see docs/deploy.md)."
            );
            return Ok(());
        }
        let mut t = Table::new(&[
            "SERVICE",
            "PROJECT",
            "ENVIRONMENT",
            "LIVE",
            "SINCE",
            "LAST DEPLOY",
        ]);
        for s in &services {
            if s.environments.is_empty() {
                t.row(vec![
                    s.name.clone(),
                    s.project.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
            }
            for e in &s.environments {
                t.row(vec![
                    s.name.clone(),
                    s.project.clone(),
                    e.name.clone(),
                    or_dash(e.live.as_ref().map(|l| l.name.clone())),
                    or_dash(e.live.as_ref().map(|l| ago(l.since))),
                    or_dash(e.last_deploy.as_ref().map(deploy_summary)),
                ]);
            }
        }
        t.print();
        Ok(())
    })
}

/// `12 v3 succeeded`.
fn deploy_summary(d: &DeployInfo) -> String {
    format!("{} {} {}", d.id, d.release_name, d.state)
}

fn print_service(s: &ServiceInfo) {
    println!(
        "Service `{}` of project `{}`; newest release {}.",
        s.name,
        s.project,
        s.newest_release.as_deref().unwrap_or("none")
    );
    println!();
    let mut t = Table::new(&[
        "ENVIRONMENT",
        "TARGET",
        "STRATEGY",
        "APPROVAL",
        "LIVE",
        "WARM",
        "LAST DEPLOY",
        "ROUTES",
    ]);
    for e in &s.environments {
        t.row(vec![
            e.name.clone(),
            or_dash(e.target.clone()),
            or_dash(e.strategy.clone()),
            if e.approval { "yes" } else { "no" }.into(),
            or_dash(
                e.live
                    .as_ref()
                    .map(|l| format!("{} ({}, {})", l.name, short(&l.sha), ago(l.since))),
            ),
            or_dash(e.warm.as_ref().map(|w| w.name.clone())),
            or_dash(e.last_deploy.as_ref().map(deploy_summary)),
            e.routes.join(", "),
        ]);
    }
    t.print();
}

/// `ferry releases SERVICE`.
pub fn releases(global: &Global, args: ReleasesArgs) -> Result<(), Failure> {
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let releases = ctx
            .call(
                ctx.client
                    .releases(&args.service, Some(i64::from(args.limit))),
            )
            .await?;
        if ctx.json {
            return print_json(&releases);
        }
        if releases.is_empty() {
            eprintln!(
                "`{}` has no releases; a pipeline job with `deploy: ENV` makes one.",
                args.service
            );
            return Ok(());
        }
        let mut t = Table::new(&[
            "RELEASE", "COMMIT", "ARTIFACT", "LIVE IN", "CREATED", "BY", "RUN",
        ]);
        for r in &releases {
            t.row(vec![
                r.name.clone(),
                short(&r.sha).to_string(),
                match &r.artifact {
                    ReleaseArtifact::Image { reference } => reference.clone(),
                    ReleaseArtifact::Tarball { digest } => {
                        format!("tarball {}", digest.get(..19).unwrap_or(digest))
                    }
                },
                if r.live_in.is_empty() {
                    "-".into()
                } else {
                    r.live_in.join(", ")
                },
                ago(r.created_at),
                r.created_by.clone(),
                or_dash(r.run_id),
            ]);
        }
        t.print();
        Ok(())
    })
}

/// `ferry deploy SERVICE --env E [--release R] [--no-wait]`.
pub fn deploy(global: &Global, args: DeployArgs) -> Result<(), Failure> {
    let release = args
        .release
        .as_deref()
        .map(|r| release_number(r, "--release"))
        .transpose()?;
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let request = DeployRequest {
            environment: args.environment.clone(),
            release,
        };
        let queued = ctx.call(ctx.client.deploy(&args.service, &request)).await?;
        settle(&ctx, queued, args.no_wait).await
    })
}

/// `ferry promote SERVICE --from E1 --to E2 [--no-wait]`.
pub fn promote(global: &Global, args: PromoteArgs) -> Result<(), Failure> {
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let request = PromoteRequest {
            from: args.from.clone(),
            to: args.to.clone(),
        };
        let queued = ctx
            .call(ctx.client.promote(&args.service, &request))
            .await?;
        settle(&ctx, queued, args.no_wait).await
    })
}

/// `ferry rollback SERVICE --env E [--to R] [--no-wait]`.
pub fn rollback(global: &Global, args: RollbackArgs) -> Result<(), Failure> {
    let to = args
        .to
        .as_deref()
        .map(|r| release_number(r, "--to"))
        .transpose()?;
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let request = RollbackRequest {
            environment: args.environment.clone(),
            to,
        };
        let queued = ctx
            .call(ctx.client.rollback(&args.service, &request))
            .await?;
        settle(&ctx, queued, args.no_wait).await
    })
}

/// Reports a queued deploy, then (unless `no_wait`) follows it to its end.
async fn settle(ctx: &Ctx, queued: DeployInfo, no_wait: bool) -> Result<(), Failure> {
    let line = format!(
        "Deploy {} of `{}` {} to `{}` is {}: {}/deploys/{}",
        queued.id,
        queued.service,
        queued.release_name,
        queued.environment,
        queued.state,
        ctx.server(),
        queued.id
    );
    if no_wait {
        if ctx.json {
            return print_json(&queued);
        }
        println!("{line}");
        if queued.state == DeployState::WaitingApproval {
            println!(
                "It waits for an operator's approval: `ferry deploys approve {}`.",
                queued.id
            );
        }
        return Ok(());
    }
    if !ctx.json {
        eprintln!("{line}");
    }
    let detail = follow(ctx, queued.id).await?;
    if ctx.json {
        print_json(&detail)?;
    }
    outcome(ctx, &detail.deploy)
}

/// The exit of a finished deploy, with its last words.
fn outcome(ctx: &Ctx, d: &DeployInfo) -> Result<(), Failure> {
    let took = span(d.started_at, d.finished_at);
    match d.state {
        DeployState::Succeeded => {
            if !ctx.json {
                println!(
                    "`{}` {} is live in `{}` (deploy {}, {took}).",
                    d.service, d.release_name, d.environment, d.id
                );
            }
            Ok(())
        }
        state => {
            let reason = d
                .reason
                .as_deref()
                .map_or("no reason was recorded", |r| r.trim_end_matches('.'));
            let what = match state {
                DeployState::RolledBack => "was rolled back",
                DeployState::Cancelled => "was cancelled",
                _ => "failed",
            };
            let kept = match d.previous_release {
                Some(n) => format!("; v{n} is still live"),
                None => String::new(),
            };
            eprintln!(
                "Deploy {} of `{}` {} to `{}` {what}: {reason}{kept}.",
                d.id, d.service, d.release_name, d.environment
            );
            Err(Failure::Failed)
        }
    }
}

/// Polls a deploy until it ends, printing each new progress line (with a spinner on a
/// terminal for the wait in between).
async fn follow(ctx: &Ctx, id: i64) -> Result<DeployDetail, Failure> {
    let bar = if std::io::stderr().is_terminal() && !ctx.json {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut printed = 0i64;
    let mut told_approval = false;
    loop {
        let detail = ctx.call(ctx.client.deploy_detail(id)).await?;
        let seen = printed;
        for step in detail.steps.iter().filter(|s| s.seq > seen) {
            if !ctx.json {
                bar.suspend(|| println!("{:<11} {}", step.phase.as_str(), step.message));
            }
            printed = step.seq;
        }
        let d = &detail.deploy;
        if d.state.is_finished() {
            bar.finish_and_clear();
            return Ok(detail);
        }
        if d.state == DeployState::WaitingApproval && !told_approval && !ctx.json {
            bar.suspend(|| {
                eprintln!(
                    "Deploy {id} waits for an operator's approval: `ferry deploys approve {id}`."
                )
            });
            told_approval = true;
        }
        bar.set_message(format!(
            "deploy {id}: {} {} to {} — {} ({})",
            d.service, d.release_name, d.environment, d.state, d.phase
        ));
        tokio::time::sleep(POLL).await;
    }
}

/// `ferry deploys [SERVICE] [--env E]` and `ferry deploys show|approve|cancel ID`.
pub fn deploys(global: &Global, args: DeploysArgs) -> Result<(), Failure> {
    match args.command {
        Some(DeploysCommand::Show(one)) => return show(global, one),
        Some(DeploysCommand::Approve(one)) => return approve(global, one),
        Some(DeploysCommand::Cancel(one)) => return cancel(global, one),
        None => {}
    }
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let filter = DeployFilter {
            service: args.service.clone(),
            environment: args.environment.clone(),
            active: false,
            limit: Some(i64::from(args.limit)),
        };
        let deploys = ctx.call(ctx.client.deploys(&filter)).await?;
        if ctx.json {
            return print_json(&deploys);
        }
        if deploys.is_empty() {
            eprintln!("No deploys yet; start one with `ferry deploy SERVICE --env ENV`.");
            return Ok(());
        }
        let mut t = Table::new(&[
            "ID", "SERVICE", "ENV", "RELEASE", "KIND", "STATE", "BY", "CREATED", "DURATION",
            "REASON",
        ]);
        for d in &deploys {
            t.row(vec![
                d.id.to_string(),
                d.service.clone(),
                d.environment.clone(),
                release_move(d),
                d.kind.to_string(),
                d.state.to_string(),
                d.requested_by.clone(),
                ago(d.created_at),
                span(d.started_at, d.finished_at),
                d.reason.clone().unwrap_or_default(),
            ]);
        }
        t.print();
        Ok(())
    })
}

/// `v2 → v3`, or `v3` for a first deploy.
fn release_move(d: &DeployInfo) -> String {
    match d.previous_release {
        Some(p) => format!("v{p} → {}", d.release_name),
        None => d.release_name.clone(),
    }
}

fn print_detail(d: &DeployDetail) {
    let i = &d.deploy;
    println!(
        "Deploy {} of `{}` {} to `{}`: {} ({}, {})",
        i.id,
        i.service,
        release_move(i),
        i.environment,
        i.state,
        i.kind,
        i.phase
    );
    let mut who = format!("Requested by {} {}", i.requested_by, ago(i.created_at));
    if let Some(a) = &i.approved_by {
        who.push_str(&format!(", approved by {a}"));
    }
    if let (Some(run), Some(job)) = (i.run_id, &i.job) {
        who.push_str(&format!(", for job `{job}` of run {run}"));
    }
    if i.started_at.is_some() {
        who.push_str(&format!("; took {}", span(i.started_at, i.finished_at)));
    }
    println!("{who}.");
    if let Some(r) = &i.reason {
        println!("Reason: {r}");
    }
    if d.steps.is_empty() {
        return;
    }
    println!();
    let mut t = Table::new(&["TIME", "PHASE", "MESSAGE"]);
    for s in &d.steps {
        t.row(vec![
            timestamp(s.at),
            s.phase.to_string(),
            s.message.clone(),
        ]);
    }
    t.print();
}

fn show(global: &Global, args: DeployShowArgs) -> Result<(), Failure> {
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        if args.follow {
            return show_following(&ctx, args.id).await;
        }
        let detail = ctx.call(ctx.client.deploy_detail(args.id)).await?;
        if ctx.json {
            return print_json(&detail);
        }
        print_detail(&detail);
        Ok(())
    })
}

/// `ferry deploys show ID --follow`: what `ferry deploy` prints while it waits, for a
/// deploy started elsewhere (by a pipeline job, the web UI or another person).
async fn show_following(ctx: &Ctx, id: i64) -> Result<(), Failure> {
    let detail = ctx.call(ctx.client.deploy_detail(id)).await?;
    if !ctx.json {
        let d = &detail.deploy;
        let mut by = format!("asked for by {}", d.requested_by);
        if let (Some(run), Some(job)) = (d.run_id, &d.job) {
            by.push_str(&format!(" for job `{job}` of run {run}"));
        }
        eprintln!(
            "Deploy {} of `{}` {} to `{}` ({}, {by}):",
            d.id,
            d.service,
            release_move(d),
            d.environment,
            d.kind
        );
    }
    let detail = follow(ctx, id).await?;
    if ctx.json {
        print_json(&detail)?;
    }
    outcome(ctx, &detail.deploy)
}

fn approve(global: &Global, args: DeployIdArgs) -> Result<(), Failure> {
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let detail = ctx.call(ctx.client.approve_deploy(args.id)).await?;
        if ctx.json {
            return print_json(&detail);
        }
        let d = &detail.deploy;
        println!(
            "Deploy {} of `{}` {} to `{}` approved; it is {} now.",
            d.id, d.service, d.release_name, d.environment, d.state
        );
        Ok(())
    })
}

fn cancel(global: &Global, args: DeployIdArgs) -> Result<(), Failure> {
    let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
    block_on(async {
        let detail = ctx.call(ctx.client.cancel_deploy(args.id)).await?;
        if ctx.json {
            return print_json(&detail);
        }
        let d = &detail.deploy;
        println!(
            "Deploy {} of `{}` {} to `{}` is {}.",
            d.id, d.service, d.release_name, d.environment, d.state
        );
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::release_number;

    #[test]
    fn releases_are_named_with_or_without_their_v() {
        assert_eq!(release_number("v3", "--release").ok(), Some(3));
        assert_eq!(release_number("12", "--release").ok(), Some(12));
        assert!(release_number("latest", "--release").is_err());
        assert!(release_number("v0", "--release").is_err());
    }
}
