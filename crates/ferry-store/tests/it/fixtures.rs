//! Small builders shared by the tests.

use ferry_store::db::{DbError, NewJob, NewProject, NewRun, Project, Run, Store};
use ferry_types::Trigger;

/// Registers project `name` with a local repository path.
pub async fn project(store: &Store, name: &str) -> Result<Project, DbError> {
    store
        .add_project(&NewProject {
            name: name.to_owned(),
            repo: format!("/srv/git/{name}.git"),
            default_branch: "main".to_owned(),
            webhook_secret: Some("hook-secret".to_owned()),
        })
        .await
}

/// A job with no retries.
pub fn job(name: &str, runs_on: &[&str], needs: &[&str]) -> NewJob {
    NewJob {
        name: name.to_owned(),
        runs_on: runs_on.iter().map(|s| s.to_string()).collect(),
        needs: needs.iter().map(|s| s.to_string()).collect(),
        max_attempts: 1,
        allow_failure: false,
        needs_approval: false,
        spec: serde_json::json!({ "steps": [{ "run": format!("echo {name}") }] }),
    }
}

/// A push run of `project` at a fixed commit with `jobs`.
pub async fn run(store: &Store, project: &str, jobs: Vec<NewJob>) -> Result<Run, DbError> {
    store
        .create_run(&NewRun {
            project: project.to_owned(),
            sha: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            branch: Some("main".to_owned()),
            tag: None,
            trigger: Trigger::Push,
            pipeline: "jobs:\n  build:\n    steps:\n      - run: make\n".to_owned(),
            concurrency_group: Some("deploy".to_owned()),
            jobs,
        })
        .await
}

/// Labels as owned strings.
pub fn labels(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}
