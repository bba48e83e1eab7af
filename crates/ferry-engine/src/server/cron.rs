//! Cron runs: each project's `on.schedule`, read from `ferry.yml` on its default
//! branch (in the mirror, refreshed every [`REFRESH`]), fires a run with
//! `Trigger::Schedule` at each occurrence (UTC).
//!
//! The last fire time of each schedule is kept in `<data_dir>/cron/<project>.json`
//! and written *before* the run is triggered: a crash in between loses that one run
//! rather than firing it twice. Occurrences missed while the server was down fire once
//! (not once per missed occurrence). A schedule seen for the first time starts
//! counting from now. Time comes from [`super::CoreOptions::clock`].

use super::git::Mirror;
use super::trigger::fetch_mirror;
use super::{Core, TriggerRequest};
use chrono::{DateTime, Utc};
use ferry_config::CronSchedule;
use ferry_types::Trigger;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the schedules are read again from the repositories.
const REFRESH: Duration = Duration::from_secs(30);

pub(crate) async fn run(core: Core, shutdown: CancellationToken) {
    let tick = core.inner.options.cron_tick;
    let mut schedules: HashMap<String, Vec<CronSchedule>> = HashMap::new();
    let mut refreshed: Option<tokio::time::Instant> = None;
    loop {
        if refreshed.is_none_or(|t| t.elapsed() >= REFRESH) {
            schedules = load_schedules(&core).await;
            refreshed = Some(tokio::time::Instant::now());
        }
        let now = core.inner.options.clock.now_ms();
        for (project, list) in &schedules {
            fire_due(&core, project, list, now).await;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
    }
}

/// Every project's schedules, from `ferry.yml` on its default branch.
async fn load_schedules(core: &Core) -> HashMap<String, Vec<CronSchedule>> {
    let mut out = HashMap::new();
    let projects = match core.store().list_projects().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "Listing projects for schedules failed.");
            return out;
        }
    };
    for p in projects {
        let mirror = Mirror::new(&core.config().data_dir, &p.name, &p.repo);
        let mirror = if mirror.exists() {
            mirror
        } else {
            match fetch_mirror(core, &p, None).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(project = %p.name, error = %e, "No mirror for schedules yet.");
                    continue;
                }
            }
        };
        let rev = format!("refs/heads/{}", p.default_branch);
        let text = tokio::task::spawn_blocking(move || {
            let sha = mirror.resolve(&rev).ok().flatten()?;
            mirror.show(&sha, "ferry.yml").ok().flatten()
        })
        .await
        .ok()
        .flatten();
        let Some(text) = text else { continue };
        if let Ok(pipeline) = ferry_config::parse(Path::new("ferry.yml"), &text)
            && !pipeline.on.schedule.is_empty()
        {
            out.insert(p.name.clone(), pipeline.on.schedule);
        }
    }
    out
}

fn state_file(data_dir: &Path, project: &str) -> PathBuf {
    data_dir.join("cron").join(format!("{project}.json"))
}

fn read_state(path: &Path) -> BTreeMap<String, i64> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_state(path: &Path, state: &BTreeMap<String, i64>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn at(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// The newest occurrence of `s` after `last` and at or before `now`, if any.
pub(crate) fn due(s: &CronSchedule, last: i64, now: i64) -> Option<i64> {
    let next = s.parsed.find_next_occurrence(&at(last)?, false).ok()?;
    if next.timestamp_millis() > now {
        return None;
    }
    let newest = s.parsed.find_previous_occurrence(&at(now)?, true).ok()?;
    Some(newest.timestamp_millis().max(next.timestamp_millis()))
}

async fn fire_due(core: &Core, project: &str, list: &[CronSchedule], now: i64) {
    let path = state_file(&core.config().data_dir, project);
    let mut state = read_state(&path);
    let mut fire = Vec::new();
    let mut dirty = false;
    for s in list {
        match state.get(&s.cron) {
            None => {
                state.insert(s.cron.clone(), now);
                dirty = true;
            }
            Some(&last) => {
                if let Some(when) = due(s, last, now) {
                    state.insert(s.cron.clone(), when);
                    dirty = true;
                    fire.push((s.cron.clone(), when));
                }
            }
        }
    }
    if dirty && let Err(e) = write_state(&path, &state) {
        tracing::error!(project, error = %e, file = %path.display(), "Recording cron fire times failed; not firing.");
        return;
    }
    for (cron, when) in fire {
        let req = TriggerRequest {
            project: project.to_string(),
            git_ref: None,
            sha: None,
            trigger: Trigger::Schedule,
            changed_paths: None,
            delivery_id: None,
        };
        match core.trigger(req).await {
            Ok(_) => tracing::info!(project, cron = %cron, at = when, "Fired a scheduled run."),
            Err(e) => {
                tracing::warn!(project, cron = %cron, error = %e, "A scheduled run cannot start.")
            }
        }
    }
}
