//! `ferry run`: the pipeline of the current commit, run for real.

use crate::support::{Repo, ferry, output, stderr, stdout};
use ferry_types::{JobResult, RunEvent};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

const TWO_JOBS: &str = r#"
name: demo
jobs:
  build:
    steps:
      - name: Compile
        run: echo "compiling ${{ ferry.short_sha }}" && mkdir -p out && echo bin > out/app
  test:
    needs: build
    steps:
      - name: Unit tests
        run: echo "testing on $FERRY_BRANCH"
"#;

#[test]
fn runs_jobs_in_order_and_prints_steps_and_a_summary() {
    let repo = Repo::new(&[("ferry.yml", TWO_JOBS)]);
    let data = tempfile::tempdir().unwrap();
    let out = output(ferry(data.path()).arg("run").current_dir(repo.path()));
    assert!(out.status.success());
    let text = stdout(&out);
    let compile = text.find("build ▶ Compile").expect("start line of Compile");
    let compiled = text.find("build ✓ Compile").expect("end line of Compile");
    let tests = text
        .find("test ▶ Unit tests")
        .expect("start line of Unit tests");
    assert!(
        compile < compiled && compiled < tests,
        "jobs out of order:\n{text}"
    );
    assert!(
        text.contains("build │ compiling "),
        "step output not prefixed by its job"
    );
    assert!(text.contains("test │ testing on main"));
    let summary = text.rfind("JOB").expect("summary table");
    let table = &text[summary..];
    assert!(table.contains("build") && table.contains("test") && table.contains("success"));
    // The user's tree is untouched: the job wrote into its own workspace.
    assert!(!repo.path().join("out").exists());
}

#[test]
fn a_failing_job_exits_1_and_skips_its_dependants() {
    let repo = Repo::new(&[(
        "ferry.yml",
        "jobs:\n  build:\n    steps:\n      - run: exit 3\n  test:\n    needs: build\n    steps:\n      - run: echo never\n",
    )]);
    let data = tempfile::tempdir().unwrap();
    let out = output(ferry(data.path()).arg("run").current_dir(repo.path()));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("exit 3"), "exit code not shown:\n{text}");
    assert!(!text.contains("never"));
    let table = &text[text.rfind("JOB").unwrap()..];
    assert!(
        table.contains("failure") && table.contains("skipped"),
        "{table}"
    );
}

#[test]
fn json_output_is_one_event_per_line() {
    let repo = Repo::new(&[("ferry.yml", TWO_JOBS)]);
    let data = tempfile::tempdir().unwrap();
    let out = output(
        ferry(data.path())
            .args(["run", "--json"])
            .current_dir(repo.path()),
    );
    assert!(out.status.success());
    let events: Vec<RunEvent> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not an event: {e}")))
        .collect();
    assert!(matches!(events.first(), Some(RunEvent::RunStarted { .. })));
    assert!(matches!(
        events.last(),
        Some(RunEvent::RunFinished { success: true, .. })
    ));
    let finished: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::JobFinished { job, result, .. } => Some((job.as_str(), *result)),
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        vec![("build", JobResult::Success), ("test", JobResult::Success)]
    );
}

#[test]
fn named_jobs_run_with_what_they_need_only() {
    let repo = Repo::new(&[(
        "ferry.yml",
        "jobs:\n  a:\n    steps: [echo job-a]\n  b:\n    needs: a\n    steps: [echo job-b]\n  c:\n    steps: [echo job-c]\n",
    )]);
    let data = tempfile::tempdir().unwrap();
    let out = output(
        ferry(data.path())
            .args(["run", "b"])
            .current_dir(repo.path()),
    );
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("job-a") && text.contains("job-b"));
    assert!(!text.contains("job-c"));
}

#[test]
fn an_unknown_job_name_is_bad_input() {
    let repo = Repo::new(&[("ferry.yml", TWO_JOBS)]);
    let data = tempfile::tempdir().unwrap();
    let out = output(
        ferry(data.path())
            .args(["run", "tset"])
            .current_dir(repo.path()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean `test`?"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_invalid_pipeline_is_reported_and_nothing_runs() {
    let repo = Repo::new(&[("ferry.yml", "jobs:\n  a:\n    stepz: [echo hi]\n")]);
    let data = tempfile::tempdir().unwrap();
    let out = output(ferry(data.path()).arg("run").current_dir(repo.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ferry.yml:3:5"), "{}", stderr(&out));
    assert!(!data.path().join("runs").exists(), "a run was started");
}

#[test]
fn outside_a_git_repository_run_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ferry.yml"), TWO_JOBS).unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = output(ferry(data.path()).arg("run").current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("git"), "{}", stderr(&out));
}

#[test]
fn dirty_includes_uncommitted_changes_and_the_default_does_not() {
    let repo = Repo::new(&[
        ("ferry.yml", "jobs:\n  show:\n    steps: [cat note.txt]\n"),
        ("note.txt", "committed\n"),
    ]);
    std::fs::write(repo.path().join("note.txt"), "edited\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let clean = stdout(&output(
        ferry(data.path()).arg("run").current_dir(repo.path()),
    ));
    assert!(clean.contains("show │ committed"), "{clean}");
    let dirty = stdout(&output(
        ferry(data.path())
            .args(["run", "--dirty"])
            .current_dir(repo.path()),
    ));
    assert!(dirty.contains("show │ edited"), "{dirty}");
}

#[test]
fn secrets_are_injected_where_referenced_and_masked_everywhere() {
    let repo = Repo::new(&[(
        "ferry.yml",
        r#"
jobs:
  uses:
    env:
      TOKEN: ${{ secrets.API_TOKEN }}
    steps:
      - run: |
          echo "plain: $TOKEN"
          printf 'b64: %s\n' "$(printf '%s' "$TOKEN" | base64)"
          printf 'split: %s' "${TOKEN:0:6}"; printf '%s\n' "${TOKEN:6}"
  other:
    steps:
      - run: echo "other sees [${TOKEN:-nothing}]"
"#,
    )]);
    let data = tempfile::tempdir().unwrap();
    crate::secrets::set_secret(data.path(), "API_TOKEN", "s3cr3t-v4lue-0042");
    let out = output(ferry(data.path()).arg("run").current_dir(repo.path()));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        !text.contains("s3cr3t-v4lue-0042"),
        "secret leaked:\n{text}"
    );
    let b64 = "czNjcjN0LXY0bHVlLTAwNDI=";
    assert!(!text.contains(&b64[..20]), "base64 form leaked:\n{text}");
    assert!(text.contains("uses │ plain: ***"), "{text}");
    assert!(text.contains("uses │ split: ***"), "{text}");
    assert!(text.contains("other │ other sees [nothing]"), "{text}");
    // The log files on disk are masked too.
    let logs = walk(&data.path().join("runs"));
    assert!(!logs.is_empty(), "no log files written");
    for log in logs {
        let body = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !body.contains("s3cr3t-v4lue-0042"),
            "{} leaked",
            log.display()
        );
    }
}

#[test]
fn approval_without_a_terminal_fails_clearly_and_approve_grants_it() {
    let repo = Repo::new(&[(
        "ferry.yml",
        "jobs:\n  deploy:\n    approval:\n      message: Ship it?\n    steps: [echo deployed]\n",
    )]);
    let data = tempfile::tempdir().unwrap();
    let out = output(ferry(data.path()).arg("run").current_dir(repo.path()));
    assert_eq!(out.status.code(), Some(1));
    let all = stdout(&out) + &stderr(&out);
    assert!(all.contains("--approve deploy"), "{all}");
    assert!(!all.contains("deploy │ deployed"));
    let out = output(
        ferry(data.path())
            .args(["run", "--approve", "deploy"])
            .current_dir(repo.path()),
    );
    assert!(out.status.success());
    assert!(stdout(&out).contains("deploy │ deployed"));
}

#[test]
fn ctrl_c_cancels_the_run_and_the_summary_says_so() {
    let repo = Repo::new(&[(
        "ferry.yml",
        "jobs:\n  slow:\n    steps:\n      - run: echo started; sleep 300\n  later:\n    needs: slow\n    steps: [echo never]\n",
    )]);
    let data = tempfile::tempdir().unwrap();
    let mut child = ferry(data.path())
        .args(["run", "--grace", "2s"])
        .current_dir(repo.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("slow │ started") {
            break;
        }
    }
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let table = &seen[seen.rfind("JOB").expect("summary after Ctrl-C")..];
    assert!(
        table.contains("slow") && table.contains("cancelled"),
        "{table}"
    );
    assert!(table.contains("later"), "{table}");
    assert!(!seen.contains("never"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files.extend(walk(&p));
            } else if p.extension().is_some_and(|x| x == "log") {
                files.push(p);
            }
        }
    }
    files
}
