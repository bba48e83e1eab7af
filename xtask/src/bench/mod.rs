//! `cargo xtask bench SUITE`: benchmark suites. Each suite is a module with a
//! `run(runs) -> Report`; this module prints and records the report the same way for
//! all of them. Benchmarks are never timed assertions in the test suite.
//!
//! To add a suite (`server`, `deploy`): a variant in [`crate::cli::Suite`], a module
//! here, and an arm in [`run`].

mod ci;
mod deploy;
mod machine;
mod report;
mod server;
mod stats;
mod support;

use crate::cli::{BenchOpts, Suite};
use crate::{paths, phase};

/// Runs one suite, prints its table and, unless `--no-write`, records it.
pub fn run(opts: &BenchOpts) -> anyhow::Result<()> {
    let report = match opts.suite {
        Suite::Ci => ci::run(opts.runs, &opts.ferry)?,
        Suite::Server => server::run(opts.runs, &opts.ferry)?,
        Suite::Deploy => deploy::run(opts.runs, &opts.ferry)?,
    };
    println!("\n{}", report.table());
    if opts.write {
        let md = paths::root().join("docs/BENCHMARKS.md");
        report::append_section(&md, &report.markdown_section())?;
        let json = paths::target_dir()
            .join("bench")
            .join(format!("{}.json", opts.suite.name()));
        report::write_json(&json, &report)?;
        phase::note(&format!(
            "recorded in {} and {}",
            md.display(),
            json.display()
        ));
    }
    Ok(())
}
