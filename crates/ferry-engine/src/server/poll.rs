//! The poller: for setups without webhooks, every [`super::CoreConfig::poll_interval`]
//! each project's mirror is fetched, and every branch or tag that moved (or appeared)
//! since the previous fetch triggers a push run, with the paths changed between the
//! old and the new commit. A mirror cloned for the first time triggers nothing: there
//! is no "before" to compare with.
//!
//! The "before" is the mirror itself, so a push a webhook already triggered (its
//! trigger fetched the mirror) is not triggered again by the poller.

use super::git::{Mirror, branch_or_tag};
use super::{Core, TriggerRequest};
use ferry_store::db::Project;
use ferry_types::Trigger;
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(core: Core, every: Duration, shutdown: CancellationToken) {
    loop {
        poll_all(&core).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// One poll of every project.
pub(crate) async fn poll_all(core: &Core) {
    let projects = match core.store().list_projects().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "Listing projects for polling failed.");
            return;
        }
    };
    for p in projects {
        match poll(core, &p).await {
            Ok(moved) => {
                for (full_ref, old, new) in moved {
                    let changed = match &old {
                        Some(o) => {
                            let m = Mirror::new(&core.config().data_dir, &p.name, &p.repo);
                            let (o, n) = (o.clone(), new.clone());
                            tokio::task::spawn_blocking(move || m.changed(Some(&o), &n).ok())
                                .await
                                .ok()
                                .flatten()
                        }
                        None => None,
                    };
                    let req = TriggerRequest {
                        project: p.name.clone(),
                        git_ref: Some(full_ref.clone()),
                        sha: Some(new.clone()),
                        trigger: Trigger::Push,
                        changed_paths: changed,
                        delivery_id: None,
                    };
                    match core.trigger(req).await {
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(project = %p.name, git_ref = %full_ref, error = %e, "A polled push cannot start a run.")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(project = %p.name, error = %e, "Polling the repository failed.")
            }
        }
    }
}

/// Fetches the mirror; returns the refs that moved: (ref, old commit, new commit).
async fn poll(
    core: &Core,
    project: &Project,
) -> Result<Vec<(String, Option<String>, String)>, super::CoreError> {
    let mirror = Mirror::new(&core.config().data_dir, &project.name, &project.repo);
    let lock = core.git_lock(&project.name);
    let _guard = lock.lock().await;
    tokio::task::spawn_blocking(move || {
        let existed = mirror.exists();
        let before: HashMap<String, String> = if existed {
            mirror.refs()?.into_iter().collect()
        } else {
            HashMap::new()
        };
        mirror.update()?;
        if !existed {
            return Ok(Vec::new());
        }
        let mut moved = Vec::new();
        for (name, sha) in mirror.refs()? {
            let old = before.get(&name).cloned();
            if old.as_deref() == Some(sha.as_str()) {
                continue;
            }
            if branch_or_tag(&name) == (None, None) {
                continue;
            }
            moved.push((name, old, sha));
        }
        Ok(moved)
    })
    .await
    .map_err(|e| super::CoreError::Git(format!("polling failed: {e}")))?
}
