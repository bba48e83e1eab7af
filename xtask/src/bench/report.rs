//! A suite's results: a table for the terminal, a dated section for
//! docs/BENCHMARKS.md and JSON for scripts.

use super::machine::Machine;
use super::stats::Timing;
use anyhow::Context;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// What a figure should be.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Goal {
    /// The value must not exceed this.
    AtMost(f64),
    /// The value must reach at least this.
    AtLeast(f64),
}

impl Goal {
    fn is_met(self, value: f64) -> bool {
        match self {
            Goal::AtMost(limit) => value <= limit,
            Goal::AtLeast(limit) => value >= limit,
        }
    }
}

/// One figure of a suite.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What it measures, e.g. `per-step overhead (host)`.
    pub metric: String,
    /// The figure.
    pub value: f64,
    /// Its unit (`ms`, `MB/s`, or empty for a ratio).
    pub unit: String,
    /// The goal, when there is one.
    pub goal: Option<Goal>,
    /// Whether the goal is met (absent without a goal).
    pub met: Option<bool>,
    /// How it was computed, or what to know about it.
    pub note: String,
}

impl Row {
    /// A figure and how it was computed.
    pub fn new(metric: &str, value: f64, unit: &str, goal: Option<Goal>, note: &str) -> Row {
        Row {
            metric: metric.to_string(),
            value,
            unit: unit.to_string(),
            goal,
            met: goal.map(|g| g.is_met(value)),
            note: note.to_string(),
        }
    }
}

/// Everything one suite run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The suite's name (`ci`).
    pub suite: String,
    /// Where and when it ran.
    pub machine: Machine,
    /// The `ferry` measured: its version and where it came from.
    pub ferry: String,
    /// Timed runs per measurement.
    pub runs: usize,
    /// The figures.
    pub results: Vec<Row>,
    /// The raw timings the figures come from.
    pub timings: Vec<Timing>,
}

/// `1.23`, `45.6`, `789`: three significant-ish digits without noise.
fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn with_unit(v: f64, unit: &str) -> String {
    match unit {
        "" => number(v),
        unit => format!("{} {unit}", number(v)),
    }
}

fn goal_text(goal: Option<Goal>, unit: &str) -> String {
    match goal {
        Some(Goal::AtMost(v)) => format!("≤ {}", with_unit(v, unit)),
        Some(Goal::AtLeast(v)) => format!("≥ {}", with_unit(v, unit)),
        None => "—".to_string(),
    }
}

fn met_text(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "—",
    }
}

impl Report {
    /// A plain-text table for the terminal.
    pub fn table(&self) -> String {
        let header = ["metric", "value", "goal", "met"];
        let rows: Vec<[String; 4]> = self
            .results
            .iter()
            .map(|r| {
                [
                    r.metric.clone(),
                    with_unit(r.value, &r.unit),
                    goal_text(r.goal, &r.unit),
                    met_text(r.met).trim_matches('*').to_string(),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 4]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w - cell.chars().count();
                // Numbers read best right-aligned.
                if i == 1 || i == 2 {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                }
                out.push_str("  ");
            }
            out.trim_end().to_string()
        };
        let mut out = format!(
            "bench {} — {} — commit {}\n{}\n{}\n\n",
            self.suite,
            self.machine.date,
            self.machine.commit,
            self.machine.summary(),
            self.ferry
        );
        out.push_str(&line(header));
        out.push('\n');
        for row in &rows {
            out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
            out.push('\n');
        }
        out
    }

    /// The section appended to docs/BENCHMARKS.md.
    pub fn markdown_section(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "## `bench {}` — {} UTC, commit `{}`\n",
            self.suite, m.date, m.commit
        );
        let _ = writeln!(
            s,
            "Machine: {}. Binary: {}. Figures from the best of {} runs.\n",
            m.summary(),
            self.ferry,
            self.runs
        );
        s.push_str("| Metric | Value | Goal | Met | How |\n|---|---:|---:|:-:|---|\n");
        for r in &self.results {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.metric,
                with_unit(r.value, &r.unit),
                goal_text(r.goal, &r.unit),
                met_text(r.met),
                r.note.replace('|', "\\|")
            );
        }
        s.push_str("\n| Timed | Median | Min | Max |\n|---|---:|---:|---:|\n");
        for t in &self.timings {
            let ms = |v: f64| with_unit(v * 1000.0, "ms");
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                t.name,
                ms(t.median_s),
                ms(t.min_s),
                ms(t.max_s)
            );
        }
        s
    }
}

const BENCHMARKS_HEADER: &str = "\
# Benchmarks

Recorded by `cargo xtask bench SUITE` (see `xtask/src/bench/`). Each run appends a
dated section with the machine it ran on; earlier sections stay as they were. Compare
figures within a section (one machine, one run, measured side by side); across
sections the machine may differ. Raw samples of the latest run of a suite are in
`target/bench/SUITE.json`.

Suites:
- `ci`: what `ferry run` adds to a pipeline — per step on the host, per step in a
  container, and log throughput with secret masking — against the same commands run
  by bash.
";

/// Appends `section` to the benchmarks file at `path`, creating it with its header.
pub fn append_section(path: &Path, section: &str) -> anyhow::Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BENCHMARKS_HEADER.to_string(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    text.push_str(section);
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes the report as pretty JSON to `path`, creating its directory.
pub fn write_json(path: &Path, report: &Report) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report() -> Report {
        Report {
            suite: "ci".into(),
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                memory_gib: 23.5,
                kernel: "6.1.0".into(),
                os: "Debian GNU/Linux 12 (bookworm)".into(),
                rustc: "rustc 1.95.0".into(),
                date: "2026-11-23 21:10".into(),
                commit: "abc1234567".into(),
                load_1m: 0.5,
            },
            ferry: "ferry 0.1.0, release build of the working tree".into(),
            runs: 5,
            results: vec![
                Row::new(
                    "per-step overhead (host)",
                    1.234,
                    "ms",
                    Some(Goal::AtMost(5.0)),
                    "(ferry − bash) / 100",
                ),
                Row::new(
                    "log throughput ratio",
                    0.5,
                    "",
                    Some(Goal::AtLeast(2.0 / 3.0)),
                    "ferry | bash",
                ),
                Row::new("container fixed overhead", 812.0, "ms", None, ""),
            ],
            timings: vec![Timing::new(
                "ferry run, 100 steps",
                &[Duration::from_millis(300), Duration::from_millis(320)],
            )],
        }
    }

    #[test]
    fn goals_are_judged_in_their_direction() {
        let r = report();
        assert_eq!(r.results[0].met, Some(true));
        assert_eq!(r.results[1].met, Some(false));
        assert_eq!(r.results[2].met, None);
    }

    #[test]
    fn markdown_section_has_machine_rows_and_escaped_pipes() {
        let md = report().markdown_section();
        assert!(md.starts_with("## `bench ci` — 2026-11-23 21:10 UTC, commit `abc1234567`\n"));
        assert!(md.contains("Machine: Test CPU (2 cores), 23.5 GiB RAM, Linux 6.1.0"));
        assert!(md.contains(
            "Binary: ferry 0.1.0, release build of the working tree. Figures from the best of 5 runs."
        ));
        assert!(md.contains(
            "| per-step overhead (host) | 1.23 ms | ≤ 5.00 ms | yes | (ferry − bash) / 100 |"
        ));
        assert!(md.contains("| log throughput ratio | 0.50 | ≥ 0.67 | **no** | ferry \\| bash |"));
        assert!(md.contains("| container fixed overhead | 812 ms | — | — |  |"));
        assert!(md.contains("| ferry run, 100 steps | 310 ms | 300 ms | 320 ms |"));
    }

    #[test]
    fn terminal_table_right_aligns_values_and_goals() {
        let table = report().table();
        let lines: Vec<&str> = table.lines().skip(4).collect();
        assert!(lines[0].starts_with("metric"), "{table}");
        // Values end in the same column, whatever their width.
        let end_of = |line: &str, value: &str| line.find(value).unwrap() + value.len();
        assert_eq!(
            end_of(lines[1], "1.23 ms"),
            end_of(lines[2], "0.50"),
            "{table}"
        );
        assert_eq!(
            end_of(lines[1], "1.23 ms"),
            end_of(lines[3], "812 ms"),
            "{table}"
        );
        assert!(
            lines[1].ends_with("yes") && lines[2].ends_with("no"),
            "{table}"
        );
    }

    #[test]
    fn appending_keeps_earlier_sections_and_creates_the_header_once() {
        let dir = crate::paths::ScratchDir::new("xtask-test-").unwrap();
        let path = dir.path().join("BENCHMARKS.md");
        append_section(&path, "## first\n").unwrap();
        append_section(&path, "## second\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Benchmarks\n"));
        assert_eq!(text.matches("# Benchmarks").count(), 1);
        let first = text.find("## first").unwrap();
        let second = text.find("## second").unwrap();
        assert!(first < second);
        assert!(text.ends_with("\n\n## second\n"), "{text:?}");
    }

    #[test]
    fn json_holds_goals_and_raw_samples() {
        let dir = crate::paths::ScratchDir::new("xtask-test-").unwrap();
        let path = dir.path().join("bench/ci.json");
        write_json(&path, &report()).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["suite"], "ci");
        assert_eq!(v["results"][0]["goal"]["kind"], "at_most");
        assert_eq!(v["results"][0]["goal"]["value"], 5.0);
        assert_eq!(v["results"][1]["met"], false);
        assert_eq!(v["timings"][0]["samples_s"][1], 0.32);
        assert_eq!(v["machine"]["cores"], 2);
    }
}
