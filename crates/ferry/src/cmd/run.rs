//! `ferry run`: the pipeline of the current commit, with no server.

use crate::cli::{Global, RunArgs};
use crate::exit::{Failure, bad_input};
use crate::render::{self, Style, SummaryRow};
use anyhow::Context;
use ferry_config::Pipeline;
use ferry_engine::ci::{NonInteractive, RunOptions};
use ferry_types::JobResult;
use ferry_types::RunEvent;
use std::collections::{BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod approve;
use approve::TerminalApprover;

/// Where the pipeline comes from.
struct Source {
    /// The repository's top directory.
    repo: PathBuf,
    /// The pipeline file, as shown in messages.
    file: PathBuf,
    /// The file's path relative to the repository root.
    relative: PathBuf,
}

/// Runs the pipeline of the current commit.
pub fn run(global: &Global, args: RunArgs) -> Result<(), Failure> {
    let source = locate(&args)?;
    let text = pipeline_text(&source, args.dirty)?;
    let pipeline = ferry_config::parse(&source.file, &text).map_err(|diags| {
        eprint!("{diags}");
        bad_input(format!(
            "{}: {} problem{} found; nothing was run",
            source.file.display(),
            diags.0.len(),
            if diags.0.len() == 1 { "" } else { "s" }
        ))
    })?;
    check_selection(&pipeline, &args.jobs)?;
    let data_dir = crate::paths::data_dir(global.data_dir.clone())?;
    let secrets = load_secrets(&pipeline, &data_dir, &args.jobs)?;

    let mut opts = RunOptions::new(&source.repo, &data_dir);
    opts.select = args.jobs.clone();
    opts.dirty = args.dirty;
    opts.parallelism = args
        .parallelism
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    opts.approve = args.approve.clone();
    opts.approver = if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        Arc::new(TerminalApprover)
    } else {
        Arc::new(NonInteractive)
    };
    opts.secrets = Arc::new(secrets);
    opts.grace = args.grace;
    opts.event = "local".to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(drive(&pipeline, opts, args.json))?;
    if summary.success {
        Ok(())
    } else {
        Err(Failure::Failed)
    }
}

/// Runs the engine, renders its events as they come, and handles Ctrl-C.
async fn drive(
    pipeline: &Pipeline,
    opts: RunOptions,
    json: bool,
) -> Result<ferry_engine::ci::RunSummary, Failure> {
    let (tx, mut rx) = mpsc::channel::<RunEvent>(1024);
    let cancel = CancellationToken::new();
    let interrupts = tokio::spawn(watch_interrupts(cancel.clone()));
    let printer = tokio::task::spawn_blocking(move || {
        let style = Style::detect();
        // Large enough that a flood of step output costs few write calls.
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        while let Some(ev) = rx.blocking_recv() {
            let written = if json {
                serde_json::to_writer(&mut out, &ev)
                    .map_err(std::io::Error::other)
                    .and_then(|()| out.write_all(b"\n"))
            } else {
                render::text_event(&mut out, style, &ev)
            };
            // A closed pipe (`ferry run | head`) must not stop the run: keep draining.
            if written.is_ok() && rx.is_empty() {
                let _ = out.flush();
            }
        }
        let _ = out.flush();
    });
    let result = ferry_engine::ci::run(pipeline, opts, tx, cancel.clone()).await;
    // The engine dropped its sender: the printer ends once it has drained the channel.
    let _ = printer.await;
    interrupts.abort();
    let summary = match result {
        Ok(s) => s,
        Err(e @ ferry_engine::ci::EngineError::UnknownJob { .. }) => return Err(bad_input(e)),
        Err(e @ ferry_engine::ci::EngineError::Git { .. }) => return Err(bad_input(e)),
        Err(e) => return Err(Failure::Error(e.into())),
    };
    if !json {
        print_summary(&summary, cancel.is_cancelled());
    }
    Ok(summary)
}

/// First Ctrl-C (or SIGTERM): cancel the run gracefully. The engine does the
/// SIGTERM-then-SIGKILL dance on running steps.
async fn watch_interrupts(cancel: CancellationToken) {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut int = match signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(_) => return,
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!(
        "\nCancelling: stopping running steps (SIGTERM, then SIGKILL after the grace period)…"
    );
    cancel.cancel();
}

fn print_summary(summary: &ferry_engine::ci::RunSummary, interrupted: bool) {
    let style = Style::detect();
    let rows: Vec<SummaryRow> = summary
        .jobs
        .iter()
        .map(|j| SummaryRow {
            job: j.id.clone(),
            result: j.result,
            duration: j.duration,
        })
        .collect();
    let mut out = std::io::stdout().lock();
    let _ = render::summary_table(&mut out, style, &rows);
    let failed = summary.jobs.iter().filter(|j| j.result.fails_run()).count();
    let verdict = if interrupted {
        let cancelled: Vec<&str> = summary
            .jobs
            .iter()
            .filter(|j| j.result == JobResult::Cancelled)
            .map(|j| j.id.as_str())
            .collect();
        format!(
            "Run cancelled ({} cancelled: {})",
            cancelled.len(),
            cancelled.join(", ")
        )
    } else if summary.success {
        "Run passed".to_string()
    } else {
        format!(
            "Run failed ({failed} of {} job{} failed)",
            summary.jobs.len(),
            if summary.jobs.len() == 1 { "" } else { "s" }
        )
    };
    let _ = writeln!(
        out,
        "\n{verdict} in {}. Logs: {}",
        render::human_duration(summary.duration),
        summary.run_dir.join("logs").display()
    );
}

/// Finds the repository and the pipeline file.
fn locate(args: &RunArgs) -> Result<Source, Failure> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let start = match &args.file {
        Some(f) => f
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| cwd.join(p))
            .unwrap_or_else(|| cwd.clone()),
        None => cwd.clone(),
    };
    let Some(repo) = super::validate::git_root(&start) else {
        return Err(bad_input(format!(
            "{} is not inside a git repository; `ferry run` runs the pipeline of a commit — \
             run it in a repository (`git init && git add -A && git commit`)",
            start.display()
        )));
    };
    let (file, absolute) = match &args.file {
        Some(f) => (f.clone(), cwd.join(f)),
        None => (PathBuf::from("ferry.yml"), repo.join("ferry.yml")),
    };
    let absolute = absolute.canonicalize().map_err(|e| {
        bad_input(format!(
            "{}: cannot read the pipeline file: {e}",
            file.display()
        ))
    })?;
    let repo = repo
        .canonicalize()
        .context("cannot resolve the repository path")?;
    let relative = absolute
        .strip_prefix(&repo)
        .map_err(|_| {
            bad_input(format!(
                "{} is outside the repository {}",
                file.display(),
                repo.display()
            ))
        })?
        .to_path_buf();
    Ok(Source {
        repo,
        file,
        relative,
    })
}

/// The pipeline text: as committed at HEAD, or the working copy with `--dirty`.
fn pipeline_text(source: &Source, dirty: bool) -> Result<String, Failure> {
    let on_disk = std::fs::read_to_string(source.repo.join(&source.relative)).map_err(|e| {
        bad_input(format!(
            "{}: cannot read the pipeline file: {e}",
            source.file.display()
        ))
    })?;
    if dirty {
        return Ok(on_disk);
    }
    let spec = format!("HEAD:{}", source.relative.display());
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&source.repo)
        .args(["show", &spec])
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        return Err(bad_input(format!(
            "{} is not in the current commit; commit it, or run with --dirty to use the working copy",
            source.file.display()
        )));
    }
    let committed = String::from_utf8(out.stdout).map_err(|_| {
        bad_input(format!(
            "{}: the committed file is not UTF-8",
            source.file.display()
        ))
    })?;
    if committed != on_disk {
        eprintln!(
            "note: {} has uncommitted changes; running the committed version (--dirty runs the working copy)",
            source.file.display()
        );
    }
    Ok(committed)
}

/// Rejects job names that are not in the pipeline, with a suggestion.
fn check_selection(pipeline: &Pipeline, selected: &[String]) -> Result<(), Failure> {
    for name in selected {
        if pipeline.jobs.contains_key(name) {
            continue;
        }
        let best = pipeline
            .jobs
            .keys()
            .map(|k| (strsim::jaro_winkler(k, name), k))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let hint = match best {
            Some((_, k)) => format!("; did you mean `{k}`?"),
            None => format!(
                "; the jobs are: {}",
                pipeline
                    .jobs
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(bad_input(format!(
            "there is no job `{name}` in the pipeline{hint}"
        )));
    }
    Ok(())
}

/// Decrypts the secrets the pipeline references (and only those).
fn load_secrets(
    pipeline: &Pipeline,
    data_dir: &Path,
    selected: &[String],
) -> Result<HashMap<String, Vec<u8>>, Failure> {
    let mut names = BTreeSet::new();
    for (id, job) in &pipeline.jobs {
        if selected.is_empty() || selected.contains(id) || needed_by(pipeline, selected, id) {
            names.extend(job.referenced_secrets(&pipeline.env));
        }
    }
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let store = ferry_secrets::SecretStore::open(data_dir).map_err(|e| Failure::Error(e.into()))?;
    let mut values = HashMap::new();
    for name in names {
        if let Some(value) = store.get(&name).map_err(|e| Failure::Error(e.into()))? {
            values.insert(name, value);
        }
    }
    Ok(values)
}

/// Whether job `id` is (transitively) needed by one of the selected jobs.
fn needed_by(pipeline: &Pipeline, selected: &[String], id: &str) -> bool {
    let mut stack: Vec<&str> = selected.iter().map(String::as_str).collect();
    let mut seen = BTreeSet::new();
    while let Some(job) = stack.pop() {
        if !seen.insert(job) {
            continue;
        }
        if let Some(j) = pipeline.jobs.get(job) {
            for need in &j.needs {
                if need == id {
                    return true;
                }
                stack.push(need);
            }
        }
    }
    false
}
