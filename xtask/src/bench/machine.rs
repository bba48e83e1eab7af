//! A description of the machine a benchmark ran on, so figures can be compared.

use crate::{paths, proc};
use serde::Serialize;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The machine, the build and the moment of a benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Total memory in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// Operating system (PRETTY_NAME from /etc/os-release).
    pub os: String,
    /// rustc's version line.
    pub rustc: String,
    /// When the run started, UTC, `YYYY-MM-DD HH:MM`.
    pub date: String,
    /// The commit benchmarked, short, with `+dirty` for uncommitted changes.
    pub commit: String,
    /// The 1-minute load average when the run started: other work on the machine
    /// skews figures, and this says how much there was.
    pub load_1m: f64,
}

impl Machine {
    /// Reads this machine's description.
    pub fn detect() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Machine {
            cpu: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| "unknown CPU".into()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: mem_total_gib(&read("/proc/meminfo")).unwrap_or(0.0),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            os: os_name(&read("/etc/os-release")).unwrap_or_else(|| "unknown OS".into()),
            rustc: capture(Command::new("rustc").arg("--version")),
            date: utc_minutes(secs),
            commit: commit(),
            load_1m: read("/proc/loadavg")
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
        }
    }

    /// One line for a report.
    pub fn summary(&self) -> String {
        format!(
            "{} ({} cores), {:.1} GiB RAM, Linux {}, {}, {}; load average {:.1} at the start",
            self.cpu, self.cores, self.memory_gib, self.kernel, self.os, self.rustc, self.load_1m
        )
    }
}

fn capture(cmd: &mut Command) -> String {
    proc::output(cmd)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn commit() -> String {
    let git = || {
        let mut c = Command::new("git");
        c.current_dir(paths::root());
        c
    };
    let head = capture(git().args(["rev-parse", "--short=10", "HEAD"]));
    let dirty = proc::output(git().args(["status", "--porcelain", "--untracked-files=no"]))
        .is_ok_and(|s| !s.trim().is_empty());
    if dirty { format!("{head}+dirty") } else { head }
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn mem_total_gib(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}

fn os_name(os_release: &str) -> Option<String> {
    let line = os_release.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    Some(line["PRETTY_NAME=".len()..].trim_matches('"').to_string())
}

/// `YYYY-MM-DD HH:MM` for seconds since the Unix epoch, UTC.
pub fn utc_minutes(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01: shift the epoch to
/// 0000-03-01 so leap days fall at the end of a year, then split into 400-year eras.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc_minutes(0), "1970-01-01 00:00");
        assert_eq!(utc_minutes(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc_minutes(1_795_462_200), "2026-11-23 19:30");
        assert_eq!(utc_minutes(4_107_542_399), "2100-02-28 23:59");
    }

    #[test]
    fn reads_cpu_memory_and_os_from_proc_style_text() {
        let cpuinfo =
            "processor\t: 0\nmodel name\t: AMD EPYC   7B13 64-Core Processor\nprocessor\t: 1\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("AMD EPYC 7B13 64-Core Processor")
        );
        let meminfo = "MemTotal:       25165824 kB\nMemFree: 1 kB\n";
        assert_eq!(mem_total_gib(meminfo), Some(24.0));
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            os_name(os).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(cpu_model(""), None);
    }
}
