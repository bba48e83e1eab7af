//! From a trigger to a run: the mirror, the commit, `ferry.yml` at it, `on` filters,
//! concurrency groups and the run's job rows. See the module docs of `server` for the
//! rules.

use super::git::{Mirror, branch_or_tag};
use super::{Core, CoreError, TriggerOutcome, TriggerRequest};
use ferry_config::{EvalContext, Pipeline, RunFacts, interpolate};
use ferry_store::db::{NewEvent, NewJob, NewRun, Project, Run};
use ferry_types::{EventKind, RunStatus, Trigger};
use serde_json::json;
use std::path::Path;

/// Reads the project or fails with `NotFound`.
pub(crate) async fn project(core: &Core, name: &str) -> Result<Project, CoreError> {
    core.store()
        .get_project(name)
        .await?
        .ok_or_else(|| CoreError::NotFound {
            what: "project",
            key: name.to_string(),
        })
}

/// The project's mirror, fetched (or cloned) under its lock. With `want` given and
/// already present, nothing is fetched.
pub(crate) async fn fetch_mirror(
    core: &Core,
    project: &Project,
    want: Option<&str>,
) -> Result<Mirror, CoreError> {
    let mirror = Mirror::new(&core.config().data_dir, &project.name, &project.repo);
    let lock = core.git_lock(&project.name);
    let _guard = lock.lock().await;
    let m = mirror.clone();
    let want = want.map(str::to_string);
    tokio::task::spawn_blocking(move || -> Result<(), CoreError> {
        if let Some(w) = &want
            && m.exists()
            && m.resolve(w)?.is_some()
        {
            return Ok(());
        }
        m.update().map(|_| ())
    })
    .await
    .map_err(|e| CoreError::Git(format!("fetching the repository failed: {e}")))??;
    Ok(mirror)
}

/// The commit, branch and tag a request names.
fn resolve(
    mirror: &Mirror,
    project: &Project,
    req: &TriggerRequest,
) -> Result<(String, Option<String>, Option<String>), CoreError> {
    let full_ref = match req.git_ref.as_deref() {
        None => Some(format!("refs/heads/{}", project.default_branch)),
        Some(r) if r.starts_with("refs/") => Some(r.to_string()),
        Some(r) => {
            let heads = format!("refs/heads/{r}");
            let tags = format!("refs/tags/{r}");
            if mirror.resolve(&heads)?.is_some() {
                Some(heads)
            } else if mirror.resolve(&tags)?.is_some() {
                Some(tags)
            } else if req.sha.is_none() {
                // Maybe a commit id.
                None
            } else {
                Some(heads)
            }
        }
    };
    let (branch, tag) = full_ref
        .as_deref()
        .map(branch_or_tag)
        .unwrap_or((None, None));
    let rev = match (&req.sha, &full_ref) {
        (Some(sha), _) => sha.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => req.git_ref.clone().unwrap_or_default(),
    };
    let sha = mirror.resolve(&rev)?.ok_or_else(|| CoreError::NotFound {
        what: "commit",
        key: format!("{rev} in project `{}`", project.name),
    })?;
    Ok((sha, branch, tag))
}

/// Appends the `push.received` event describing what a trigger led to.
async fn record(
    core: &Core,
    req: &TriggerRequest,
    sha: Option<&str>,
    outcome: &str,
    message: Option<&str>,
    run_id: Option<i64>,
) {
    let mut ev = NewEvent::new(EventKind::PushReceived);
    ev.project = Some(req.project.clone());
    ev.run_id = run_id;
    ev.data = json!({
        "ref": req.git_ref,
        "sha": sha,
        "trigger": req.trigger,
        "outcome": outcome,
        "message": message,
    });
    if let Err(e) = core.store().append_event(ev).await {
        tracing::warn!(error = %e, "Recording a trigger in the event log failed.");
    }
}

pub(crate) async fn trigger(
    core: &Core,
    req: &TriggerRequest,
) -> Result<TriggerOutcome, CoreError> {
    let project = project(core, &req.project).await?;
    let mirror = fetch_mirror(core, &project, req.sha.as_deref()).await?;
    let (m, p, r) = (mirror.clone(), project.clone(), req.clone());
    let (sha, branch, tag) = tokio::task::spawn_blocking(move || resolve(&m, &p, &r))
        .await
        .map_err(|e| CoreError::Git(format!("reading the repository failed: {e}")))??;

    let m = mirror.clone();
    let s = sha.clone();
    let text = tokio::task::spawn_blocking(move || m.show(&s, "ferry.yml"))
        .await
        .map_err(|e| CoreError::Git(format!("reading the repository failed: {e}")))??;
    let Some(text) = text else {
        let msg = format!(
            "commit {} of project `{}` has no ferry.yml",
            short(&sha),
            project.name
        );
        record(core, req, Some(&sha), "invalid", Some(&msg), None).await;
        return Err(CoreError::Pipeline(msg));
    };
    let pipeline = match ferry_config::parse(Path::new("ferry.yml"), &text) {
        Ok(p) => p,
        Err(d) => {
            let msg = format!(
                "ferry.yml at commit {} does not validate:\n{d}",
                short(&sha)
            );
            record(core, req, Some(&sha), "invalid", Some(&msg), None).await;
            return Err(CoreError::Pipeline(msg));
        }
    };

    if let Some(why) = filtered(
        core,
        &mirror,
        &pipeline,
        req,
        &sha,
        branch.as_deref(),
        tag.as_deref(),
    )
    .await?
    {
        record(core, req, Some(&sha), "filtered", Some(&why), None).await;
        return Ok(TriggerOutcome::Filtered(why));
    }
    let run = create(
        core,
        &pipeline,
        text,
        &project.name,
        &sha,
        branch,
        tag,
        req.trigger,
        &HoldNothing,
    )
    .await?;
    record(core, req, Some(&sha), "started", None, Some(run.id)).await;
    tracing::info!(project = %project.name, run = run.id, sha = %short(&sha), trigger = %req.trigger, "Started a run.");
    Ok(TriggerOutcome::Started(run))
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// Why the pipeline's `on` excludes this trigger, if it does.
async fn filtered(
    core: &Core,
    mirror: &Mirror,
    pipeline: &Pipeline,
    req: &TriggerRequest,
    sha: &str,
    branch: Option<&str>,
    tag: Option<&str>,
) -> Result<Option<String>, CoreError> {
    match req.trigger {
        Trigger::Schedule => Ok(None),
        Trigger::Manual | Trigger::Api => Ok((!pipeline.on.manual).then(|| {
            "the pipeline does not allow runs started by hand: add `manual: true` under `on`"
                .to_string()
        })),
        Trigger::Push => {
            let Some(push) = &pipeline.on.push else {
                return Ok(Some(
                    "the pipeline has no `on.push`: pushes start no run".to_string(),
                ));
            };
            let changed = match &req.changed_paths {
                Some(c) => c.clone(),
                None if !push.paths.is_empty() && tag.is_none() => {
                    let (m, s) = (mirror.clone(), sha.to_string());
                    tokio::task::spawn_blocking(move || m.changed(None, &s))
                        .await
                        .map_err(|e| {
                            CoreError::Git(format!("reading the repository failed: {e}"))
                        })??
                }
                None => Vec::new(),
            };
            if !push.matches(branch, tag, &changed) {
                let what = match (branch, tag) {
                    (_, Some(t)) => format!("tag `{t}`"),
                    (Some(b), None) => format!("branch `{b}`"),
                    (None, None) => "this ref".to_string(),
                };
                return Ok(Some(format!(
                    "`on.push` does not match a push of {what} changing {} path(s)",
                    changed.len()
                )));
            }
            // A hook and the poller may both report one push.
            for r in core.store().list_runs(Some(&req.project), 50).await? {
                if r.sha == sha
                    && r.trigger == Trigger::Push
                    && r.branch.as_deref() == branch
                    && r.tag.as_deref() == tag
                {
                    return Ok(Some(format!(
                        "commit {} already has run {}",
                        short(sha),
                        r.id
                    )));
                }
            }
            Ok(None)
        }
    }
}

/// What happens to jobs of a new run that already passed elsewhere (re-runs).
pub(crate) trait Reuse: Sync {
    /// Whether job instance `name` is taken from an earlier run instead of running.
    fn reused(&self, name: &str) -> bool;
}

/// Nothing is reused.
pub(crate) struct HoldNothing;

impl Reuse for HoldNothing {
    fn reused(&self, _name: &str) -> bool {
        false
    }
}

/// A rendered concurrency group.
struct Group {
    name: String,
    cancel_in_progress: bool,
}

/// Creates the run with its job rows, applying the concurrency group.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn create(
    core: &Core,
    pipeline: &Pipeline,
    text: String,
    project: &str,
    sha: &str,
    branch: Option<String>,
    tag: Option<String>,
    trigger: Trigger,
    reuse: &dyn Reuse,
) -> Result<Run, CoreError> {
    let facts = RunFacts {
        sha: sha.to_string(),
        short_sha: sha.chars().take(8).collect(),
        branch: branch.clone(),
        tag: tag.clone(),
        run_id: String::new(),
        event: trigger.as_str().to_string(),
        pipeline: pipeline.name.clone(),
        job: String::new(),
        workspace: String::new(),
    };
    let mut group: Option<Group> = None;
    let mut group_jobs: Vec<String> = Vec::new();
    for (id, job) in &pipeline.jobs {
        let Some(c) = &job.concurrency else { continue };
        let ctx = EvalContext {
            facts: RunFacts {
                job: id.clone(),
                ..facts.clone()
            },
            ..EvalContext::default()
        };
        let name = interpolate(&c.group, &ctx).map_err(|e| {
            CoreError::Pipeline(format!(
                "job `{id}`: `concurrency.group` cannot be rendered: {e}"
            ))
        })?;
        match &group {
            None => {
                group = Some(Group {
                    name,
                    cancel_in_progress: c.cancel_in_progress,
                });
                group_jobs.push(id.clone());
            }
            Some(g) if g.name == name => group_jobs.push(id.clone()),
            Some(_) => {}
        }
    }

    let mut hold_group = false;
    if let Some(g) = &group {
        let older = core.store().active_runs_in_group(project, &g.name).await?;
        if g.cancel_in_progress {
            for r in older {
                if core
                    .store()
                    .set_run_status(r.id, RunStatus::Cancelled)
                    .await?
                {
                    tracing::info!(run = r.id, group = %g.name, "Cancelled an older run of the concurrency group.");
                }
                core.cancel_local(r.id);
                let by = format!("ferry (a newer run of concurrency group `{}`)", g.name);
                super::ops::cancel_run_deploys(core, r.id, &by).await?;
            }
        } else {
            hold_group = !older.is_empty();
        }
    }

    let jobs: Vec<NewJob> = pipeline
        .instances()
        .into_iter()
        .filter_map(|inst| {
            let job = pipeline.jobs.get(&inst.job)?;
            let reused = reuse.reused(&inst.id);
            let hold_group = hold_group && group_jobs.contains(&inst.job);
            // A job whose `if` looks at `needs` decides alone whether a failed need
            // stops it: the queue must not wait for its needs to succeed, so the
            // reconciler holds it until they ended (see the module docs).
            let hold_needs = !inst.needs.is_empty()
                && job
                    .condition
                    .as_ref()
                    .is_some_and(|c| c.source.contains("needs"));
            Some(NewJob {
                runs_on: job.runs_on.clone(),
                needs: if hold_needs {
                    Vec::new()
                } else {
                    inst.needs.clone()
                },
                max_attempts: i64::from(job.retry) + 1,
                allow_failure: job.allow_failure,
                needs_approval: job.approval.is_some() || hold_group || hold_needs || reused,
                spec: json!({
                    "job": inst.job,
                    "needs": inst.needs,
                    "approval": job.approval.is_some(),
                    "hold_group": hold_group,
                    "hold_needs": hold_needs,
                    "reused": reused,
                }),
                name: inst.id,
            })
        })
        .collect();
    let new = NewRun {
        project: project.to_string(),
        sha: sha.to_string(),
        branch,
        tag,
        trigger,
        pipeline: text,
        concurrency_group: group.map(|g| g.name),
        jobs,
    };
    Ok(core.store().create_run(&new).await?)
}
