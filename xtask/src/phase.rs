//! Progress lines: every phase says when it starts and how long it took, on stderr, so
//! a CI log shows where the time went.

use std::time::{Duration, Instant};

/// A phase in progress. Finish it with [`Phase::done`].
#[must_use = "finish the phase with `done` so its duration is printed"]
pub struct Phase {
    started: Instant,
}

/// Prints `xtask: {what} …` and starts the clock.
pub fn start(what: &str) -> Phase {
    eprintln!("xtask: {what} …");
    Phase {
        started: Instant::now(),
    }
}

/// Prints a line of its own, without timing.
pub fn note(what: &str) {
    eprintln!("xtask: {what}");
}

impl Phase {
    /// Prints `xtask: {what} in 3.2 s`.
    pub fn done(self, what: &str) {
        eprintln!("xtask: {what} in {}", seconds(self.started.elapsed()));
    }
}

/// `3.2 s`, the way every duration in xtask's output is written.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_printed_in_seconds_with_one_decimal() {
        assert_eq!(seconds(Duration::from_millis(3249)), "3.2 s");
        assert_eq!(seconds(Duration::from_millis(0)), "0.0 s");
        assert_eq!(seconds(Duration::from_secs(75)), "75.0 s");
    }
}
