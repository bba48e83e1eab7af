//! The command line. Hand-parsed: four commands do not earn a clap build in every
//! fresh CI clone.

use anyhow::{Context, bail};
use std::path::PathBuf;

/// Printed by `cargo xtask help` and after a usage error.
pub const USAGE: &str = "\
usage: cargo xtask COMMAND

commands:
  test [--dry-run] [-- NEXTEST_ARGS...]
        install and start what the suite needs, then `cargo nextest run --workspace
        --profile ci NEXTEST_ARGS...`; --dry-run prints the plan without changing
        anything or running tests
  setup [--dry-run]
        only install and start what the suite needs (tools, Docker, test image)
  lint  cargo fmt --check and cargo clippy --workspace --all-targets -D warnings
  bench SUITE [--runs N] [--no-write] [--rev REV | --ferry PATH]
        run a benchmark suite, print a table, append it to docs/BENCHMARKS.md and write
        target/bench/SUITE.json (--no-write: print only); suites: ci, server, deploy. Measures a
        release build of the working tree, of commit REV (exported clean, so
        uncommitted work is left out), or the binary at PATH";

/// One invocation of `cargo xtask`.
#[derive(Debug, PartialEq, Eq)]
pub enum Task {
    /// `cargo xtask help`.
    Help,
    /// `cargo xtask setup`.
    Setup { dry_run: bool },
    /// `cargo xtask test`.
    Test {
        dry_run: bool,
        nextest_args: Vec<String>,
    },
    /// `cargo xtask lint`.
    Lint,
    /// `cargo xtask bench SUITE`.
    Bench(BenchOpts),
}

/// The benchmark suites. Each is a subcommand of `cargo xtask bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// Pipeline overheads measured through `ferry run`: per step, logs, containers.
    Ci,
    /// `ferry serve` and `ferry agent`: idle memory, push latency, job throughput,
    /// log paging.
    Server,
    /// The edge proxy beside nginx, and how fast deploys move traffic.
    Deploy,
}

impl Suite {
    /// Every suite, for parsing and help.
    pub const ALL: &[Suite] = &[Suite::Ci, Suite::Server, Suite::Deploy];

    /// The suite's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Ci => "ci",
            Suite::Server => "server",
            Suite::Deploy => "deploy",
        }
    }
}

/// Options of `cargo xtask bench`.
#[derive(Debug, PartialEq, Eq)]
pub struct BenchOpts {
    /// Which suite to run.
    pub suite: Suite,
    /// Timed runs per measurement (figures use the fastest).
    pub runs: usize,
    /// Whether to record results in docs/BENCHMARKS.md and target/bench/.
    pub write: bool,
    /// Which `ferry` to measure.
    pub ferry: FerrySource,
}

/// Which `ferry` a benchmark measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FerrySource {
    /// `cargo build --release -p ferry` of the working tree.
    WorkingTree,
    /// A release build of this commit, exported clean from git.
    Rev(String),
    /// A binary built elsewhere.
    Prebuilt(PathBuf),
}

/// Parses the arguments after `cargo xtask`.
pub fn parse(args: &[String]) -> anyhow::Result<Task> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Task::Help);
    };
    match command.as_str() {
        "help" | "-h" | "--help" => Ok(Task::Help),
        "lint" => {
            no_more(rest)?;
            Ok(Task::Lint)
        }
        "setup" => {
            let mut dry_run = false;
            for arg in rest {
                match arg.as_str() {
                    "--dry-run" => dry_run = true,
                    other => bail!("`setup` does not take `{other}`"),
                }
            }
            Ok(Task::Setup { dry_run })
        }
        "test" => {
            // Our own flags come first; everything else (and all after `--`) is
            // nextest's, so `cargo xtask test -- -E 'test(docker)'` works.
            let mut dry_run = false;
            let mut nextest_args = Vec::new();
            let mut iter = rest.iter();
            for arg in iter.by_ref() {
                match arg.as_str() {
                    "--" => break,
                    "--dry-run" => dry_run = true,
                    _ => nextest_args.push(arg.clone()),
                }
            }
            nextest_args.extend(iter.cloned());
            Ok(Task::Test {
                dry_run,
                nextest_args,
            })
        }
        "bench" => parse_bench(rest).map(Task::Bench),
        other => bail!("unknown command `{other}`"),
    }
}

fn parse_bench(args: &[String]) -> anyhow::Result<BenchOpts> {
    let names = || {
        Suite::ALL
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((suite, rest)) = args.split_first() else {
        bail!("`bench` needs a suite: {}", names());
    };
    let suite = Suite::ALL
        .iter()
        .copied()
        .find(|s| s.name() == suite)
        .with_context(|| format!("unknown benchmark suite `{suite}`; suites: {}", names()))?;
    let mut opts = BenchOpts {
        suite,
        runs: 5,
        write: true,
        ferry: FerrySource::WorkingTree,
    };
    let mut iter = rest.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--no-write" => opts.write = false,
            "--ferry" => {
                let path = iter
                    .next()
                    .context("`--ferry` needs the path of a binary")?;
                opts.ferry = FerrySource::Prebuilt(PathBuf::from(path));
            }
            "--rev" => {
                let rev = iter.next().context("`--rev` needs a commit, e.g. HEAD")?;
                opts.ferry = FerrySource::Rev(rev.clone());
            }
            "--runs" => {
                let n = iter.next().context("`--runs` needs a number")?;
                opts.runs = n
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .with_context(|| format!("`--runs {n}`: expected a whole number ≥ 1"))?;
            }
            other => bail!("`bench {}` does not take `{other}`", suite.name()),
        }
    }
    Ok(opts)
}

fn no_more(rest: &[String]) -> anyhow::Result<()> {
    match rest.first() {
        Some(extra) => bail!("unexpected argument `{extra}`"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn test_passes_everything_after_double_dash_to_nextest() {
        let task = parse(&args("test --dry-run -- -E test(docker) --no-capture")).unwrap();
        assert_eq!(
            task,
            Task::Test {
                dry_run: true,
                nextest_args: args("-E test(docker) --no-capture"),
            }
        );
    }

    #[test]
    fn test_passes_a_bare_filter_to_nextest() {
        let task = parse(&args("test masks_secrets")).unwrap();
        assert_eq!(
            task,
            Task::Test {
                dry_run: false,
                nextest_args: args("masks_secrets"),
            }
        );
    }

    #[test]
    fn bench_parses_suite_and_runs() {
        let task = parse(&args("bench ci --runs 7 --no-write --ferry /tmp/ferry")).unwrap();
        assert_eq!(
            task,
            Task::Bench(BenchOpts {
                suite: Suite::Ci,
                runs: 7,
                write: false,
                ferry: FerrySource::Prebuilt(PathBuf::from("/tmp/ferry")),
            })
        );
        let Task::Bench(opts) = parse(&args("bench ci --rev HEAD~1")).unwrap() else {
            panic!("not a bench task");
        };
        assert_eq!(opts.ferry, FerrySource::Rev("HEAD~1".into()));
        assert_eq!(opts.runs, 5);
    }

    #[test]
    fn bench_rejects_unknown_suite_and_names_the_known_ones() {
        let err = parse(&args("bench nope")).unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown benchmark suite `nope`; suites: ci, server, deploy"
        );
    }

    #[test]
    fn bench_rejects_zero_runs() {
        let err = parse(&args("bench ci --runs 0")).unwrap_err().to_string();
        assert!(err.contains("≥ 1"), "{err}");
    }

    #[test]
    fn no_command_prints_help_and_unknown_command_is_an_error() {
        assert_eq!(parse(&[]).unwrap(), Task::Help);
        assert!(parse(&args("deploy")).is_err());
        assert!(parse(&args("lint extra")).is_err());
    }
}
