//! `bench ci`: what `ferry run` adds to a pipeline, measured side by side with bash
//! running the same commands, in one scratch repository:
//!
//! - per-step overhead on the host: 100 steps `run: "true"` against a bash script that
//!   forks `/bin/true` 100 times, and ferry's fixed cost with a 1-step pipeline;
//! - log throughput: a step writing 200 MB to stdout with a stored secret referenced by
//!   the job (so every byte goes through masking), against bash writing to /dev/null
//!   (the goal), and for scale against bash piping it through `cat`, once to /dev/null
//!   (what any process that reads the output pays, before masking, logging or
//!   printing) and once into a new file (the least any reader that keeps a log pays);
//! - container-step overhead: 20 steps in `ferry-test/busybox:1` against the same 20
//!   steps on the host executor.
//!
//! Measurements are interleaved (ferry, bash, ferry, bash, …) so drift in the machine's
//! load hits both sides alike. Figures use the fastest run of each measurement: other
//! work on the machine only ever adds time, so the best run is the closest to the
//! cost itself (medians are in the timings table beside it).

use super::machine::Machine;
use super::report::{Goal, Report, Row};
use super::stats::Timing;
use crate::cli::FerrySource;
use crate::{paths, phase, proc, services, test::cargo};
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Steps in the host pipeline.
const STEPS: usize = 100;
/// Steps in the container pipeline (each is an exec into the job's container).
const CONTAINER_STEPS: usize = 20;
/// Bytes the log step writes.
const LOG_BYTES: u64 = 200_000_000;
/// The secret's value; it appears in every log line, so masking has work to do.
const SECRET: &str = "s3cr3t-value-123";
const SECRET_NAME: &str = "BENCH_TOKEN";
const LOG_LINE: &str = "log line with the secret s3cr3t-value-123 in it";
/// Per-step overhead goal, in milliseconds.
const STEP_GOAL_MS: f64 = 5.0;
/// Log throughput goal, as a fraction of bash's.
const LOG_GOAL_RATIO: f64 = 2.0 / 3.0;

/// The log step's command. `yes` dies of SIGPIPE when `head` is done, and steps run
/// under `pipefail`; the braces keep that from failing the step.
fn log_command() -> String {
    format!("{{ yes \"{LOG_LINE}\" || true; }} | head -c {LOG_BYTES}")
}

/// The scratch repository's ferry.yml: one job per measurement.
fn pipeline_yaml() -> String {
    let steps = |n: usize| "      - run: \"true\"\n".repeat(n);
    let secret_env = format!("    env:\n      TOKEN: \"${{{{ secrets.{SECRET_NAME} }}}}\"\n");
    let image = format!("    image: {}\n", services::BUSYBOX_IMAGE);
    let mut y = String::from("name: bench\njobs:\n");
    let _ = write!(y, "  steps1:\n    steps:\n{}", steps(1));
    let _ = write!(y, "  steps{STEPS}:\n    steps:\n{}", steps(STEPS));
    let _ = write!(
        y,
        "  steps{CONTAINER_STEPS}:\n    steps:\n{}",
        steps(CONTAINER_STEPS)
    );
    let _ = write!(
        y,
        "  mask_check:\n{secret_env}    steps:\n      - run: echo \"mask-check $TOKEN {SECRET}\"\n"
    );
    let _ = write!(
        y,
        "  log:\n{secret_env}    steps:\n      - run: '{}'\n",
        log_command()
    );
    let _ = write!(y, "  container1:\n{image}    steps:\n{}", steps(1));
    let _ = write!(
        y,
        "  container{CONTAINER_STEPS}:\n{image}    steps:\n{}",
        steps(CONTAINER_STEPS)
    );
    y
}

/// What one timed run executes.
enum Target {
    /// `ferry run JOB` in the scratch repository.
    Ferry(String),
    /// `bash SCRIPT`.
    Bash(PathBuf),
}

/// The scratch repository, data directory and scripts of one suite run.
struct Bench {
    _dir: paths::ScratchDir,
    ferry: PathBuf,
    repo: PathBuf,
    data: PathBuf,
    scripts: PathBuf,
    logs: PathBuf,
    master_key: String,
}

impl Bench {
    fn new(ferry: PathBuf) -> anyhow::Result<Bench> {
        let dir = paths::ScratchDir::new("ferry-bench-")?;
        let root = dir.path().to_path_buf();
        let bench = Bench {
            ferry,
            repo: root.join("repo"),
            data: root.join("data"),
            scripts: root.join("scripts"),
            logs: root.join("logs"),
            master_key: random_hex_key()?,
            _dir: dir,
        };
        for d in [&bench.repo, &bench.data, &bench.scripts, &bench.logs] {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(bench.repo.join("ferry.yml"), pipeline_yaml())?;
        let git = |args: &[&str]| {
            let mut c = Command::new("git");
            c.current_dir(&bench.repo)
                .args([
                    "-c",
                    "user.name=Ferry Bench",
                    "-c",
                    "user.email=bench@ferry.invalid",
                ])
                .args(args);
            proc::output(&mut c).map(drop)
        };
        git(&["init", "--quiet"])?;
        git(&["add", "ferry.yml"])?;
        git(&["commit", "--quiet", "--message", "Benchmark pipeline"])?;
        let true_n = |n: usize| "/bin/true\n".repeat(n);
        bench.script("steps1", &true_n(1))?;
        bench.script(&format!("steps{STEPS}"), &true_n(STEPS))?;
        bench.script("log", &format!("{} > /dev/null\n", log_command()))?;
        bench.script("log_cat", &format!("{} | cat > /dev/null\n", log_command()))?;
        // A new file each time, as ferry writes a new log per run (overwriting a file
        // of the same size costs more, and would flatter ferry).
        let kept = bench.logs.join("cat.log");
        bench.script(
            "log_cat_file",
            &format!(
                "rm -f '{k}'\n{} | cat > '{k}'\n",
                log_command(),
                k = kept.display()
            ),
        )?;
        Ok(bench)
    }

    fn script(&self, name: &str, body: &str) -> anyhow::Result<()> {
        let path = self.scripts.join(format!("{name}.sh"));
        std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))
    }

    fn ferry(&self) -> Command {
        let mut c = Command::new(&self.ferry);
        c.current_dir(&self.repo)
            .env("FERRY_DATA_DIR", &self.data)
            .env("FERRY_MASTER_KEY", &self.master_key)
            .env("NO_COLOR", "1");
        c
    }

    fn set_secret(&self) -> anyhow::Result<()> {
        let mut cmd = self.ferry();
        cmd.args(["secret", "set", SECRET_NAME])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{}`", proc::display(&cmd)))?;
        child
            .stdin
            .take()
            .context("stdin of `ferry secret set`")?
            .write_all(SECRET.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "`{}` {}: {}{}",
                proc::display(&cmd),
                proc::describe(out.status),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Runs a job once, untimed, keeping its output: it must succeed before timing
    /// it means anything. Returns its stdout (unless `keep_stdout` is false).
    fn check_job(&self, job: &str, keep_stdout: bool) -> anyhow::Result<String> {
        let out_path = self.logs.join(format!("{job}.stdout"));
        let err_path = self.logs.join(format!("{job}.stderr"));
        let mut cmd = self.ferry();
        cmd.args(["run", job]);
        let stdout = if keep_stdout {
            Stdio::from(File::create(&out_path)?)
        } else {
            Stdio::null()
        };
        let status = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(File::create(&err_path)?)
            .status()
            .with_context(|| format!("cannot start `{}`", proc::display(&cmd)))?;
        if !status.success() {
            bail!(
                "`{}` (in {}) {}\n--- stdout (end) ---\n{}\n--- stderr (end) ---\n{}",
                proc::display(&cmd),
                self.repo.display(),
                proc::describe(status),
                proc::tail(&out_path, 20),
                proc::tail(&err_path, 20)
            );
        }
        Ok(if keep_stdout {
            String::from_utf8_lossy(&std::fs::read(&out_path)?).into_owned()
        } else {
            String::new()
        })
    }

    fn time_once(&self, target: &Target) -> anyhow::Result<Duration> {
        let mut cmd = match target {
            Target::Ferry(job) => {
                let mut c = self.ferry();
                c.args(["run", job]);
                c
            }
            Target::Bash(script) => {
                let mut c = Command::new("bash");
                c.arg(script).current_dir(&self.repo);
                c
            }
        };
        let err_path = self.logs.join("timed.stderr");
        let started = Instant::now();
        let status = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&err_path)?)
            .status()
            .with_context(|| format!("cannot start `{}`", proc::display(&cmd)))?;
        let elapsed = started.elapsed();
        if !status.success() {
            bail!(
                "`{}` {} during a timed run:\n{}",
                proc::display(&cmd),
                proc::describe(status),
                proc::tail(&err_path, 20)
            );
        }
        Ok(elapsed)
    }

    /// Times every target `runs` times, interleaved.
    fn time_all(&self, runs: usize, targets: &[(&str, Target)]) -> anyhow::Result<Vec<Timing>> {
        let mut samples = vec![Vec::with_capacity(runs); targets.len()];
        for _ in 0..runs {
            for ((_, target), out) in targets.iter().zip(&mut samples) {
                out.push(self.time_once(target)?);
            }
        }
        Ok(targets
            .iter()
            .zip(&samples)
            .map(|((name, _), s)| Timing::new(name, s))
            .collect())
    }
}

/// A throwaway master key for the scratch data directory: 32 random bytes as hex.
fn random_hex_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The `ferry` to measure, built as `source` asks, checked to have the commands the
/// suite drives. Returns it, a description for the report and, for `--rev`, the
/// commit it was built from.
fn build_ferry(source: &FerrySource) -> anyhow::Result<(PathBuf, String, Option<String>)> {
    let p = phase::start("preparing ferry (release build)");
    let release_bin = || paths::target_dir().join("release/ferry");
    let (bin, origin, commit) = match source {
        FerrySource::Prebuilt(path) => (path.clone(), format!("prebuilt {}", path.display()), None),
        FerrySource::WorkingTree => {
            proc::run(cargo().args(["build", "--release", "--package", "ferry"]))?;
            (
                release_bin(),
                "release build of the working tree".to_string(),
                None,
            )
        }
        FerrySource::Rev(rev) => {
            let commit = proc::output(Command::new("git").current_dir(paths::root()).args([
                "rev-parse",
                "--verify",
                &format!("{rev}^{{commit}}"),
            ]))?
            .trim()
            .to_string();
            let short = commit.get(..10).unwrap_or(&commit).to_string();
            // One directory per commit, kept: the next run of the same commit finds
            // its build fresh, and commits never share (and go stale in) a path.
            let src = paths::xtask_dir()?.join("bench-src").join(&commit);
            if !src.join(EXPORTED_MARKER).is_file() {
                let _ = std::fs::remove_dir_all(&src);
                std::fs::create_dir_all(&src)?;
                export_commit(&commit, &src)?;
                std::fs::write(src.join(EXPORTED_MARKER), "")?;
            }
            // Same target dir as the workspace: dependencies are already built there.
            let mut build = cargo();
            build
                .current_dir(&src)
                .env("CARGO_TARGET_DIR", paths::target_dir())
                .args(["build", "--release", "--package", "ferry"]);
            proc::run(&mut build)?;
            (
                release_bin(),
                format!("release build of commit `{short}`"),
                Some(short),
            )
        }
    };
    if !bin.is_file() {
        bail!("no ferry binary at {}", bin.display());
    }
    for sub in [&["run", "--help"][..], &["secret", "set", "--help"]] {
        let mut cmd = Command::new(&bin);
        cmd.args(sub);
        if !proc::succeeds(&mut cmd) {
            bail!(
                "`{}` fails: this build of ferry cannot be benchmarked yet",
                proc::display(&cmd)
            );
        }
    }
    let version = proc::output(Command::new(&bin).arg("--version"))?;
    p.done(&format!("using {}", bin.display()));
    Ok((bin, format!("{}, {origin}", version.trim()), commit))
}

/// Written into an exported source tree once it is complete.
const EXPORTED_MARKER: &str = ".xtask-exported";

/// Writes the tree of `commit` into `dir` (`git archive | tar -x`): a clean copy
/// without whatever is uncommitted in the working tree.
fn export_commit(commit: &str, dir: &Path) -> anyhow::Result<()> {
    let mut archive = Command::new("git");
    archive
        .current_dir(paths::root())
        .args(["archive", "--format=tar", commit])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut git = archive
        .spawn()
        .with_context(|| format!("cannot start `{}`", proc::display(&archive)))?;
    let tar_in = git.stdout.take().context("stdout of `git archive`")?;
    let mut untar = Command::new("tar");
    untar.arg("-x").arg("-C").arg(dir).stdin(tar_in);
    let untarred = untar
        .status()
        .with_context(|| format!("cannot start `{}`", proc::display(&untar)));
    let archived = git.wait()?;
    proc::check(&archive, archived)?;
    proc::check(&untar, untarred?)
}

/// Whether masking held in the mask-check job's output and in the logs it stored
/// (`leaked_to`: a stored file holding the secret in clear).
fn masking_note(stdout: &str, leaked_to: Option<&Path>) -> (String, bool) {
    if stdout.contains(SECRET) {
        ("the secret was VISIBLE in `ferry run` output".into(), false)
    } else if let Some(file) = leaked_to {
        (
            format!("the secret was VISIBLE in {}", file.display()),
            false,
        )
    } else if stdout.contains("mask-check") {
        (
            "masking checked: the secret was hidden in the output and the stored logs".into(),
            true,
        )
    } else {
        (
            "masking checked in the stored logs only (`ferry run` printed no step output)".into(),
            true,
        )
    }
}

/// The first file under `dir` (files up to 64 MiB) whose bytes contain `needle`.
fn file_containing(dir: &Path, needle: &[u8]) -> anyhow::Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if let Some(found) = file_containing(&entry.path(), needle)? {
                return Ok(Some(found));
            }
        } else if kind.is_file() && entry.metadata()?.len() <= 64 << 20 {
            let bytes = std::fs::read(entry.path())?;
            if bytes.windows(needle.len()).any(|w| w == needle) {
                return Ok(Some(entry.path()));
            }
        }
    }
    Ok(None)
}

fn ms(seconds: f64) -> f64 {
    seconds * 1000.0
}

/// Runs the suite.
pub fn run(runs: usize, source: &FerrySource) -> anyhow::Result<Report> {
    let mut machine = Machine::detect();
    let (ferry, ferry_desc, commit) = build_ferry(source)?;
    if let Some(commit) = commit {
        machine.commit = commit;
    }
    services::ensure_docker(false)?;
    services::ensure_busybox_image(false)?;

    let p = phase::start("preparing the scratch repository");
    let bench = Bench::new(ferry)?;
    bench.set_secret()?;
    let steps_job = format!("steps{STEPS}");
    let host_c_job = format!("steps{CONTAINER_STEPS}");
    let container_job = format!("container{CONTAINER_STEPS}");
    for job in [
        "steps1",
        &steps_job,
        &host_c_job,
        "container1",
        &container_job,
    ] {
        bench.check_job(job, true)?;
    }
    let mask_out = bench.check_job("mask_check", true)?;
    let leaked_to = file_containing(&bench.data, SECRET.as_bytes())?;
    let (mask_note, masked) = masking_note(&mask_out, leaked_to.as_deref());
    if masked {
        phase::note(&mask_note);
    } else {
        phase::note(&format!("WARNING: {mask_note}"));
    }
    bench.check_job("log", false)?;
    p.done("every benchmark job ran once");

    let script = |name: &str| Target::Bash(bench.scripts.join(format!("{name}.sh")));
    let ferry = |job: &str| Target::Ferry(job.to_string());

    let p = phase::start(&format!("timing host steps ({runs} runs)"));
    let host = bench.time_all(
        runs,
        &[
            ("ferry run, 1 step", ferry("steps1")),
            ("bash, /bin/true once", script("steps1")),
            (&format!("ferry run, {STEPS} steps"), ferry(&steps_job)),
            (&format!("bash, /bin/true × {STEPS}"), script(&steps_job)),
        ],
    )?;
    p.done("timed host steps");

    let p = phase::start(&format!("timing log throughput ({runs} runs)"));
    let log = bench.time_all(
        runs,
        &[
            ("ferry run, 200 MB of masked log", ferry("log")),
            ("bash, 200 MB to /dev/null", script("log")),
            ("bash, 200 MB through cat", script("log_cat")),
            (
                "bash, 200 MB through cat into a file",
                script("log_cat_file"),
            ),
        ],
    )?;
    p.done("timed log throughput");

    let p = phase::start(&format!("timing container steps ({runs} runs)"));
    let container = bench.time_all(
        runs,
        &[
            (
                &format!("ferry run, {CONTAINER_STEPS} steps on the host"),
                ferry(&host_c_job),
            ),
            ("ferry run, 1 step in a container", ferry("container1")),
            (
                &format!("ferry run, {CONTAINER_STEPS} steps in a container"),
                ferry(&container_job),
            ),
        ],
    )?;
    p.done("timed container steps");

    let results = figures(&host, &log, &container, &mask_note, masked);
    let mut timings = host;
    timings.extend(log);
    timings.extend(container);
    Ok(Report {
        suite: "ci".into(),
        machine,
        ferry: ferry_desc,
        runs,
        results,
        timings,
    })
}

/// The suite's figures from its timings (in the order `run` measured them).
fn figures(
    host: &[Timing],
    log: &[Timing],
    container: &[Timing],
    mask_note: &str,
    masked: bool,
) -> Vec<Row> {
    let n = STEPS as f64;
    let cn = CONTAINER_STEPS as f64;
    let [f1, b1, f100, b100] = [0, 1, 2, 3].map(|i| host[i].min_s);
    let [flog, blog, clog, cfile] = [0, 1, 2, 3].map(|i| log[i].min_s);
    let [h20, c1, c20] = [0, 1, 2].map(|i| container[i].min_s);
    let mb = LOG_BYTES as f64 / 1e6;
    let mut rows = vec![
        Row::new(
            "per-step overhead (host)",
            ms(f100 - b100) / n,
            "ms",
            Some(Goal::AtMost(STEP_GOAL_MS)),
            &format!(
                "(`ferry run` of {STEPS} steps `true` − bash forking `/bin/true` {STEPS} times) / {STEPS}"
            ),
        ),
        Row::new(
            "marginal cost of a step (host)",
            ms((f100 - f1) - (b100 - b1)) / (n - 1.0),
            "ms",
            None,
            &format!(
                "as above without the fixed cost: ((ferry {STEPS} − ferry 1) − (bash {STEPS} − bash 1)) / {}",
                STEPS - 1
            ),
        ),
        Row::new(
            "fixed overhead (1-step pipeline)",
            ms(f1 - b1),
            "ms",
            None,
            &format!(
                "`ferry run` of 1 step ({:.0} ms wall) − bash running `/bin/true` once",
                ms(f1)
            ),
        ),
        Row::new(
            "log throughput, ferry",
            mb / flog,
            "MB/s",
            None,
            &format!(
                "200 MB of `yes` output through `ferry run`, secret referenced by the job; {mask_note}"
            ),
        ),
        Row::new(
            "log throughput, bash",
            mb / blog,
            "MB/s",
            None,
            "the same command with `> /dev/null`",
        ),
        Row::new(
            "log throughput ratio",
            blog / flog,
            "",
            Some(Goal::AtLeast(LOG_GOAL_RATIO)),
            "ferry MB/s ÷ bash MB/s",
        ),
        Row::new(
            "log throughput, bash through `cat`",
            mb / clog,
            "MB/s",
            None,
            "the same command piped to `cat > /dev/null`: one reader of the output, doing nothing with it",
        ),
        Row::new(
            "log throughput ratio against `cat`",
            clog / flog,
            "",
            None,
            "ferry MB/s ÷ bash-through-`cat` MB/s: what masking, the log file and printing add to reading",
        ),
        Row::new(
            "log throughput, bash through `cat` into a file",
            mb / cfile,
            "MB/s",
            None,
            "the same command piped to `cat > FILE` (a new file on the data directory's disk): the simplest reader that keeps the output",
        ),
        Row::new(
            "log throughput ratio against `cat` into a file",
            cfile / flog,
            "",
            None,
            "ferry MB/s ÷ bash-through-`cat`-into-a-file MB/s: what masking and printing add to keeping a log",
        ),
        Row::new(
            "per-step overhead (container vs host)",
            ms(c20 - h20) / cn,
            "ms",
            None,
            &format!(
                "(`ferry run` of {CONTAINER_STEPS} steps in `{}` − the same on the host) / {CONTAINER_STEPS}",
                services::BUSYBOX_IMAGE
            ),
        ),
        Row::new(
            "marginal cost of a container step",
            ms(c20 - c1) / (cn - 1.0),
            "ms",
            None,
            &format!(
                "(container {CONTAINER_STEPS} steps − container 1 step) / {}",
                CONTAINER_STEPS - 1
            ),
        ),
        Row::new(
            "container job fixed overhead",
            ms(c1 - f1),
            "ms",
            None,
            "`ferry run` of 1 step in a container − the same on the host",
        ),
    ];
    if !masked {
        rows.push(Row::new(
            "secret masked",
            0.0,
            "",
            Some(Goal::AtLeast(1.0)),
            mask_note,
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_has_a_job_per_measurement_with_the_right_step_counts() {
        let y = pipeline_yaml();
        // A job's block: the lines after `  name:` up to the next job.
        let job = |name: &str| {
            let header = format!("  {name}:");
            let mut lines = y.lines().skip_while(|l| *l != header);
            assert!(lines.next().is_some(), "no job {name} in\n{y}");
            lines
                .take_while(|l| l.starts_with("   "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(job("steps1").matches("- run: \"true\"").count(), 1);
        assert_eq!(job("steps100").matches("- run: \"true\"").count(), 100);
        assert_eq!(job("steps20").matches("- run: \"true\"").count(), 20);
        assert_eq!(job("container20").matches("- run: \"true\"").count(), 20);
        assert!(job("container1").contains("image: ferry-test/busybox:1"));
        assert!(!job("steps20").contains("image:"));
        let log = job("log");
        assert!(
            log.contains("TOKEN: \"${{ secrets.BENCH_TOKEN }}\""),
            "{log}"
        );
        assert!(log.contains("| head -c 200000000'"), "{log}");
        assert!(job("mask_check").contains("secrets.BENCH_TOKEN"));
    }

    #[test]
    fn log_command_survives_pipefail_and_writes_exactly_the_bytes() {
        let out = Command::new("bash")
            .args(["-eo", "pipefail", "-c"])
            .arg(log_command().replace("200000000", "1000"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout.len(), 1000);
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(LOG_LINE));
    }

    #[test]
    fn master_key_is_64_hex_characters() {
        let key = random_hex_key().unwrap();
        assert_eq!(key.len(), 64);
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn masking_is_judged_from_the_output_and_the_stored_logs() {
        assert!(!masking_note("mask-check *** s3cr3t-value-123", None).1);
        assert!(masking_note("mask-check *** ***", None).1);
        assert!(masking_note("", None).0.contains("stored logs only"));
        let (note, ok) = masking_note("mask-check *** ***", Some(Path::new("/d/step.log")));
        assert!(!ok && note.contains("/d/step.log"), "{note}");
    }

    #[test]
    fn finds_a_secret_in_nested_stored_logs() {
        let dir = paths::ScratchDir::new("xtask-test-").unwrap();
        let logs = dir.path().join("runs/1/logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("a.log"), "all *** here").unwrap();
        assert_eq!(
            file_containing(dir.path(), SECRET.as_bytes()).unwrap(),
            None
        );
        std::fs::write(logs.join("b.log"), format!("oops {SECRET}!")).unwrap();
        assert_eq!(
            file_containing(dir.path(), SECRET.as_bytes()).unwrap(),
            Some(logs.join("b.log"))
        );
    }

    #[test]
    fn figures_subtract_the_baseline_and_judge_the_goals() {
        let t = |s: f64| Timing::new("t", &[Duration::from_secs_f64(s)]);
        let host = [t(0.020), t(0.002), t(0.400), t(0.102)];
        let log = [t(2.0), t(1.0), t(1.6), t(2.5)];
        let container = [t(0.080), t(0.500), t(1.450)];
        let rows = figures(&host, &log, &container, "masked", true);
        let get = |name: &str| rows.iter().find(|r| r.metric == name).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(get("per-step overhead (host)").value, 2.98));
        assert_eq!(get("per-step overhead (host)").met, Some(true));
        assert!(close(get("fixed overhead (1-step pipeline)").value, 18.0));
        assert!(close(get("log throughput, ferry").value, 100.0));
        assert!(close(get("log throughput ratio").value, 0.5));
        assert!(close(get("log throughput ratio against `cat`").value, 0.8));
        assert!(close(
            get("log throughput ratio against `cat` into a file").value,
            1.25
        ));
        assert_eq!(get("log throughput ratio").met, Some(false));
        assert!(close(
            get("per-step overhead (container vs host)").value,
            68.5
        ));
        assert!(close(get("marginal cost of a container step").value, 50.0));
        assert!(rows.iter().all(|r| r.metric != "secret masked"));
        let leaked = figures(&host, &log, &container, "visible", false);
        assert_eq!(leaked.last().unwrap().met, Some(false));
    }
}
